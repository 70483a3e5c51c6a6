"""Saga steps as spans: dispatch, local steps and replies, and the command carrying the step."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy.ext.asyncio import AsyncSession

from fleet.common import tracing
from fleet.common.db import Database, service_metadata
from fleet.common.messaging import Envelope
from fleet.common.saga import (
    SagaCommand,
    SagaDefinition,
    SagaEngine,
    SagaInstance,
    SagaStatus,
    Step,
    saga_tables,
)

SCHEMA = "saga_trace_test"
METADATA = service_metadata(SCHEMA)
TABLES = saga_tables(METADATA)
DEFINITION = SagaDefinition(
    "DemoSaga",
    [
        Step("reserve", "svc.reserve", "svc.release"),
        Step("record", "own.record", local=True),
    ],
)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    with tracing.capture_spans() as exporter:
        yield exporter


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'saga.db'}", SCHEMA)
    async with database.engine.begin() as conn:
        await conn.run_sync(METADATA.create_all)
    yield database
    await database.dispose()


class Outbox:
    """`send` as a service wires it: each command becomes an envelope."""

    def __init__(self) -> None:
        self.sent: list[tuple[SagaCommand, Envelope]] = []

    async def send(self, _session: AsyncSession, command: SagaCommand) -> None:
        envelope = Envelope.new(
            command.command_type,
            command.to_dict(),
            producer="owner",
            aggregate_type="saga",
            aggregate_id=command.saga_id,
            kind="command",
            reply_to=command.reply_to,
        )
        self.sent.append((command, envelope))


async def _record(_session: AsyncSession, _saga: SagaInstance) -> dict[str, Any]:
    return {"recorded": True}


def _named(spans: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in spans.get_finished_spans() if s.name == name]


async def test_each_step_dispatch_local_run_and_reply_is_a_span(
    db: Database, spans: InMemorySpanExporter
) -> None:
    outbox = Outbox()
    engine = SagaEngine(DEFINITION, outbox.send, {"record": _record}, tables=TABLES)
    saga_id = uuid.uuid4()

    with tracing.tracer().start_as_current_span("POST /things") as request:
        async with db.transaction() as session:
            await engine.start(session, saga_id, {"thing": 1})
    [(command, envelope)] = outbox.sent
    async with db.transaction() as session:
        saga = await engine.handle_reply(session, command.reply(success=True))
    assert saga is not None
    assert saga.status is SagaStatus.COMPLETED

    dispatch, reply = _named(spans, "saga DemoSaga step reserve")
    assert dispatch.attributes == {
        "saga.id": str(saga_id),
        "saga.step": "reserve",
        "saga.phase": "action",
        "saga.attempt": 1,
    }
    assert dispatch.parent is not None
    assert dispatch.parent.span_id == request.get_span_context().span_id
    # The command carries the dispatch span: the participant's consumer span continues it.
    assert dispatch.context is not None
    assert f"-{dispatch.context.span_id:016x}-" in envelope.headers["traceparent"]

    assert (reply.attributes or {})["saga.reply.success"] is True
    [local] = _named(spans, "saga DemoSaga step record")
    assert local.parent is not None
    assert reply.context is not None
    assert local.parent.span_id == reply.context.span_id  # the reply drove the local step


async def test_steps_are_not_traced_when_tracing_is_off(db: Database) -> None:
    outbox = Outbox()
    engine = SagaEngine(DEFINITION, outbox.send, {"record": _record}, tables=TABLES)
    async with db.transaction() as session:
        await engine.start(session, uuid.uuid4(), {"thing": 1})
    [(_command, envelope)] = outbox.sent
    assert envelope.headers == {}

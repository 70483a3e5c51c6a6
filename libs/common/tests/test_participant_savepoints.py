"""A saga participant runs a handler in a savepoint unless the handler is declared to check
first: either way a refused command writes nothing but its reply."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any, cast

import pytest
from sqlalchemy import Column, String, Table, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from fleet.common.db import Database, service_metadata
from fleet.common.errors import ConflictError
from fleet.common.messaging import Envelope, ExchangeName
from fleet.common.outbox import enqueue, handle_once, inbox_table, outbox_table
from fleet.common.participant import CommandHandler, checks_first, saga_participant
from fleet.common.runtime import ServiceRuntime
from fleet.common.saga import Phase, SagaCommand, SagaReply
from fleet.common.testing import recorded_statements, tables_database

SCHEMA = "participant_savepoint_test"
METADATA = service_metadata(SCHEMA)
OUTBOX = outbox_table(METADATA)
INBOX = inbox_table(METADATA)
HOLDS = Table("holds", METADATA, Column("trip", String(36), primary_key=True))


class Runtime:
    """What `saga_participant` uses of a `ServiceRuntime`: its name and its outbox."""

    name = "wallet"

    async def publish(
        self, session: AsyncSession, message: Envelope, *, exchange: ExchangeName = "events"
    ) -> Envelope:
        await enqueue(session, message, exchange, table=OUTBOX)
        return message


async def hold_checked_first(session: AsyncSession, command: SagaCommand) -> Mapping[str, Any]:
    if command.payload["cents"] > 100:
        raise ConflictError("not enough credits")
    await session.execute(insert(HOLDS).values(trip=command.payload["trip"]))
    return {"held": command.payload["cents"]}


async def hold_then_check(session: AsyncSession, command: SagaCommand) -> Mapping[str, Any]:
    await session.execute(insert(HOLDS).values(trip=command.payload["trip"]))
    if command.payload["cents"] > 100:
        raise ConflictError("not enough credits")
    return {"held": command.payload["cents"]}


@pytest.fixture
async def db(backend_url: str) -> AsyncIterator[Database]:
    async with tables_database(backend_url, SCHEMA, METADATA) as database:
        yield database


async def deliver(db: Database, handler: CommandHandler, cents: int) -> list[str]:
    """Deliver a `wallet.hold` command through the inbox; the statements it took."""
    command = SagaCommand(
        saga_id=uuid.uuid4(),
        saga_name="booking",
        step="hold",
        phase=Phase.ACTION,
        attempt=1,
        command_type="wallet.hold",
        payload={"trip": str(uuid.uuid4()), "cents": cents},
        reply_to="booking.reply",
    )
    envelope = Envelope.new(
        command.command_type,
        command.to_dict(),
        producer="booking",
        aggregate_type="saga",
        aggregate_id=command.saga_id,
        kind="command",
    )
    participant = saga_participant(cast(ServiceRuntime, Runtime()), {"wallet.hold": handler})
    with recorded_statements(db) as seen:
        await handle_once(db, "wallet.commands", participant, table=INBOX)(envelope)
    return [statement.split(None, 1)[0] for statement in seen]


async def outcome(db: Database) -> tuple[list[str], list[tuple[bool, str | None]]]:
    """The holds written and the replies in the outbox."""
    async with db.session() as s:
        holds = list((await s.execute(select(HOLDS.c.trip))).scalars())
        bodies = (await s.execute(select(OUTBOX.c.body))).scalars().all()
    replies = [SagaReply.from_dict(Envelope.decode(b).data) for b in bodies]
    return holds, [(r.success, r.error) for r in replies]


async def test_a_handler_that_checks_first_is_answered_without_a_savepoint(db: Database) -> None:
    seen = await deliver(db, checks_first(hold_checked_first), 50)

    holds, replies = await outcome(db)
    assert len(holds) == 1
    assert replies == [(True, None)]
    assert "SAVEPOINT" not in seen
    if db.is_sqlite:
        assert seen == ["INSERT", "INSERT", "INSERT"]  # the hold, the reply, the inbox claim
    else:  # the hold; the reply and the inbox claim as one statement
        assert seen == ["INSERT", "WITH"]


async def test_a_handler_refusing_before_it_writes_leaves_only_the_refusal(db: Database) -> None:
    seen = await deliver(db, checks_first(hold_checked_first), 500)

    holds, replies = await outcome(db)
    assert holds == []
    assert replies == [(False, "not enough credits")]
    assert "SAVEPOINT" not in seen


async def test_a_handler_that_refuses_after_writing_leaves_only_the_refusal_by_default(
    db: Database,
) -> None:
    seen = await deliver(db, hold_then_check, 500)

    holds, replies = await outcome(db)
    assert holds == []
    assert replies == [(False, "not enough credits")]
    assert "SAVEPOINT" in seen


async def test_a_handler_in_a_savepoint_that_succeeds_commits_its_writes(db: Database) -> None:
    await deliver(db, hold_then_check, 50)

    holds, replies = await outcome(db)
    assert len(holds) == 1
    assert replies == [(True, None)]

"""Tracing inside one app: HTTP server spans, SQL under them, messages that continue the trace.

A small service module (one table, an outbox, an inbox and one subscription) runs on SQLite with
the in-memory bus while `capture_spans` records every span.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import APIRouter, FastAPI, Request
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from sqlalchemy import Column, String, Table, Uuid, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from fleet.common import tracing
from fleet.common.app import ServiceModule, create_app, runtime
from fleet.common.config import Settings
from fleet.common.db import Database, service_metadata
from fleet.common.logging import get_logger
from fleet.common.messaging import Envelope
from fleet.common.outbox import inbox_table, outbox_table
from fleet.common.runtime import ServiceRuntime, Subscription
from fleet.common.testing import app_client

SCHEMA = "tracedemo"
METADATA = service_metadata(SCHEMA)
ITEMS = Table(
    "items",
    METADATA,
    Column("id", Uuid, primary_key=True),
    Column("name", String(100), nullable=False),
)
SEEN = Table("seen", METADATA, Column("id", Uuid, primary_key=True))
outbox_table(METADATA)
inbox_table(METADATA)
log = get_logger("tracedemo")

router = APIRouter()


@router.post("/demo/items/{name}", status_code=201)
async def create_item(name: str, request: Request) -> dict[str, str]:
    rt = runtime(request, SCHEMA)
    item_id = uuid.uuid4()
    log.info("creating item", name=name)
    async with rt.transaction() as session:
        await session.execute(insert(ITEMS).values(id=item_id, name=name))
        envelope = Envelope.new(
            "demo.item-created",
            {"id": str(item_id)},
            producer=SCHEMA,
            aggregate_type="item",
            aggregate_id=item_id,
        )
        await rt.publish(session, envelope)
    return {"id": str(item_id)}


@router.get("/demo/boom")
async def boom() -> None:
    raise RuntimeError("kaput")


async def _on_item(session: AsyncSession, envelope: Envelope) -> None:
    item_id = uuid.UUID(envelope.data["id"])
    await session.execute(select(ITEMS.c.name).where(ITEMS.c.id == item_id))
    await session.execute(insert(SEEN).values(id=item_id))


def _subscriptions(rt: ServiceRuntime) -> list[Subscription]:
    return [Subscription("tracedemo.items", "events", ("demo.#",), rt.consumer("items", _on_item))]


def demo_module() -> ServiceModule:
    return ServiceModule(
        name=SCHEMA,
        schema=SCHEMA,
        metadata=METADATA,
        routers=[router],
        migrations=Path("unused"),
        subscriptions=_subscriptions,
    )


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    with tracing.capture_spans() as exporter:
        yield exporter


async def make_demo_app(data_dir: Path) -> FastAPI:
    settings = Settings(env="test", data_dir=data_dir, log_level="INFO")
    db = Database(settings.database_url_for(SCHEMA), SCHEMA)
    async with db.engine.begin() as conn:
        await conn.run_sync(METADATA.create_all)
    await db.dispose()
    return create_app([demo_module()], settings, access_log=True)


@pytest.fixture
async def demo_app(tmp_path: Path, spans: InMemorySpanExporter) -> FastAPI:
    return await make_demo_app(tmp_path)


def _one(spans: InMemorySpanExporter, name: str) -> ReadableSpan:
    found = [s for s in spans.get_finished_spans() if s.name == name]
    assert len(found) == 1, [s.name for s in spans.get_finished_spans()]
    return found[0]


async def _eventually_span(spans: InMemorySpanExporter, name: str) -> ReadableSpan:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        found = [s for s in spans.get_finished_spans() if s.name == name]
        if found:
            return found[0]
        await asyncio.sleep(0.02)
    raise AssertionError(f"no span {name!r} in {[s.name for s in spans.get_finished_spans()]}")


def _trace_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return int(span.context.trace_id)


def _span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return int(span.context.span_id)


def _descends_from(span: ReadableSpan, ancestor: ReadableSpan, spans: InMemorySpanExporter) -> bool:
    by_id = {_span_id(s): s for s in spans.get_finished_spans()}
    parent = span.parent
    while parent is not None:
        if parent.span_id == _span_id(ancestor):
            return True
        above = by_id.get(parent.span_id)
        parent = above.parent if above is not None else None
    return False


async def test_a_request_gets_a_server_span_named_after_its_route(
    demo_app: FastAPI, spans: InMemorySpanExporter
) -> None:
    async with app_client(demo_app) as client:
        r = await client.post("/demo/items/first")
    assert r.status_code == 201

    server = _one(spans, "POST /demo/items/{name}")
    assert server.kind is SpanKind.SERVER
    attributes = server.attributes or {}
    assert attributes["http.route"] == "/demo/items/{name}"
    assert attributes["http.request.method"] == "POST"
    assert attributes["url.path"] == "/demo/items/first"
    assert attributes["http.response.status_code"] == 201
    assert server.parent is None


async def test_a_request_continues_the_callers_trace(
    demo_app: FastAPI, spans: InMemorySpanExporter
) -> None:
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    async with app_client(demo_app) as client:
        await client.get("/health", headers={"traceparent": f"00-{trace_id}-{parent_id}-01"})

    server = _one(spans, "GET /health")
    assert f"{_trace_id(server):032x}" == trace_id
    assert server.parent is not None
    assert f"{server.parent.span_id:016x}" == parent_id


async def test_a_failing_request_marks_its_span_as_an_error(
    demo_app: FastAPI, spans: InMemorySpanExporter
) -> None:
    async with app_client(demo_app) as client:
        r = await client.get("/demo/boom")
    assert r.status_code == 500

    server = _one(spans, "GET /demo/boom")
    assert server.status.status_code is StatusCode.ERROR
    assert (server.attributes or {})["http.response.status_code"] == 500


async def test_sql_statements_of_a_request_are_children_of_its_span(
    demo_app: FastAPI, spans: InMemorySpanExporter
) -> None:
    async with app_client(demo_app) as client:
        await client.post("/demo/items/sql")

    server = _one(spans, "POST /demo/items/{name}")
    sql = [
        s
        for s in spans.get_finished_spans()
        if s.kind is SpanKind.CLIENT and _trace_id(s) == _trace_id(server)
    ]
    # The request's own writes: the item and its outbox row. (The message it publishes may be
    # consumed before the app stops; those writes are in the same trace, after the publish.)
    inserts = [
        s
        for s in sql
        if str((s.attributes or {}).get("db.statement", "")).startswith(
            ("INSERT INTO main.items", "INSERT INTO main.outbox")
        )
    ]
    assert len(inserts) == 2
    assert all(_descends_from(s, server, spans) for s in inserts)
    assert all((s.attributes or {}).get("db.system") == "sqlite" for s in inserts)


async def test_a_message_published_in_a_request_is_consumed_in_the_same_trace(
    demo_app: FastAPI, spans: InMemorySpanExporter
) -> None:
    async with app_client(demo_app) as client:
        await client.post("/demo/items/traced")
        consume = await _eventually_span(spans, "consume tracedemo.items")

    server = _one(spans, "POST /demo/items/{name}")
    publish = _one(spans, "publish demo.item-created")
    assert publish.kind is SpanKind.PRODUCER
    assert consume.kind is SpanKind.CONSUMER
    assert _trace_id(publish) == _trace_id(consume) == _trace_id(server)
    # request -> publish (in the relay's task) -> consume (in the bus worker)
    assert _descends_from(publish, server, spans)
    assert consume.parent is not None
    assert consume.parent.span_id == _span_id(publish)
    attributes = consume.attributes or {}
    assert attributes["messaging.destination.name"] == "tracedemo.items"
    assert attributes["messaging.system"] == "in-memory"
    assert attributes["messaging.rabbitmq.destination.routing_key"] == "demo.item-created"
    assert attributes["fleet.service"] == SCHEMA
    handler_sql = [
        s
        for s in spans.get_finished_spans()
        if s.parent is not None and s.parent.span_id == _span_id(consume)
    ]
    assert {s.name.split()[0] for s in handler_sql} >= {"SELECT", "INSERT"}


async def test_logs_written_inside_a_request_carry_its_trace_id(
    tmp_path: Path, spans: InMemorySpanExporter, capsys: pytest.CaptureFixture[str]
) -> None:
    demo_app = await make_demo_app(tmp_path)  # after capsys: the logger writes to its stderr
    async with app_client(demo_app) as client:
        await client.post("/demo/items/logged")

    server = _one(spans, "POST /demo/items/{name}")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]
    mine = [
        line
        for line in lines
        if line.get("event") == "creating item"
        or (line.get("event") == "request" and line.get("path") == "/demo/items/logged")
    ]
    assert len(mine) == 2, lines
    assert {line["trace_id"] for line in mine} == {f"{_trace_id(server):032x}"}
    assert all(len(line["span_id"]) == 16 for line in mine)


async def test_background_sql_outside_any_trace_is_not_recorded(
    demo_app: FastAPI, spans: InMemorySpanExporter
) -> None:
    async with app_client(demo_app):
        rt = demo_app.state.fleet.services[SCHEMA]
        async with rt.db.session() as session:
            await session.execute(select(ITEMS.c.id))
        assert rt.relay is not None
        await rt.relay.run_once()

    assert [s.name for s in spans.get_finished_spans() if s.parent is None] == []


async def test_an_app_built_with_tracing_off_stays_untraced(tmp_path: Path) -> None:
    app = await make_demo_app(tmp_path)  # no exporter, no capture: tracing is off
    with tracing.capture_spans() as spans:  # ... even if the process turns it on later
        async with app_client(app) as client:
            r = await client.get("/ready")
    assert r.status_code == 200
    assert spans.get_finished_spans() == ()

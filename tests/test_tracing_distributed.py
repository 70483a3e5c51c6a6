"""One booking is one trace across the processes it involves (trip, user, vehicle; billing's
fare quote is a local step of trip since ADR 0007): HTTP in, saga commands and replies over
RabbitMQ (publish and consume spans), SQL in every service — all under the caller's trace id.

Every process appends its spans to one JSON-lines file (`FLEET_TRACE_FILE`).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fleet.platform.client import Platform, User
from fleet.platform.distributed import DistributedStack

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.rabbitmq,
    pytest.mark.timeout(180),
]

SERVICES = {"fleet-user", "fleet-vehicle", "fleet-trip"}
Span = dict[str, Any]


@pytest.fixture
def trace_file(tmp_path: Path) -> Path:
    return tmp_path / "spans.jsonl"


@pytest.fixture
def stack_env(trace_file: Path) -> dict[str, str]:
    return {
        "FLEET_TRACE_FILE": str(trace_file),
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }


@pytest.fixture
async def api(stack: DistributedStack) -> AsyncIterator[Platform]:
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as http:
        yield Platform(http)


def spans_of(path: Path, trace_id: str) -> list[Span]:
    if not path.exists():
        return []
    lines = (json.loads(line) for line in path.read_text().splitlines() if line.strip())
    return [s for s in lines if s["trace_id"] == trace_id]


def service(span: Span) -> str:
    return str(span["resource"]["service.name"])


def by_service(spans: list[Span], prefix: str) -> set[str]:
    return {service(s) for s in spans if s["name"].startswith(prefix)}


def orphans(spans: list[Span], caller_span: str) -> list[str]:
    """Spans whose parent is neither in the trace nor the caller's own span."""
    ids = {s["span_id"] for s in spans} | {caller_span}
    return [s["name"] for s in spans if s["parent_span_id"] not in ids]


def complete(spans: list[Span], caller_span: str) -> bool:
    return (
        by_service(spans, "consume ") == SERVICES
        and by_service(spans, "publish ") == SERVICES
        and "saga trip-booking step send-confirmation" in {s["name"] for s in spans}
        and not orphans(spans, caller_span)
    )


async def wait_for_trace(path: Path, trace_id: str, caller_span: str) -> list[Span]:
    """The trace's spans once every service exported its part (batches leave every 100 ms)."""
    deadline = time.monotonic() + 30
    while not complete(spans := spans_of(path, trace_id), caller_span):
        if time.monotonic() > deadline:
            seen = sorted({(service(s), s["name"]) for s in spans if s["kind"] != "CLIENT"})
            raise AssertionError(f"incomplete trace; orphans {orphans(spans, caller_span)}; {seen}")
        await asyncio.sleep(0.1)
    return spans


async def test_a_booking_is_one_trace_across_the_services_it_involves(
    api: Platform, trace_file: Path
) -> None:
    op = await api.operator()
    await api.vehicle(op, 1)
    rider = await api.rider(credits_cents=10_000)
    trace_id, caller_span = secrets.token_hex(16), secrets.token_hex(8)
    traced = User(rider.id, {**rider.headers, "traceparent": f"00-{trace_id}-{caller_span}-01"})

    trip = await api.book(traced)
    assert (await api.settled(rider, trip["id"]))["status"] == "confirmed"

    spans = await wait_for_trace(trace_file, trace_id, caller_span)

    [server] = [s for s in spans if s["kind"] == "SERVER" and s["name"] == "POST /trips"]
    assert service(server) == "fleet-trip"
    assert server["parent_span_id"] == caller_span
    assert {service(s) for s in spans} == SERVICES
    # Each participant's command arrives over RabbitMQ and its SQL runs under the consume span.
    for name in ("fleet-user", "fleet-vehicle"):
        consumes = [
            s for s in spans if service(s) == name and s["name"] == f"consume {name[6:]}.commands"
        ]
        assert consumes, name
        assert all(s["attributes"]["messaging.system"] == "rabbitmq" for s in consumes)
        consume_ids = {s["span_id"] for s in consumes}
        sql = [s for s in spans if service(s) == name and s["kind"] == "CLIENT"]
        assert any(s["parent_span_id"] in consume_ids for s in sql), name
    saga_steps = {s["name"] for s in spans if s["name"].startswith("saga ")}
    local_and_remote = ("quote-fare", "reserve-vehicle", "create-trip")
    assert {f"saga trip-booking step {step}" for step in local_and_remote} <= saga_steps
    assert not any(s["name"].startswith("publish billing.") for s in spans)  # quoted locally

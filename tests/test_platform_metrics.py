"""/metrics exposes the messaging gauges: outbox backlog and age, queue depth, dead letters."""

from __future__ import annotations

import asyncio
import time

import httpx
from fastapi import FastAPI

from fleet.common.messaging import Envelope


def _sample(text: str, name: str, label: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and label in line:
            return float(line.rsplit(" ", 1)[1])
    return None


async def test_metrics_show_outbox_backlog_and_dead_letters_per_queue(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    text = (await client.get("/metrics")).text
    for service in ("user", "vehicle", "trip", "billing"):
        assert _sample(text, "outbox_backlog", f'service="{service}"') == 0.0
        assert _sample(text, "outbox_oldest_age_seconds", f'service="{service}"') == 0.0
    assert _sample(text, "queue_depth", 'queue="billing.events"') == 0.0
    assert _sample(text, "dead_letters", 'queue="billing.events"') == 0.0

    poison = Envelope.new(
        "trip.completed",
        {"nonsense": True},
        producer="test",
        aggregate_type="trip",
        aggregate_id="x",
    )
    await app.state.fleet.bus.publish(poison)
    deadline = time.monotonic() + 10
    while True:
        text = (await client.get("/metrics")).text
        if _sample(text, "dead_letters", 'queue="billing.events"') == 1.0:
            break
        assert time.monotonic() < deadline, "the poison message never reached the DLQ gauge"
        await asyncio.sleep(0.05)

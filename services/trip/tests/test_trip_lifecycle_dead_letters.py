"""Dead letters of `trip.completed` in one process: a poison message is parked at once, and a
message that failed for a transient reason is invoiced exactly once after an operator's replay.

The transient failure is injected into the real billing component (its invoice use case raises
until the fault is removed); the bus, the inbox and the other consumers are untouched.
"""

from __future__ import annotations

import uuid
from functools import partial
from typing import Any

import pytest
from fastapi import FastAPI

from fleet.billing.service import billing as billing_service
from fleet.common.messaging import Envelope, MessageBus
from fleet.common.messaging.bus import RetryPolicy
from fleet.common.testing import assert_problem
from fleet.platform.client import Platform, User, eventually

BILLING_EVENTS = "/dead-letters/billing.events"
QUEUES = {
    "billing.events",
    "trip.events",
    "trip.saga-replies",
    "trip.tariffs",
    "user.commands",
    "user.events",
    "vehicle.commands",
    "vehicle.events",
}


@pytest.fixture
def bus(app: FastAPI) -> MessageBus:
    """The bus of the app under test (the same app the `client` runs)."""
    the_bus: MessageBus = app.state.fleet.bus
    return the_bus


@pytest.fixture
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries as many as in production, 10 ms apart instead of 0.2 s, 1 s and 5 s."""
    monkeypatch.setattr(RetryPolicy, "delay", lambda _self, _retries_done: 0.01)


async def dead_letters(api: Platform, who: User, queue_path: str = BILLING_EVENTS) -> Any:
    return await api.get(who, queue_path)


async def test_operators_see_every_consumed_queue_riders_are_refused(api: Platform) -> None:
    op, rider = await api.operator(), await api.rider()
    assert set(await api.get(op, "/dead-letters")) >= QUEUES
    assert await dead_letters(api, op) == []
    assert_problem(await api.http.get("/dead-letters", headers=rider.headers), 403)
    assert_problem(await api.http.get(BILLING_EVENTS, headers=rider.headers), 403)
    assert_problem(await api.http.post(f"{BILLING_EVENTS}/replay", headers=rider.headers), 403)
    assert_problem(await api.http.get("/dead-letters"), 401)


async def test_an_unknown_queue_is_404(api: Platform) -> None:
    op = await api.operator()
    for path in ("/dead-letters/billing.nothing", "/dead-letters/'; DROP TABLE x; --"):
        assert_problem(await api.http.get(path, headers=op.headers), 404)
        assert_problem(await api.http.get(f"{path}/depth", headers=op.headers), 404)
        assert_problem(await api.http.post(f"{path}/replay", headers=op.headers), 404)


async def test_a_replay_body_is_validated(api: Platform) -> None:
    op = await api.operator()
    r = await api.http.post(f"{BILLING_EVENTS}/replay", json={"all": True}, headers=op.headers)
    assert_problem(r, 422)
    r = await api.http.post(f"{BILLING_EVENTS}/replay", json={"ids": [""]}, headers=op.headers)
    assert_problem(r, 422)
    r = await api.http.post(
        f"{BILLING_EVENTS}/replay", json={"ids": ["no-such-letter"]}, headers=op.headers
    )
    assert (r.status_code, r.json()) == (200, {"replayed": 0})


async def test_a_poison_trip_completed_is_dead_lettered_at_once_and_invoices_nothing(
    api: Platform, bus: MessageBus
) -> None:
    op = await api.operator()
    poison = Envelope.new(
        "trip.completed",
        {"trip_id": "not-a-uuid", "garbage": ["\x00", 1e308]},
        producer="trip",
        aggregate_type="trip",
        aggregate_id=uuid.uuid4(),
    )

    await bus.publish(poison)

    dead = await eventually(lambda: dead_letters(api, op), bool, within=5)
    assert len(dead) == 1
    letter = dead[0]
    assert (letter["queue"], letter["event_type"]) == ("billing.events", "trip.completed")
    assert letter["event_id"] == str(poison.event_id)
    assert letter["attempts"] == 1  # malformed: retrying can never help
    assert "MalformedMessage" in letter["error"]
    assert "garbage" in letter["body_preview"]
    assert letter["handler"].startswith("billing.events:")
    assert (await api.get(op, "/invoices"))["items"] == []
    depth = await api.get(op, f"{BILLING_EVENTS}/depth")
    assert depth == {"queue": "billing.events", "ready": 0, "dead": 1}
    rider = await api.rider()
    assert_problem(await api.http.get(f"{BILLING_EVENTS}/depth", headers=rider.headers), 403)
    # every consumer of trip.completed parks its own copy
    for queue in ("trip.events", "vehicle.events"):
        await eventually(partial(dead_letters, api, op, f"/dead-letters/{queue}"), bool, 5)


@pytest.mark.usefixtures("quick_retries")
async def test_a_transient_failure_is_dead_lettered_then_invoiced_once_on_replay(
    api: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    op = await api.operator()
    rider, trip = await api.started_trip(op)
    attempts: list[uuid.UUID] = []

    async def ledger_down(*_args: object, **_kwargs: object) -> None:
        attempts.append(uuid.uuid4())
        raise ConnectionError("billing ledger unreachable")

    working = billing_service.issue_invoice
    monkeypatch.setattr(billing_service, "issue_invoice", ledger_down)
    r = await api.http.post(
        f"/trips/{trip['id']}/complete",
        json={"distance_km": 5.0, "duration_min": 12},
        headers=op.headers,
    )
    assert r.status_code == 200, r.text

    dead = await eventually(lambda: dead_letters(api, op), bool, within=5)
    assert len(dead) == 1
    assert dead[0]["event_type"] == "trip.completed"
    assert dead[0]["attempts"] == 4 == len(attempts)  # the first try and three retries
    assert "ConnectionError: billing ledger unreachable" in dead[0]["error"]
    assert (await api.get(rider, "/invoices"))["items"] == []
    assert (await api.wallet(rider))["held_cents"] == trip["quoted_fare_cents"]

    monkeypatch.setattr(billing_service, "issue_invoice", working)  # the ledger is back
    r = await api.http.post(f"{BILLING_EVENTS}/replay", headers=op.headers)

    assert (r.status_code, r.json()) == (200, {"replayed": 1})
    page = await eventually(
        lambda: api.get(rider, "/invoices"),
        lambda page: [i["status"] for i in page["items"]] == ["paid"],
        within=5,
    )
    fare = page["items"][0]["amount_cents"]
    assert fare == 250 + 120 * 5 + 30 * 12
    assert await api.wallet(rider) == {
        "balance_cents": 10_000 - fare,
        "held_cents": 0,
        "available_cents": 10_000 - fare,
    }
    assert await dead_letters(api, op) == []
    r = await api.http.post(f"{BILLING_EVENTS}/replay", headers=op.headers)
    assert r.json() == {"replayed": 0}
    # the replay went to billing's queue only: the analytics counted the ride once
    days = await eventually(
        lambda: api.get(op, "/analytics/trips/daily"),
        lambda days: bool(days) and days[0]["revenue_cents"] == fare,
        within=5,
    )
    assert days[0]["trips"] == 1
    assert len((await api.get(op, "/invoices"))["items"]) == 1

"""trip's replica of billing's tariffs and the booking saga's local quote, in one process.

A tariff an operator puts in billing travels as `billing.tariff-changed` (billing's outbox, the
in-memory bus, trip's inbox) into `trip.tariffs`; the next booking's quote-fare step prices the
ride with it, without a broker round trip. Redeliveries, re-announcements and late older versions
leave the newest version in place.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import delete, select

from fleet.billing.service.tariffs import announce_tariffs
from fleet.common.db import Database
from fleet.common.geo import Point
from fleet.common.messaging import Envelope
from fleet.common.runtime import ServiceRuntime
from fleet.contracts import fares
from fleet.contracts.events import TariffChanged
from fleet.contracts.fares import DEFAULT_TARIFF, Tariff
from fleet.contracts.queues import TRIP_TARIFFS
from fleet.platform.client import SEOUL, Platform, User, eventually
from fleet.trip.adapters.tables import outbox, tariffs

DROPOFF = {"lat": 37.5796, "lon": 126.9770}  # what Platform.book asks for
NEW_YORK = {"lat": 40.7128, "lon": -74.0060}
T0 = dt.datetime(2026, 3, 1, 8, 0, tzinfo=dt.UTC)

Replica = Callable[[], Awaitable[dict[str, dict[str, Any]]]]
Deliver = Callable[[Envelope], Awaitable[None]]


@pytest.fixture
def replica(trip_db: Database) -> Replica:
    """`await replica()`: trip's tariff rows by vehicle model."""

    async def read() -> dict[str, dict[str, Any]]:
        async with trip_db.session() as session:
            rows = (await session.execute(select(tariffs))).mappings()
            return {r["vehicle_model"]: dict(r) for r in rows}

    return read


@pytest.fixture
def deliver(app: FastAPI, trip_db: Database) -> Deliver:
    """Run trip's `trip.tariffs` handler as the bus does on a (re)delivery (returns committed)."""
    del trip_db  # requested only so that the app's lifespan has run
    rt: ServiceRuntime = app.state.fleet.services["trip"]
    assert rt.module.subscriptions is not None
    handlers = {s.queue: s.handler for s in rt.module.subscriptions(rt)}
    return handlers[TRIP_TARIFFS.name]


def changed(version: int, base_cents: int, model: str = "default") -> Envelope:
    event = TariffChanged(
        vehicle_model=model,
        base_cents=base_cents,
        per_km_cents=100,
        per_min_cents=10,
        version=version,
        updated_at=T0 + dt.timedelta(minutes=version),
    )
    return event.to_envelope(
        producer="billing", aggregate_type="tariff", aggregate_id=model, version=version
    )


async def put_tariff(api: Platform, op: User, model: str, **cents: int) -> None:
    r = await api.http.put(f"/tariffs/{model}", json=cents, headers=op.headers)
    assert r.status_code == 200, r.text


def fare(tariff: Tariff, dropoff: dict[str, float] = DROPOFF) -> int:
    return fares.quote(tariff, Point(**SEOUL), Point(**dropoff)).fare_cents


async def test_a_tariff_put_in_billing_reaches_trips_replica(
    api: Platform, replica: Replica
) -> None:
    op = await api.operator()
    assert await replica() == {}

    await put_tariff(api, op, "default", base_cents=500, per_km_cents=150, per_min_cents=40)
    first = await eventually(replica, lambda r: "default" in r, within=5)
    await put_tariff(api, op, "default", base_cents=600, per_km_cents=150, per_min_cents=40)
    second = await eventually(replica, lambda r: r["default"]["version"] == 2, within=5)

    assert first["default"]["version"] == 1
    assert (first["default"]["base_cents"], second["default"]["base_cents"]) == (500, 600)
    assert (second["default"]["per_km_cents"], second["default"]["per_min_cents"]) == (150, 40)


async def test_a_booking_holds_the_fare_of_the_replicated_default_tariff_after_a_change(
    api: Platform, replica: Replica
) -> None:
    op = await api.operator()
    await api.vehicle(op, 1)
    await api.vehicle(op, 2)
    early = await api.rider(credits_cents=10_000)
    before = await api.settled(early, (await api.book(early))["id"], within=5)
    assert before["quoted_fare_cents"] == fare(DEFAULT_TARIFF)  # nothing replicated yet

    await put_tariff(api, op, "default", base_cents=900, per_km_cents=300, per_min_cents=60)
    # A model's own tariff does not apply: the vehicle is not chosen when the fare is quoted.
    await put_tariff(api, op, "Ioniq5", base_cents=1, per_km_cents=1, per_min_cents=1)
    await eventually(replica, lambda r: {"default", "Ioniq5"} <= r.keys(), within=5)
    rider = await api.rider(credits_cents=10_000)
    trip = await api.settled(rider, (await api.book(rider))["id"], within=5)

    expected = fare(Tariff("default", 900, 300, 60))
    assert expected != fare(DEFAULT_TARIFF)
    assert (trip["status"], trip["quoted_fare_cents"]) == ("confirmed", expected), trip
    assert (await api.wallet(rider))["held_cents"] == expected
    quoted = await api.http.post(
        "/quotes", json={"pickup": SEOUL, "dropoff": DROPOFF}, headers=rider.headers
    )
    assert quoted.json()["fare_cents"] == expected  # billing's own quote agrees


async def test_the_quote_is_local_no_command_goes_to_billing(
    api: Platform, trip_db: Database
) -> None:
    op = await api.operator()
    await api.vehicle(op, 1)
    rider = await api.rider(credits_cents=10_000)

    trip = await api.settled(rider, (await api.book(rider))["id"], within=5)

    assert trip["status"] == "confirmed", trip
    async with trip_db.session() as session:
        sent = set((await session.scalars(select(outbox.c.routing_key))).all())
    assert sent == {
        "user.reserve-credits",
        "vehicle.reserve-vehicle",
        "user.send-confirmation",
        "trip.confirmed",
    }
    assert trip["quoted_fare_cents"] == fare(DEFAULT_TARIFF)
    saga = await api.get(rider, f"/sagas/{trip['saga_id']}")
    quote = next(s for s in saga["steps"] if s["name"] == "quote-fare")
    assert (quote["status"], quote["attempts"], quote["error"]) == ("succeeded", 1, None)


async def test_a_ride_longer_than_a_trip_may_cover_is_rejected_at_the_quote(
    api: Platform,
) -> None:
    op = await api.operator()
    await api.vehicle(op, 1)
    rider = await api.rider(credits_cents=10_000)

    trip = await api.settled(rider, (await api.book(rider, dropoff=NEW_YORK))["id"], within=5)

    assert trip["status"] == "rejected"
    assert "quote-fare" in trip["rejection_reason"]
    assert "longer than the 2000 km a trip may cover" in trip["rejection_reason"]
    assert (await api.wallet(rider))["held_cents"] == 0
    saga = await api.get(rider, f"/sagas/{trip['saga_id']}")
    assert saga["status"] == "compensated"
    assert [(s["name"], s["status"]) for s in saga["steps"]] == [
        ("quote-fare", "failed"),
        ("reserve-credits", "skipped"),
        ("reserve-vehicle", "skipped"),
        ("create-trip", "skipped"),
        ("send-confirmation", "skipped"),
    ]


async def test_a_redelivered_or_reannounced_tariff_changes_nothing(
    deliver: Deliver, replica: Replica
) -> None:
    announced = changed(3, base_cents=700)
    await deliver(announced)
    held = await replica()

    await deliver(announced)  # the same message again
    await deliver(changed(3, base_cents=700))  # billing's periodic re-announcement (new id)

    assert await replica() == held
    assert (held["default"]["version"], held["default"]["base_cents"]) == (3, 700)


async def test_an_older_version_never_overwrites_a_newer_one(
    deliver: Deliver, replica: Replica
) -> None:
    await deliver(changed(5, base_cents=800))
    await deliver(changed(4, base_cents=100))  # late, older
    kept = (await replica())["default"]
    assert (kept["version"], kept["base_cents"]) == (5, 800)

    await deliver(changed(6, base_cents=900))
    newest = (await replica())["default"]
    assert (newest["version"], newest["base_cents"]) == (6, 900)
    assert newest["updated_at"] == T0 + dt.timedelta(minutes=6)


async def test_an_emptied_replica_converges_when_billing_announces_again(
    api: Platform, app: FastAPI, replica: Replica, trip_db: Database
) -> None:
    op = await api.operator()
    await put_tariff(api, op, "default", base_cents=500, per_km_cents=150, per_min_cents=40)
    await put_tariff(api, op, "default", base_cents=510, per_km_cents=150, per_min_cents=40)
    await put_tariff(api, op, "Ioniq5", base_cents=300, per_km_cents=100, per_min_cents=20)
    full = await eventually(
        replica, lambda r: r.keys() == {"default", "Ioniq5"} and r["default"]["version"] == 2
    )
    async with trip_db.transaction() as session:
        await session.execute(delete(tariffs))
    assert await replica() == {}

    assert await announce_tariffs(app.state.fleet.services["billing"]) == 2

    assert await eventually(replica, lambda r: len(r) == 2, within=5) == full

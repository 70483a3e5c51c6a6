"""Start and complete on the whole platform in one process, and what the other services do
about it: vehicle status and odometer, the rider's hold and invoice, the analytics.
(Cancelling: test_trip_lifecycle_cancel.py.)"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from fleet.common.db import Database
from fleet.common.testing import RiderFactory, assert_problem
from fleet.platform.client import Platform, User, eventually
from fleet.trip.adapters.repository import SqlTripRepository
from fleet.trip.domain.tracking import TrackingPoint
from fleet.trip.domain.trips import Trip, TripStatus

SeedTrip = Callable[..., Awaitable[Trip]]
SeedTracking = Callable[..., Awaitable[list[TrackingPoint]]]

# The default tariff (billing): base + per km + per min.
BASE, PER_KM, PER_MIN = 250, 120, 30
FULL_WALLET = {"balance_cents": 10_000, "held_cents": 0, "available_cents": 10_000}


async def paid_invoice(api: Platform, rider: User) -> dict[str, Any]:
    """The rider's only invoice, once it is paid."""
    page = await eventually(
        lambda: api.get(rider, "/invoices"),
        lambda page: [i["status"] for i in page["items"]] == ["paid"],
        within=5,
    )
    invoice: dict[str, Any] = page["items"][0]
    return invoice


# -- start ------------------------------------------------------------------------------------


async def test_an_operator_starts_a_confirmed_trip_and_the_vehicle_goes_in_trip(
    api: Platform,
) -> None:
    op = await api.operator()
    rider, trip = await api.confirmed_trip(op)

    r = await api.act(op, trip["id"], "start")

    assert r.status_code == 200, r.text
    started = r.json()
    assert (started["status"], started["vehicle_id"]) == ("in_progress", trip["vehicle_id"])
    assert started["started_at"] is not None
    assert (await api.trip(rider, trip["id"]))["status"] == "in_progress"
    await api.vehicle_becomes(op, trip["vehicle_id"], "in_trip")


async def test_a_rider_cannot_start_their_trip(api: Platform) -> None:
    op = await api.operator()
    rider, trip = await api.confirmed_trip(op)
    assert_problem(await api.act(rider, trip["id"], "start"), 403)
    assert_problem(await api.act(None, trip["id"], "start"), 401)
    assert await api.status_of(op, trip["id"]) == "confirmed"


async def test_a_pending_trip_cannot_start(
    api: Platform, seed_trip: SeedTrip, make_rider: RiderFactory
) -> None:
    op = await api.operator()
    rider = await make_rider()
    pending = await seed_trip(rider.id)
    r = await api.act(op, str(pending.id), "start")
    assert_problem(r, 409)
    assert r.json()["status_now"] == "pending"
    assert await api.status_of(op, str(pending.id)) == "pending"


async def test_a_trip_cannot_start_twice_nor_after_completion(api: Platform) -> None:
    op = await api.operator()
    _, trip = await api.started_trip(op)
    assert_problem(await api.act(op, trip["id"], "start"), 409)
    r = await api.act(op, trip["id"], "complete", distance_km=1.0, duration_min=3)
    assert r.status_code == 200, r.text
    r = await api.act(op, trip["id"], "start")
    assert_problem(r, 409)
    assert (r.json()["status_now"], r.json()["requested"]) == ("completed", "in_progress")


@pytest.mark.parametrize("action", ["start", "complete", "cancel"])
async def test_acting_on_an_unknown_trip_is_404_and_on_a_bad_id_422(
    api: Platform, action: str
) -> None:
    op = await api.operator()
    body = {"distance_km": 1.0} if action == "complete" else {}
    assert_problem(await api.act(op, str(uuid.uuid4()), action, **body), 404)
    assert_problem(await api.act(op, "trip-1", action, **body), 422, ["path", "trip_id"])


# -- complete ---------------------------------------------------------------------------------


BAD_COMPLETIONS: list[tuple[dict[str, Any], list[str]]] = [
    ({"distance_km": -0.1}, ["body", "distance_km"]),
    ({"distance_km": 1e9}, ["body", "distance_km"]),
    ({"distance_km": "far"}, ["body", "distance_km"]),
    ({"distance_km": "5"}, ["body", "distance_km"]),
    ({"distance_km": True}, ["body", "distance_km"]),
    ({"distance_km": None}, ["body", "distance_km"]),
    ({"distance_km": 5, "duration_min": "12"}, ["body", "duration_min"]),
    ({"distance_km": 5, "duration_min": False}, ["body", "duration_min"]),
    ({}, ["body", "distance_km"]),
    ({"distance_km": 5, "duration_min": -1}, ["body", "duration_min"]),
    ({"distance_km": 5, "duration_min": 10_000_000}, ["body", "duration_min"]),
    ({"distance_km": 5, "fare_cents": 1}, ["body", "fare_cents"]),
]


async def test_completing_with_bad_numbers_is_422_and_the_trip_stays_in_progress(
    api: Platform,
) -> None:
    op = await api.operator()
    _, trip = await api.started_trip(op)
    for body, loc in BAD_COMPLETIONS:
        r = await api.http.post(f"/trips/{trip['id']}/complete", json=body, headers=op.headers)
        assert_problem(r, 422, loc)
    assert await api.status_of(op, trip["id"]) == "in_progress"


async def test_only_an_operator_completes_a_trip(api: Platform) -> None:
    op = await api.operator()
    rider, trip = await api.started_trip(op)
    assert_problem(await api.act(rider, trip["id"], "complete", distance_km=2.0), 403)
    assert_problem(await api.act(None, trip["id"], "complete", distance_km=2.0), 401)
    assert await api.status_of(op, trip["id"]) == "in_progress"


async def test_a_trip_not_in_progress_cannot_complete(api: Platform) -> None:
    op = await api.operator()
    _, trip = await api.confirmed_trip(op)
    r = await api.act(op, trip["id"], "complete", distance_km=2.0, duration_min=5)
    assert_problem(r, 409)
    assert r.json()["status_now"] == "confirmed"
    assert await api.status_of(op, trip["id"]) == "confirmed"


async def test_without_a_duration_it_is_derived_from_the_tracked_positions(
    api: Platform, trip_db: Database, seed_tracking: SeedTracking
) -> None:
    op = await api.operator()
    _, trip = await api.started_trip(op)
    async with trip_db.session() as session:
        stored = await SqlTripRepository(session).get(uuid.UUID(trip["id"]))
    assert stored is not None
    await seed_tracking(stored, 7)  # ten seconds apart: one minute driven

    r = await api.act(op, trip["id"], "complete", distance_km=0.6)

    assert r.status_code == 200, r.text
    assert (r.json()["distance_km"], r.json()["duration_min"]) == (0.6, 1.0)


async def test_without_a_duration_or_tracking_it_is_the_time_since_start(api: Platform) -> None:
    op = await api.operator()
    _, trip = await api.started_trip(op)
    r = await api.act(op, trip["id"], "complete", distance_km=0.2)
    assert r.status_code == 200, r.text
    assert 0 <= r.json()["duration_min"] < 1  # started a moment ago


async def test_a_derived_duration_billing_could_never_charge_is_422_not_a_dead_letter(
    api: Platform, seed_trip: SeedTrip, make_rider: RiderFactory
) -> None:
    """A trip started months ago (seeded) and completed without a duration: the time since
    start is no ride. Accepting it would publish a trip.completed billing refuses for good."""
    op = await api.operator()
    rider = await make_rider()
    forgotten = await seed_trip(rider.id, status=TripStatus.IN_PROGRESS)

    r = await api.act(op, str(forgotten.id), "complete", distance_km=3.0)

    assert_problem(r, 422, ["body", "duration_min"])
    assert "give duration_min" in r.json()["detail"]
    assert await api.status_of(op, str(forgotten.id)) == "in_progress"
    r = await api.act(op, str(forgotten.id), "complete", distance_km=3.0, duration_min=20)
    assert r.status_code == 200, r.text
    assert r.json()["duration_min"] == 20.0
    assert await api.get(op, "/dead-letters/billing.events") == []


async def test_completing_pays_the_invoice_frees_the_vehicle_and_feeds_the_analytics(
    api: Platform,
) -> None:
    op = await api.operator()
    ada, ada_trip = await api.started_trip(op, 1)
    bob, bob_trip = await api.started_trip(op, 2)
    before = await api.get(op, f"/vehicles/{ada_trip['vehicle_id']}")

    r = await api.act(op, ada_trip["id"], "complete", distance_km=5.0, duration_min=12)
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["distance_km"], r.json()["duration_min"]) == (
        "completed",
        5.0,
        12.0,
    )
    r = await api.act(op, bob_trip["id"], "complete", distance_km=3.0, duration_min=8)
    assert r.status_code == 200, r.text

    ada_fare, bob_fare = BASE + PER_KM * 5 + PER_MIN * 12, BASE + PER_KM * 3 + PER_MIN * 8
    for rider, fare in ((ada, ada_fare), (bob, bob_fare)):
        invoice = await paid_invoice(api, rider)
        assert invoice["amount_cents"] == fare
        assert await api.wallet(rider) == {
            "balance_cents": 10_000 - fare,
            "held_cents": 0,
            "available_cents": 10_000 - fare,
        }
    vehicle = await api.vehicle_becomes(op, ada_trip["vehicle_id"], "available")
    assert vehicle["odometer_km"] == pytest.approx(before["odometer_km"] + 5.0)
    assert vehicle["reserved_trip_id"] is None
    days = await eventually(
        lambda: api.get(op, "/analytics/trips/daily"),
        lambda days: bool(days) and days[0]["revenue_cents"] == ada_fare + bob_fare,
        within=5,
    )
    assert len(days) == 1
    assert days[0]["trips"] == 2
    assert days[0]["avg_distance_km"] == pytest.approx(4.0)
    assert days[0]["avg_duration_min"] == pytest.approx(10.0)
    done = await eventually(
        lambda: api.trip(ada, ada_trip["id"]), lambda t: t["fare_cents"] is not None, within=5
    )
    assert done["fare_cents"] == ada_fare
    assert_problem(await api.http.get("/analytics/trips/daily", headers=ada.headers), 403)


async def test_the_daily_analytics_are_for_operators_with_a_bounded_window(
    api: Platform,
) -> None:
    op = await api.operator()
    assert await api.get(op, "/analytics/trips/daily?days=1") == []
    assert_problem(await api.http.get("/analytics/trips/daily"), 401)
    for days in ("0", "367", "week"):
        r = await api.http.get(f"/analytics/trips/daily?days={days}", headers=op.headers)
        assert_problem(r, 422, ["query", "days"])


async def test_completing_twice_at_once_completes_and_invoices_once(api: Platform) -> None:
    op = await api.operator()
    rider, trip = await api.started_trip(op)

    answers = await asyncio.gather(
        *(api.act(op, trip["id"], "complete", distance_km=2.0, duration_min=5) for _ in range(4))
    )

    assert sorted(r.status_code for r in answers) == [200, 409, 409, 409]
    invoice = await paid_invoice(api, rider)
    assert invoice["amount_cents"] == BASE + PER_KM * 2 + PER_MIN * 5
    vehicle = await api.vehicle_becomes(op, trip["vehicle_id"], "available")
    assert vehicle["odometer_km"] == pytest.approx(2.0)
    assert len((await api.get(op, "/invoices"))["items"]) == 1

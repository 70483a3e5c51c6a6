"""Cancelling on the whole platform in one process: owner or operator, before the start only;
the rider's hold and the vehicle come back, the rider is told."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from fleet.common.testing import RiderFactory, assert_problem
from fleet.platform.client import Platform, eventually
from fleet.trip.domain.trips import Trip

SeedTrip = Callable[..., Awaitable[Trip]]
FULL_WALLET = {"balance_cents": 10_000, "held_cents": 0, "available_cents": 10_000}


async def test_the_rider_cancels_and_gets_the_hold_and_vehicle_back(api: Platform) -> None:
    op = await api.operator()
    rider, trip = await api.confirmed_trip(op)
    assert (await api.wallet(rider))["held_cents"] == trip["quoted_fare_cents"]

    r = await api.act(rider, trip["id"], "cancel", reason="plans changed")

    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["cancelled_at"] is not None) == ("cancelled", True)
    await eventually(lambda: api.wallet(rider), lambda w: w == FULL_WALLET, within=5)
    vehicle = await api.vehicle_becomes(op, trip["vehicle_id"], "available")
    assert vehicle["reserved_trip_id"] is None
    notes = await eventually(
        lambda: api.get(rider, "/notifications"),
        lambda page: any("cancelled" in n["title"].lower() for n in page["items"]),
        within=5,
    )
    assert any("plans changed" in n["body"] for n in notes["items"])


async def test_an_operator_cancels_any_trip_without_a_body(api: Platform) -> None:
    op = await api.operator()
    rider, trip = await api.confirmed_trip(op)
    r = await api.http.post(f"/trips/{trip['id']}/cancel", headers=op.headers)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled"
    await eventually(lambda: api.wallet(rider), lambda w: w == FULL_WALLET, within=5)
    await api.vehicle_becomes(op, trip["vehicle_id"], "available")


async def test_another_rider_cannot_cancel_a_trip_they_cannot_see(api: Platform) -> None:
    op = await api.operator()
    owner, trip = await api.confirmed_trip(op)
    stranger = await api.rider()
    r = await api.act(stranger, trip["id"], "cancel")
    assert_problem(r, 404)
    assert owner.id not in r.text
    assert_problem(await api.act(None, trip["id"], "cancel"), 401)
    assert await api.status_of(op, trip["id"]) == "confirmed"
    assert (await api.wallet(owner))["held_cents"] == trip["quoted_fare_cents"]


async def test_a_started_or_cancelled_trip_cannot_be_cancelled(api: Platform) -> None:
    op = await api.operator()
    rider, trip = await api.started_trip(op)
    r = await api.act(rider, trip["id"], "cancel")
    assert_problem(r, 409)
    assert r.json()["status_now"] == "in_progress"
    assert await api.status_of(op, trip["id"]) == "in_progress"

    other_rider, other = await api.confirmed_trip(op, 2)
    assert (await api.act(other_rider, other["id"], "cancel")).status_code == 200
    assert_problem(await api.act(other_rider, other["id"], "cancel"), 409)


async def test_a_pending_trip_cannot_be_cancelled(
    api: Platform, seed_trip: SeedTrip, make_rider: RiderFactory
) -> None:
    op = await api.operator()
    rider = await make_rider()
    pending = await seed_trip(rider.id)
    r = await api.http.post(f"/trips/{pending.id}/cancel", headers=rider.headers)
    assert_problem(r, 409)
    assert await api.status_of(op, str(pending.id)) == "pending"


async def test_start_and_cancel_at_once_one_wins_and_the_rest_agrees(api: Platform) -> None:
    op = await api.operator()
    rider, trip = await api.confirmed_trip(op)

    start, cancel = await asyncio.gather(
        api.act(op, trip["id"], "start"), api.act(rider, trip["id"], "cancel")
    )

    assert sorted((start.status_code, cancel.status_code)) == [200, 409]
    if start.status_code == 200:
        assert await api.status_of(op, trip["id"]) == "in_progress"
        await api.vehicle_becomes(op, trip["vehicle_id"], "in_trip")
        assert (await api.wallet(rider))["held_cents"] == trip["quoted_fare_cents"]
    else:
        assert await api.status_of(op, trip["id"]) == "cancelled"
        await api.vehicle_becomes(op, trip["vehicle_id"], "available")
        await eventually(lambda: api.wallet(rider), lambda w: w == FULL_WALLET, within=5)


BAD_CANCELS: list[tuple[dict[str, Any], list[str]]] = [
    ({"reason": ""}, ["body", "reason"]),
    ({"reason": "x" * 501}, ["body", "reason"]),
    ({"reason": 7}, ["body", "reason"]),
    ({"why": "late"}, ["body", "why"]),
    # PostgreSQL refuses NUL in text and jsonb (the reason goes to the rider's notification)
    ({"reason": "late\x00"}, ["body", "reason"]),
    ({"reason": "late\x1b[31m"}, ["body", "reason"]),
]


async def test_a_bad_cancel_reason_is_422_and_the_trip_stays_booked(api: Platform) -> None:
    op = await api.operator()
    rider, trip = await api.confirmed_trip(op)
    for body, loc in BAD_CANCELS:
        r = await api.http.post(f"/trips/{trip['id']}/cancel", json=body, headers=rider.headers)
        assert_problem(r, 422, loc)
    assert await api.status_of(op, trip["id"]) == "confirmed"
    assert (await api.wallet(rider))["held_cents"] == trip["quoted_fare_cents"]


async def test_a_cancel_reason_is_stored_verbatim(api: Platform) -> None:
    op = await api.operator()
    rider, trip = await api.confirmed_trip(op)
    reason = "Robert'); DROP TABLE trip.trips;-- <b>late</b>"
    assert (await api.act(rider, trip["id"], "cancel", reason=reason)).status_code == 200
    notes = await eventually(
        lambda: api.get(rider, "/notifications"),
        lambda page: any(reason in n["body"] for n in page["items"]),
        within=5,
    )
    assert notes["items"]
    assert len((await api.get(op, "/trips"))["items"]) == 1

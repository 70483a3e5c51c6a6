"""The booking saga across four real processes on PostgreSQL and RabbitMQ."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from fleet.platform.client import Platform, eventually
from fleet.platform.distributed import DistributedStack

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.rabbitmq,
    pytest.mark.timeout(180),
]


@pytest.fixture
async def api(stack: DistributedStack) -> AsyncIterator[Platform]:
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as http:
        yield Platform(http)


async def test_a_booking_confirms_holds_credits_and_completing_it_pays_the_invoice(
    api: Platform, stack: DistributedStack
) -> None:
    op = await api.operator()
    vehicle_id = await api.vehicle(op, 1)
    rider = await api.rider(credits_cents=10_000)

    trip = await api.book(rider)
    assert trip["status"] == "pending"
    assert trip["saga_id"]
    trip = await api.settled(rider, trip["id"])
    assert trip["status"] == "confirmed", trip
    assert trip["vehicle_id"] == vehicle_id
    fare = trip["quoted_fare_cents"]
    assert fare > 0
    assert await api.wallet(rider) == {
        "balance_cents": 10_000,
        "held_cents": fare,
        "available_cents": 10_000 - fare,
    }
    assert (await api.get(op, f"/vehicles/{vehicle_id}"))["status"] == "reserved"
    notes = (await api.get(rider, "/notifications"))["items"]
    assert any(trip["id"] in n["body"] or "confirmed" in n["title"].lower() for n in notes)
    saga = await api.get(rider, f"/sagas/{trip['saga_id']}")
    assert saga["status"] == "completed"
    assert [s["status"] for s in saga["steps"]] == ["succeeded"] * 5

    r = await api.http.post(f"/trips/{trip['id']}/start", headers=op.headers)
    assert r.json()["status"] == "in_progress"
    await eventually(
        lambda: api.get(op, f"/vehicles/{vehicle_id}"), lambda v: v["status"] == "in_trip"
    )
    r = await api.http.post(
        f"/trips/{trip['id']}/complete",
        json={"distance_km": 5.0, "duration_min": 12},
        headers=op.headers,
    )
    assert r.json()["status"] == "completed", r.text

    invoices = await eventually(
        lambda: api.get(rider, "/invoices"),
        lambda page: bool(page["items"]) and page["items"][0]["status"] == "paid",
    )
    amount = invoices["items"][0]["amount_cents"]
    assert amount == 250 + 120 * 5 + 30 * 12  # the default tariff: base + per km + per min
    assert await api.wallet(rider) == {
        "balance_cents": 10_000 - amount,
        "held_cents": 0,
        "available_cents": 10_000 - amount,
    }
    vehicle = await eventually(
        lambda: api.get(op, f"/vehicles/{vehicle_id}"), lambda v: v["status"] == "available"
    )
    assert vehicle["odometer_km"] == pytest.approx(5.0)
    daily = await eventually(
        lambda: api.get(op, "/analytics/trips/daily"),
        lambda days: bool(days) and days[0]["revenue_cents"] == amount,
    )
    assert daily[0]["trips"] == 1
    assert daily[0]["avg_distance_km"] == pytest.approx(5.0)
    done = await api.trip(rider, trip["id"])
    assert done["fare_cents"] == amount

    # the reads that feed the cache and breaker families, then every service's /metrics
    assert (await api.get(rider, f"/vehicles/{vehicle_id}/location"))["vehicle_id"] == vehicle_id
    expanded = await api.get(rider, f"/trips/{trip['id']}?expand=vehicle")
    assert expanded["vehicle"]["id"] == vehicle_id
    await assert_metrics(stack, amount)


def sample(text: str, metric: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include `labels` (0 if none)."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(metric + "{") and not line.startswith(metric + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def assert_metrics(stack: DistributedStack, amount: int) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        text = {n: (await http.get(stack.url(n) + "/metrics")).text for n in stack.ports}
    for name, body in text.items():
        assert sample(body, "http_requests_total") > 0, name
        assert "http_request_duration_seconds_bucket" in body, name
        assert sample(body, "outbox_backlog", service=name) == 0, name
        assert sample(body, "dead_letters") == 0, name
        assert "queue_depth{" in body, name
    trip = text["trip"]
    assert sample(trip, "saga_started_total", saga="trip-booking") == 1
    assert sample(trip, "saga_outcomes_total", saga="trip-booking", status="completed") == 1
    assert sample(trip, "saga_duration_seconds_count", status="completed") == 1
    assert sample(trip, "circuit_breaker_state", name="vehicle") == 0  # closed
    assert sample(trip, "circuit_breaker_calls_total", name="vehicle") >= 1
    billing = text["billing"]
    assert sample(billing, "payment_attempts_total", method="credits") == 1
    assert sample(billing, "payment_success_total") == 1
    assert sample(billing, "payment_failure_total") == 0
    assert sample(billing, "payment_processing_duration_seconds_count") == 1
    vehicle = text["vehicle"]
    assert sample(vehicle, "cache_requests_total", cache="vehicle-location") >= 1


async def test_not_enough_credits_rejects_the_trip_and_reserves_nothing(api: Platform) -> None:
    op = await api.operator()
    vehicle_id = await api.vehicle(op, 2)
    rider = await api.rider(credits_cents=100)

    trip = await api.settled(rider, (await api.book(rider))["id"])
    assert trip["status"] == "rejected"
    assert "credit" in trip["rejection_reason"]
    assert await api.wallet(rider) == {
        "balance_cents": 100,
        "held_cents": 0,
        "available_cents": 100,
    }
    assert (await api.get(op, f"/vehicles/{vehicle_id}"))["status"] == "available"


async def test_no_vehicle_available_rejects_the_trip_and_releases_the_credits(
    api: Platform,
) -> None:
    rider = await api.rider(credits_cents=10_000)
    trip = await api.settled(rider, (await api.book(rider))["id"])
    assert trip["status"] == "rejected"
    assert "vehicle" in trip["rejection_reason"]
    await eventually(lambda: api.wallet(rider), lambda w: w["held_cents"] == 0)
    assert (await api.wallet(rider))["balance_cents"] == 10_000
    saga = await api.get(rider, f"/sagas/{trip['saga_id']}")
    assert saga["status"] == "compensated"
    compensations = [s for s in saga["steps"] if s["phase"] == "compensation"]
    assert [s["name"] for s in compensations] == ["reserve-credits"]
    assert compensations[0]["status"] == "compensated"


async def test_two_riders_booking_the_last_vehicle_at_once_get_one_trip(api: Platform) -> None:
    op = await api.operator()
    await api.vehicle(op, 3)
    ada, bob = await api.rider(credits_cents=10_000), await api.rider(credits_cents=10_000)
    trips = await asyncio.gather(api.book(ada), api.book(bob))
    settled = [await api.settled(r, t["id"]) for r, t in zip((ada, bob), trips, strict=True)]
    assert sorted(t["status"] for t in settled) == ["confirmed", "rejected"]
    held = [(await api.wallet(r))["held_cents"] for r in (ada, bob)]
    assert sorted(held) == [
        0,
        next(t["quoted_fare_cents"] for t in settled if t["status"] == "confirmed"),
    ]


async def test_fifty_bookings_for_twenty_vehicles_confirm_twenty_and_hold_exactly_their_fares(
    api: Platform,
) -> None:
    op = await api.operator()
    vehicles = [await api.vehicle(op, 100 + i, lat=37.5665 + i * 1e-4) for i in range(20)]
    riders = await asyncio.gather(*(api.rider(credits_cents=10_000) for _ in range(50)))
    booked = await asyncio.gather(*(api.book(r) for r in riders))
    settled = await asyncio.gather(
        *(api.settled(r, t["id"], within=60) for r, t in zip(riders, booked, strict=True))
    )
    confirmed = [t for t in settled if t["status"] == "confirmed"]
    assert len(confirmed) == 20
    assert len([t for t in settled if t["status"] == "rejected"]) == 30
    assert {t["vehicle_id"] for t in confirmed} == set(vehicles)
    wallets = await asyncio.gather(*(api.wallet(r) for r in riders))
    assert sum(w["held_cents"] for w in wallets) == sum(t["quoted_fare_cents"] for t in confirmed)
    for rider, trip, wallet in zip(riders, settled, wallets, strict=True):
        expected = trip["quoted_fare_cents"] if trip["status"] == "confirmed" else 0
        assert wallet["held_cents"] == expected, (rider, trip)


async def test_the_same_idempotency_key_twice_at_once_makes_one_trip(api: Platform) -> None:
    op = await api.operator()
    await api.vehicle(op, 4)
    rider = await api.rider(credits_cents=10_000)
    first, second = await asyncio.gather(api.book(rider, key="k-1"), api.book(rider, key="k-1"))
    assert first["id"] == second["id"]
    listed = (await api.get(rider, "/trips"))["items"]
    assert [t["id"] for t in listed] == [first["id"]]
    r = await api.http.post(
        "/trips",
        json={"pickup": {"lat": 1, "lon": 1}, "dropoff": {"lat": 2, "lon": 2}},
        headers={**rider.headers, "Idempotency-Key": "k-1"},
    )
    assert r.status_code == 409
    assert r.headers["content-type"] == "application/problem+json"


async def test_a_trip_service_killed_mid_saga_finishes_the_saga_after_restart(
    api: Platform, stack: DistributedStack
) -> None:
    op = await api.operator()
    await api.vehicle(op, 5)
    rider = await api.rider(credits_cents=10_000)
    trip = await api.book(rider)
    stack.kill("trip")  # SIGKILL right after the 202: the saga is somewhere in flight
    stack.start_service("trip")
    trip = await api.settled(rider, trip["id"], within=30)
    wallet = await api.wallet(rider)
    saga = await api.get(rider, f"/sagas/{trip['saga_id']}")  # named in a failure
    if trip["status"] == "confirmed":
        assert wallet["held_cents"] == trip["quoted_fare_cents"], saga
    else:
        assert wallet["held_cents"] == 0, saga


async def test_a_step_that_times_out_is_compensated(api: Platform, stack: DistributedStack) -> None:
    op = await api.operator()
    vehicle_id = await api.vehicle(op, 6)
    rider = await api.rider(credits_cents=10_000)
    stack.kill("vehicle")  # reserve-vehicle will not be answered within its 5 s timeout
    trip = await api.book(rider)
    saga = await eventually(
        lambda: api.get(rider, f"/sagas/{trip['saga_id']}"),
        lambda s: s["status"] == "compensating",
        within=30,
    )
    assert {s["name"]: s["status"] for s in saga["steps"] if s["phase"] == "action"}[
        "reserve-vehicle"
    ] == "timed_out"
    # compensations run in reverse order: release-vehicle (waiting for the service) first

    stack.start_service("vehicle")
    trip = await api.settled(rider, trip["id"], within=60)
    assert trip["status"] == "rejected"
    assert "timed out" in trip["rejection_reason"]
    assert await api.wallet(rider) == {
        "balance_cents": 10_000,
        "held_cents": 0,
        "available_cents": 10_000,
    }
    # the stale reserve-vehicle and its release both reach the restarted service: the vehicle
    # must end up free, not held for a trip that was rejected
    vehicle = await eventually(
        lambda: api.get(op, f"/vehicles/{vehicle_id}"),
        lambda v: v["status"] == "available",
        within=15,
    )
    assert vehicle["reserved_trip_id"] is None

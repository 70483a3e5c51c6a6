"""Live tracking: vehicle positions become tracking points of in-progress trips; the SSE stream."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import orjson
from fastapi import FastAPI

from fleet.common.messaging import InMemoryBus
from fleet.common.testing import Account, RiderFactory
from fleet.contracts.events import VehiclePositionsReported
from fleet.trip.adapters.repository import SqlTripRepository
from fleet.trip.domain.trips import Trip, TripStatus
from fleet.trip.service.tracking import hub_of
from fleet.trip.service.tracking_stream import HEARTBEAT_KEY
from fleet.vehicle.service import reservations

SeedTrip = Callable[..., Awaitable[Trip]]
NOW = dt.datetime.now(dt.UTC)


def position(
    trip: Trip | None, vehicle_id: uuid.UUID, seconds: float, lat: float
) -> dict[str, Any]:
    return {
        "vehicle_id": str(vehicle_id),
        "trip_id": str(trip.id) if trip else None,
        "lat": lat,
        "lon": 127.0,
        "speed_kph": 25.0,
        "recorded_at": (NOW + dt.timedelta(seconds=seconds)).isoformat(),
    }


async def publish(bus: InMemoryBus, *positions: dict[str, Any]) -> None:
    event = VehiclePositionsReported.model_validate({"positions": list(positions)})
    await bus.publish(
        event.to_envelope(producer="vehicle", aggregate_type="batch", aggregate_id=uuid.uuid4())
    )


async def tracking(client: httpx.AsyncClient, who: Account, trip: Trip) -> list[dict[str, Any]]:
    r = await client.get(f"/trips/{trip.id}/tracking", headers=who.headers)
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


async def within(check: Callable[[], Awaitable[bool]], seconds: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "not reached in time"
        await asyncio.sleep(0.02)


async def test_positions_reach_only_in_progress_trips_and_a_redelivery_is_kept_once(
    app: FastAPI, client: httpx.AsyncClient, rider: Account, seed_trip: SeedTrip
) -> None:
    bus: InMemoryBus = app.state.fleet.bus
    riding = await seed_trip(rider.id, status=TripStatus.IN_PROGRESS)
    waiting = await seed_trip(rider.id, status=TripStatus.CONFIRMED)
    assert riding.vehicle_id
    assert waiting.vehicle_id
    first = position(riding, riding.vehicle_id, 1, 37.1)
    batch = [first, position(riding, riding.vehicle_id, 2, 37.2)]
    await publish(bus, *batch, position(waiting, waiting.vehicle_id, 1, 1.0))
    await publish(bus, first)  # telemetry redelivered after a crash: a new event, same reading

    async def two() -> bool:
        return len(await tracking(client, rider, riding)) == 2

    await within(two)
    await asyncio.sleep(0.2)
    points = await tracking(client, rider, riding)
    assert [p["lat"] for p in points] == [37.1, 37.2]
    assert await tracking(client, rider, waiting) == []


async def test_http_telemetry_of_a_vehicle_on_a_trip_becomes_its_tracking(
    app: FastAPI,
    client: httpx.AsyncClient,
    operator: Account,
    rider: Account,
    trip_db: Any,
    build_trip: Any,
) -> None:
    r = await client.post(
        "/vehicles",
        json={"vin": "1HGCM82633A004352", "model": "Robo", "seats": 4, "lat": 37.5, "lon": 127.0},
        headers=operator.headers,
    )
    assert r.status_code == 201, r.text
    vehicle_id = uuid.UUID(r.json()["id"])
    trip: Trip = build_trip(rider.id, status=TripStatus.IN_PROGRESS)
    trip.vehicle_id = vehicle_id
    async with trip_db.transaction() as session:
        await SqlTripRepository(session).add(trip)
    vehicle_db = app.state.fleet.services["vehicle"].db
    await reservations.reserve_vehicle(vehicle_db, vehicle_id, trip.id)
    readings = [
        {
            "lat": 37.5 + i / 100,
            "lon": 127.0,
            "speed_kph": 30.0,
            "battery_pct": 80.0,
            "recorded_at": (NOW - dt.timedelta(seconds=10 - i)).isoformat(),
        }
        for i in range(3)
    ]
    r = await client.post(
        f"/vehicles/{vehicle_id}/telemetry", json=readings, headers=operator.headers
    )
    assert r.status_code == 202, r.text

    async def arrived() -> bool:
        return len(await tracking(client, rider, trip)) == 3

    await within(arrived)
    assert [p["lat"] for p in await tracking(client, rider, trip)] == [37.5, 37.51, 37.52]


def frames(body: str) -> list[tuple[str, str]]:
    """(event, data) per SSE frame; comments come as ("comment", text)."""
    out = []
    for frame in body.split("\n\n"):
        if not frame.strip():
            continue
        if frame.startswith(":"):
            out.append(("comment", frame[1:].strip()))
            continue
        fields = dict(line.split(": ", 1) for line in frame.splitlines() if ": " in line)
        if "event" in fields:
            out.append((fields["event"], fields.get("data", "")))
    return out


async def test_the_stream_sends_stored_points_then_live_ones_and_ends_with_the_trip(
    app: FastAPI,
    client: httpx.AsyncClient,
    rider: Account,
    operator: Account,
    seed_trip: SeedTrip,
    seed_tracking: Any,
) -> None:
    app.state.fleet.services["trip"].extras[HEARTBEAT_KEY] = 0.1
    bus: InMemoryBus = app.state.fleet.bus
    trip = await seed_trip(rider.id, status=TripStatus.IN_PROGRESS)
    assert trip.vehicle_id
    await seed_tracking(trip, 2)
    hub = hub_of(app.state.fleet.services["trip"])
    streaming = asyncio.create_task(
        client.get(f"/trips/{trip.id}/tracking/stream", headers=rider.headers, timeout=20)
    )

    async def listening() -> bool:
        return hub.listeners(trip.id) == 1

    await within(listening)
    await publish(bus, position(trip, trip.vehicle_id, 0, 40.0))
    await asyncio.sleep(0.3)  # idle long enough for a heartbeat
    r = await client.post(
        f"/trips/{trip.id}/complete",
        json={"distance_km": 3.0, "duration_min": 9.0},
        headers=operator.headers,
    )
    assert r.status_code == 200, r.text
    response = await asyncio.wait_for(streaming, 10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    got = frames(response.text)
    events = [e for e, _ in got if e != "comment"]
    assert events == ["position", "position", "position", "end"]
    positions = [orjson.loads(d) for e, d in got if e == "position"]
    assert positions[-1]["lat"] == 40.0  # the live one, after the two stored
    assert positions[0]["recorded_at"] < positions[1]["recorded_at"]
    assert orjson.loads(got[-1][1]) == {"status": "completed"}
    assert ("comment", "heartbeat") in got
    assert hub.listeners(trip.id) == 0


async def test_a_finished_trip_streams_its_points_and_ends_at_once(
    client: httpx.AsyncClient, operator: Account, seed_trip: SeedTrip, seed_tracking: Any
) -> None:
    trip = await seed_trip(uuid.uuid4(), status=TripStatus.COMPLETED)
    await seed_tracking(trip, 3)
    r = await client.get(f"/trips/{trip.id}/tracking/stream", headers=operator.headers)
    assert r.status_code == 200
    assert [e for e, _ in frames(r.text)] == ["position"] * 3 + ["end"]


async def test_the_stream_is_only_for_the_owner_or_an_operator(
    client: httpx.AsyncClient, rider: Account, make_rider: RiderFactory, seed_trip: SeedTrip
) -> None:
    trip = await seed_trip(rider.id, status=TripStatus.IN_PROGRESS)
    other = await make_rider("Other")
    url = f"/trips/{trip.id}/tracking/stream"
    for r, status in [
        (await client.get(url), 401),
        (await client.get(url, headers=other.headers), 404),
        (await client.get(f"/trips/{uuid.uuid4()}/tracking/stream", headers=rider.headers), 404),
        (await client.get("/trips/not-a-uuid/tracking/stream", headers=rider.headers), 422),
    ]:
        assert r.status_code == status, r.text
        assert r.headers["content-type"].startswith("application/problem+json")

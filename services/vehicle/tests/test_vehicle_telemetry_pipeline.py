"""The telemetry pipeline: buffered HTTP and device-queue ingestion, batches, trip positions."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Awaitable
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select

from fleet.common.db import Database
from fleet.common.messaging import Envelope, InMemoryBus
from fleet.contracts.events import VehiclePositionsReported, VehicleTelemetryReported
from fleet.contracts.queues import VEHICLE_TELEMETRY
from fleet.vehicle.adapters.tables import telemetry, vehicles
from fleet.vehicle.handlers.telemetry import device_telemetry
from fleet.vehicle.service import reservations
from fleet.vehicle.service.buffer import BufferClosed
from fleet.vehicle.service.pipeline import TelemetryPipeline

Headers = dict[str, str]


def ago(seconds: float) -> str:
    return (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds)).isoformat()


def reading(seconds_ago: float, lat: float, **kw: Any) -> dict[str, Any]:
    body = {
        "lat": lat,
        "lon": 13.41,
        "speed_kph": 30.0,
        "battery_pct": 70.0,
        "recorded_at": ago(seconds_ago),
    }
    body.update(kw)
    return body


def device_message(vehicle_id: str, *readings: dict[str, Any]) -> Envelope:
    return VehicleTelemetryReported.model_validate(
        {"vehicle_id": vehicle_id, "readings": list(readings)}
    ).to_envelope(producer="device", aggregate_type="vehicle", aggregate_id=vehicle_id)


def pipeline_of(app: FastAPI) -> TelemetryPipeline:
    pipeline: TelemetryPipeline = app.state.fleet.services["vehicle"].extras["telemetry"]
    return pipeline


async def stored(db: Database, vehicle_id: str) -> int:
    async with db.session() as s:
        stmt = select(func.count()).where(telemetry.c.vehicle_id == uuid.UUID(vehicle_id))
        return int((await s.execute(stmt)).scalar_one())


async def row(db: Database, vehicle_id: str) -> Any:
    async with db.session() as s:
        stmt = select(vehicles).where(vehicles.c.id == uuid.UUID(vehicle_id))
        return (await s.execute(stmt)).one()


def gate(pipeline: TelemetryPipeline) -> asyncio.Event:
    """Hold the buffer's writes until the returned event is set."""
    opened = asyncio.Event()
    write = pipeline.buffer._write

    async def gated(rows: list[Any]) -> None:
        await opened.wait()
        await write(rows)

    pipeline.buffer._write = gated
    return opened


async def test_an_http_batch_is_stored_after_the_flush_and_moves_the_vehicle_to_the_newest(
    client: httpx.AsyncClient, op: Headers, make_vehicle: Any, vehicle_db: Database, eventually: Any
) -> None:
    v = await make_vehicle()
    batch = [reading(30, 52.50), reading(10, 52.54, battery_pct=61.0), reading(20, 52.51)]
    r = await client.post(f"/vehicles/{v['id']}/telemetry", json=batch, headers=op)
    assert r.status_code == 202, r.text
    await eventually(lambda: _equals(stored(vehicle_db, v["id"]), 3))
    moved = await row(vehicle_db, v["id"])
    assert (moved.lat, moved.battery_pct) == (52.54, 61.0)
    assert moved.version == 2  # moved once for the whole batch


async def test_a_late_batch_is_stored_but_does_not_move_the_vehicle_back(
    client: httpx.AsyncClient, op: Headers, make_vehicle: Any, vehicle_db: Database, eventually: Any
) -> None:
    v = await make_vehicle()
    url = f"/vehicles/{v['id']}/telemetry"
    assert (await client.post(url, json=reading(5, 10.0), headers=op)).status_code == 202
    await eventually(lambda: _equals(stored(vehicle_db, v["id"]), 1))
    assert (await client.post(url, json=reading(60, 20.0), headers=op)).status_code == 202
    await eventually(lambda: _equals(stored(vehicle_db, v["id"]), 2))
    assert (await row(vehicle_db, v["id"])).lat == 10.0
    loc = (await client.get(f"/vehicles/{v['id']}/location", headers=op)).json()
    assert loc["lat"] == 10.0


async def test_a_full_buffer_refuses_with_503_and_keeps_nothing(
    app: FastAPI, client: httpx.AsyncClient, op: Headers, make_vehicle: Any, problem: Any
) -> None:
    v = await make_vehicle()
    pipeline_of(app).buffer.capacity = 2
    r = await client.post(
        f"/vehicles/{v['id']}/telemetry",
        json=[reading(3, 1.0), reading(2, 2.0), reading(1, 3.0)],
        headers=op,
    )
    problem(r, 503)
    assert "retry" in r.json()["detail"]
    assert pipeline_of(app).buffer.pending == 0
    loc = (await client.get(f"/vehicles/{v['id']}/location", headers=op)).json()
    assert loc["recorded_at"] is None


async def test_a_device_message_is_acked_only_after_its_batch_is_committed(
    app: FastAPI, make_vehicle: Any, vehicle_db: Database
) -> None:
    v = await make_vehicle()
    pipeline = pipeline_of(app)
    opened = gate(pipeline)
    handler = device_telemetry(pipeline)
    handling = asyncio.ensure_future(handler(device_message(v["id"], reading(2, 1.0))))
    await asyncio.sleep(0.5)  # well past the 200 ms flush interval: the write is held
    assert not handling.done()  # the bus acks when the handler returns: not yet
    assert await stored(vehicle_db, v["id"]) == 0
    opened.set()
    await asyncio.wait_for(handling, 5)
    assert await stored(vehicle_db, v["id"]) == 1


async def test_a_device_message_not_stored_before_a_stop_is_not_acked(
    app: FastAPI, make_vehicle: Any, vehicle_db: Database
) -> None:
    v = await make_vehicle()
    pipeline = pipeline_of(app)

    async def database_down(_rows: list[Any]) -> None:
        raise OSError("connection refused")

    pipeline.buffer._write = database_down
    handling = asyncio.ensure_future(
        device_telemetry(pipeline)(device_message(v["id"], reading(2, 1.0)))
    )
    await asyncio.sleep(0.05)
    assert await pipeline.buffer.drain(0.2) == 1  # the stop could not store it
    try:
        await asyncio.wait_for(handling, 5)
        raise AssertionError("the handler returned: the message would have been acked")
    except BufferClosed:
        pass  # the handler failed: the bus retries it (RabbitMQ: redelivers it after a crash)
    assert await stored(vehicle_db, v["id"]) == 0


async def test_device_messages_through_the_bus_are_stored(
    bus: InMemoryBus, make_vehicle: Any, vehicle_db: Database, eventually: Any, client: Any
) -> None:
    v = await make_vehicle()
    for i in range(5):
        await bus.publish(device_message(v["id"], reading(10 - i, 50 + i), reading(9.5 - i, 60)))
    await eventually(lambda: _equals(stored(vehicle_db, v["id"]), 10))
    assert (await row(vehicle_db, v["id"])).lat == 60


async def test_device_messages_for_unknown_vehicles_or_from_the_future_are_dead_lettered(
    bus: InMemoryBus, make_vehicle: Any, eventually: Any
) -> None:
    v = await make_vehicle()
    await bus.publish(device_message(str(uuid.uuid4()), reading(1, 1.0)))
    await bus.publish(device_message(v["id"], reading(-3600, 1.0)))

    async def dead() -> bool:
        return len(await bus.dead_letters(VEHICLE_TELEMETRY.name)) == 2

    await eventually(dead)


async def test_positions_of_a_vehicle_held_for_a_trip_are_published_after_the_batch(
    client: httpx.AsyncClient,
    op: Headers,
    make_vehicle: Any,
    vehicle_db: Database,
    bus: InMemoryBus,
    eventually: Any,
) -> None:
    held, free = await make_vehicle(), await make_vehicle()
    trip_id = uuid.uuid4()
    await reservations.reserve_vehicle(vehicle_db, uuid.UUID(held["id"]), trip_id)
    seen: list[VehiclePositionsReported] = []

    async def capture(envelope: Envelope) -> None:
        seen.append(VehiclePositionsReported.model_validate(envelope.data))

    await bus.subscribe("test.positions", [VehiclePositionsReported.event_type], capture)
    for v in (held, free):
        body = [reading(3, 1.0), reading(2, 2.0)]
        r = await client.post(f"/vehicles/{v['id']}/telemetry", json=body, headers=op)
        assert r.status_code == 202

    async def published() -> bool:
        return sum(len(e.positions) for e in seen) >= 2

    await eventually(published)
    positions = [p for e in seen for p in e.positions]
    assert {p.vehicle_id for p in positions} == {uuid.UUID(held["id"])}
    assert {p.trip_id for p in positions} == {trip_id}
    assert sorted(p.lat for p in positions) == [1.0, 2.0]


async def _equals(value: Awaitable[int], expected: int) -> bool:
    return await value == expected

"""The batch writer of the telemetry pipeline, on SQLite (embedded) and PostgreSQL (COPY)."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import func, select

from fleet.common.db import utcnow
from fleet.common.testing import MakeDb
from fleet.vehicle.adapters.tables import telemetry
from fleet.vehicle.adapters.telemetry import SqlTelemetryRepository
from fleet.vehicle.adapters.vehicles import SqlVehicleRepository
from fleet.vehicle.app import module
from fleet.vehicle.domain.telemetry import Reading, newest_by_vehicle
from fleet.vehicle.service import reservations
from fleet.vehicle.service import vehicles as vs


def at(seconds_ago: float, lat: float) -> Reading:
    return Reading(lat, 13.0, 20.0, 55.0, utcnow() - dt.timedelta(seconds=seconds_ago))


async def test_a_batch_stores_every_reading_and_moves_each_vehicle_only_forward(
    make_db: MakeDb,
) -> None:
    db = await make_db(module())
    a, _ = await vs.register_vehicle(db, vs.NewVehicle("1HGCM82633A004352", "R", 4, 1.0, 1.0))
    b, _ = await vs.register_vehicle(db, vs.NewVehicle("2HGCM82633A004352", "R", 4, 1.0, 1.0))
    trip_id = uuid.uuid4()
    await reservations.reserve_vehicle(db, b.id, trip_id)
    first = [(a.id, at(10, 10.0)), (a.id, at(30, 30.0)), (b.id, at(5, 5.0))]
    late = [(a.id, at(60, 60.0)), (b.id, at(1, 1.5))]
    for rows in (first, late):
        async with db.transaction() as s:
            repo = SqlTelemetryRepository(s)
            held = await repo.holders([a.id, b.id, uuid.uuid4()])
            await repo.move_vehicles(newest_by_vehicle(rows), utcnow())
            await repo.add_rows(rows, utcnow())
    assert held == {a.id: None, b.id: trip_id}
    async with db.session() as s:
        count = (await s.execute(select(func.count()).select_from(telemetry))).scalar_one()
        moved_a = await SqlVehicleRepository(s).get(a.id)
        moved_b = await SqlVehicleRepository(s).get(b.id)
    assert count == 5
    assert moved_a is not None
    assert moved_b is not None
    assert (moved_a.lat, moved_a.version) == (10.0, 2)  # the late batch did not move it back
    assert moved_b.lat == 1.5
    assert moved_b.battery_pct == 55.0

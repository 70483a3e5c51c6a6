"""Booking the nearest vehicle on PostgreSQL: concurrent bookings never queue behind one lock."""

from __future__ import annotations

import asyncio
import json
import math
import random
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import insert, text

from fleet.common import migrations
from fleet.common.db import Database, utcnow
from fleet.common.native import bound
from fleet.vehicle.adapters.tables import vehicles
from fleet.vehicle.adapters.vehicles import _BOUNDED_NEAREST, KNN_BOUND
from fleet.vehicle.app import module
from fleet.vehicle.domain.search import Circle
from fleet.vehicle.domain.status import VehicleStatus
from fleet.vehicle.domain.vehicles import NoVehicleAvailableError
from fleet.vehicle.service import reservations as rs
from fleet.vehicle.service import vehicles as vs

pytestmark = pytest.mark.postgres

SEOUL = (37.5665, 126.978)


@pytest.fixture
async def db(fresh_pg_url: str) -> AsyncIterator[Database]:
    m = module()
    database = Database(fresh_pg_url, m.schema)
    await migrations.upgrade(database, m.migrations)
    try:
        yield database
    finally:
        await database.dispose()


def _fleet(size: int) -> list[dict[str, object]]:
    """`size` vehicles' rows around Seoul, one in four on a trip."""
    now = utcnow()
    return [
        {
            "id": uuid.uuid4(),
            "vin": uuid.uuid4().hex[:17].upper(),
            "model": "Robo-1",
            "seats": 4,
            "status": "available" if i % 4 else "in_trip",
            "battery_pct": 90.0,
            "lat": SEOUL[0] + random.uniform(-0.02, 0.02),
            "lon": SEOUL[1] + random.uniform(-0.025, 0.025),
            "odometer_km": 0.0,
            "device_token_hash": "0" * 64,
            "version": 1,
            "created_at": now,
            "updated_at": now,
        }
        for i in range(size)
    ]


async def _vehicle_at(db: Database, lat: float, lon: float) -> uuid.UUID:
    new = vs.NewVehicle(uuid.uuid4().hex[:17].upper(), "Robo-1", 4, lat, lon)
    vehicle, _ = await vs.register_vehicle(db, new)
    return vehicle.id


async def test_a_booking_skips_the_nearest_vehicle_another_booking_is_taking(
    db: Database,
) -> None:
    nearest = await _vehicle_at(db, SEOUL[0] + 0.001, SEOUL[1])
    second = await _vehicle_at(db, SEOUL[0] + 0.002, SEOUL[1])
    area = Circle(*SEOUL, radius_km=5)
    async with db.transaction() as holding:  # a booking in flight: it holds the nearest one
        taken = await rs.book_in(holding, uuid.uuid4(), area)
        assert taken.id == nearest

        # Without SKIP LOCKED this would wait for the transaction above to end.
        other = await asyncio.wait_for(rs.reserve_nearest_available(db, area, uuid.uuid4()), 5)

    assert other is not None
    assert other.id == second
    assert (await vs.get_vehicle(db, nearest)).status == VehicleStatus.RESERVED


async def test_the_nearest_of_many_vehicles_is_booked_and_far_ones_are_not(db: Database) -> None:
    for i in range(1, 30):
        await _vehicle_at(db, SEOUL[0] + i * 0.003, SEOUL[1] - i * 0.002)
    closest = await _vehicle_at(db, SEOUL[0] - 0.0005, SEOUL[1] + 0.0005)
    area = Circle(*SEOUL, radius_km=1)

    booked = [await rs.reserve_nearest_available(db, area, uuid.uuid4()) for _ in range(5)]

    assert booked[0] is not None
    assert booked[0].id == closest
    inside = [b for b in booked if b is not None]
    assert all(area.contains(b.lat, b.lon) for b in inside)
    assert len({b.id for b in inside}) == len(inside)
    async with db.transaction() as session:
        with pytest.raises(NoVehicleAvailableError):
            await rs.book_in(session, uuid.uuid4(), Circle(0.0, 0.0, radius_km=5))


async def test_the_nearest_is_ranked_by_distance_on_the_ground_not_in_plain_degrees(
    db: Database,
) -> None:
    # At Seoul a degree of longitude is 0.79 of one of latitude: 0.001° east is nearer on the
    # ground (88 m) than 0.00085° north (95 m), though farther in plain degrees.
    east = await _vehicle_at(db, SEOUL[0], SEOUL[1] + 0.001)
    north = await _vehicle_at(db, SEOUL[0] + 0.00085, SEOUL[1])
    for i in range(1, 40):  # more than the bound looks past
        await _vehicle_at(db, SEOUL[0] - 0.001 * i, SEOUL[1] - 0.001 * i)
    area = Circle(*SEOUL, radius_km=5)

    first = await rs.reserve_nearest_available(db, area, uuid.uuid4())
    second = await rs.reserve_nearest_available(db, area, uuid.uuid4())

    assert (first and first.id, second and second.id) == (east, north)


async def test_with_every_vehicle_within_the_bound_held_a_booking_gets_the_next_free_one(
    db: Database,
) -> None:
    # Due north, 0.001° apart: the 17th is farther than the bound (the 16th's distance).
    line = [await _vehicle_at(db, SEOUL[0] + 0.001 * i, SEOUL[1]) for i in range(1, 21)]
    area = Circle(*SEOUL, radius_km=5)
    async with db.transaction() as holding:  # 16 bookings in flight hold the 16 nearest
        held = [await rs.book_in(holding, uuid.uuid4(), area) for _ in range(KNN_BOUND)]
        assert [v.id for v in held] == line[:KNN_BOUND]

        other = await asyncio.wait_for(rs.reserve_nearest_available(db, area, uuid.uuid4()), 5)

    assert other is not None
    assert other.id == line[KNN_BOUND]


# The bounded search's parameters for a 5 km circle around Seoul (`nearest_available`'s).
LAT, LON = SEOUL
SEARCH = {
    "p_lat": LAT,
    "p_lon": LON,
    "p_cos": math.cos(math.radians(LAT)),
    "p_scale": math.cos(math.radians(LAT)) ** 2,
    "p_radius": 0.045,
}


def _uses_the_position_index(plan: object) -> str:
    """The plan as JSON text, once checked: the GiST index for the bound and for the box."""
    nodes = json.dumps(plan)
    assert nodes.count('"Index Name": "ix_vehicles_available_position"') == 2
    assert '"Seq Scan"' not in nodes
    return nodes


@pytest.fixture
async def large_fleet(db: Database) -> Database:
    """`db` with 3,000 vehicles around Seoul (one in four on a trip), never analysed."""
    async with db.transaction() as session:
        await session.execute(insert(vehicles), _fleet(3000))
    return db


async def test_the_nearest_vehicle_search_uses_the_position_index_on_a_large_fleet(
    large_fleet: Database,
) -> None:
    async with large_fleet.transaction() as session:
        await session.execute(text("ANALYZE vehicle.vehicles"))
        sql = _BOUNDED_NEAREST.params(**SEARCH).compile(
            dialect=session.get_bind().dialect, compile_kwargs={"literal_binds": True}
        )
        plan = (await session.execute(text(f"EXPLAIN (FORMAT JSON) {sql}"))).scalar_one()

    _uses_the_position_index(plan)


def _sql_literal(value: object) -> str:
    return f"'{value}'" if isinstance(value, str) else repr(value)


async def test_the_nearest_vehicle_search_uses_the_position_index_in_its_cached_generic_plan(
    large_fleet: Database,
) -> None:
    # A fresh fleet, never analysed: PostgreSQL then caches the prepared statement's generic
    # plan after five executions. That plan must still reach the available vehicles through the
    # partial position index, not read all of them through the status index.
    async with large_fleet.transaction() as session:
        sql, args = bound(_BOUNDED_NEAREST, session.get_bind().dialect, SEARCH)
        await session.execute(text("SET LOCAL plan_cache_mode = force_generic_plan"))
        await session.execute(text(f"PREPARE nearest AS {sql}"))
        execute = f"EXECUTE nearest({', '.join(_sql_literal(a) for a in args)})"
        plan = (await session.execute(text(f"EXPLAIN (FORMAT JSON) {execute}"))).scalar_one()
        await session.execute(text("DEALLOCATE nearest"))

    assert "ix_vehicles_status" not in _uses_the_position_index(plan)

"""Booking the nearest vehicle on PostgreSQL: concurrent bookings never queue behind one lock."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from fleet.common import migrations
from fleet.common.db import Database
from fleet.common.testing import create_database, drop_database
from fleet.vehicle.app import module
from fleet.vehicle.domain.search import Circle
from fleet.vehicle.domain.status import VehicleStatus
from fleet.vehicle.domain.vehicles import NoVehicleAvailableError
from fleet.vehicle.service import reservations as rs
from fleet.vehicle.service import vehicles as vs

pytestmark = pytest.mark.postgres

SEOUL = (37.5665, 126.978)


@pytest.fixture
def url() -> Iterator[str]:
    made = create_database()
    try:
        yield made
    finally:
        drop_database(made)


@pytest.fixture
async def db(url: str) -> AsyncIterator[Database]:
    m = module()
    database = Database(url, m.schema)
    await migrations.upgrade(database, m.migrations)
    try:
        yield database
    finally:
        await database.dispose()


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

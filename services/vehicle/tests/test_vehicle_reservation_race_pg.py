"""Concurrent reservations on PostgreSQL: the row lock lets exactly one trip win."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from fleet.common import migrations
from fleet.common.db import Database
from fleet.vehicle.app import module
from fleet.vehicle.domain.search import Circle
from fleet.vehicle.domain.status import VehicleStatus
from fleet.vehicle.domain.vehicles import VehicleUnavailableError
from fleet.vehicle.service import reservations as rs
from fleet.vehicle.service import vehicles as vs

pytestmark = pytest.mark.postgres


@pytest.fixture
async def db(fresh_pg_url: str) -> AsyncIterator[Database]:
    m = module()
    database = Database(fresh_pg_url, m.schema, pool_size=20)
    await migrations.upgrade(database, m.migrations)
    try:
        yield database
    finally:
        await database.dispose()


async def test_two_concurrent_reservations_have_exactly_one_winner(db: Database) -> None:
    for _round in range(5):
        vehicle, _ = await vs.register_vehicle(
            db, vs.NewVehicle(uuid.uuid4().hex[:17].upper(), "Robo-1", 4, 52.5, 13.4)
        )
        trips = [uuid.uuid4(), uuid.uuid4()]
        results = await asyncio.gather(
            *(rs.reserve_vehicle(db, vehicle.id, t) for t in trips), return_exceptions=True
        )
        winners = [r for r in results if not isinstance(r, BaseException)]
        losers = [r for r in results if isinstance(r, BaseException)]
        assert len(winners) == 1
        # The loser waited for the winner's lock and then saw the vehicle taken; without the
        # lock it would have failed later, on the version check, as a stale write.
        assert len(losers) == 1
        assert isinstance(losers[0], VehicleUnavailableError)
        stored = await vs.get_vehicle(db, vehicle.id)
        assert stored.status == VehicleStatus.RESERVED
        assert stored.reserved_trip_id == winners[0].reserved_trip_id
        assert stored.version == 2


async def test_many_trips_racing_for_the_nearest_vehicles_each_get_a_different_one(
    db: Database,
) -> None:
    ids = set()
    for i in range(3):
        v, _ = await vs.register_vehicle(
            db, vs.NewVehicle(uuid.uuid4().hex[:17].upper(), "Robo-1", 4, 52.52 + i * 1e-3, 13.4)
        )
        ids.add(v.id)
    area = Circle(52.52, 13.4, radius_km=5)
    results = await asyncio.gather(
        *(rs.reserve_nearest_available(db, area, uuid.uuid4(), attempts=5) for _ in range(3))
    )
    assert {r.id for r in results if r is not None} == ids


async def test_a_late_reserve_racing_its_compensation_never_leaves_a_vehicle_held(
    db: Database,
) -> None:
    for _round in range(5):
        vehicle, _ = await vs.register_vehicle(
            db, vs.NewVehicle(uuid.uuid4().hex[:17].upper(), "Robo-1", 4, 52.5, 13.4)
        )
        trip = uuid.uuid4()
        await asyncio.gather(
            rs.reserve_vehicle(db, vehicle.id, trip),
            rs.release_trip(db, trip),
            return_exceptions=True,
        )
        stored = await vs.get_vehicle(db, vehicle.id)
        assert stored.status == VehicleStatus.AVAILABLE
        assert stored.reserved_trip_id is None

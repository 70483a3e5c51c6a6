"""Use cases driven by the booking saga and trip events: reserve, release, start, complete.

Each runs in one transaction on the vehicle's row, locked with SELECT … FOR UPDATE on PostgreSQL;
the version column makes a lost update impossible on SQLite too (the write then fails with 409).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from fleet.common.app import not_found
from fleet.common.db import Database
from fleet.vehicle.adapters.vehicles import SqlVehicleRepository
from fleet.vehicle.domain.search import Circle, nearest
from fleet.vehicle.domain.vehicles import Vehicle, VehicleUnavailableError


async def _change(db: Database, vehicle_id: uuid.UUID, act: Callable[[Vehicle], bool]) -> Vehicle:
    async with db.transaction() as session:
        repo = SqlVehicleRepository(session)
        vehicle = await repo.get(vehicle_id, for_update=True)
        if vehicle is None:
            raise not_found("vehicle", vehicle_id)
        if act(vehicle):
            await repo.save(vehicle)
    return vehicle


async def reserve_vehicle(db: Database, vehicle_id: uuid.UUID, trip_id: uuid.UUID) -> Vehicle:
    """Hold an available vehicle for the trip (409 if it is not available)."""
    return await _change(db, vehicle_id, lambda v: v.reserve(trip_id))


async def release_vehicle(db: Database, vehicle_id: uuid.UUID, trip_id: uuid.UUID) -> Vehicle:
    """Free the vehicle if (and only if) it is held for this trip."""
    return await _change(db, vehicle_id, lambda v: v.release(trip_id))


async def release_trip(db: Database, trip_id: uuid.UUID) -> Vehicle | None:
    """Free whichever vehicle is held for the trip (the saga's compensation knows only the trip)."""
    async with db.session() as session:
        held = await SqlVehicleRepository(session).reserved_for(trip_id)
    if held is None:
        return None
    return await release_vehicle(db, held.id, trip_id)


async def start_trip(db: Database, vehicle_id: uuid.UUID, trip_id: uuid.UUID) -> Vehicle:
    return await _change(db, vehicle_id, lambda v: v.start_trip(trip_id))


async def complete_trip(
    db: Database, vehicle_id: uuid.UUID, trip_id: uuid.UUID, distance_km: float
) -> Vehicle:
    """Free the vehicle and add the trip's distance to its odometer (once)."""
    return await _change(db, vehicle_id, lambda v: v.complete_trip(trip_id, distance_km))


async def find_nearest_available(db: Database, area: Circle) -> Vehicle | None:
    """The available vehicle closest to the circle's centre, within its radius."""
    async with db.session() as session:
        candidates = await SqlVehicleRepository(session).available_in_box(area)
    return nearest(candidates, area)


async def reserve_nearest_available(
    db: Database, area: Circle, trip_id: uuid.UUID, *, attempts: int = 3
) -> Vehicle | None:
    """Reserve the closest available vehicle; if another booking takes it first, try the next."""
    async with db.session() as session:
        held = await SqlVehicleRepository(session).reserved_for(trip_id)
    if held is not None:
        return held
    for _ in range(attempts):
        candidate = await find_nearest_available(db, area)
        if candidate is None:
            return None
        try:
            return await reserve_vehicle(db, candidate.id, trip_id)
        except VehicleUnavailableError:
            continue
    return None

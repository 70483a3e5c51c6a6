"""Use cases: recording telemetry and reading a vehicle's latest position (through the cache)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from fleet.common.app import not_found
from fleet.common.db import Database, utcnow
from fleet.common.errors import UnauthorizedError
from fleet.vehicle.adapters.location_cache import Location, LocationCache
from fleet.vehicle.adapters.telemetry import SqlTelemetryRepository
from fleet.vehicle.adapters.vehicles import SqlVehicleRepository
from fleet.vehicle.domain.devices import device_token_matches
from fleet.vehicle.domain.telemetry import Reading, latest


async def record_telemetry(
    db: Database,
    vehicle_id: uuid.UUID,
    readings: Sequence[Reading],
    device_token: str | None,
    located: LocationCache | None = None,
) -> int:
    """Store the readings; move the vehicle only to a position newer than the one it has.

    `device_token` is None when an operator posts; otherwise it must be this vehicle's token.
    The row lock keeps two concurrent batches from moving the vehicle back in time. A move is
    written through to the location cache once committed, so the next read shows it.
    """
    moved: Location | None = None
    async with db.transaction() as session:
        vehicles = SqlVehicleRepository(session)
        if device_token is not None:
            stored = await vehicles.device_token_hash(vehicle_id)
            if stored is None:
                raise not_found("vehicle", vehicle_id)
            if not device_token_matches(device_token, stored):
                raise UnauthorizedError("the device token is not this vehicle's")
        vehicle = await vehicles.get(vehicle_id, for_update=True)
        if vehicle is None:
            raise not_found("vehicle", vehicle_id)
        await SqlTelemetryRepository(session).add_many(vehicle_id, readings, utcnow())
        newest = latest(readings)
        if newest is not None and vehicle.apply_reading(newest):
            await vehicles.save(vehicle)
            moved = Location.of(vehicle)
    if moved is not None and located is not None:
        await located.moved(moved)
    return len(readings)


async def get_location(
    db: Database, vehicle_id: uuid.UUID, located: LocationCache | None = None
) -> Location:
    """The latest position: L1, then Redis, then the database (404 if the vehicle is unknown)."""

    async def load() -> Location:
        async with db.session() as session:
            vehicle = await SqlVehicleRepository(session).get(vehicle_id)
        if vehicle is None:
            raise not_found("vehicle", vehicle_id)
        return Location.of(vehicle)

    if located is None:
        return await load()
    return await located.get(vehicle_id, load)

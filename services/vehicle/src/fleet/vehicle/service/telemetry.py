"""Use cases: recording telemetry and reading a vehicle's latest position."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from fleet.common.app import not_found
from fleet.common.db import Database, utcnow
from fleet.common.errors import UnauthorizedError
from fleet.vehicle.adapters.telemetry import SqlTelemetryRepository
from fleet.vehicle.adapters.vehicles import SqlVehicleRepository
from fleet.vehicle.domain.devices import device_token_matches
from fleet.vehicle.domain.telemetry import Reading, latest
from fleet.vehicle.domain.vehicles import Vehicle


async def record_telemetry(
    db: Database, vehicle_id: uuid.UUID, readings: Sequence[Reading], device_token: str | None
) -> int:
    """Store the readings; move the vehicle only to a position newer than the one it has.

    `device_token` is None when an operator posts; otherwise it must be this vehicle's token.
    The row lock keeps two concurrent batches from moving the vehicle back in time.
    """
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
    return len(readings)


async def get_location(db: Database, vehicle_id: uuid.UUID) -> Vehicle:
    async with db.session() as session:
        vehicle = await SqlVehicleRepository(session).get(vehicle_id)
    if vehicle is None:
        raise not_found("vehicle", vehicle_id)
    return vehicle

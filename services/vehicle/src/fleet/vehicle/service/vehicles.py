"""Use cases: registering, reading, listing and editing vehicles."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError

from fleet.common.app import not_found
from fleet.common.db import Database, utcnow
from fleet.common.errors import ConflictError
from fleet.common.pagination import PageParams
from fleet.vehicle.adapters.vehicles import Keyset, SqlVehicleRepository
from fleet.vehicle.domain.devices import hash_device_token, new_device_token
from fleet.vehicle.domain.search import Circle
from fleet.vehicle.domain.status import VehicleStatus
from fleet.vehicle.domain.vehicles import Vehicle
from fleet.vehicle.domain.vin import normalize_vin


@dataclass(frozen=True, slots=True)
class NewVehicle:
    vin: str
    model: str
    seats: int
    lat: float
    lon: float
    battery_pct: float = 100.0


@dataclass(frozen=True, slots=True)
class VehicleChanges:
    status: VehicleStatus | None = None
    model: str | None = None
    seats: int | None = None


def _duplicate(vin: str) -> ConflictError:
    return ConflictError(f"a vehicle with VIN {vin} is already registered")


async def register_vehicle(db: Database, new: NewVehicle) -> tuple[Vehicle, str]:
    """The new vehicle and its device token (shown once; only its hash is kept)."""
    vin = normalize_vin(new.vin)
    token = new_device_token()
    now = utcnow()
    vehicle = Vehicle(
        id=uuid.uuid4(),
        vin=vin,
        model=new.model,
        seats=new.seats,
        status=VehicleStatus.AVAILABLE,
        battery_pct=new.battery_pct,
        lat=new.lat,
        lon=new.lon,
        odometer_km=0.0,
        created_at=now,
        updated_at=now,
    )
    try:
        async with db.transaction() as session:
            repo = SqlVehicleRepository(session)
            if await repo.vin_taken(vin):
                raise _duplicate(vin)
            await repo.add(vehicle, hash_device_token(token))
    except IntegrityError as exc:  # a concurrent registration of the same VIN won the race
        raise _duplicate(vin) from exc
    return vehicle, token


async def get_vehicle(db: Database, vehicle_id: uuid.UUID) -> Vehicle:
    async with db.session() as session:
        vehicle = await SqlVehicleRepository(session).get(vehicle_id)
    if vehicle is None:
        raise not_found("vehicle", vehicle_id)
    return vehicle


async def list_vehicles(
    db: Database, status: VehicleStatus | None, area: Circle | None, page: PageParams
) -> list[Vehicle]:
    """Newest first, up to `page.limit + 1` vehicles (the extra one tells a next page exists).

    The bounding box over-selects the circle's corners, so rows are fetched in keyset batches
    until enough of them pass the exact distance test.
    """
    wanted = page.limit + 1
    batch = wanted if area is None else 2 * wanted
    after: Keyset | None = page.after()
    found: list[Vehicle] = []
    async with db.session() as session:
        repo = SqlVehicleRepository(session)
        while True:
            rows = await repo.search(status=status, area=area, after=after, limit=batch)
            found += [v for v in rows if area is None or area.contains(v.lat, v.lon)]
            if len(found) >= wanted or len(rows) < batch:
                return found[:wanted]
            after = (rows[-1].created_at, rows[-1].id)


async def update_vehicle(db: Database, vehicle_id: uuid.UUID, changes: VehicleChanges) -> Vehicle:
    async with db.transaction() as session:
        repo = SqlVehicleRepository(session)
        vehicle = await repo.get(vehicle_id, for_update=True)
        if vehicle is None:
            raise not_found("vehicle", vehicle_id)
        changed = changes.status is not None and vehicle.set_status(changes.status)
        for name in ("model", "seats"):
            value = getattr(changes, name)
            if value is not None and value != getattr(vehicle, name):
                setattr(vehicle, name, value)
                changed = True
        if changed:
            await repo.save(vehicle)
    return vehicle

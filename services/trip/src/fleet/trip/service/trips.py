"""Use cases: reading trips and their tracking (booking and lifecycle come with the saga)."""

from __future__ import annotations

import uuid

from fleet.common.app import not_found
from fleet.common.auth import Principal
from fleet.common.db import Database
from fleet.common.pagination import PageParams
from fleet.trip.adapters.repository import SqlTrackingRepository, SqlTripRepository
from fleet.trip.domain.tracking import TrackingPoint
from fleet.trip.domain.trips import Trip, TripStatus
from fleet.trip.service.vehicles import NO_VEHICLE, VehicleDirectory, VehicleLookup


async def get_trip(db: Database, who: Principal, trip_id: uuid.UUID) -> Trip:
    """The trip, if `who` may see it; another rider's trip is as missing as an unknown one."""
    async with db.session() as session:
        trip = await SqlTripRepository(session).get(trip_id)
    if trip is None or not who.may_access(trip.rider_id):
        raise not_found("trip", trip_id)
    return trip


async def get_trip_with_vehicle(
    db: Database,
    who: Principal,
    trip_id: uuid.UUID,
    vehicles: VehicleDirectory,
    authorization: str | None,
) -> tuple[Trip, VehicleLookup]:
    """The trip and its vehicle's current details (`?expand=vehicle`). Access is checked first:
    nobody learns anything about the vehicle of a trip they may not see."""
    trip = await get_trip(db, who, trip_id)
    if trip.vehicle_id is None:
        return trip, NO_VEHICLE
    return trip, await vehicles.lookup(trip.vehicle_id, authorization)


async def list_trips(
    db: Database, who: Principal, page: PageParams, status: TripStatus | None = None
) -> list[Trip]:
    rider = None if who.is_operator else who.user_id
    async with db.session() as session:
        return await SqlTripRepository(session).list(page, rider_id=rider, status=status)


async def trip_tracking(
    db: Database, who: Principal, trip_id: uuid.UUID, page: PageParams
) -> list[TrackingPoint]:
    await get_trip(db, who, trip_id)
    async with db.session() as session:
        return await SqlTrackingRepository(session).list(trip_id, page)

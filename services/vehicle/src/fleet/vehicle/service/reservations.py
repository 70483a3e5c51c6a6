"""Use cases driven by the booking saga and trip events: book, release, start, complete, cancel.

The `*_in` functions work inside the caller's session, so a saga participant or an event consumer
runs them in its inbox transaction (effect, inbox row and reply commit together); the others
open a transaction of their own. A vehicle's row is locked with SELECT … FOR UPDATE on
PostgreSQL, so two bookings never get the same vehicle; the version column makes a lost update
impossible on SQLite too. A trip's booking row is locked as well, so that a late reserve and the
compensation that released it cannot interleave.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession

from fleet.common.app import not_found
from fleet.common.db import Database
from fleet.common.errors import FleetError
from fleet.vehicle.adapters.bookings import SqlBookings
from fleet.vehicle.adapters.vehicles import SqlVehicleRepository
from fleet.vehicle.domain.search import Circle, by_distance, nearest
from fleet.vehicle.domain.vehicles import (
    NoVehicleAvailableError,
    TripClosedError,
    Vehicle,
    VehicleUnavailableError,
)

Act = Callable[[Vehicle], bool]

# Candidates tried per look at the map before looking again (others may have been taken since).
CANDIDATES_PER_ROUND = 5


async def change_in(session: AsyncSession, vehicle_id: uuid.UUID, act: Act) -> Vehicle:
    """Lock the vehicle, apply `act`, save it if `act` changed it."""
    repo = SqlVehicleRepository(session)
    vehicle = await repo.get(vehicle_id, for_update=True)
    if vehicle is None:
        raise not_found("vehicle", vehicle_id)
    if act(vehicle):
        await repo.save(vehicle)
    return vehicle


async def _change(db: Database, vehicle_id: uuid.UUID, act: Act) -> Vehicle:
    async with db.transaction() as session:
        return await change_in(session, vehicle_id, act)


async def _require_open(session: AsyncSession, trip_id: uuid.UUID) -> bool:
    """Lock the trip's open booking (409 if it is over); True if this call opened it."""
    opened = await SqlBookings(session).open(trip_id)
    if opened.state != "open":
        raise TripClosedError(f"the booking of trip {trip_id} is already over")
    return opened.new


async def reserve_in(session: AsyncSession, vehicle_id: uuid.UUID, trip_id: uuid.UUID) -> Vehicle:
    """Hold an available vehicle for the trip (409 if it is busy or the booking is over)."""
    await _require_open(session, trip_id)
    return await change_in(session, vehicle_id, lambda v: v.reserve(trip_id))


async def book_in(
    session: AsyncSession,
    trip_id: uuid.UUID,
    area: Circle,
    requested: uuid.UUID | None = None,
    *,
    rounds: int = 3,
) -> Vehicle:
    """The vehicle held for the trip: the requested one, else the nearest available in `area`.

    A repeated booking of the same trip gets the vehicle it already holds. A booking this call
    opened holds nothing yet (every reservation opens its trip's booking first), so the look
    for a held vehicle is skipped then.
    """
    if not await _require_open(session, trip_id):
        held = await SqlVehicleRepository(session).reserved_for(trip_id)
        if held is not None:
            return held
    if requested is not None:
        return await change_in(session, requested, lambda v: v.reserve(trip_id))
    return await _reserve_nearest_in(session, area, trip_id, rounds)


async def book_or_close_in(
    session: AsyncSession, trip_id: uuid.UUID, area: Circle, requested: uuid.UUID | None = None
) -> Vehicle:
    """`book_in` for the saga's reserve-vehicle, which runs without a savepoint: a refusal
    commits along with its failure reply, so it closes the trip's booking (as released) instead
    of leaving it open. Nothing is held, and a late reserve of the trip is refused, as after the
    compensation."""
    try:
        return await book_in(session, trip_id, area, requested)
    except FleetError:
        await SqlBookings(session).close(trip_id, "released")
        raise


async def _reserve_nearest_in(
    session: AsyncSession, area: Circle, trip_id: uuid.UUID, rounds: int
) -> Vehicle:
    repo = SqlVehicleRepository(session)
    if not area.is_local:
        return await _reserve_ranked_in(repo, area, trip_id, rounds)
    for _ in range(rounds):
        vehicle = await repo.nearest_available(area)
        if vehicle is None or not area.contains(vehicle.lat, vehicle.lon):
            break
        try:
            if vehicle.reserve(trip_id):
                await repo.save(vehicle)
            return vehicle
        except VehicleUnavailableError:
            continue  # SQLite has no row locks: another booking took it after we looked
    raise NoVehicleAvailableError("no vehicle available")


async def _reserve_ranked_in(
    repo: SqlVehicleRepository, area: Circle, trip_id: uuid.UUID, rounds: int
) -> Vehicle:
    """Across the antimeridian or a pole: rank every vehicle in the box by great circle."""
    for _ in range(rounds):
        ranked = by_distance(await repo.available_in_box(area), area)
        if not ranked:
            break
        for candidate in ranked[:CANDIDATES_PER_ROUND]:
            try:
                return await change_in(repo.session, candidate.id, lambda v: v.reserve(trip_id))
            except VehicleUnavailableError:
                continue  # another booking took it after we looked; try the next one
    raise NoVehicleAvailableError("no vehicle available")


async def release_trip_in(session: AsyncSession, trip_id: uuid.UUID) -> Vehicle | None:
    """Free whichever vehicle is held for the trip and close its booking (the compensation).

    Nothing held is fine: the reserve may never have arrived, and now never will take effect.
    """
    await SqlBookings(session).close(trip_id, "released")
    held = await SqlVehicleRepository(session).reserved_for(trip_id)
    if held is None:
        return None
    return await change_in(session, held.id, lambda v: v.release(trip_id))


async def start_trip_in(
    session: AsyncSession, vehicle_id: uuid.UUID, trip_id: uuid.UUID
) -> Vehicle:
    return await change_in(session, vehicle_id, lambda v: v.start_trip(trip_id))


async def complete_trip_in(
    session: AsyncSession, vehicle_id: uuid.UUID, trip_id: uuid.UUID, distance_km: float
) -> Vehicle:
    """Free the vehicle and add the trip's distance to its odometer (once)."""
    await SqlBookings(session).close(trip_id, "completed")
    return await change_in(session, vehicle_id, lambda v: v.complete_trip(trip_id, distance_km))


async def cancel_trip_in(session: AsyncSession, trip_id: uuid.UUID) -> Vehicle | None:
    """Free the vehicle of a cancelled trip, if it still holds one, and close the booking."""
    await SqlBookings(session).close(trip_id, "cancelled")
    held = await SqlVehicleRepository(session).reserved_for(trip_id)
    if held is None:
        return None
    return await change_in(session, held.id, lambda v: v.cancel_trip(trip_id))


async def reserve_vehicle(db: Database, vehicle_id: uuid.UUID, trip_id: uuid.UUID) -> Vehicle:
    """Hold an available vehicle for the trip (409 if it is not available)."""
    async with db.transaction() as session:
        return await reserve_in(session, vehicle_id, trip_id)


async def release_vehicle(db: Database, vehicle_id: uuid.UUID, trip_id: uuid.UUID) -> Vehicle:
    """Free the vehicle if (and only if) it is held for this trip."""
    async with db.transaction() as session:
        await SqlBookings(session).close(trip_id, "released")
        return await change_in(session, vehicle_id, lambda v: v.release(trip_id))


async def release_trip(db: Database, trip_id: uuid.UUID) -> Vehicle | None:
    """Free whichever vehicle is held for the trip (the saga's compensation knows only the trip)."""
    async with db.transaction() as session:
        return await release_trip_in(session, trip_id)


async def start_trip(db: Database, vehicle_id: uuid.UUID, trip_id: uuid.UUID) -> Vehicle:
    return await _change(db, vehicle_id, lambda v: v.start_trip(trip_id))


async def complete_trip(
    db: Database, vehicle_id: uuid.UUID, trip_id: uuid.UUID, distance_km: float
) -> Vehicle:
    """Free the vehicle and add the trip's distance to its odometer (once)."""
    async with db.transaction() as session:
        return await complete_trip_in(session, vehicle_id, trip_id, distance_km)


async def find_nearest_available(db: Database, area: Circle) -> Vehicle | None:
    """The available vehicle closest to the circle's centre, within its radius."""
    async with db.session() as session:
        candidates = await SqlVehicleRepository(session).available_in_box(area)
    return nearest(candidates, area)


async def reserve_nearest_available(
    db: Database, area: Circle, trip_id: uuid.UUID, *, attempts: int = 3
) -> Vehicle | None:
    """Reserve the closest available vehicle; if another booking takes it first, try the next."""
    try:
        async with db.transaction() as session:
            return await book_in(session, trip_id, area, rounds=attempts)
    except NoVehicleAvailableError:
        return None

"""The trip lifecycle after booking: start, complete, cancel — each a state change plus its event,
committed together (outbox). Vehicle, billing, user and analytics react to the events."""

from __future__ import annotations

import uuid
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from fleet.common.app import not_found
from fleet.common.auth import Principal
from fleet.common.db import utcnow
from fleet.common.errors import InvalidInputError
from fleet.common.runtime import ServiceRuntime
from fleet.contracts.events import TripCancelled, TripCompleted, TripStarted
from fleet.trip.adapters.repository import SqlTrackingRepository, SqlTripRepository
from fleet.trip.domain.trips import MAX_DURATION_MIN, Trip
from fleet.trip.service.errors import domain_errors

T = TypeVar("T")


async def start_trip(rt: ServiceRuntime, trip_id: uuid.UUID) -> Trip:
    """Operator: the rider is aboard (confirmed → in_progress; vehicle → in_trip)."""
    async with rt.transaction() as session:
        repo = SqlTripRepository(session)
        trip = await _get(repo, trip_id)
        with domain_errors():
            trip.start(utcnow())
        await repo.save(trip)
        event = TripStarted(
            trip_id=trip.id,
            rider_id=trip.rider_id,
            vehicle_id=trip.vehicle_id,
            started_at=trip.started_at,
        )
        await rt.publish(
            session, event, aggregate_type="trip", aggregate_id=trip.id, version=trip.version
        )
    return trip


async def complete_trip(
    rt: ServiceRuntime, trip_id: uuid.UUID, distance_km: float, duration_min: float | None
) -> Trip:
    """Operator: the ride ended (in_progress → completed). Billing charges on `trip.completed`.

    Without an explicit duration it is derived from the tracking points, else from start time.
    """
    async with rt.transaction() as session:
        repo = SqlTripRepository(session)
        trip = await _get(repo, trip_id)
        now = utcnow()
        if duration_min is None:
            duration_min = await _derived_duration(session, trip)
            if duration_min > MAX_DURATION_MIN:
                raise InvalidInputError(
                    f"the ride seems to have lasted {duration_min:g} min (from its tracking or "
                    "start time); give duration_min",
                    field="duration_min",
                )
        with domain_errors():
            trip.complete(distance_km, duration_min, now)
        await repo.save(trip)
        event = TripCompleted(
            trip_id=trip.id,
            rider_id=trip.rider_id,
            vehicle_id=_set(trip.vehicle_id),
            vehicle_model=trip.vehicle_model,
            distance_km=distance_km,
            duration_min=duration_min,
            quoted_fare_cents=trip.quoted_fare_cents or 0,
            completed_at=_set(trip.completed_at),
        )
        await rt.publish(
            session, event, aggregate_type="trip", aggregate_id=trip.id, version=trip.version
        )
    return trip


async def cancel_trip(
    rt: ServiceRuntime, who: Principal, trip_id: uuid.UUID, reason: str | None
) -> Trip:
    """Owner or operator, before start (confirmed → cancelled): releases the hold and vehicle."""
    async with rt.transaction() as session:
        repo = SqlTripRepository(session)
        trip = await _get(repo, trip_id)
        if not who.may_access(trip.rider_id):
            raise not_found("trip", trip_id)
        with domain_errors():
            trip.cancel(utcnow())
        await repo.save(trip)
        by = "operator" if who.is_operator else "rider"
        event = TripCancelled(
            trip_id=trip.id,
            rider_id=trip.rider_id,
            vehicle_id=trip.vehicle_id,
            reason=reason or f"cancelled by {by}",
        )
        await rt.publish(
            session, event, aggregate_type="trip", aggregate_id=trip.id, version=trip.version
        )
    return trip


def _set(value: T | None) -> T:
    """A field the state machine guarantees at this point (a confirmed trip has a vehicle)."""
    if value is None:
        raise RuntimeError("trip invariant broken: a required field is missing")
    return value


async def _get(repo: SqlTripRepository, trip_id: uuid.UUID) -> Trip:
    trip = await repo.get(trip_id, lock=True)
    if trip is None:
        raise not_found("trip", trip_id)
    return trip


async def _derived_duration(session: AsyncSession, trip: Trip) -> float:
    span = await SqlTrackingRepository(session).span(trip.id)
    if span is not None:
        elapsed = span[1] - span[0]
    elif trip.started_at is not None:
        elapsed = utcnow() - trip.started_at
    else:
        return 0.0
    return round(max(elapsed.total_seconds(), 0.0) / 60, 2)

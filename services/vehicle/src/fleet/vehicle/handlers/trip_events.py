"""The trip life cycle as the vehicles see it: started → in_trip, completed or cancelled → free.

Events of one trip may overtake each other (a completion before its start) or arrive twice. The
inbox drops exact redeliveries; the vehicle's own state drops the rest: an event about a trip the
vehicle no longer serves changes nothing and is not an error (retrying it would never help).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from fleet.common.errors import InvalidInputError, NotFoundError
from fleet.common.logging import get_logger
from fleet.common.messaging import Envelope, MalformedMessage, default_registry
from fleet.contracts.events import TripCancelled, TripCompleted, TripStarted
from fleet.vehicle.domain.vehicles import VehicleUnavailableError
from fleet.vehicle.service import reservations

log = get_logger("fleet.vehicle.trip_events")


async def on_trip_started(session: AsyncSession, envelope: Envelope) -> None:
    event = default_registry.parse_as(envelope, TripStarted)
    try:
        await reservations.start_trip_in(session, event.vehicle_id, event.trip_id)
    except (VehicleUnavailableError, NotFoundError) as stale:
        # Completed or cancelled already (events overtook each other), or never reserved here.
        log.info("trip.started ignored", trip_id=str(event.trip_id), reason=stale.detail)


async def on_trip_completed(session: AsyncSession, envelope: Envelope) -> None:
    event = default_registry.parse_as(envelope, TripCompleted)
    try:
        await reservations.complete_trip_in(
            session, event.vehicle_id, event.trip_id, event.distance_km
        )
    except InvalidInputError as exc:
        raise MalformedMessage(f"trip.completed: {exc.detail}") from None
    except NotFoundError as exc:
        log.warning("trip.completed for an unknown vehicle", reason=exc.detail)


async def on_trip_cancelled(session: AsyncSession, envelope: Envelope) -> None:
    event = default_registry.parse_as(envelope, TripCancelled)
    await reservations.cancel_trip_in(session, event.trip_id)


HANDLERS = {
    TripStarted.event_type: on_trip_started,
    TripCompleted.event_type: on_trip_completed,
    TripCancelled.event_type: on_trip_cancelled,
}


async def trip_events(session: AsyncSession, envelope: Envelope) -> None:
    """The inbox handler of the vehicle.events queue: one handler per event type."""
    handler = HANDLERS.get(envelope.event_type)
    if handler is None:
        raise MalformedMessage(f"vehicle does not handle {envelope.event_type}")
    await handler(session, envelope)

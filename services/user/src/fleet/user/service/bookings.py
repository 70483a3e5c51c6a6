"""Use cases driven by trips: the rider's booking notifications and a cancelled trip's credits.

Each notification is about one trip and is written at most once per kind (see
`SqlNotificationRepository.add_once`), because the saga re-sends commands after a timeout and the
bus delivers at least once.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from fleet.common.app import not_found
from fleet.user.adapters.notifications import SqlNotificationRepository
from fleet.user.domain.wallet import Hold
from fleet.user.service.wallets import release_hold

TRIP_CONFIRMED = "trip_confirmed"
BOOKING_CANCELLED = "booking_cancelled"
TRIP_CANCELLED = "trip_cancelled"
MAX_REASON_CHARS = 500


def format_credits(cents: int) -> str:
    """`1250` → `"12.50"`."""
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return f"{sign}{whole}.{part:02d}"


async def send_confirmation(
    session: AsyncSession,
    rider_id: uuid.UUID,
    trip_id: uuid.UUID,
    vehicle_id: uuid.UUID,
    fare_cents: int,
) -> uuid.UUID:
    """Tell the rider the trip is booked; NotFoundError (a refusal) for an unknown rider."""
    body = (
        f"Vehicle {vehicle_id} is booked for your trip {trip_id}. "
        f"Fare: {format_credits(fare_cents)} credits."
    )
    repo = SqlNotificationRepository(session)
    added = await repo.add_once(rider_id, TRIP_CONFIRMED, trip_id, "Trip confirmed", body)
    if added is None:
        raise not_found("rider", rider_id)
    return added


async def send_cancellation(
    session: AsyncSession, rider_id: uuid.UUID, trip_id: uuid.UUID
) -> uuid.UUID | None:
    """Tell the rider the booking failed. A compensation must succeed: no rider, nothing to do."""
    body = f"Your booking of trip {trip_id} could not be completed; no credits were charged."
    return await _booking_cancelled(session, rider_id, trip_id, body)


async def booking_rejected(
    session: AsyncSession, rider_id: uuid.UUID, trip_id: uuid.UUID, reason: str
) -> uuid.UUID | None:
    """Tell the rider why the booking failed (once per trip, shared with send-cancellation)."""
    body = (
        f"Your booking of trip {trip_id} could not be completed: {reason[:MAX_REASON_CHARS]}. "
        "No credits were charged."
    )
    return await _booking_cancelled(session, rider_id, trip_id, body)


async def _booking_cancelled(
    session: AsyncSession, rider_id: uuid.UUID, trip_id: uuid.UUID, body: str
) -> uuid.UUID | None:
    repo = SqlNotificationRepository(session)  # no rider: nothing to tell, None
    return await repo.add_once(rider_id, BOOKING_CANCELLED, trip_id, "Booking cancelled", body)


async def cancel_trip(
    session: AsyncSession, rider_id: uuid.UUID, trip_id: uuid.UUID, reason: str
) -> Hold | None:
    """Free the credits still held for a cancelled trip and tell the rider; safe to repeat."""
    hold = await release_hold(session, trip_id, settled_ok=True)
    body = f"Your trip {trip_id} was cancelled: {reason[:MAX_REASON_CHARS]}."
    if hold is not None and hold.status == "released":
        freed = format_credits(hold.amount_cents)
        body += f" The {freed} credits held for it are available again."
    repo = SqlNotificationRepository(session)  # no rider: nothing to tell
    await repo.add_once(rider_id, TRIP_CANCELLED, trip_id, "Trip cancelled", body)
    return hold

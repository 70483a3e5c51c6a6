"""The user service's steps of the trip-booking saga, consumed from `user.commands`.

Each handler reads its typed view of the saga's data and calls one use case; the participant
wrapper (`fleet.common.participant.saga_participant`) turns the result or a refusal into the
reply. Every use case here is idempotent on the trip, so a command re-sent after a timeout gets
the same answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from fleet.common.participant import CommandHandler, checks_first, command_payload
from fleet.common.saga import SagaCommand
from fleet.contracts.booking import (
    ReleaseCredits,
    ReserveCredits,
    SendCancellation,
    SendConfirmation,
)
from fleet.user.service import bookings, wallets


async def reserve_credits(session: AsyncSession, command: SagaCommand) -> dict[str, Any]:
    cmd = command_payload(command, ReserveCredits)
    hold = await wallets.hold_credits(session, cmd.rider_id, cmd.trip_id, cmd.fare_cents)
    return {"held_cents": hold.amount_cents}


async def release_credits(session: AsyncSession, command: SagaCommand) -> dict[str, Any]:
    cmd = command_payload(command, ReleaseCredits)
    hold = await wallets.release_hold(session, cmd.trip_id, settled_ok=True, user_id=cmd.rider_id)
    released = hold.amount_cents if hold is not None and hold.status == "released" else 0
    return {"released_cents": released}


async def send_confirmation(session: AsyncSession, command: SagaCommand) -> dict[str, Any]:
    cmd = command_payload(command, SendConfirmation)
    notification_id = await bookings.send_confirmation(
        session, cmd.rider_id, cmd.trip_id, cmd.vehicle_id, cmd.fare_cents
    )
    return {"notification_id": str(notification_id)}


async def send_cancellation(session: AsyncSession, command: SagaCommand) -> dict[str, Any]:
    cmd = command_payload(command, SendCancellation)
    notification_id = await bookings.send_cancellation(session, cmd.rider_id, cmd.trip_id)
    return {"notification_id": str(notification_id) if notification_id else None}


# Each checks everything before its first write (a refused wallet save changes no row), so
# none needs the participant's savepoint.
HANDLERS: Mapping[str, CommandHandler] = {
    ReserveCredits.event_type: checks_first(reserve_credits),
    ReleaseCredits.event_type: checks_first(release_credits),
    SendConfirmation.event_type: checks_first(send_confirmation),
    SendCancellation.event_type: checks_first(send_cancellation),
}

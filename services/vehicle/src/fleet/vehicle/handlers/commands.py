"""The vehicle service's part in the trip-booking saga: reserve-vehicle and release-vehicle.

Each command runs inside the inbox transaction the participant hands over, so the reservation
and the reply commit together. Refusals (no vehicle nearby, the requested one busy or unknown,
the booking already released) are `FleetError`s: the participant turns them into failure replies.
Both run without the participant's savepoint (`checks_first`): release refuses nothing, and a
refused reserve closes the booking it opened rather than rolling it back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from fleet.common.outbox import InboxHandler
from fleet.common.participant import checks_first, command_payload, saga_participant
from fleet.common.runtime import ServiceRuntime
from fleet.common.saga import SagaCommand
from fleet.contracts.booking import ReleaseVehicle, ReserveVehicle
from fleet.vehicle.domain.search import BOOKING_RADIUS_KM, Circle
from fleet.vehicle.service import reservations


async def reserve_vehicle(session: AsyncSession, command: SagaCommand) -> Mapping[str, Any]:
    cmd = command_payload(command, ReserveVehicle)
    area = Circle(cmd.pickup.lat, cmd.pickup.lon, BOOKING_RADIUS_KM)
    vehicle = await reservations.book_or_close_in(
        session, cmd.trip_id, area, cmd.requested_vehicle_id
    )
    return {"vehicle_id": str(vehicle.id), "vehicle_model": vehicle.model}


async def release_vehicle(session: AsyncSession, command: SagaCommand) -> None:
    cmd = command_payload(command, ReleaseVehicle)
    await reservations.release_trip_in(session, cmd.trip_id)


def saga_commands(rt: ServiceRuntime) -> InboxHandler:
    """The inbox handler of the vehicle.commands queue."""
    return saga_participant(
        rt,
        {
            ReserveVehicle.event_type: checks_first(reserve_vehicle),
            ReleaseVehicle.event_type: checks_first(release_vehicle),
        },
    )

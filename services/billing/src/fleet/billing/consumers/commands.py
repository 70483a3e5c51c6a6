"""billing.commands: billing's steps in the trip-booking saga."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from fleet.billing.service.tariffs import quote_in
from fleet.common.participant import command_payload
from fleet.common.saga import SagaCommand
from fleet.contracts.booking import QuoteFare


async def quote_fare(session: AsyncSession, command: SagaCommand) -> Mapping[str, Any]:
    """Price the ride with the default tariff (the vehicle is not chosen yet).

    A pure read, so a re-sent command simply gets the quote again.
    """
    ride = command_payload(command, QuoteFare)
    fare, distance, duration = await quote_in(session, ride.pickup, ride.dropoff)
    return {"fare_cents": fare, "distance_km": distance, "duration_min": duration}


HANDLERS = {QuoteFare.event_type: quote_fare}

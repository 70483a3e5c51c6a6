"""billing.commands: billing's steps in the trip-booking saga."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from fleet.billing.service.tariffs import quote_in
from fleet.common.messaging import MalformedMessage
from fleet.common.saga import SagaCommand
from fleet.contracts.booking import QuoteFare


async def quote_fare(session: AsyncSession, command: SagaCommand) -> Mapping[str, Any]:
    """Price the ride with the default tariff (the vehicle is not chosen yet).

    A pure read, so a re-sent command simply gets the quote again.
    """
    try:
        ride = QuoteFare.model_validate(command.payload)
    except ValidationError as exc:
        # Not a business refusal (ADR 0003): it can never succeed, so it goes to the dead-letter
        # queue for an operator, and the saga's timeout compensates.
        fields = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors()[:10])
        raise MalformedMessage(f"invalid {command.command_type} payload: {fields}") from None
    fare, distance, duration = await quote_in(session, ride.pickup, ride.dropoff)
    return {"fare_cents": fare, "distance_km": distance, "duration_min": duration}


HANDLERS = {QuoteFare.event_type: quote_fare}

"""Fares in the trip service: the replica of billing's tariffs and the booking's local quote.

billing announces every tariff change (`billing.tariff-changed`); trip keeps the newest version
per model and prices a booking with the replicated `default` tariff (the vehicle is not chosen
yet), through the same rule billing invoices with (`fleet.contracts.fares`). billing remains
the authority: it prices the invoice with its own tariffs when the ride completes.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from fleet.common.geo import Point
from fleet.common.logging import get_logger
from fleet.common.messaging import Envelope, default_registry
from fleet.contracts import fares
from fleet.contracts.events import TariffChanged
from fleet.contracts.fares import DEFAULT_MODEL, DEFAULT_TARIFF, Quote
from fleet.trip.adapters.tariffs import SqlTariffReplica

log = get_logger("fleet.trip.fares")


async def record_tariff(session: AsyncSession, envelope: Envelope) -> None:
    """Inbox handler of `trip.tariffs`: keep the tariff unless a newer version is held."""
    event = default_registry.parse_as(envelope, TariffChanged)
    if await SqlTariffReplica(session).apply(event):
        log.info("tariff replicated", vehicle_model=event.vehicle_model, version=event.version)


async def quote_ride(session: AsyncSession, pickup: Point, dropoff: Point) -> Quote:
    """The ride priced with the replicated default tariff, else the built-in default.

    Refuses (`RideTooLong`) what billing's quote refuses.
    """
    tariff = await SqlTariffReplica(session).get(DEFAULT_MODEL) or DEFAULT_TARIFF
    return fares.quote(tariff, pickup, dropoff)

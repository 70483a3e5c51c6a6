"""Use cases: tariffs, their announcement to replicas, and fare quotes.

billing owns the tariffs. Every change is announced (`billing.tariff-changed`, through the outbox,
in the transaction that makes it); trip keeps a replica to quote bookings locally. Every stored
tariff is announced again at start-up and then every `ANNOUNCE_INTERVAL_S`, so a replica that
missed an event (a queue declared after it was published, a restored database) converges.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from fleet.billing.adapters.repository import SqlTariffRepository, StoredTariff
from fleet.common.db import Database
from fleet.common.geo import Point
from fleet.common.runtime import ServiceRuntime
from fleet.contracts import fares
from fleet.contracts.events import TariffChanged
from fleet.contracts.fares import DEFAULT_MODEL, DEFAULT_TARIFF, Quote, Tariff

# How often every tariff is announced again (a handful of small events; replicas ignore
# versions they hold). Bounds how long a replica that missed an announcement stays stale.
ANNOUNCE_INTERVAL_S = 60.0


async def list_tariffs(db: Database) -> list[Tariff]:
    async with db.session() as session:
        stored = await SqlTariffRepository(session).list()
    if not any(t.vehicle_model == DEFAULT_MODEL for t in stored):
        stored.insert(0, DEFAULT_TARIFF)
    return stored


async def tariff_in(session: AsyncSession, vehicle_model: str | None) -> Tariff:
    """The model's tariff, else the stored default, else the built-in default."""
    repo = SqlTariffRepository(session)
    for model in (vehicle_model, DEFAULT_MODEL):
        if model and (tariff := await repo.get(model)):
            return tariff
    return DEFAULT_TARIFF


async def put_tariff(rt: ServiceRuntime, tariff: Tariff) -> Tariff:
    """Create or replace a tariff and announce its new version with the same commit."""
    async with rt.transaction() as session:
        stored = await SqlTariffRepository(session).put(tariff)
        await _announce(rt, session, stored)
    return tariff


async def announce_tariffs(rt: ServiceRuntime) -> int:
    """Announce every stored tariff again, at its current version; how many were announced."""
    async with rt.transaction() as session:
        stored = await SqlTariffRepository(session).list_stored()
        for tariff in stored:
            await _announce(rt, session, tariff)
    return len(stored)


async def _announce(rt: ServiceRuntime, session: AsyncSession, stored: StoredTariff) -> None:
    t = stored.tariff
    event = TariffChanged(
        vehicle_model=t.vehicle_model,
        base_cents=t.base_cents,
        per_km_cents=t.per_km_cents,
        per_min_cents=t.per_min_cents,
        version=stored.version,
        updated_at=stored.updated_at,
    )
    model, version = t.vehicle_model, stored.version
    await rt.publish(session, event, aggregate_type="tariff", aggregate_id=model, version=version)


async def quote(
    db: Database, pickup: Point, dropoff: Point, vehicle_model: str | None = None
) -> Quote:
    """A straight-line estimate of the ride, priced with the model's tariff (`POST /quotes`)."""
    async with db.session() as session:
        tariff = await tariff_in(session, vehicle_model)
    return fares.quote(tariff, pickup, dropoff)

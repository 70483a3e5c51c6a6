"""trip's replica of billing's tariffs: the newest version of each model's tariff."""

from __future__ import annotations

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from fleet.common.db import insert_for
from fleet.contracts.events import TariffChanged
from fleet.contracts.fares import Tariff
from fleet.trip.adapters.tables import tariffs

# Every booking's quote reads it: built once, executed with a parameter.
_GET = select(
    tariffs.c.vehicle_model,
    tariffs.c.base_cents,
    tariffs.c.per_km_cents,
    tariffs.c.per_min_cents,
).where(tariffs.c.vehicle_model == bindparam("p_model"))


class SqlTariffReplica:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, vehicle_model: str) -> Tariff | None:
        row = (await self.session.execute(_GET, {"p_model": vehicle_model})).first()
        return Tariff(*row) if row else None

    async def apply(self, event: TariffChanged) -> bool:
        """Keep `event`'s tariff unless the replica holds that version or a newer one.

        One statement, so concurrent deliveries of two versions leave the newer one on every
        backend. True if the replica changed.
        """
        values = {
            "vehicle_model": event.vehicle_model,
            "base_cents": event.base_cents,
            "per_km_cents": event.per_km_cents,
            "per_min_cents": event.per_min_cents,
            "version": event.version,
            "updated_at": event.updated_at,
        }
        stmt = insert_for(self.session, tariffs).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[tariffs.c.vehicle_model],
            set_={k: stmt.excluded[k] for k in values if k != "vehicle_model"},
            where=tariffs.c.version < stmt.excluded.version,
        ).returning(tariffs.c.version)
        return (await self.session.execute(stmt)).first() is not None

"""SQL repositories of the billing service."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fleet.billing.adapters.tables import invoices, tariffs
from fleet.billing.domain.fares import Tariff
from fleet.common.db import insert_for, utcnow
from fleet.common.pagination import PageParams, newest_first


def _tariff(row: Any) -> Tariff:
    return Tariff(row.vehicle_model, row.base_cents, row.per_km_cents, row.per_min_cents)


class SqlTariffRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, vehicle_model: str) -> Tariff | None:
        row = (
            await self.session.execute(
                select(tariffs).where(tariffs.c.vehicle_model == vehicle_model)
            )
        ).first()
        return _tariff(row) if row else None

    async def list(self) -> list[Tariff]:
        rows = await self.session.execute(select(tariffs).order_by(tariffs.c.vehicle_model))
        return [_tariff(r) for r in rows]

    async def put(self, tariff: Tariff) -> None:
        values = {
            "vehicle_model": tariff.vehicle_model,
            "base_cents": tariff.base_cents,
            "per_km_cents": tariff.per_km_cents,
            "per_min_cents": tariff.per_min_cents,
            "updated_at": utcnow(),
        }
        stmt = insert_for(self.session, tariffs).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[tariffs.c.vehicle_model],
            set_={k: v for k, v in values.items() if k != "vehicle_model"},
        )
        await self.session.execute(stmt)


class SqlInvoiceRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, invoice_id: uuid.UUID) -> Any | None:
        stmt = select(invoices).where(invoices.c.id == invoice_id)
        return (await self.session.execute(stmt)).first()

    async def list(self, rider_id: uuid.UUID | None, page: PageParams) -> list[Any]:
        """Newest first, one row more than the page to tell whether another page follows."""
        stmt = select(invoices)
        if rider_id is not None:
            stmt = stmt.where(invoices.c.rider_id == rider_id)
        stmt = newest_first(stmt, invoices.c.created_at, invoices.c.id, page)
        return list(await self.session.execute(stmt))

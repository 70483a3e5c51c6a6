"""SQL repositories of the billing service."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from fleet.billing.adapters.tables import invoices, payments, tariffs
from fleet.common.db import insert_for, utcnow
from fleet.common.pagination import PageParams, newest_first
from fleet.contracts.fares import Tariff


@dataclass(frozen=True, slots=True)
class StoredTariff:
    """A tariff with its change counter (`version`) and the time of that change."""

    tariff: Tariff
    version: int
    updated_at: dt.datetime


def _tariff(row: Any) -> Tariff:
    return Tariff(row.vehicle_model, row.base_cents, row.per_km_cents, row.per_min_cents)


def _stored(row: Any) -> StoredTariff:
    return StoredTariff(_tariff(row), row.version, row.updated_at)


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

    async def list_stored(self) -> list[StoredTariff]:
        rows = await self.session.execute(select(tariffs).order_by(tariffs.c.vehicle_model))
        return [_stored(r) for r in rows]

    async def list(self) -> list[Tariff]:
        return [s.tariff for s in await self.list_stored()]

    async def put(self, tariff: Tariff) -> StoredTariff:
        """Create or replace the model's tariff: version 1, then one more on every put.

        The upsert increments under the row's lock, so concurrent puts get distinct versions
        in the order they committed.
        """
        now = utcnow()
        values = {
            "vehicle_model": tariff.vehicle_model,
            "base_cents": tariff.base_cents,
            "per_km_cents": tariff.per_km_cents,
            "per_min_cents": tariff.per_min_cents,
            "updated_at": now,
            "version": 1,
        }
        stmt = insert_for(self.session, tariffs).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[tariffs.c.vehicle_model],
            set_={
                **{k: v for k, v in values.items() if k not in ("vehicle_model", "version")},
                "version": tariffs.c.version + 1,
            },
        ).returning(tariffs.c.version)
        version = (await self.session.execute(stmt)).scalar_one()
        return StoredTariff(tariff, int(version), now)


class SqlInvoiceRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, invoice_id: uuid.UUID) -> Any | None:
        stmt = select(invoices).where(invoices.c.id == invoice_id)
        return (await self.session.execute(stmt)).first()

    async def get_for_update(self, invoice_id: uuid.UUID) -> Any | None:
        """The invoice, locked until the transaction ends (PostgreSQL; SQLite locks on write)."""
        stmt = select(invoices).where(invoices.c.id == invoice_id).with_for_update()
        return (await self.session.execute(stmt)).first()

    async def add_once(self, values: dict[str, Any]) -> bool:
        """Insert an invoice unless its trip already has one; True if this call inserted it."""
        stmt = (
            insert_for(self.session, invoices)
            .values(**values)
            .on_conflict_do_nothing(index_elements=[invoices.c.trip_id])
            .returning(invoices.c.id)
        )
        return (await self.session.execute(stmt)).first() is not None

    async def set_status(
        self, invoice_id: uuid.UUID, status: str, failure_reason: str | None
    ) -> None:
        stmt = (
            update(invoices)
            .where(invoices.c.id == invoice_id)
            .values(status=status, failure_reason=failure_reason, updated_at=utcnow())
        )
        await self.session.execute(stmt)

    async def list(self, rider_id: uuid.UUID | None, page: PageParams) -> list[Any]:
        """Newest first, one row more than the page to tell whether another page follows."""
        stmt = select(invoices)
        if rider_id is not None:
            stmt = stmt.where(invoices.c.rider_id == rider_id)
        stmt = newest_first(stmt, invoices.c.created_at, invoices.c.id, page)
        return list(await self.session.execute(stmt))


class SqlPaymentRepository:
    """Capture outcomes per invoice, numbered 1, 2, … in the order they were applied."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def record(self, invoice_id: uuid.UUID, status: str, error: str | None) -> int:
        """Add the next attempt of `invoice_id` and return its number.

        Callers hold the invoice's row lock, so two outcomes cannot take the same number.
        """
        last = await self.session.scalar(
            select(func.coalesce(func.max(payments.c.attempt), 0)).where(
                payments.c.invoice_id == invoice_id
            )
        )
        attempt = int(last or 0) + 1
        await self.session.execute(
            payments.insert().values(
                id=uuid.uuid4(),
                invoice_id=invoice_id,
                attempt=attempt,
                status=status,
                error=error,
                created_at=utcnow(),
            )
        )
        return attempt

    async def list(self, invoice_id: uuid.UUID) -> list[Any]:
        stmt = select(payments).where(payments.c.invoice_id == invoice_id)
        return list(await self.session.execute(stmt.order_by(payments.c.attempt)))

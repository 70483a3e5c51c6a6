"""SQL repository of wallets, credit holds and the wallet ledger.

Writers lock the wallet row (SELECT … FOR UPDATE on PostgreSQL; SQLite serialises writers) before
reading or changing its holds, so concurrent holds can never overdraw. The version check in
`save` is a second guard for backends without row locks.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from fleet.common.db import utcnow
from fleet.common.errors import ConflictError
from fleet.user.adapters.tables import credit_holds, wallet_ledger, wallets
from fleet.user.domain.wallet import Hold, LedgerKind, Wallet


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    id: uuid.UUID
    user_id: uuid.UUID
    kind: LedgerKind
    amount_cents: int
    reference: str | None
    balance_after_cents: int
    held_after_cents: int
    created_at: dt.datetime


def _wallet(row: Any) -> Wallet:
    return Wallet(row.user_id, row.balance_cents, row.held_cents, row.version)


def _hold(row: Any) -> Hold:
    return Hold(
        row.id, row.user_id, row.reference, row.amount_cents, row.status, row.captured_cents
    )


def _entry(row: Any) -> LedgerEntry:
    return LedgerEntry(**{f: getattr(row, f) for f in LedgerEntry.__slots__})


class SqlWalletRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, user_id: uuid.UUID, *, for_update: bool = False) -> Wallet | None:
        stmt = select(wallets).where(wallets.c.user_id == user_id)
        if for_update:
            stmt = stmt.with_for_update()
        row = (await self.session.execute(stmt)).first()
        return _wallet(row) if row else None

    async def add(self, wallet: Wallet) -> None:
        await self.session.execute(
            wallets.insert().values(
                user_id=wallet.user_id,
                balance_cents=wallet.balance_cents,
                held_cents=wallet.held_cents,
                version=wallet.version,
                updated_at=utcnow(),
            )
        )

    async def save(self, wallet: Wallet, expected_version: int) -> None:
        """Write the wallet back, provided nobody changed it since it was read."""
        result: Any = await self.session.execute(
            update(wallets)
            .where(wallets.c.user_id == wallet.user_id, wallets.c.version == expected_version)
            .values(
                balance_cents=wallet.balance_cents,
                held_cents=wallet.held_cents,
                version=wallet.version,
                updated_at=utcnow(),
            )
        )
        if result.rowcount != 1:
            raise ConflictError("the wallet changed concurrently; retry")

    async def hold(self, reference: uuid.UUID) -> Hold | None:
        stmt = select(credit_holds).where(credit_holds.c.reference == reference)
        row = (await self.session.execute(stmt)).first()
        return _hold(row) if row else None

    async def add_hold(self, hold: Hold) -> None:
        now = utcnow()
        await self.session.execute(
            credit_holds.insert().values(
                id=hold.id,
                user_id=hold.user_id,
                reference=hold.reference,
                amount_cents=hold.amount_cents,
                status=hold.status,
                captured_cents=hold.captured_cents,
                created_at=now,
                updated_at=now,
            )
        )

    async def save_hold(self, hold: Hold) -> None:
        await self.session.execute(
            update(credit_holds)
            .where(credit_holds.c.id == hold.id)
            .values(status=hold.status, captured_cents=hold.captured_cents, updated_at=utcnow())
        )

    async def holds_of(self, user_id: uuid.UUID) -> list[Hold]:
        stmt = (
            select(credit_holds)
            .where(credit_holds.c.user_id == user_id)
            .order_by(credit_holds.c.created_at, credit_holds.c.id)
        )
        return [_hold(r) for r in await self.session.execute(stmt)]

    async def entry(
        self, user_id: uuid.UUID, kind: LedgerKind, reference: str
    ) -> LedgerEntry | None:
        stmt = select(wallet_ledger).where(
            wallet_ledger.c.user_id == user_id,
            wallet_ledger.c.kind == kind,
            wallet_ledger.c.reference == reference,
        )
        row = (await self.session.execute(stmt)).first()
        return _entry(row) if row else None

    async def record(
        self, wallet: Wallet, kind: LedgerKind, amount_cents: int, reference: str | None
    ) -> LedgerEntry:
        """Append a ledger entry for a movement just applied to `wallet`."""
        entry = LedgerEntry(
            id=uuid.uuid4(),
            user_id=wallet.user_id,
            kind=kind,
            amount_cents=amount_cents,
            reference=reference,
            balance_after_cents=wallet.balance_cents,
            held_after_cents=wallet.held_cents,
            created_at=utcnow(),
        )
        values = {f: getattr(entry, f) for f in LedgerEntry.__slots__}
        await self.session.execute(wallet_ledger.insert().values(**values))
        return entry

    async def entries(self, user_id: uuid.UUID) -> list[LedgerEntry]:
        stmt = (
            select(wallet_ledger)
            .where(wallet_ledger.c.user_id == user_id)
            .order_by(wallet_ledger.c.created_at, wallet_ledger.c.id)
        )
        return [_entry(r) for r in await self.session.execute(stmt)]

"""SQL repository of wallets, credit holds and the wallet ledger.

Writers lock the wallet row (SELECT … FOR UPDATE on PostgreSQL; SQLite serialises writers) before
reading or changing its holds, so concurrent holds can never overdraw. The version check in
`save` is a second guard for backends without row locks.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import Select, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from fleet.common.db import insert_for, utcnow
from fleet.common.errors import ConflictError
from fleet.common.native import fetch_rows
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


# The saga's hot paths run these per call: built once, executed with parameters.
_GET_WALLET = select(wallets).where(wallets.c.user_id == bindparam("p_user_id"))
_LOCK_WALLET = _GET_WALLET.with_for_update()
_SAVE_WALLET = (
    update(wallets)
    .where(wallets.c.user_id == bindparam("p_user_id"), wallets.c.version == bindparam("p_version"))
    .values(
        balance_cents=bindparam("balance_cents"),
        held_cents=bindparam("held_cents"),
        version=bindparam("version"),
        updated_at=bindparam("updated_at"),
    )
)
_GET_HOLD = select(credit_holds).where(credit_holds.c.reference == bindparam("p_reference"))
_ADD_HOLD = credit_holds.insert()
_ADD_HOLD_ONCE: dict[str, Any] = {}  # by dialect: INSERT … ON CONFLICT (reference) DO NOTHING
_SAVE_HOLD = (
    update(credit_holds)
    .where(credit_holds.c.id == bindparam("p_id"))
    .values(
        status=bindparam("status"),
        captured_cents=bindparam("captured_cents"),
        updated_at=bindparam("updated_at"),
    )
)


@cache  # built once, on the first hold
def _hold_and_save() -> Select[Any]:
    """PostgreSQL: `INSERT` the hold `ON CONFLICT (reference) DO NOTHING` and `UPDATE` the
    wallet (versioned, as `_SAVE_WALLET`) only where the hold was inserted, in one statement
    answering (holds inserted, wallets written)."""
    columns = ("id", "user_id", "reference", "amount_cents", "status", "captured_cents")
    # The hold's parameters are prefixed: an UPDATE would SET any column named by one.
    values: dict[str, Any] = {name: bindparam(f"h_{name}") for name in columns}
    values |= {"created_at": bindparam("updated_at"), "updated_at": bindparam("updated_at")}
    held = (
        pg_insert(credit_holds)
        .values(values)
        .on_conflict_do_nothing(index_elements=["reference"])
        .returning(credit_holds.c.id)
        .cte("held")
    )
    saved = _SAVE_WALLET.where(select(held.c.id).exists()).returning(wallets.c.user_id).cte("saved")
    count = func.count()
    return select(
        select(count).select_from(held).scalar_subquery().label("held"),
        select(count).select_from(saved).scalar_subquery().label("saved"),
    )


def _wallet(row: Any) -> Wallet:
    return Wallet(row["user_id"], row["balance_cents"], row["held_cents"], row["version"])


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
        stmt = _LOCK_WALLET if for_update else _GET_WALLET
        rows = await fetch_rows(self.session, stmt, {"p_user_id": user_id})
        return _wallet(rows[0]) if rows else None

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
        params = self._wallet_params(wallet, expected_version)
        result: Any = await self.session.execute(_SAVE_WALLET, params)
        if result.rowcount != 1:
            raise ConflictError("the wallet changed concurrently; retry")

    @staticmethod
    def _wallet_params(wallet: Wallet, expected_version: int) -> dict[str, Any]:
        return {
            "p_user_id": wallet.user_id,
            "p_version": expected_version,
            "balance_cents": wallet.balance_cents,
            "held_cents": wallet.held_cents,
            "version": wallet.version,
            "updated_at": utcnow(),
        }

    async def hold(self, reference: uuid.UUID) -> Hold | None:
        row = (await self.session.execute(_GET_HOLD, {"p_reference": reference})).first()
        return _hold(row) if row else None

    async def add_hold(self, hold: Hold) -> None:
        await self.session.execute(_ADD_HOLD, self._hold_row(hold))

    @staticmethod
    def _hold_row(hold: Hold) -> dict[str, Any]:
        now = utcnow()
        return {
            "id": hold.id,
            "user_id": hold.user_id,
            "reference": hold.reference,
            "amount_cents": hold.amount_cents,
            "status": hold.status,
            "captured_cents": hold.captured_cents,
            "created_at": now,
            "updated_at": now,
        }

    async def add_hold_once(self, hold: Hold) -> bool:
        """Insert the hold unless its reference is taken (by any rider); True if inserted.

        On PostgreSQL a concurrent uncommitted hold of the same reference is waited for."""
        dialect = self.session.get_bind().dialect.name
        stmt = _ADD_HOLD_ONCE.get(dialect)
        if stmt is None:
            stmt = _ADD_HOLD_ONCE[dialect] = (
                insert_for(dialect, credit_holds)
                .on_conflict_do_nothing(index_elements=["reference"])
                .returning(credit_holds.c.id)
            )
        result = await self.session.execute(stmt, self._hold_row(hold))
        return result.first() is not None

    async def add_hold_and_save(self, hold: Hold, wallet: Wallet, expected_version: int) -> bool:
        """Insert the hold unless its reference is taken and, only if it was inserted, write the
        wallet back (as `save`); True if both were written, False if the reference was taken
        (nothing written). One statement on PostgreSQL, two elsewhere."""
        dialect = self.session.get_bind().dialect.name
        if dialect != "postgresql":
            if not await self.add_hold_once(hold):
                return False
            await self.save(wallet, expected_version)
            return True
        params = self._wallet_params(wallet, expected_version)
        params.update({f"h_{k}": v for k, v in self._hold_row(hold).items()})
        row = (await fetch_rows(self.session, _hold_and_save(), params))[0]
        held, saved = row["held"], row["saved"]
        if held and not saved:
            raise ConflictError("the wallet changed concurrently; retry")
        return bool(held)

    async def save_hold(self, hold: Hold) -> None:
        await self.session.execute(
            _SAVE_HOLD,
            {
                "p_id": hold.id,
                "status": hold.status,
                "captured_cents": hold.captured_cents,
                "updated_at": utcnow(),
            },
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

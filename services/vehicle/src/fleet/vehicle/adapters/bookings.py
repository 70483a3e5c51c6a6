"""SQL record of where each trip's booking stands for the vehicle service."""

from __future__ import annotations

import uuid
from typing import Any, Literal, NamedTuple

from sqlalchemy import Boolean, bindparam, false, literal_column, update
from sqlalchemy.ext.asyncio import AsyncSession

from fleet.common.db import insert_for, utcnow
from fleet.common.native import fetch_rows
from fleet.vehicle.adapters.tables import bookings

BookingState = Literal["open", "released", "cancelled", "completed"]


class Opened(NamedTuple):
    state: BookingState
    new: bool  # this call inserted the booking: nothing can be held for the trip yet


# Built once (the booking saga runs them per message), executed with parameters.
_CLOSE = (
    update(bookings)
    .where(bookings.c.trip_id == bindparam("p_trip_id"), bookings.c.state == "open")
    .values(state=bindparam("state"), updated_at=bindparam("updated_at"))
)
_ENSURE: dict[str, Any] = {}  # by dialect name: its INSERT … ON CONFLICT DO NOTHING
_OPEN: dict[str, Any] = {}  # by dialect name: the upsert that opens, locks and reads at once


def _ensure_statement(session: AsyncSession) -> Any:
    dialect = session.get_bind().dialect.name
    stmt = _ENSURE.get(dialect)
    if stmt is None:
        stmt = _ENSURE[dialect] = (
            insert_for(dialect, bookings)
            .values(
                trip_id=bindparam("trip_id"),
                state=bindparam("state"),
                updated_at=bindparam("updated_at"),
            )
            .on_conflict_do_nothing(index_elements=["trip_id"])
        )
    return stmt


def _open_statement(session: AsyncSession) -> Any:
    """INSERT the open booking, or on conflict a no-op UPDATE of the existing row (which takes
    its lock, as SELECT … FOR UPDATE would); RETURNING its state either way: one round trip.

    On PostgreSQL it also answers whether the row is new: a row this statement inserted has no
    `xmax` yet, one it updated carries the updating transaction's. SQLite cannot tell (never new).
    """
    dialect = session.get_bind().dialect.name
    stmt = _OPEN.get(dialect)
    if stmt is None:
        insert = insert_for(dialect, bookings).values(
            trip_id=bindparam("trip_id"), state="open", updated_at=bindparam("updated_at")
        )
        new = literal_column("xmax = 0", Boolean) if dialect == "postgresql" else false()
        stmt = _OPEN[dialect] = insert.on_conflict_do_update(
            index_elements=["trip_id"], set_={"state": bookings.c.state}
        ).returning(bookings.c.state, new.label("new"))
    return stmt


class SqlBookings:
    """Each method takes the trip's row lock (inserting the row first if needed).

    On PostgreSQL an INSERT … ON CONFLICT DO NOTHING waits for a concurrent uncommitted insert of
    the same trip, and UPDATE / SELECT … FOR UPDATE wait for its lock: whatever touches one trip's
    booking runs one after the other.
    """

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _ensure(self, trip_id: uuid.UUID, state: BookingState) -> None:
        await self.session.execute(
            _ensure_statement(self.session),
            {"trip_id": trip_id, "state": state, "updated_at": utcnow()},
        )

    async def open(self, trip_id: uuid.UUID) -> Opened:
        """Lock the trip's booking, opening it if new; its state (anything but open is over) and
        whether this call opened it (PostgreSQL only; SQLite always answers not new)."""
        params = {"trip_id": trip_id, "updated_at": utcnow()}
        row = (await fetch_rows(self.session, _open_statement(self.session), params))[0]
        return Opened(row["state"], bool(row["new"]))

    async def close(self, trip_id: uuid.UUID, state: BookingState) -> None:
        """Close the trip's booking for good; the first reason recorded stays."""
        await self._ensure(trip_id, state)
        await self.session.execute(
            _CLOSE, {"p_trip_id": trip_id, "state": state, "updated_at": utcnow()}
        )

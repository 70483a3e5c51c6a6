"""SQL record of where each trip's booking stands for the vehicle service."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from fleet.common.db import insert_for, utcnow
from fleet.vehicle.adapters.tables import bookings

BookingState = Literal["open", "released", "cancelled", "completed"]

# Built once (the booking saga runs them per message), executed with parameters.
_LOCK = (
    select(bookings.c.state).where(bookings.c.trip_id == bindparam("p_trip_id")).with_for_update()
)
_CLOSE = (
    update(bookings)
    .where(bookings.c.trip_id == bindparam("p_trip_id"), bookings.c.state == "open")
    .values(state=bindparam("state"), updated_at=bindparam("updated_at"))
)
_ENSURE: dict[str, Any] = {}  # by dialect name: its INSERT … ON CONFLICT DO NOTHING


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

    async def open(self, trip_id: uuid.UUID) -> BookingState:
        """Lock the trip's booking, opening it if new; its state (anything but open is over)."""
        await self._ensure(trip_id, "open")
        result = await self.session.execute(_LOCK, {"p_trip_id": trip_id})
        state: BookingState = result.scalar_one()
        return state

    async def close(self, trip_id: uuid.UUID, state: BookingState) -> None:
        """Close the trip's booking for good; the first reason recorded stays."""
        await self._ensure(trip_id, state)
        await self.session.execute(
            _CLOSE, {"p_trip_id": trip_id, "state": state, "updated_at": utcnow()}
        )

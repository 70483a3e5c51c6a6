"""SQL record of where each trip's booking stands for the vehicle service."""

from __future__ import annotations

import uuid
from typing import Literal

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from fleet.common.db import insert_for, utcnow
from fleet.vehicle.adapters.tables import bookings

BookingState = Literal["open", "released", "cancelled", "completed"]


class SqlBookings:
    """Each method takes the trip's row lock (inserting the row first if needed).

    On PostgreSQL an INSERT … ON CONFLICT DO NOTHING waits for a concurrent uncommitted insert of
    the same trip, and UPDATE / SELECT … FOR UPDATE wait for its lock: whatever touches one trip's
    booking runs one after the other.
    """

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _ensure(self, trip_id: uuid.UUID, state: BookingState) -> None:
        stmt = (
            insert_for(self.session, bookings)
            .values(trip_id=trip_id, state=state, updated_at=utcnow())
            .on_conflict_do_nothing(index_elements=["trip_id"])
        )
        await self.session.execute(stmt)

    async def open(self, trip_id: uuid.UUID) -> BookingState:
        """Lock the trip's booking, opening it if new; its state (anything but open is over)."""
        await self._ensure(trip_id, "open")
        stmt = select(bookings.c.state).where(bookings.c.trip_id == trip_id).with_for_update()
        state: BookingState = (await self.session.execute(stmt)).scalar_one()
        return state

    async def close(self, trip_id: uuid.UUID, state: BookingState) -> None:
        """Close the trip's booking for good; the first reason recorded stays."""
        await self._ensure(trip_id, state)
        stmt = (
            update(bookings)
            .where(bookings.c.trip_id == trip_id, bookings.c.state == "open")
            .values(state=state, updated_at=utcnow())
        )
        await self.session.execute(stmt)

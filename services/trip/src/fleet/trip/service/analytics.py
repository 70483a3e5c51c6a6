"""The trip analytics read model (CQRS): daily totals fed by events, read by operators."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fleet.common.db import Database, insert_for, utcnow
from fleet.common.messaging import Envelope, default_registry
from fleet.contracts.events import InvoicePaid, TripCompleted
from fleet.trip.adapters.repository import SqlTripRepository
from fleet.trip.adapters.tables import trip_daily_stats as stats


@dataclass(frozen=True)
class DailyTrips:
    day: dt.date
    trips: int
    revenue_cents: int
    avg_distance_km: float
    avg_duration_min: float


async def _add(session: AsyncSession, day: dt.date, **deltas: float) -> None:
    values = {
        "day": day,
        "trips_completed": 0,
        "distance_km_total": 0.0,
        "duration_min_total": 0.0,
        "revenue_cents": 0,
        **deltas,
        "updated_at": utcnow(),
    }
    stmt = insert_for(session, stats).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=[stats.c.day],
        set_={
            **{name: stats.c[name] + stmt.excluded[name] for name in deltas},
            "updated_at": stmt.excluded.updated_at,
        },
    )
    await session.execute(stmt)


async def record(session: AsyncSession, envelope: Envelope) -> None:
    """Inbox handler of `trip.events`: count completed rides and the revenue they brought."""
    if envelope.event_type == TripCompleted.event_type:
        done = default_registry.parse_as(envelope, TripCompleted)
        await _add(
            session,
            done.completed_at.astimezone(dt.UTC).date(),
            trips_completed=1,
            distance_km_total=done.distance_km,
            duration_min_total=done.duration_min,
        )
    elif envelope.event_type == InvoicePaid.event_type:
        paid = default_registry.parse_as(envelope, InvoicePaid)
        repo = SqlTripRepository(session)
        trip = await repo.get(paid.trip_id, lock=True)
        when = trip.completed_at if trip and trip.completed_at else envelope.occurred_at
        if trip is not None and trip.fare_cents is None:
            trip.fare_cents = paid.amount_cents
            await repo.save(trip)
        await _add(session, when.astimezone(dt.UTC).date(), revenue_cents=paid.amount_cents)


async def daily(db: Database, since: dt.date, until: dt.date) -> list[DailyTrips]:
    """Totals per day in [since, until], newest first."""
    stmt = (
        select(stats).where(stats.c.day >= since, stats.c.day <= until).order_by(stats.c.day.desc())
    )
    async with db.session() as session:
        rows = (await session.execute(stmt)).all()
    return [
        DailyTrips(
            day=r.day,
            trips=r.trips_completed,
            revenue_cents=r.revenue_cents,
            avg_distance_km=round(r.distance_km_total / r.trips_completed, 3)
            if r.trips_completed
            else 0.0,
            avg_duration_min=round(r.duration_min_total / r.trips_completed, 2)
            if r.trips_completed
            else 0.0,
        )
        for r in rows
    ]

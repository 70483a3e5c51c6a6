"""SQL repositories of the trip service."""

from __future__ import annotations

import builtins
import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Update, bindparam, func, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from fleet.common.inserts import insert_rows
from fleet.common.native import fetch_rows
from fleet.common.pagination import PageParams, newest_first
from fleet.trip.adapters.tables import tracking_points, trips
from fleet.trip.domain.tracking import TrackingPoint
from fleet.trip.domain.trips import Location, Move, StaleTrip, Trip, TripStatus

# Columns written on every save; the identity, rider, booking request and creation never change.
_MUTABLE = (
    "vehicle_id",
    "vehicle_model",
    "quoted_fare_cents",
    "status",
    "fare_cents",
    "distance_km",
    "duration_min",
    "saga_id",
    "rejection_reason",
    "updated_at",
    "confirmed_at",
    "started_at",
    "completed_at",
    "cancelled_at",
)

# Every booking runs these (the saga's hooks once per message): built once, executed with
# parameters — building a 24-column INSERT with its values cost more CPU than running it.
_GET = select(trips).where(trips.c.id == bindparam("p_id"))
_LOCK = _GET.with_for_update()
_BY_KEY = select(trips).where(
    trips.c.rider_id == bindparam("p_rider"), trips.c.idempotency_key == bindparam("p_key")
)
_SAVE = (
    update(trips)
    .where(trips.c.id == bindparam("p_id"), trips.c.version == bindparam("p_version"))
    .values({name: bindparam(name) for name in (*_MUTABLE, "version")})
)

# `apply`'s guarded UPDATEs, one per set of columns a move writes.
_MOVES: dict[tuple[str, ...], Update] = {}


def _move_statement(columns: tuple[str, ...]) -> Update:
    stmt = _MOVES.get(columns)
    if stmt is None:
        stmt = (
            update(trips)
            .where(trips.c.id == bindparam("p_id"), trips.c.status == bindparam("p_source"))
            .values({**{name: bindparam(name) for name in columns}, "version": trips.c.version + 1})
            .returning(*trips.c)
        )
        _MOVES[columns] = stmt
    return stmt


def _row_values(trip: Trip) -> dict[str, Any]:
    return {
        "id": trip.id,
        "rider_id": trip.rider_id,
        "vehicle_id": trip.vehicle_id,
        "vehicle_model": trip.vehicle_model,
        "status": trip.status.value,
        "pickup_lat": trip.pickup.lat,
        "pickup_lon": trip.pickup.lon,
        "dropoff_lat": trip.dropoff.lat,
        "dropoff_lon": trip.dropoff.lon,
        "quoted_fare_cents": trip.quoted_fare_cents,
        "fare_cents": trip.fare_cents,
        "distance_km": trip.distance_km,
        "duration_min": trip.duration_min,
        "saga_id": trip.saga_id,
        "rejection_reason": trip.rejection_reason,
        "idempotency_key": trip.idempotency_key,
        "request_hash": trip.request_hash,
        "version": trip.version,
        "created_at": trip.created_at,
        "updated_at": trip.updated_at,
        "confirmed_at": trip.confirmed_at,
        "started_at": trip.started_at,
        "completed_at": trip.completed_at,
        "cancelled_at": trip.cancelled_at,
    }


def _trip(row: Any) -> Trip:
    """A trip from a row by column name (a SQLAlchemy `Row`, `RowMapping` or asyncpg `Record`)."""
    m = getattr(row, "_mapping", row)
    return Trip(
        id=m["id"],
        rider_id=m["rider_id"],
        vehicle_id=m["vehicle_id"],
        vehicle_model=m["vehicle_model"],
        status=TripStatus(m["status"]),
        pickup=Location(m["pickup_lat"], m["pickup_lon"]),
        dropoff=Location(m["dropoff_lat"], m["dropoff_lon"]),
        quoted_fare_cents=m["quoted_fare_cents"],
        fare_cents=m["fare_cents"],
        distance_km=m["distance_km"],
        duration_min=m["duration_min"],
        saga_id=m["saga_id"],
        rejection_reason=m["rejection_reason"],
        idempotency_key=m["idempotency_key"],
        request_hash=m["request_hash"],
        version=m["version"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        confirmed_at=m["confirmed_at"],
        started_at=m["started_at"],
        completed_at=m["completed_at"],
        cancelled_at=m["cancelled_at"],
    )


class SqlTripRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, trip: Trip) -> None:
        """Insert the new trip (held back with the transaction's other inserts inside
        `fleet.common.inserts.write_behind`)."""
        await insert_rows(self.session, (trips, [_row_values(trip)]))

    async def get(self, trip_id: uuid.UUID, *, lock: bool = False) -> Trip | None:
        """The trip; `lock` takes its row lock until the transaction ends (PostgreSQL)."""
        stmt = _LOCK if lock else _GET
        row = (await self.session.execute(stmt, {"p_id": trip_id})).first()
        return _trip(row) if row else None

    async def get_by_idempotency_key(self, rider_id: uuid.UUID, key: str) -> Trip | None:
        params = {"p_rider": rider_id, "p_key": key}
        row = (await self.session.execute(_BY_KEY, params)).first()
        return _trip(row) if row else None

    async def list(
        self,
        page: PageParams,
        *,
        rider_id: uuid.UUID | None = None,
        status: TripStatus | None = None,
    ) -> list[Trip]:
        """Newest first, one trip more than the page to tell whether another page follows."""
        stmt = select(trips)
        if rider_id is not None:
            stmt = stmt.where(trips.c.rider_id == rider_id)
        if status is not None:
            stmt = stmt.where(trips.c.status == status.value)
        stmt = newest_first(stmt, trips.c.created_at, trips.c.id, page)
        return [_trip(r) for r in await self.session.execute(stmt)]

    async def apply(self, trip_id: uuid.UUID, move: Move) -> Trip | None:
        """Make `move` in one statement (no read first) if the trip is in the status the move
        starts from; the trip as written, or None if it is missing or in another status."""
        columns = tuple(move.values)
        params = {name: _column_value(value) for name, value in move.values.items()}
        params.update(p_id=trip_id, p_source=move.source.value)
        rows = await fetch_rows(self.session, _move_statement(columns), params)
        return _trip(rows[0]) if rows else None

    async def save(self, trip: Trip) -> None:
        """Write the trip's changes if nobody saved it since it was read, else `StaleTrip`."""
        values = _row_values(trip)
        params = {name: values[name] for name in _MUTABLE}
        params.update(p_id=trip.id, p_version=trip.version, version=trip.version + 1)
        result: Any = await self.session.execute(_SAVE, params)
        if result.rowcount != 1:
            raise StaleTrip(trip.id, trip.version)
        trip.version += 1


def _column_value(value: Any) -> Any:
    return value.value if isinstance(value, TripStatus) else value


def _point(row: Any) -> TrackingPoint:
    m = row._mapping
    return TrackingPoint(
        id=m["id"],
        trip_id=m["trip_id"],
        vehicle_id=m["vehicle_id"],
        lat=m["lat"],
        lon=m["lon"],
        speed_kph=m["speed_kph"],
        recorded_at=m["recorded_at"],
    )


class SqlTrackingRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, points: Sequence[TrackingPoint]) -> None:
        if not points:
            return
        rows = [
            {
                "id": p.id,
                "trip_id": p.trip_id,
                "vehicle_id": p.vehicle_id,
                "lat": p.lat,
                "lon": p.lon,
                "speed_kph": p.speed_kph,
                "recorded_at": p.recorded_at,
            }
            for p in points
        ]
        await self.session.execute(tracking_points.insert(), rows)

    async def list(self, trip_id: uuid.UUID, page: PageParams) -> list[TrackingPoint]:
        """Oldest first (the path as driven), one point more than the page."""
        t = tracking_points
        stmt = select(t).where(t.c.trip_id == trip_id)
        after = page.after()
        if after is not None:
            stmt = stmt.where(tuple_(t.c.recorded_at, t.c.id) > tuple_(*after))
        stmt = stmt.order_by(t.c.recorded_at, t.c.id).limit(page.limit + 1)
        return [_point(r) for r in await self.session.execute(stmt)]

    async def span(self, trip_id: uuid.UUID) -> tuple[dt.datetime, dt.datetime] | None:
        """When the trip's first and last positions were recorded; None with fewer than two."""
        t = tracking_points
        stmt = select(func.min(t.c.recorded_at), func.max(t.c.recorded_at), func.count()).where(
            t.c.trip_id == trip_id
        )
        first, last, count = (await self.session.execute(stmt)).one()
        return (first, last) if count >= 2 else None

    async def in_progress(
        self, trip_ids: Sequence[uuid.UUID], vehicle_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, uuid.UUID]:
        """In-progress trip by vehicle: trips named by the sender (a primary-key lookup) and,
        for positions without that hint, trips found by their vehicle."""
        found: dict[uuid.UUID, uuid.UUID] = {}
        for column, keys in ((trips.c.id, trip_ids), (trips.c.vehicle_id, vehicle_ids)):
            if not keys:
                continue
            stmt = (
                select(trips.c.vehicle_id, trips.c.id)
                .where(
                    column.in_(builtins.list(keys)),
                    trips.c.status == TripStatus.IN_PROGRESS.value,
                )
                .order_by(trips.c.id)
                # Two batches for one trip take turns, so the second sees the first's points.
                .with_for_update(key_share=True)
            )
            found.update({row[0]: row[1] for row in await self.session.execute(stmt)})
        return found

    async def known_instants(
        self, trip_ids: Sequence[uuid.UUID], first: dt.datetime, last: dt.datetime
    ) -> set[tuple[uuid.UUID, dt.datetime]]:
        """(trip, recorded_at) pairs stored in a window: a redelivered reading is kept once."""
        t = tracking_points
        stmt = select(t.c.trip_id, t.c.recorded_at).where(
            t.c.trip_id.in_(builtins.list(trip_ids)), t.c.recorded_at.between(first, last)
        )
        return {(row[0], row[1]) for row in await self.session.execute(stmt)}

    async def since(
        self, trip_id: uuid.UUID, recorded_at: dt.datetime, limit: int
    ) -> builtins.list[TrackingPoint]:
        """Points recorded at or after `recorded_at`, oldest first (a stream catching up)."""
        t = tracking_points
        stmt = (
            select(t)
            .where(t.c.trip_id == trip_id, t.c.recorded_at >= recorded_at)
            .order_by(t.c.recorded_at, t.c.id)
            .limit(limit)
        )
        return [_point(r) for r in await self.session.execute(stmt)]

"""SQL repository of telemetry readings: single requests and the pipeline's batches.

On PostgreSQL a batch is one `COPY` (asyncpg's binary copy: far cheaper than INSERTs) and one
`UPDATE … FROM unnest(…)` that moves every vehicle of the batch at most once, only forward in
time. SQLite (embedded mode) takes the portable path.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import ARRAY, Uuid, and_, any_, cast, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from fleet.vehicle.adapters.tables import SCHEMA, telemetry, vehicles
from fleet.vehicle.domain.telemetry import Reading

Row = tuple[uuid.UUID, Reading]

_COPY_COLUMNS = (
    "vehicle_id",
    "lat",
    "lon",
    "speed_kph",
    "battery_pct",
    "recorded_at",
    "received_at",
)
_MOVE_SQL = f"""
UPDATE {SCHEMA}.vehicles AS v
SET lat = n.lat, lon = n.lon, battery_pct = n.battery_pct, position_recorded_at = n.recorded_at,
    version = v.version + 1, updated_at = $6
FROM unnest($1::uuid[], $2::float8[], $3::float8[], $4::float8[], $5::timestamptz[])
    AS n(id, lat, lon, battery_pct, recorded_at)
WHERE v.id = n.id AND (v.position_recorded_at IS NULL OR v.position_recorded_at < n.recorded_at)
"""  # noqa: S608 - the schema is a constant


class SqlTelemetryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self._postgres = session.get_bind().dialect.name == "postgresql"

    async def add_many(
        self, vehicle_id: uuid.UUID, readings: Sequence[Reading], received_at: dt.datetime
    ) -> None:
        await self.add_rows([(vehicle_id, r) for r in readings], received_at)

    async def add_rows(self, rows: Sequence[Row], received_at: dt.datetime) -> None:
        """Store readings of any vehicles (call inside a transaction that already ran a query)."""
        if not rows:
            return
        if self._postgres:
            conn = await self._driver_connection()
            records = [
                (v, r.lat, r.lon, r.speed_kph, r.battery_pct, r.recorded_at, received_at)
                for v, r in rows
            ]
            await conn.copy_records_to_table(
                "telemetry", schema_name=SCHEMA, columns=_COPY_COLUMNS, records=records
            )
            return
        values = [
            {
                "vehicle_id": v,
                "lat": r.lat,
                "lon": r.lon,
                "speed_kph": r.speed_kph,
                "battery_pct": r.battery_pct,
                "recorded_at": r.recorded_at,
                "received_at": received_at,
            }
            for v, r in rows
        ]
        await self.session.execute(insert(telemetry), values)

    async def holders(self, vehicle_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, uuid.UUID | None]:
        """The vehicles among `vehicle_ids` that exist, with the trip each is held for.

        Their rows stay locked until the transaction ends, taken in id order so that two batches
        (two replicas) moving the same vehicles cannot deadlock.
        """
        among = (
            vehicles.c.id == any_(cast(list(vehicle_ids), ARRAY(Uuid)))
            if self._postgres
            else vehicles.c.id.in_(vehicle_ids)
        )
        stmt = (
            select(vehicles.c.id, vehicles.c.reserved_trip_id)
            .where(among)
            .order_by(vehicles.c.id)
            .with_for_update(key_share=True)
        )
        return {row[0]: row[1] for row in await self.session.execute(stmt)}

    async def move_vehicles(self, newest: Mapping[uuid.UUID, Reading], now: dt.datetime) -> None:
        """Move each vehicle to its reading, unless it already has a newer position."""
        if not newest:
            return
        if self._postgres:
            ids = list(newest)
            readings = [newest[v] for v in ids]
            conn = await self._driver_connection()
            await conn.execute(
                _MOVE_SQL,
                ids,
                [r.lat for r in readings],
                [r.lon for r in readings],
                [r.battery_pct for r in readings],
                [r.recorded_at for r in readings],
                now,
            )
            return
        for vehicle_id in sorted(newest):
            r = newest[vehicle_id]
            stale = or_(
                vehicles.c.position_recorded_at.is_(None),
                vehicles.c.position_recorded_at < r.recorded_at,
            )
            await self.session.execute(
                update(vehicles)
                .where(and_(vehicles.c.id == vehicle_id, stale))
                .values(
                    lat=r.lat,
                    lon=r.lon,
                    battery_pct=r.battery_pct,
                    position_recorded_at=r.recorded_at,
                    version=vehicles.c.version + 1,
                    updated_at=now,
                )
            )

    async def _driver_connection(self) -> Any:
        """The asyncpg connection under the session, inside the session's transaction."""
        connection = await self.session.connection()
        raw = await connection.get_raw_connection()
        return raw.driver_connection

"""SQL repository of telemetry readings."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from fleet.vehicle.adapters.tables import telemetry
from fleet.vehicle.domain.telemetry import Reading


class SqlTelemetryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add_many(
        self, vehicle_id: uuid.UUID, readings: Sequence[Reading], received_at: dt.datetime
    ) -> None:
        rows = [
            {
                "vehicle_id": vehicle_id,
                "lat": r.lat,
                "lon": r.lon,
                "speed_kph": r.speed_kph,
                "battery_pct": r.battery_pct,
                "recorded_at": r.recorded_at,
                "received_at": received_at,
            }
            for r in readings
        ]
        if rows:
            # executemany: SQLAlchemy batches it into multi-row INSERTs on both backends.
            await self.session.execute(insert(telemetry), rows)

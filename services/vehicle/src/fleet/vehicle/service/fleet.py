"""Use case: the fleet overview."""

from __future__ import annotations

from fleet.common.db import Database
from fleet.vehicle.adapters.vehicles import SqlVehicleRepository
from fleet.vehicle.domain.fleet import FleetStatus, summarize


async def fleet_status(db: Database) -> FleetStatus:
    async with db.session() as session:
        repo = SqlVehicleRepository(session)
        counts = await repo.count_by_status()
        low = await repo.count_low_battery()
    return summarize(counts, low)

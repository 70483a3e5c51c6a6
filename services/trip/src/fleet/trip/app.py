"""Composition root of the trip service."""

from __future__ import annotations

from pathlib import Path

from fleet.common.app import ServiceModule
from fleet.common.runtime import ServiceRuntime, every
from fleet.trip import consumers
from fleet.trip.adapters.tables import SCHEMA, metadata
from fleet.trip.api import routes, sagas, tracking, trips
from fleet.trip.flags import trip_flags
from fleet.trip.service import fares
from fleet.trip.service.booking import Booking

SWEEP_INTERVAL_S = 1.0


async def startup(rt: ServiceRuntime) -> None:
    booking = Booking(rt, await fares.start(rt))
    rt.extras["booking"] = booking
    rt.extras["flags"] = trip_flags()

    async def sweep() -> None:
        # Drives timed-out steps to compensation; also resumes sagas after a restart.
        async with rt.transaction() as session:
            await booking.engine.sweep(session)

    rt.spawn("saga-sweeper", lambda: every(SWEEP_INTERVAL_S, sweep))


async def shutdown(rt: ServiceRuntime) -> None:
    await fares.stop(rt)


def module() -> ServiceModule:
    return ServiceModule(
        name="trip",
        schema=SCHEMA,
        metadata=metadata,
        routers=[trips.router, tracking.router, routes.router, sagas.router],
        migrations=Path(__file__).parent / "migrations",
        startup=startup,
        shutdown=shutdown,
        subscriptions=consumers.subscriptions,
    )

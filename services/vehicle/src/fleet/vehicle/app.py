"""Composition root of the vehicle service."""

from __future__ import annotations

from pathlib import Path

from fleet.common.app import ServiceModule
from fleet.common.runtime import ServiceRuntime
from fleet.vehicle.adapters import location_cache
from fleet.vehicle.adapters.tables import SCHEMA, metadata
from fleet.vehicle.api import diagnostics, fleet, telemetry, vehicles
from fleet.vehicle.handlers import subscriptions
from fleet.vehicle.service import pipeline


async def startup(rt: ServiceRuntime) -> None:
    await location_cache.start(rt)
    await pipeline.start(rt)


async def shutdown(rt: ServiceRuntime) -> None:
    # Buffered telemetry is stored (and written through the cache) before the cache closes.
    await pipeline.stop(rt)
    await location_cache.stop(rt)


def module() -> ServiceModule:
    return ServiceModule(
        name="vehicle",
        schema=SCHEMA,
        metadata=metadata,
        # Telemetry first: routes are matched in order, and its location read is the hottest
        # request of the platform (no path overlaps, so the order changes nothing else).
        routers=[telemetry.router, vehicles.router, fleet.router, diagnostics.router],
        migrations=Path(__file__).parent / "migrations",
        startup=startup,
        shutdown=shutdown,
        subscriptions=subscriptions,
    )

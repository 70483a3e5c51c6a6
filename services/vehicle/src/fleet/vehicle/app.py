"""Composition root of the vehicle service."""

from __future__ import annotations

from pathlib import Path

from fleet.common.app import ServiceModule
from fleet.vehicle.adapters.tables import SCHEMA, metadata
from fleet.vehicle.api import diagnostics, fleet, telemetry, vehicles
from fleet.vehicle.handlers import subscriptions


def module() -> ServiceModule:
    return ServiceModule(
        name="vehicle",
        schema=SCHEMA,
        metadata=metadata,
        routers=[vehicles.router, telemetry.router, fleet.router, diagnostics.router],
        migrations=Path(__file__).parent / "migrations",
        subscriptions=subscriptions,
    )

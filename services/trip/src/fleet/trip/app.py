"""Composition root of the trip service."""

from __future__ import annotations

from pathlib import Path

from fleet.common.app import ServiceModule
from fleet.trip.adapters.tables import SCHEMA, metadata
from fleet.trip.api import routes, trips


def module() -> ServiceModule:
    return ServiceModule(
        name="trip",
        schema=SCHEMA,
        metadata=metadata,
        routers=[trips.router, routes.router],
        migrations=Path(__file__).parent / "migrations",
    )

"""Composition root of the trip service."""

from __future__ import annotations

from pathlib import Path

from fleet.common.app import ServiceModule
from fleet.trip.adapters.tables import SCHEMA, metadata


def module() -> ServiceModule:
    return ServiceModule(
        name="trip",
        schema=SCHEMA,
        metadata=metadata,
        routers=[],
        migrations=Path(__file__).parent / "migrations",
    )

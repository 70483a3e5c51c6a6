"""Composition root of the trip service."""

from __future__ import annotations

from pathlib import Path

from fleet.trip.adapters.tables import SCHEMA, metadata
from fleet.common.app import ServiceModule


def module() -> ServiceModule:
    return ServiceModule(
        name="trip",
        schema=SCHEMA,
        metadata=metadata,
        routers=[],
        migrations=Path(__file__).parent / "migrations",
    )

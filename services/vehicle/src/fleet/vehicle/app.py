"""Composition root of the vehicle service."""

from __future__ import annotations

from pathlib import Path

from fleet.common.app import ServiceModule
from fleet.vehicle.adapters.tables import SCHEMA, metadata


def module() -> ServiceModule:
    return ServiceModule(
        name="vehicle",
        schema=SCHEMA,
        metadata=metadata,
        routers=[],
        migrations=Path(__file__).parent / "migrations",
    )

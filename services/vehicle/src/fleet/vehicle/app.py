"""Composition root of the vehicle service."""

from __future__ import annotations

from pathlib import Path

from fleet.vehicle.adapters.tables import SCHEMA, metadata
from fleet.common.app import ServiceModule


def module() -> ServiceModule:
    return ServiceModule(
        name="vehicle",
        schema=SCHEMA,
        metadata=metadata,
        routers=[],
        migrations=Path(__file__).parent / "migrations",
    )

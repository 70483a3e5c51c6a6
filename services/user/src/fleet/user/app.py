"""Composition root of the user service."""

from __future__ import annotations

from pathlib import Path

from fleet.common.app import ServiceModule
from fleet.user.adapters.tables import SCHEMA, metadata


def module() -> ServiceModule:
    return ServiceModule(
        name="user",
        schema=SCHEMA,
        metadata=metadata,
        routers=[],
        migrations=Path(__file__).parent / "migrations",
    )

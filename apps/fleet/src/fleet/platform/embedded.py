"""Embedded mode: the whole platform in one process (SQLite files, in-memory adapters)."""

from __future__ import annotations

from fastapi import FastAPI

from fleet.common.app import create_app
from fleet.common.config import Settings
from fleet.platform.services import all_modules, module_named


def embedded_app(settings: Settings | None = None) -> FastAPI:
    """All four services on one app; migrations run at start-up."""
    settings = settings or Settings()
    return create_app(all_modules(), settings, migrate_on_startup=True)


def service_app(name: str, settings: Settings | None = None, *, migrate: bool = False) -> FastAPI:
    """One service on its own app (distributed mode)."""
    return create_app([module_named(name)], settings or Settings(), migrate_on_startup=migrate)

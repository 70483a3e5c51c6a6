"""Embedded mode: the whole platform in one process (SQLite files, in-memory adapters)."""

from __future__ import annotations

import os

from fastapi import FastAPI

from fleet.common.app import create_app
from fleet.common.config import Settings
from fleet.platform.console import LocalTransport, console_app, console_secret
from fleet.platform.services import all_modules, module_named


def embedded_app(settings: Settings | None = None, *, console: bool = True) -> FastAPI:
    """All four services on one app; migrations run at start-up; the console at /console."""
    settings = settings or Settings()
    app = create_app(all_modules(), settings, migrate_on_startup=True)
    if console:
        # The console calls this very app's public API in process, as any client would.
        app.mount(
            "/console",
            console_app(LocalTransport(app=app), secret=console_secret(os.environ, required=False)),
        )
    return app


def service_app(name: str, settings: Settings | None = None, *, migrate: bool = False) -> FastAPI:
    """One service on its own app (distributed mode)."""
    return create_app([module_named(name)], settings or Settings(), migrate_on_startup=migrate)

"""Composition root of the billing service."""

from __future__ import annotations

from pathlib import Path

from fleet.billing.adapters.tables import SCHEMA, metadata
from fleet.billing.api import invoices, tariffs
from fleet.billing.consumers import startup, subscriptions
from fleet.common.app import ServiceModule


def module() -> ServiceModule:
    return ServiceModule(
        name="billing",
        schema=SCHEMA,
        metadata=metadata,
        routers=[tariffs.router, invoices.router],
        migrations=Path(__file__).parent / "migrations",
        startup=startup,
        subscriptions=subscriptions,
    )

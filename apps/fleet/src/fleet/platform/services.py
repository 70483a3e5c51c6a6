"""The catalogue of the platform's services."""

from __future__ import annotations

from fleet.billing.app import module as billing
from fleet.common import migrations
from fleet.common.app import ServiceModule
from fleet.common.db import Database
from fleet.trip.app import module as trip
from fleet.user.app import module as user
from fleet.vehicle.app import module as vehicle

SERVICE_NAMES = ("user", "vehicle", "trip", "billing")
_FACTORIES = {"user": user, "vehicle": vehicle, "trip": trip, "billing": billing}


def module_named(name: str) -> ServiceModule:
    """The service module called `name` (one of SERVICE_NAMES)."""
    try:
        return _FACTORIES[name]()
    except KeyError:
        raise ValueError(
            f"unknown service {name!r}; choose from {', '.join(SERVICE_NAMES)}"
        ) from None


async def migrate_service(
    name: str, database_url: str, target: str = "head", *, down: bool = False
) -> str | None:
    """Upgrade (or, `down`, downgrade) the service's schema to `target`; its revision then."""
    module = module_named(name)
    db = Database(database_url, module.schema)
    try:
        step = migrations.downgrade if down else migrations.upgrade
        await step(db, module.migrations, target)
        return await migrations.current_revision(db)
    finally:
        await db.dispose()


async def migrate_all(database_url: str) -> None:
    """Every service's schema to its head, one service after another."""
    for name in SERVICE_NAMES:
        await migrate_service(name, database_url)


def all_modules() -> list[ServiceModule]:
    """Every service, in start-up order (user first: it owns the token issuer and the admin)."""
    return [module_named(n) for n in SERVICE_NAMES]


# Which service answers which path prefix (the gateway routes by these; see API.md).
ROUTE_PREFIXES: dict[str, tuple[str, ...]] = {
    "user": ("/auth", "/users", "/wallet", "/notifications", "/feedback"),
    "vehicle": ("/vehicles", "/fleet", "/diagnostics", "/firmware"),
    "trip": ("/trips", "/routes", "/tracking", "/sagas", "/analytics"),
    "billing": ("/tariffs", "/quotes", "/invoices", "/payments"),
}


def service_for_path(path: str) -> str | None:
    """The service owning `path`, by prefix (`/trips/1` → trip)."""
    for name, prefixes in ROUTE_PREFIXES.items():
        for prefix in prefixes:
            if path == prefix or path.startswith(prefix + "/"):
                return name
    return None

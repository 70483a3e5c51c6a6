"""Composition root of the user service."""

from __future__ import annotations

from pathlib import Path

from fleet.common.app import ServiceModule, ServiceRuntime
from fleet.user.adapters.passwords import Argon2Passwords
from fleet.user.adapters.tables import SCHEMA, metadata
from fleet.user.api import auth, feedback, notifications, wallet
from fleet.user.api.deps import PASSWORDS
from fleet.user.service.accounts import ensure_operator


async def startup(rt: ServiceRuntime) -> None:
    """Build the password hasher and make sure the bootstrap operator exists."""
    passwords = Argon2Passwords.for_env(rt.settings.env)
    rt.extras[PASSWORDS] = passwords
    await ensure_operator(
        rt.db,
        passwords,
        rt.settings.admin_email,
        rt.settings.admin_password.get_secret_value(),
    )


def module() -> ServiceModule:
    return ServiceModule(
        name="user",
        schema=SCHEMA,
        metadata=metadata,
        routers=[auth.router, wallet.router, notifications.router, feedback.router],
        migrations=Path(__file__).parent / "migrations",
        startup=startup,
    )

"""Composition root of the user service."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fleet.common.app import ServiceModule
from fleet.common.participant import saga_participant
from fleet.common.runtime import ServiceRuntime, Subscription
from fleet.contracts.queues import USER_COMMANDS, USER_EVENTS
from fleet.user.adapters.passwords import Argon2Passwords
from fleet.user.adapters.tables import SCHEMA, metadata
from fleet.user.api import auth, feedback, notifications, wallet
from fleet.user.api.deps import PASSWORDS
from fleet.user.consumers import commands, events
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


def subscriptions(rt: ServiceRuntime) -> Sequence[Subscription]:
    """Saga commands from trip's orchestrator, and the trip and billing events we react to."""
    return [
        Subscription(
            USER_COMMANDS.name,
            USER_COMMANDS.exchange,
            USER_COMMANDS.bindings,
            rt.consumer("commands", saga_participant(rt, commands.HANDLERS)),
            # Two quick retries (0.2 s, 1 s) fit inside a saga step's 5 s timeout; a later one
            # would only race the orchestrator's own re-send of the command.
            max_retries=2,
        ),
        Subscription(
            USER_EVENTS.name,
            USER_EVENTS.exchange,
            USER_EVENTS.bindings,
            rt.consumer("events", events.user_events(rt)),
        ),
    ]


def module() -> ServiceModule:
    return ServiceModule(
        name="user",
        schema=SCHEMA,
        metadata=metadata,
        routers=[auth.router, wallet.router, notifications.router, feedback.router],
        migrations=Path(__file__).parent / "migrations",
        startup=startup,
        subscriptions=subscriptions,
    )

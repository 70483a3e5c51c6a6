"""A service's live resources inside a running app, and the one-liners its use cases need.

`ServiceRuntime` is what a service's routes, consumers and background loops are handed: its
database, the bus, its outbox relay and the helpers that keep the outbox/inbox rules — a state
change and its messages commit together (`publish` inside `transaction`), a consumer's effect and
its inbox row commit together (`consumer`).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession

from fleet.common import inserts
from fleet.common.config import Settings
from fleet.common.db import Database
from fleet.common.logging import get_logger
from fleet.common.messaging import Envelope, ExchangeName, Handler, Message, MessageBus
from fleet.common.outbox import BatchHooks, InboxHandler, OutboxRelay, enqueue, handle_once

if TYPE_CHECKING:
    from fleet.common.app import FleetState, ServiceModule

log = get_logger("fleet.runtime")


@dataclass(frozen=True)
class Subscription:
    """A durable queue a service consumes: its bindings and the handler of each message."""

    queue: str
    exchange: ExchangeName
    bindings: tuple[str, ...]
    handler: Handler
    prefetch: int = 32
    max_retries: int = 3


@dataclass
class ServiceRuntime:
    """One service inside a running app."""

    module: ServiceModule
    settings: Settings
    db: Database
    platform: FleetState
    bus: MessageBus | None = None
    outbox: Table | None = None
    inbox: Table | None = None
    relay: OutboxRelay | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.module.name

    @asynccontextmanager
    async def transaction(self, *, write_behind: bool = False) -> AsyncIterator[AsyncSession]:
        """A transaction whose enqueued messages leave right after it commits. `write_behind`:
        its inserts (outbox rows included) wait for its end and go as one statement — the
        transaction's only round trip if it does nothing else (`fleet.common.inserts`)."""
        async with self.db.transaction() as session:
            if self.relay is not None:
                self.relay.watch(session)
            if not write_behind:
                yield session
                return
            async with inserts.write_behind(session):
                yield session

    async def publish(
        self,
        session: AsyncSession,
        message: Message | Envelope,
        *,
        aggregate_type: str | None = None,
        aggregate_id: str | uuid.UUID | None = None,
        version: int = 0,
        causation: Envelope | None = None,
        exchange: ExchangeName = "events",
    ) -> Envelope:
        """Put `message` in this service's outbox, in `session`'s transaction."""
        if self.outbox is None:
            raise RuntimeError(f"service {self.name} has no outbox table")
        if isinstance(message, Envelope):
            envelope = message
        elif aggregate_type is None or aggregate_id is None:
            raise ValueError("a message needs the aggregate it is about (type and id)")
        else:
            envelope = message.to_envelope(
                producer=self.name,
                aggregate_type=aggregate_type,
                aggregate_id=aggregate_id,
                version=version,
                causation=causation,
            )
        await enqueue(session, envelope, exchange, table=self.outbox)
        return envelope

    def consumer(
        self,
        name: str,
        handler: InboxHandler,
        *,
        max_batch: int | None = None,
        hooks: BatchHooks | None = None,
    ) -> Handler:
        """`handler(session, envelope)` run at most once per message, its effect and inbox row in
        one transaction; under load several messages share one (`GroupCommit`), up to
        `max_batch` (default: the `FLEET_CONSUMER_BATCH` setting), `hooks` around each batch."""
        if self.inbox is None:
            raise RuntimeError(f"service {self.name} has no inbox table")
        return handle_once(
            self.db,
            f"{self.name}.{name}",
            handler,
            table=self.inbox,
            relay=self.relay,
            max_batch=self.settings.consumer_batch if max_batch is None else max_batch,
            hooks=hooks,
        )

    def spawn(self, name: str, loop: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run `loop()` in the background until the app stops; a crash is logged, then retried."""

        async def guarded() -> None:
            while True:
                try:
                    await loop()
                    return
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("background task crashed; restarting", task=name)
                    await asyncio.sleep(1.0)

        self._tasks.append(asyncio.create_task(guarded(), name=f"{self.name}.{name}"))

    async def stop_tasks(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()


async def every(seconds: float, tick: Callable[[], Awaitable[object]]) -> None:
    """Call `tick()` every `seconds` forever (a loop for `ServiceRuntime.spawn`)."""
    while True:
        await tick()
        await asyncio.sleep(seconds)


SubscriptionsFactory = Callable[[ServiceRuntime], Sequence[Subscription]]

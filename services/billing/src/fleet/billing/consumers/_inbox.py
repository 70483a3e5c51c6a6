"""An inbox consumer whose handler may leave work for after the commit (metrics)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from fleet.common.messaging import Envelope, Handler
from fleet.common.outbox import claim_inbox
from fleet.common.runtime import ServiceRuntime

AfterCommit = Callable[[], None]
EffectHandler = Callable[[AsyncSession, Envelope], Awaitable[AfterCommit | None]]


def consumer_with_after_commit(rt: ServiceRuntime, name: str, handler: EffectHandler) -> Handler:
    """Like `rt.consumer`, but runs the callback `handler` returns once the transaction committed.

    `rt.consumer` gives no hook after its commit, and counting inside the transaction would count
    effects that a failed commit or a retry rolls back.
    """
    inbox = rt.inbox
    if inbox is None:
        raise RuntimeError(f"service {rt.name} has no inbox table")
    consumer = f"{rt.name}.{name}"

    async def handle(envelope: Envelope) -> None:
        async with rt.transaction() as session:
            if not await claim_inbox(session, consumer, envelope.event_id, table=inbox):
                return
            after_commit = await handler(session, envelope)
        if after_commit is not None:
            after_commit()

    handle.__qualname__ = f"consumer_with_after_commit[{consumer}]"
    return handle

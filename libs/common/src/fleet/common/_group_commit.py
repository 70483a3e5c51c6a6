"""Group commit for inbox consumers: the messages waiting together are handled in one transaction.

Under load a consumer's messages arrive faster than it commits them one by one, and most of a
message's cost is the work around its effect: a session, `BEGIN`, the inbox claim, the outbox
insert, `COMMIT` — each a round trip run by Python code. `GroupCommit` queues the messages that
arrive while a transaction is running and handles them together in the next one: every handler
in turn in the same session (each in its own message's context, so its spans join its own
trace), then one statement claiming all their inbox rows and inserting all their outbox rows
(`claim_and_flush`), one commit. A lone message is handled alone, so an idle consumer's latency
does not change.

The claim comes last (one round trip fewer per transaction than claiming first): a redelivered
message runs its handler again, finds its inbox row taken at the end, and its transaction rolls
back — its effect, its outbox rows and its `after_commit` work with it. Redeliveries are rare
(a crash between commit and ack, a broker failover), so paying a handler's run for them is
cheaper than a claim's round trip on every message.

The rules of one message per transaction still hold: a message is acked only once the
transaction holding its effect committed, and a redelivered message has no second effect. If
anything in a batch fails (a handler raises, a message was handled before, a deadlock, a lost
connection), the batch is rolled back and its messages are handled again one per transaction, so
only the failing message is retried or dead-lettered by the bus; a message never sees the effect
of another message of a failed batch. Handlers must therefore leave no trace outside the
transaction until it commits (use `after_commit`), as they already must for the bus's retries
and for a redelivery.

One batch runs at a time per consumer and process: two concurrent batches could lock the same
rows in different orders. Replicas of a service each batch their own share; a deadlock between
them is broken by PostgreSQL and both batches fall back to one message per transaction.
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession

from fleet.common._outbox_sql import OUTBOX_BUFFER, inbox_claim, inbox_claim_array
from fleet.common.db import Database, utcnow
from fleet.common.inserts import fetch_after_inserts, insert_rows
from fleet.common.logging import get_logger
from fleet.common.messaging.bus import Handler, describe_error
from fleet.common.messaging.envelope import Envelope
from fleet.common.messaging.relay import OutboxRelay
from fleet.common.native import bound, native

# `session.info` key: when a consumer's transaction began handling (its inbox rows' `handled_at`).
_HANDLING_SINCE = "fleet.inbox.since"

log = get_logger("fleet.outbox")

InboxHandler = Callable[[AsyncSession, Envelope], Awaitable[None]]


@dataclass(frozen=True)
class BatchHooks:
    """What a consumer does once per batch transaction, around its handlers: `prepare` before
    them, with the messages they will handle (to load what they need with one statement),
    `finish` after the last (to write what they held back). A message handled alone runs
    neither: its handler must work without them."""

    prepare: Callable[[AsyncSession, Sequence[Envelope]], Awaitable[None]]
    finish: Callable[[AsyncSession], Awaitable[None]]


@dataclass
class _Waiting:
    envelope: Envelope
    done: asyncio.Future[None]
    context: contextvars.Context = field(default_factory=contextvars.copy_context)


async def claim_inbox_many(
    session: AsyncSession,
    consumer: str,
    event_ids: Sequence[uuid.UUID],
    *,
    table: Table,
    handled_at: dt.datetime | None = None,
) -> set[uuid.UUID]:
    """Claim `event_ids` for `consumer` in one statement; returns the ids that were new."""
    at = handled_at or utcnow()
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        params = _claim_params(consumer, event_ids, at)
        if (pg := await native(session)) is not None:
            return {row[0] for row in await pg.fetch_compiled(inbox_claim_array(table), params)}
        result = await session.execute(inbox_claim_array(table), params)
    else:
        rows = [{"consumer": consumer, "event_id": i, "handled_at": at} for i in event_ids]
        result = await session.execute(inbox_claim(dialect, table), rows)
    return set(result.scalars())


def _claim_params(
    consumer: str, event_ids: Sequence[uuid.UUID], handled_at: dt.datetime
) -> dict[str, Any]:
    """`inbox_claim_array`'s parameters."""
    return {"consumer": consumer, "event_ids": list(event_ids), "handled_at": handled_at}


def buffer_outbox(session: AsyncSession) -> None:
    """Collect the outbox rows enqueued in `session` outside savepoints until
    `claim_and_flush`; the claim's `handled_at` will be now, when the handling began (the
    claim itself comes last)."""
    session.info[OUTBOX_BUFFER] = []
    session.info[_HANDLING_SINCE] = utcnow()


async def claim_and_flush(
    session: AsyncSession, consumer: str, event_ids: Sequence[uuid.UUID], *, table: Table
) -> set[uuid.UUID]:
    """Claim `event_ids` for `consumer` and insert the buffered outbox rows — one statement on
    PostgreSQL, the transaction's last before COMMIT. Returns the ids that were new: an id
    missing was handled before (the caller rolls back)."""
    buffer: list[tuple[Table, dict[str, Any]]] = session.info.pop(OUTBOX_BUFFER, [])
    since: dt.datetime = session.info.pop(_HANDLING_SINCE, None) or utcnow()
    groups = [(outbox, [row]) for outbox, row in buffer]
    dialect = session.get_bind().dialect
    if dialect.name == "postgresql":
        params = _claim_params(consumer, event_ids, since)
        sql, args = bound(inbox_claim_array(table), dialect, params)
        rows = await fetch_after_inserts(session, groups, sql, *args)
        if rows is not None:
            return {row[0] for row in rows}
    await insert_rows(session, *groups)
    return await claim_inbox_many(session, consumer, event_ids, table=table, handled_at=since)


class AlreadyHandled(Exception):
    """A message's inbox claim found it handled before: its transaction is rolled back."""


class GroupCommit:
    """A bus handler that runs `handler(session, envelope)` once per message, batching under load.

    `single` is the one-message-per-transaction handler (`handle_once` without batching): used
    for a batch of one and to redo a failed batch message by message.
    """

    def __init__(
        self,
        db: Database,
        consumer: str,
        handler: InboxHandler,
        single: Handler,
        *,
        table: Table,
        relay: OutboxRelay | None,
        max_batch: int,
        hooks: BatchHooks | None = None,
    ) -> None:
        if max_batch < 2:
            raise ValueError("a group commit needs max_batch of at least 2")
        self.db = db
        self.consumer = consumer
        self.handler = handler
        self.single = single
        self.table = table
        self.relay = relay
        self.max_batch = max_batch
        self.hooks = hooks
        self._waiting: list[_Waiting] = []
        self._drain: asyncio.Task[None] | None = None
        self.batches = 0  # transactions that handled more than one message
        self.fallbacks = 0  # batches redone one message per transaction

    async def __call__(self, envelope: Envelope) -> None:
        waiting = _Waiting(envelope, asyncio.get_running_loop().create_future())
        self._waiting.append(waiting)
        if self._drain is None:
            self._drain = asyncio.create_task(self._run(), name=f"group-commit[{self.consumer}]")
        drain = self._drain
        try:
            await waiting.done
        except asyncio.CancelledError:
            # The bus is closing. A message not started yet is simply left (unacked, the broker
            # redelivers it); one in the running batch waits for that transaction to end, so no
            # session outlives the consumer and the database can be disposed after it.
            if waiting in self._waiting:
                self._waiting.remove(waiting)
            elif not drain.done():
                await asyncio.shield(drain)
            raise

    async def _run(self) -> None:
        try:
            while self._waiting:
                batch = self._waiting[: self.max_batch]
                del self._waiting[: self.max_batch]
                await self._handle(batch)
        finally:
            self._drain = None

    async def _handle(self, batch: list[_Waiting]) -> None:
        if len(batch) == 1:
            await self._alone(batch[0])
            return
        try:
            await self._together(batch)
        except Exception as exc:
            self.fallbacks += 1
            log.info(
                "batch failed, handling its messages one by one",
                consumer=self.consumer,
                size=len(batch),
                error=describe_error(exc),
            )
            for waiting in batch:
                await self._alone(waiting)
            return
        self.batches += 1
        for waiting in batch:
            _settle(waiting.done, None)

    async def _alone(self, waiting: _Waiting) -> None:
        try:
            await _in_context(waiting, self.single(waiting.envelope))
        except Exception as exc:
            _settle(waiting.done, exc)
        else:
            _settle(waiting.done, None)

    async def _together(self, batch: list[_Waiting]) -> None:
        async with self.db.transaction() as session:
            if self.relay is not None:
                self.relay.watch(session)
            buffer_outbox(session)
            todo, seen = [], set()
            for waiting in batch:  # each message once, even if it came twice
                if waiting.envelope.event_id not in seen:
                    seen.add(waiting.envelope.event_id)
                    todo.append(waiting)
            if self.hooks is not None:
                await self.hooks.prepare(session, [w.envelope for w in todo])
            for waiting in todo:
                await _in_context(waiting, self.handler(session, waiting.envelope))
            if self.hooks is not None:
                await self.hooks.finish(session)
            ids = [w.envelope.event_id for w in todo]
            new = await claim_and_flush(session, self.consumer, ids, table=self.table)
            if len(new) != len(ids):  # rare (a redelivery): redo the batch one by one
                raise AlreadyHandled(f"{len(ids) - len(new)} of the batch were handled before")


async def _in_context(waiting: _Waiting, work: Awaitable[None]) -> None:
    """Run `work` in the context its message arrived in (its trace span, its log bindings)."""

    async def run() -> None:
        await work

    await asyncio.create_task(run(), context=waiting.context)


def _settle(done: asyncio.Future[None], error: BaseException | None) -> None:
    if done.done():  # its consumer was cancelled (shutdown): the broker redelivers it
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)

"""Transactional outbox and inbox: publish exactly what was committed, handle each message once.

Outbox: a use case calls `enqueue(session, envelope, table=...)` in the transaction that changes
its state, so the message is committed with the change or not at all. An `OutboxRelay` publishes
committed rows with publisher confirms, oldest first, marks them published, and retries failures
with capped exponential back-off; a row is never dropped. Delivery is at least once (a crash
between the broker's confirm and the mark publishes a row again).

Inbox: a consumer claims `(consumer, event_id)` in the transaction of its effect
(`handle_once`), so a redelivered message is a no-op. Ack happens after that commit.

Both tables live in each service's own schema: `outbox_table(metadata)`, `inbox_table(metadata)`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    Uuid,
    delete,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession

from fleet.common._group_commit import (
    AlreadyHandled,
    BatchHooks,
    GroupCommit,
    InboxHandler,
    buffer_outbox,
    claim_and_flush,
    claim_inbox_many,
)
from fleet.common._outbox_sql import OUTBOX_BUFFER, OUTBOX_HANDOFF
from fleet.common.db import Database, UTCDateTime, utcnow
from fleet.common.inserts import insert_rows
from fleet.common.logging import get_logger
from fleet.common.messaging.bus import ExchangeName, Handler
from fleet.common.messaging.envelope import Envelope
from fleet.common.messaging.relay import Handoff, OutboxRelay

__all__ = [
    "BatchHooks",
    "GroupCommit",
    "InboxHandler",
    "OutboxRelay",
    "claim_inbox",
    "enqueue",
    "handle_once",
    "inbox_table",
    "outbox_table",
    "purge_inbox",
]

log = get_logger("fleet.outbox")


def outbox_table(metadata: MetaData) -> Table:
    """Add the `outbox` table to a service's metadata (include it in its migrations)."""
    published_at = Column("published_at", UTCDateTime, nullable=True)
    return Table(
        "outbox",
        metadata,
        Column("id", Uuid, primary_key=True),  # the envelope's event_id
        Column("exchange", String(16), nullable=False),
        Column("routing_key", String(255), nullable=False),
        Column("body", LargeBinary, nullable=False),
        Column("headers", JSON, nullable=False),
        Column("created_at", UTCDateTime, nullable=False),
        published_at,
        Column("attempts", Integer, nullable=False, server_default="0"),
        Column("next_attempt_at", UTCDateTime, nullable=False),
        Column("last_error", Text, nullable=True),
        # The relay's scan touches unpublished rows only; published ones wait for the purge.
        Index(
            "ix_outbox_unpublished",
            "next_attempt_at",
            "created_at",
            postgresql_where=published_at.is_(None),
            sqlite_where=published_at.is_(None),
        ),
    )


def inbox_table(metadata: MetaData) -> Table:
    """Add the `inbox` table (handled message ids per consumer) to a service's metadata."""
    return Table(
        "inbox",
        metadata,
        Column("consumer", String(200), primary_key=True),
        Column("event_id", Uuid, primary_key=True),
        Column("handled_at", UTCDateTime, nullable=False, index=True),
    )


class _Ticker:
    """Strictly increasing timestamps, so rows enqueued in one transaction keep their order."""

    def __init__(self) -> None:
        self._last = dt.datetime.min.replace(tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        now = utcnow()
        self._last = now if now > self._last else self._last + dt.timedelta(microseconds=1)
        return self._last


_tick = _Ticker()


async def enqueue(
    session: AsyncSession,
    envelope: Envelope,
    exchange: ExchangeName = "events",
    *,
    table: Table,
) -> None:
    """Add `envelope` to the outbox `table` inside the caller's transaction.

    In a transaction its relay watches (`OutboxRelay.watch`), the row is also handed to the relay
    when the transaction commits, and written due only after the relay's hand-over grace.
    """
    now = _tick()
    due = now
    nested = session.in_nested_transaction()
    handoff: Handoff | None = session.info.get(OUTBOX_HANDOFF)
    if handoff is not None:
        if nested:  # the savepoint may still roll back: a scan after the commit sends it
            handoff.scan = True
        else:
            handoff.add(envelope, exchange)
            due = now + handoff.grace
    row = {
        "id": envelope.event_id,
        "exchange": exchange,
        "routing_key": envelope.event_type,
        "body": envelope.encode(),
        "headers": dict(envelope.headers),
        "created_at": now,
        "attempts": 0,
        "next_attempt_at": due,
    }
    buffer = session.info.get(OUTBOX_BUFFER)
    # A consumer's transaction inserts its rows with its inbox claim, at the end (`handle_once`,
    # group commit); a row enqueued in a savepoint must go (and
    # roll back) with it. A scan publishes in `created_at` order, whenever the row was written;
    # a hand-over in the order the transactions committed.
    if buffer is not None and not nested:
        buffer.append((table, row))
        return
    await insert_rows(session, (table, [row]))


async def claim_inbox(
    session: AsyncSession, consumer: str, event_id: uuid.UUID, *, table: Table
) -> bool:
    """Record that `consumer` handles `event_id`; False if it already did (then skip it)."""
    return event_id in await claim_inbox_many(session, consumer, [event_id], table=table)


def handle_once(
    db: Database,
    consumer: str,
    handler: InboxHandler,
    *,
    table: Table,
    relay: OutboxRelay | None = None,
    max_batch: int = 1,
    hooks: BatchHooks | None = None,
) -> Handler:
    """A bus handler running `handler(session, envelope)` at most once per event and consumer.

    One transaction: run the handler, then claim the inbox row and insert the outbox rows the
    handler enqueued (one statement on PostgreSQL), commit. A message handled before finds its
    row taken and its transaction is rolled back (see fleet.common._group_commit: the claim
    comes last); so is a redelivery whose handler fails on what the first delivery changed, and
    both are acked. A failing handler of a new message rolls everything back, so the bus's retry
    runs it again. `relay` watches the transaction, so that messages the handler enqueued leave
    as it commits. With `max_batch` > 1, messages that
    arrive while a transaction runs are handled together in the next one (`GroupCommit`), with
    `hooks` run around each such batch's handlers.
    """

    async def handle(envelope: Envelope) -> None:
        event_id = envelope.event_id
        try:
            async with db.transaction() as session:
                if relay is not None:
                    relay.watch(session)
                buffer_outbox(session)
                await handler(session, envelope)
                if not await claim_and_flush(session, consumer, [event_id], table=table):
                    raise AlreadyHandled(str(event_id))
        except AlreadyHandled:
            log.debug("duplicate skipped", consumer=consumer, event_id=str(event_id))
        except Exception:
            # A redelivery whose handler fails on what its first delivery changed is handled.
            if not await _handled_before(db, consumer, event_id, table):
                raise
            log.debug("duplicate skipped", consumer=consumer, event_id=str(event_id))

    handle.__qualname__ = f"handle_once[{consumer}]"
    if max_batch <= 1:
        return handle
    group = GroupCommit(
        db, consumer, handler, handle, table=table, relay=relay, max_batch=max_batch, hooks=hooks
    )

    async def handle_in_groups(envelope: Envelope) -> None:
        await group(envelope)

    handle_in_groups.__qualname__ = handle.__qualname__
    handle_in_groups.group = group  # type: ignore[attr-defined]
    return handle_in_groups


async def _handled_before(db: Database, consumer: str, event_id: uuid.UUID, table: Table) -> bool:
    async with db.session() as session:
        query = select(table.c.event_id).where(
            table.c.consumer == consumer, table.c.event_id == event_id
        )
        return (await session.execute(query)).first() is not None


async def purge_inbox(db: Database, table: Table, older_than: dt.timedelta) -> int:
    """Forget inbox entries older than `older_than` (longer than any redelivery can take)."""
    async with db.transaction() as session:
        result: Any = await session.execute(
            delete(table).where(table.c.handled_at < utcnow() - older_than)
        )
        purged = int(result.rowcount or 0)
    if purged:
        log.info("inbox purged", schema=db.schema, rows=purged)
    return purged

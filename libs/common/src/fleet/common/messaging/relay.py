"""`OutboxRelay`: publishes a service's committed outbox rows (see `fleet.common.outbox`).

Two ways a row reaches the broker. The fast one: a transaction the relay `watch`es hands its
rows over in memory when it commits, and the relay publishes them at once; it marks what it
published with one statement every `mark_interval` — no read of the outbox, no transaction
around the mark, and no mark between one publish and the next. The safe one: a scan of
the table (`FOR UPDATE SKIP LOCKED`) every `poll_interval`, which catches everything else: rows
of unwatched transactions or enqueued in a savepoint, failed publishes whose back-off ended, and
handed-over rows a process did not get to publish (it crashed right after the commit).
A handed-over row is written due only `handoff_grace` seconds later, so no scan — of this
process or of a replica — takes it while its own process is publishing or marking it.

`published_at` is when the broker confirmed the row's batch, not when the mark ran: the mark
writes each row's own time, so the outbox tells how long a message waited for its relay.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    Executable,
    Table,
    Uuid,
    bindparam,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.sql.dml import Update

from fleet.common._outbox_sql import OUTBOX_HANDOFF
from fleet.common.db import Database, UTCDateTime, after_commit, utcnow
from fleet.common.logging import get_logger
from fleet.common.messaging.bus import ExchangeName, MessageBus, describe_error
from fleet.common.messaging.envelope import Envelope
from fleet.common.native import native_autocommit
from fleet.common.tracing import messaging_system, publish_span

log = get_logger("fleet.outbox")

# `SET LOCAL synchronous_commit = off` folded into the marking UPDATE (an uncorrelated subquery,
# evaluated once): the pass's COMMIT does not wait for the WAL flush, and costs no statement of
# its own. A mark lost in a server crash only publishes the row again, which consumers' inboxes
# already absorb (delivery is at least once anyway).
_ASYNC_COMMIT = (
    select(func.set_config("synchronous_commit", "off", True)).scalar_subquery() == "off"
)


@dataclass(frozen=True)
class _Due:
    id: uuid.UUID
    exchange: ExchangeName
    body: bytes | None  # as stored (a scanned row) …
    attempts: int
    envelope: Envelope | None = None  # … or as enqueued (a handed-over row)


@dataclass
class Handoff:
    """What a watched transaction enqueued outside savepoints (`session.info[OUTBOX_HANDOFF]`).

    `enqueue` appends its rows and writes them due `grace` seconds later; a row enqueued in a
    savepoint (which may still roll back) sets `scan` instead, asking for a scan after the
    commit. Handed to the relay only if the transaction commits.
    """

    relay: OutboxRelay
    grace: dt.timedelta
    rows: list[_Due] = field(default_factory=list)
    scan: bool = False

    def add(self, envelope: Envelope, exchange: ExchangeName) -> None:
        self.rows.append(_Due(envelope.event_id, exchange, None, 0, envelope))

    def committed(self) -> None:
        self.relay._take(self.rows, scan=self.scan)


@dataclass
class _Outcome:
    published: list[uuid.UUID]
    failed: list[tuple[_Due, str]] = field(default_factory=list)  # (row, error)
    confirmed_at: dt.datetime = field(default_factory=utcnow)  # when the broker confirmed them

    def marks(self) -> list[tuple[uuid.UUID, dt.datetime]]:
        return [(row_id, self.confirmed_at) for row_id in self.published]


class OutboxRelay:
    """Publishes a service's committed outbox rows; one per service process.

    Publishes what the transactions it `watch`es hand over as they commit, and scans the table
    on `notify()` and every `poll_interval` seconds. On PostgreSQL, a scan claims rows with
    `FOR UPDATE SKIP LOCKED` inside the transaction that marks them, so the scans of several
    relays (replicas) never take the same row twice; on SQLite (embedded mode: one process) they
    are read, published, then marked.
    """

    def __init__(
        self,
        db: Database,
        bus: MessageBus,
        table: Table,
        *,
        poll_interval: float = 0.5,
        batch_size: int = 100,
        publish_timeout: float = 10.0,
        backoff_base: float = 0.5,
        backoff_cap: float = 300.0,
        retention: dt.timedelta | None = dt.timedelta(hours=24),
        purge_interval: float = 600.0,
        handoff_grace: float = 1.0,
        mark_interval: float = 0.05,
        batches_in_flight: int = 8,
    ) -> None:
        self.db = db
        self.bus = bus
        self.table = table
        self.poll_interval = poll_interval
        self.batch_size = batch_size
        if batches_in_flight < 1:
            raise ValueError("batches_in_flight must be at least 1")
        self.batches_in_flight = batches_in_flight
        self.publish_timeout = publish_timeout
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.retention = retention
        self.purge_interval = purge_interval
        self.handoff_grace = dt.timedelta(seconds=handoff_grace)
        if mark_interval < 0:
            raise ValueError("mark_interval must not be negative")
        # Keep it well under the grace: a replica's scan may take a row not marked by then.
        self.mark_interval = mark_interval
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._scan_requested = False
        self._next_purge = 0.0
        self._system = messaging_system(bus)
        self._handed: list[_Due] = []  # committed, handed over, not published yet
        self._publishing: set[asyncio.Task[None]] = set()  # batches waiting for confirms
        self._inflight: set[uuid.UUID] = set()  # … or being published, or not marked yet
        # Handed over, published (with the time the broker confirmed it), mark pending.
        self._unmarked: list[tuple[uuid.UUID, dt.datetime]] = []
        self._mark_due: float | None = None  # loop time by which they are marked
        # Built once: building a statement on every pass cost as much CPU as running it. On
        # PostgreSQL the ids travel as one array, so the statement's text (and its prepared
        # statement) is the same for any number of rows.
        self._due_queries: dict[bool, Executable] = {}
        self._autocommit: AsyncEngine | None = None
        self._mark: Update
        if db.is_sqlite:  # one UPDATE per row (executemany): embedded mode's volumes
            self._mark = (
                update(table)
                .where(table.c.id == bindparam("b_id"))
                .values(published_at=bindparam("b_at"))
            )
        else:
            # Each row its own time, in one statement: UPDATE … FROM unnest(ids, times).
            confirmed = (
                func.unnest(
                    bindparam("ids", type_=ARRAY(Uuid())),
                    bindparam("ats", type_=ARRAY(UTCDateTime())),
                )
                .table_valued("id", "at")
                .render_derived("v")
            )
            self._mark = (
                update(table)
                .where(table.c.id == confirmed.c.id, _ASYNC_COMMIT)
                .values(published_at=confirmed.c.at)
            )
            # A mark is one statement: no BEGIN and COMMIT around it.
            self._autocommit = db.engine.execution_options(isolation_level="AUTOCOMMIT")

    async def start(self) -> None:
        """Run the relay in the background until `stop()`."""
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name=f"outbox-relay-{self.db.schema}")

    async def stop(self) -> None:
        """Stop after the batch in progress (or give up on it after `publish_timeout`)."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self._wake.set()
        # On timeout wait_for cancels the pass; its unmarked rows are published again later.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(task, self.publish_timeout)

    def notify(self) -> None:
        """Scan the outbox now: something was just committed to it."""
        self._scan_requested = True
        self._wake.set()

    def watch(self, session: AsyncSession) -> None:
        """Have the rows `session`'s transaction enqueues handed over when it commits.

        Call it right after the transaction began (`ServiceRuntime.transaction` and the
        consumers do). Rows enqueued outside savepoints are published straight from memory;
        one enqueued in a savepoint makes the relay scan the table after the commit instead.
        A rolled-back transaction hands nothing over.
        """
        handoff = Handoff(self, self.handoff_grace)
        session.info[OUTBOX_HANDOFF] = handoff
        after_commit(session, handoff.committed)

    def _take(self, rows: Sequence[_Due], *, scan: bool) -> None:
        if rows:
            self._handed.extend(rows)
            self._inflight.update(row.id for row in rows)
        if scan:
            self._scan_requested = True
        if rows or scan:
            self._wake.set()

    async def run_once(self) -> int:
        """Publish what was handed over, then every due row of the table; the number of rows
        the scan published."""
        await self._drain_handed()
        await self._mark_published()
        return await self._scan()

    async def _scan(self) -> int:
        """Publish every due row of the table (batch by batch); the number published."""
        total = 0
        while not self._stopping:
            outcome = await self._batch()
            total += len(outcome.published)
            if outcome.failed or len(outcome.published) < self.batch_size:
                break
        return total

    async def backlog(self) -> tuple[int, float]:
        """(unpublished rows, age in seconds of the oldest) — the outbox lag metric."""
        t = self.table
        async with self.db.session() as session:
            count, oldest = (
                await session.execute(
                    select(func.count(), func.min(t.c.created_at)).where(t.c.published_at.is_(None))
                )
            ).one()
        age = (utcnow() - oldest).total_seconds() if oldest is not None else 0.0
        return int(count), max(age, 0.0)

    async def purge(self, older_than: dt.timedelta) -> int:
        """Delete rows published more than `older_than` ago; the number deleted."""
        t = self.table
        async with self.db.transaction() as session:
            result: Any = await session.execute(
                delete(t).where(t.c.published_at < utcnow() - older_than)
            )
            return int(result.rowcount or 0)

    async def _run(self) -> None:
        try:
            await self._serve()
        finally:  # cancelled by `stop()` after its timeout: so are the batches it started
            for task in list(self._publishing):
                task.cancel()

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        next_scan = loop.time()
        while not self._stopping:
            self._wake.clear()
            try:
                self._start_publishing()
                # `_mark_due` is set whenever something waits for its mark.
                if self._mark_due is not None and (
                    loop.time() >= self._mark_due or len(self._unmarked) >= self.batch_size
                ):
                    await self._mark_published()
                if self._scan_requested or loop.time() >= next_scan:
                    self._scan_requested = False
                    next_scan = loop.time() + self.poll_interval
                    await self._scan()
                    await self._purge_now_and_then()
            except Exception:  # database away: the next scan finds what is left
                log.exception("outbox relay pass failed", schema=self.db.schema)
            if self._scan_requested or (self._handed and self._room()):
                continue
            wake_at = next_scan if self._mark_due is None else min(next_scan, self._mark_due)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(wake_at - loop.time(), 0.0))
        # Stopping: what was handed over still leaves (and is marked) now, not after the grace.
        with contextlib.suppress(Exception):
            await self._drain_handed(wait_all=True)
        with contextlib.suppress(Exception):
            await self._mark_published()

    def _room(self) -> bool:
        return len(self._publishing) < self.batches_in_flight

    def _start_publishing(self) -> None:
        """Start publishing what was handed over, a batch per task, without waiting for the
        confirms of the batches already sent (up to `batches_in_flight` of them): a row handed
        over while a batch waits for its confirms leaves at once, not after them. The channel
        keeps the order in which the batches were started."""
        while self._handed and self._room():
            self._start_batch()

    def _start_batch(self) -> asyncio.Task[None]:
        batch = self._handed[: self.batch_size]
        del self._handed[: self.batch_size]
        task = asyncio.create_task(self._publish_handed(batch))
        self._publishing.add(task)
        task.add_done_callback(self._published)
        return task

    def _published(self, task: asyncio.Task[None]) -> None:
        self._publishing.discard(task)
        self._wake.set()  # room for the next batch, and maybe a mark is due
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("outbox relay batch failed", schema=self.db.schema, error=repr(error))

    async def _drain_handed(self, *, wait_all: bool = False) -> None:
        """Publish everything handed over and wait for those batches' confirms (with
        `wait_all`, for every batch in flight too)."""
        mine = []
        while self._handed:
            mine.append(self._start_batch())
        waiting = list(self._publishing) if wait_all else mine
        if waiting:
            await asyncio.gather(*waiting, return_exceptions=True)

    async def _publish_handed(self, batch: list[_Due]) -> None:
        """Publish handed-over rows (a batch); what was published is marked within
        `mark_interval` (`_mark_published`), failures get their back-off."""
        published: list[uuid.UUID] = []
        try:
            outcome = await self._publish(batch)
            published = outcome.published
            if published:
                self._unmarked.extend(outcome.marks())
                if self._mark_due is None:
                    self._mark_due = asyncio.get_running_loop().time() + self.mark_interval
            if outcome.failed:
                async with self.db.transaction() as session:
                    await self._record(session, _Outcome([], outcome.failed))
        finally:
            # Published rows stay in flight until marked; the others are the scans' again
            # (failed: after their back-off; not recorded because the database failed: once
            # their grace is over).
            unmarked = set(published)
            self._inflight.difference_update(row.id for row in batch if row.id not in unmarked)

    async def _mark_published(self) -> None:
        """Mark what was handed over and published: one statement for all of it. If the
        database fails, the rows are the scans' once their grace is over (published again:
        delivery is at least once)."""
        marks, self._unmarked, self._mark_due = self._unmarked, [], None
        if not marks:
            return
        try:
            await self._mark_now(marks)
        finally:
            self._inflight.difference_update(row_id for row_id, _ in marks)

    def _mark_params(self, marks: Sequence[tuple[uuid.UUID, dt.datetime]]) -> Any:
        if self.db.is_sqlite:  # executemany, a row each
            return [{"b_id": row_id, "b_at": at} for row_id, at in marks]
        return {"ids": [row_id for row_id, _ in marks], "ats": [at for _, at in marks]}

    async def _mark_now(self, marks: list[tuple[uuid.UUID, dt.datetime]]) -> None:
        params = self._mark_params(marks)
        if self._autocommit is None:
            async with self.db.transaction() as session:
                await session.execute(self._mark, params)
            return
        async with self._autocommit.connect() as connection:
            pg = await native_autocommit(connection)
            if pg is not None:
                await pg.fetch_compiled(self._mark, params)
            else:
                await connection.execute(self._mark, params)

    async def _purge_now_and_then(self) -> None:
        now = asyncio.get_running_loop().time()
        if self.retention is None or now < self._next_purge:
            return
        self._next_purge = now + self.purge_interval
        purged = await self.purge(self.retention)
        if purged:
            log.info("outbox purged", schema=self.db.schema, rows=purged)

    async def _batch(self) -> _Outcome:
        if self.db.is_sqlite:
            async with self.db.transaction() as session:
                due = await self._due(session, lock=False)
            outcome = await self._publish(due)
            async with self.db.transaction() as session:
                await self._record(session, outcome)
            return outcome
        async with self.db.transaction() as session:
            due = await self._due(session, lock=True)
            outcome = await self._publish(due)
            await self._record(session, outcome)
        return outcome

    async def _due(self, session: AsyncSession, *, lock: bool) -> list[_Due]:
        stmt = self._due_queries.get(lock)
        if stmt is None:
            t = self.table
            stmt = (
                select(t.c.id, t.c.exchange, t.c.body, t.c.attempts)
                .where(t.c.published_at.is_(None), t.c.next_attempt_at <= bindparam("now"))
                .order_by(t.c.created_at, t.c.id)
                .limit(self.batch_size)
            )
            if lock:
                stmt = stmt.with_for_update(skip_locked=True)
            self._due_queries[lock] = stmt
        rows = (await session.execute(stmt, {"now": utcnow()})).all()
        # Rows this process is publishing from memory stay theirs, even if already due (their
        # transaction outlasted the grace, or the grace is 0).
        inflight = self._inflight
        return [_Due(r.id, r.exchange, r.body, r.attempts) for r in rows if r.id not in inflight]

    async def _publish(self, due: Sequence[_Due]) -> _Outcome:
        # The whole batch at once: the channel keeps the order and pipelines the confirms, so a
        # batch costs about one broker round trip instead of one per row (a booking's messages
        # no longer queue behind each other's confirms).
        errors = await asyncio.gather(*(self._publish_one(row) for row in due))
        outcome = _Outcome(published=[])  # confirmed now
        for row, error in zip(due, errors, strict=True):
            if error is None:
                outcome.published.append(row.id)
            else:
                outcome.failed.append((row, error))
        return outcome

    async def _publish_one(self, row: _Due) -> str | None:
        """None once the broker confirmed the row; else why not."""
        try:
            stored = row.envelope if row.envelope is not None else Envelope.decode(row.body or b"")
            # The use case's trace continues here, in the relay's background task.
            with publish_span(stored, row.exchange, system=self._system) as envelope:
                await asyncio.wait_for(
                    self.bus.publish(envelope, exchange=row.exchange), self.publish_timeout
                )
        except Exception as exc:
            return describe_error(exc)
        return None

    async def _record(self, session: AsyncSession, outcome: _Outcome) -> None:
        if outcome.published:
            await session.execute(self._mark, self._mark_params(outcome.marks()))
        # Every failed row waits its back-off, so a broker that is away is not hammered.
        for failed, error in outcome.failed:
            await self._reschedule(session, failed, error)

    async def _reschedule(self, session: AsyncSession, failed: _Due, error: str) -> None:
        t = self.table
        attempts = failed.attempts + 1
        delay = self._backoff(attempts)
        log.warning(
            "outbox publish failed",
            event_id=str(failed.id),
            attempts=attempts,
            retry_in=round(delay, 3),
            error=error,
        )
        await session.execute(
            update(t)
            .where(t.c.id == failed.id)
            .values(
                attempts=attempts,
                next_attempt_at=utcnow() + dt.timedelta(seconds=delay),
                last_error=error,
            )
        )

    def _backoff(self, attempts: int) -> float:
        ceiling = min(self.backoff_cap, self.backoff_base * 2.0 ** min(attempts - 1, 30))
        # "Equal jitter": at least half the ceiling, so a broken broker is not hammered.
        return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not crypto

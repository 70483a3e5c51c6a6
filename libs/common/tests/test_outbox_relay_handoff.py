"""Rows of a watched transaction go from memory to the broker as it commits; scans catch the rest.

`OutboxRelay.watch(session)` is how a service's transactions and consumers hand their committed
rows to the relay without it reading them back. These tests pin the rules that keep that safe:
nothing of a rolled-back transaction or savepoint leaves, a failed publish is backed off and
retried by a scan, rows a relay never got to publish are picked up by any relay once their grace
passed — and, within the grace, no scan publishes them a second time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
from sqlalchemy import select

from fleet.common.db import Database, service_metadata
from fleet.common.messaging import Envelope
from fleet.common.outbox import OutboxRelay, enqueue, outbox_table
from fleet.common.testing import RecordingBus, eventually, relay_factory, tables_database

SCHEMA = "outbox_handoff_test"
metadata = service_metadata(SCHEMA)
outbox = outbox_table(metadata)


@pytest.fixture
async def db(backend_url: str) -> AsyncIterator[Database]:
    async with tables_database(backend_url, SCHEMA, metadata) as database:
        yield database


@pytest.fixture
async def bus() -> AsyncIterator[RecordingBus]:
    b = RecordingBus()
    await b.start()
    yield b
    await b.close()


@pytest.fixture
async def make_relay(db: Database, bus: RecordingBus) -> AsyncIterator[Callable[..., OutboxRelay]]:
    async with relay_factory(db, bus, outbox) as make:
        yield make


def message(n: int) -> Envelope:
    return Envelope.new(
        "trip.completed", {"n": n}, producer="trip", aggregate_type="trip", aggregate_id=str(n)
    )


async def watched_commit(db: Database, relay: OutboxRelay, *envelopes: Envelope) -> None:
    async with db.transaction() as session:
        relay.watch(session)
        for envelope in envelopes:
            await enqueue(session, envelope, table=outbox)


async def row(db: Database, event_id: uuid.UUID) -> dict[str, object]:
    async with db.session() as session:
        found = (await session.execute(select(outbox).where(outbox.c.id == event_id))).one()
    return dict(found._mapping)


async def test_a_watched_transaction_is_published_as_it_commits_without_waiting_for_a_scan(
    db: Database, bus: RecordingBus, make_relay: Callable[..., OutboxRelay]
) -> None:
    relay = make_relay(poll_interval=30.0, handoff_grace=60.0)
    await relay.start()
    await asyncio.sleep(0.1)  # its first scan found nothing; the next one is 30 s away
    sent = [message(n) for n in range(3)]

    await watched_commit(db, relay, *sent)

    async def marked() -> bool:
        return all([(await row(db, e.event_id))["published_at"] is not None for e in sent])

    await eventually(marked, within=2.0)
    assert bus.published_ids == [e.event_id for e in sent]
    stored = await row(db, sent[0].event_id)
    created, due = stored["created_at"], stored["next_attempt_at"]
    assert isinstance(created, dt.datetime)
    assert isinstance(due, dt.datetime)
    assert due - created >= dt.timedelta(seconds=59), "written due only after the grace"


async def test_a_rolled_back_watched_transaction_hands_nothing_over(
    db: Database, bus: RecordingBus, make_relay: Callable[..., OutboxRelay]
) -> None:
    relay = make_relay(poll_interval=30.0, handoff_grace=0.0)
    await relay.start()

    async def use_case() -> None:
        async with db.transaction() as session:
            relay.watch(session)
            await enqueue(session, message(1), table=outbox)
            raise RuntimeError("the use case failed after enqueueing")

    with pytest.raises(RuntimeError):
        await use_case()
    await asyncio.sleep(0.2)

    assert bus.published_ids == []
    assert await relay.run_once() == 0
    assert await relay.backlog() == (0, 0.0)


async def test_a_rolled_back_savepoint_sends_nothing_and_a_released_one_sends_its_row(
    db: Database, bus: RecordingBus, make_relay: Callable[..., OutboxRelay]
) -> None:
    relay = make_relay(poll_interval=30.0)
    await relay.start()
    await asyncio.sleep(0.1)
    undone, kept, outer = message(1), message(2), message(3)

    async with db.transaction() as session:
        relay.watch(session)
        savepoint = await session.begin_nested()
        await enqueue(session, undone, table=outbox)
        await savepoint.rollback()
        async with session.begin_nested():
            await enqueue(session, kept, table=outbox)
        await enqueue(session, outer, table=outbox)

    async def both_sent() -> bool:
        return len(bus.published_ids) >= 2

    await eventually(both_sent, within=2.0)  # the savepoint's row by a scan the commit asked for
    await asyncio.sleep(0.1)
    assert sorted(bus.published_ids) == sorted([kept.event_id, outer.event_id])
    async with db.session() as session:
        ids = set((await session.execute(select(outbox.c.id))).scalars())
    assert undone.event_id not in ids


async def test_a_handed_over_row_whose_publish_failed_is_backed_off_then_sent_by_a_scan(
    db: Database, bus: RecordingBus, make_relay: Callable[..., OutboxRelay]
) -> None:
    relay = make_relay(poll_interval=0.05, backoff_base=0.3)
    bus.down = True
    await relay.start()
    sent = message(4)

    await watched_commit(db, relay, sent)

    async def backed_off() -> bool:
        return (await row(db, sent.event_id))["attempts"] == 1

    await eventually(backed_off)
    stored = await row(db, sent.event_id)
    assert stored["published_at"] is None
    assert "broker unreachable" in str(stored["last_error"])

    bus.down = False

    async def marked() -> bool:
        return (await row(db, sent.event_id))["published_at"] is not None

    await eventually(marked)
    assert bus.published_ids == [sent.event_id]


async def test_rows_a_relay_never_published_are_sent_by_another_once_their_grace_passed(
    db: Database, bus: RecordingBus, make_relay: Callable[..., OutboxRelay]
) -> None:
    crashed = make_relay(handoff_grace=0.5)  # never started: it dies right after the commit
    survivor = make_relay()
    sent = message(5)

    await watched_commit(db, crashed, sent)

    assert await survivor.run_once() == 0, "within the grace the row is its committer's"
    await asyncio.sleep(0.6)
    assert await survivor.run_once() == 1
    assert bus.published_ids == [sent.event_id]


async def test_a_scan_of_the_same_relay_skips_rows_it_is_publishing_from_memory(
    db: Database, bus: RecordingBus, make_relay: Callable[..., OutboxRelay]
) -> None:
    relay = make_relay(poll_interval=30.0, handoff_grace=0.0)  # due at once: only the
    await relay.start()  # in-flight set keeps the scan away from the row being published
    await asyncio.sleep(0.1)
    bus.gate = asyncio.Event()
    sent = message(6)

    await watched_commit(db, relay, sent)
    await asyncio.wait_for(bus.publishing.wait(), 5)  # the hand-over publish is under way

    assert await relay.run_once() == 0
    bus.gate.set()

    async def marked() -> bool:
        return (await row(db, sent.event_id))["published_at"] is not None

    await eventually(marked)
    assert bus.published_ids == [sent.event_id]


async def test_run_once_publishes_what_was_handed_over_even_without_the_loop(
    db: Database, bus: RecordingBus, make_relay: Callable[..., OutboxRelay]
) -> None:
    relay = make_relay(handoff_grace=60.0)  # never started
    sent = message(7)

    await watched_commit(db, relay, sent)
    await relay.run_once()

    assert bus.published_ids == [sent.event_id]
    assert (await row(db, sent.event_id))["published_at"] is not None


async def test_stopping_publishes_what_was_handed_over_instead_of_leaving_it_for_the_grace(
    db: Database, bus: RecordingBus, make_relay: Callable[..., OutboxRelay]
) -> None:
    relay = make_relay(poll_interval=30.0, handoff_grace=60.0)
    await relay.start()
    await asyncio.sleep(0.1)
    sent = [message(n) for n in range(10, 15)]

    await watched_commit(db, relay, *sent)
    await relay.stop()

    assert sorted(bus.published_ids) == sorted(e.event_id for e in sent)
    assert all([(await row(db, e.event_id))["published_at"] is not None for e in sent])

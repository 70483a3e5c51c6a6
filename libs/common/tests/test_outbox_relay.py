"""The transactional outbox (its relay's scans and hand-over) and the inbox, on SQLite
(embedded) and PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sqlalchemy import Column, Integer, String, Table, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from fleet.common.db import Database, service_metadata, utcnow
from fleet.common.messaging import Envelope, ExchangeName
from fleet.common.outbox import (
    OutboxRelay,
    claim_inbox,
    enqueue,
    handle_once,
    inbox_table,
    outbox_table,
    purge_inbox,
)
from fleet.common.testing import (
    RecordingBus,
    eventually,
    recorded_statements,
    relay_factory,
    tables_database,
)

SCHEMA = "outbox_test"
metadata = service_metadata(SCHEMA)
outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
effects = Table(
    "effects",
    metadata,
    Column("key", String(50), primary_key=True),
    Column("count", Integer, nullable=False),
)


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


def trip_completed(n: int = 0) -> Envelope:
    return Envelope.new(
        "trip.completed", {"n": n}, producer="trip", aggregate_type="trip", aggregate_id=str(n)
    )


async def enqueue_committed(db: Database, *envelopes: Envelope) -> None:
    async with db.transaction() as session:
        for envelope in envelopes:
            await enqueue(session, envelope, table=outbox)


async def outbox_row(db: Database, event_id: uuid.UUID) -> dict[str, object]:
    async with db.session() as session:
        row = (await session.execute(select(outbox).where(outbox.c.id == event_id))).one()
    return dict(row._mapping)


async def marked(db: Database, *envelopes: Envelope) -> bool:
    """Whether every one of `envelopes` is marked published."""
    rows = [await outbox_row(db, e.event_id) for e in envelopes]
    return all(r["published_at"] is not None for r in rows)


async def test_nothing_is_published_when_the_transaction_rolls_back(
    db: Database, bus: RecordingBus, make_relay: Callable[..., OutboxRelay]
) -> None:
    async def use_case() -> None:
        async with db.transaction() as session:
            await enqueue(session, trip_completed(), table=outbox)
            raise RuntimeError("use case failed after enqueueing")

    with pytest.raises(RuntimeError):
        await use_case()

    relay = make_relay()
    assert await relay.run_once() == 0
    assert bus.published == []
    assert await relay.backlog() == (0, 0.0)


async def test_committed_message_is_published_once_and_marked(
    db: Database, bus: RecordingBus, make_relay: Callable[..., OutboxRelay]
) -> None:
    sent = trip_completed(1)
    await enqueue_committed(db, sent)
    relay = make_relay()

    assert await relay.run_once() == 1
    assert await relay.run_once() == 0

    assert bus.published == [sent]
    row = await outbox_row(db, sent.event_id)
    assert row["published_at"] is not None
    assert row["routing_key"] == "trip.completed"
    assert row["exchange"] == "events"


async def test_messages_are_published_in_the_order_they_were_enqueued(
    db: Database, bus: RecordingBus, make_relay: Callable[..., OutboxRelay]
) -> None:
    sent = [trip_completed(n) for n in range(30)]
    await enqueue_committed(db, *sent[:10])
    await enqueue_committed(db, *sent[10:])

    await make_relay(batch_size=7).run_once()

    assert [e.event_id for e in bus.published] == [e.event_id for e in sent]


async def test_commands_go_to_the_commands_exchange(
    db: Database, bus: RecordingBus, make_relay: Callable[..., OutboxRelay]
) -> None:
    seen: list[Envelope] = []

    async def record(envelope: Envelope) -> None:
        seen.append(envelope)

    await bus.subscribe("user.commands", ["user.#"], record, exchange="commands")
    command = Envelope.new(
        "user.reserve-credits",
        {"amount": 5},
        producer="trip",
        aggregate_type="saga",
        aggregate_id="s1",
        kind="command",
        reply_to="trip.saga-reply",
    )
    async with db.transaction() as session:
        await enqueue(session, command, "commands", table=outbox)

    await make_relay().run_once()

    await eventually(lambda: len(seen) == 1)
    assert seen == [command]


async def test_failed_publish_is_kept_and_retried_after_a_back_off(
    db: Database, bus: RecordingBus, make_relay: Callable[..., OutboxRelay]
) -> None:
    sent = trip_completed(2)
    await enqueue_committed(db, sent)
    relay = make_relay(poll_interval=0.05, backoff_base=0.4)
    bus.down = True

    assert await relay.run_once() == 0

    row = await outbox_row(db, sent.event_id)
    assert row["attempts"] == 1
    assert row["published_at"] is None
    assert "broker unreachable" in str(row["last_error"])
    next_attempt = row["next_attempt_at"]
    assert isinstance(next_attempt, dt.datetime)
    assert next_attempt > utcnow()
    assert await relay.run_once() == 0  # not due yet: nothing is hammered

    bus.down = False
    await relay.start()
    await asyncio.wait_for(bus.arrived.wait(), 5)
    assert bus.published == [sent]
    await eventually(lambda: marked(db, sent))  # the mark is committed just after the confirm


async def test_back_off_grows_with_attempts_and_is_capped(
    db: Database, make_relay: Callable[..., OutboxRelay]
) -> None:
    relay = make_relay(backoff_base=1.0, backoff_cap=10.0)

    delays = [relay._backoff(n) for n in range(1, 12)]

    assert 0.5 <= delays[0] <= 1.0
    assert 4.0 <= delays[3] <= 8.0
    assert all(5.0 <= d <= 10.0 for d in delays[5:])


async def test_notify_publishes_long_before_the_next_poll(
    db: Database, bus: RecordingBus, make_relay: Callable[..., OutboxRelay]
) -> None:
    relay = make_relay(poll_interval=30.0)
    await relay.start()
    await asyncio.sleep(0.1)  # the first pass found nothing; now it sleeps for 30 s
    await enqueue_committed(db, trip_completed(3))
    await asyncio.sleep(0.3)
    assert bus.published == []

    start = asyncio.get_running_loop().time()
    relay.notify()
    await asyncio.wait_for(bus.arrived.wait(), 5)

    assert asyncio.get_running_loop().time() - start < 0.5


@pytest.mark.parametrize("backend_url", ["postgres"], indirect=True)
async def test_two_relays_publish_every_row_exactly_once(
    db: Database, backend_url: str, bus: RecordingBus
) -> None:
    sent = [trip_completed(n) for n in range(300)]
    for chunk in range(0, 300, 50):
        await enqueue_committed(db, *sent[chunk : chunk + 50])
    other_db = Database(backend_url, SCHEMA)
    relays = [
        OutboxRelay(db, bus, outbox, batch_size=10),
        OutboxRelay(other_db, bus, outbox, batch_size=10),
    ]
    try:
        counts = await asyncio.gather(*(r.run_once() for r in relays))
    finally:
        await other_db.dispose()

    ids = [e.event_id for e in bus.published]
    assert len(ids) == 300
    assert set(ids) == {e.event_id for e in sent}
    assert sum(counts) == 300
    assert all(c > 0 for c in counts), "both relays took part"


async def test_backlog_counts_unpublished_rows_and_their_age(
    db: Database, bus: RecordingBus, make_relay: Callable[..., OutboxRelay]
) -> None:
    await enqueue_committed(db, trip_completed(1), trip_completed(2))
    async with db.transaction() as session:
        await session.execute(update(outbox).values(created_at=utcnow() - dt.timedelta(seconds=60)))
    relay = make_relay()

    count, age = await relay.backlog()

    assert count == 2
    assert 59 <= age < 120


async def test_purge_deletes_only_rows_published_long_ago(
    db: Database, bus: RecordingBus, make_relay: Callable[..., OutboxRelay]
) -> None:
    old, recent, pending = trip_completed(1), trip_completed(2), trip_completed(3)
    await enqueue_committed(db, old, recent)
    relay = make_relay()
    await relay.run_once()
    await enqueue_committed(db, pending)
    async with db.transaction() as session:
        await session.execute(
            update(outbox)
            .where(outbox.c.id == old.event_id)
            .values(published_at=utcnow() - dt.timedelta(hours=48))
        )

    assert await relay.purge(dt.timedelta(hours=24)) == 1

    async with db.session() as session:
        left = set((await session.execute(select(outbox.c.id))).scalars())
    assert left == {recent.event_id, pending.event_id}


# -- hand-over: a watched transaction's rows go from memory to the broker as it commits ---------
# (`OutboxRelay.watch`): nothing of a rolled-back transaction or savepoint leaves, a failed
# publish is backed off and sent by a scan, rows a relay never got to publish are sent by any
# relay once their grace passed — and within the grace no scan publishes them a second time.


async def watched_commit(db: Database, relay: OutboxRelay, *envelopes: Envelope) -> None:
    async with db.transaction() as session:
        relay.watch(session)
        for envelope in envelopes:
            await enqueue(session, envelope, table=outbox)


async def handing_over(make_relay: Callable[..., OutboxRelay], **options: Any) -> OutboxRelay:
    """A started relay that publishes only what is handed over: its first scan has found
    nothing, the next one is 30 s away, and a handed-over row is due for scans only after 60 s."""
    relay = make_relay(poll_interval=30.0, handoff_grace=60.0, **options)
    await relay.start()
    await asyncio.sleep(0.1)
    return relay


async def test_a_watched_transaction_is_published_as_it_commits_without_waiting_for_a_scan(
    db: Database, bus: RecordingBus, make_relay: Callable[..., OutboxRelay]
) -> None:
    relay = await handing_over(make_relay)
    sent = [trip_completed(n) for n in range(3)]

    await watched_commit(db, relay, *sent)

    await eventually(lambda: marked(db, *sent), within=2.0)
    assert bus.published_ids == [e.event_id for e in sent]
    stored = await outbox_row(db, sent[0].event_id)
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
            await enqueue(session, trip_completed(1), table=outbox)
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
    undone, kept, outer = trip_completed(1), trip_completed(2), trip_completed(3)

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
    sent = trip_completed(4)

    await watched_commit(db, relay, sent)

    async def backed_off() -> bool:
        return (await outbox_row(db, sent.event_id))["attempts"] == 1

    await eventually(backed_off)
    stored = await outbox_row(db, sent.event_id)
    assert stored["published_at"] is None
    assert "broker unreachable" in str(stored["last_error"])

    bus.down = False

    await eventually(lambda: marked(db, sent))
    assert bus.published_ids == [sent.event_id]


async def test_rows_a_relay_never_published_are_sent_by_another_once_their_grace_passed(
    db: Database, bus: RecordingBus, make_relay: Callable[..., OutboxRelay]
) -> None:
    crashed = make_relay(handoff_grace=0.5)  # never started: it dies right after the commit
    survivor = make_relay()
    sent = trip_completed(5)

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
    sent = trip_completed(6)

    await watched_commit(db, relay, sent)
    await asyncio.wait_for(bus.publishing.wait(), 5)  # the hand-over publish is under way

    assert await relay.run_once() == 0
    bus.gate.set()

    await eventually(lambda: marked(db, sent))
    assert bus.published_ids == [sent.event_id]


async def test_run_once_publishes_what_was_handed_over_even_without_the_loop(
    db: Database, bus: RecordingBus, make_relay: Callable[..., OutboxRelay]
) -> None:
    relay = make_relay(handoff_grace=60.0)  # never started
    sent = trip_completed(7)

    await watched_commit(db, relay, sent)
    await relay.run_once()

    assert bus.published_ids == [sent.event_id]
    assert await marked(db, sent)


async def test_stopping_publishes_what_was_handed_over_instead_of_leaving_it_for_the_grace(
    db: Database, bus: RecordingBus, make_relay: Callable[..., OutboxRelay]
) -> None:
    relay = await handing_over(make_relay)
    sent = [trip_completed(n) for n in range(10, 15)]

    await watched_commit(db, relay, *sent)
    await relay.stop()

    assert sorted(bus.published_ids) == sorted(e.event_id for e in sent)
    assert await marked(db, *sent)


async def test_rows_handed_over_one_after_another_are_published_at_once_and_marked_together(
    db: Database, bus: RecordingBus, make_relay: Callable[..., OutboxRelay]
) -> None:
    relay = await handing_over(make_relay, mark_interval=0.5)
    sent = [trip_completed(n) for n in range(20, 23)]

    with recorded_statements(db) as seen:
        for count, envelope in enumerate(sent, start=1):
            await watched_commit(db, relay, envelope)
            await eventually(lambda: len(bus.published_ids) == count)  # noqa: B023 (awaited here)
        assert not await marked(db, *sent)  # no mark between one publish and the next
        await eventually(lambda: marked(db, *sent))

    marks = [s for s in seen if s.startswith("UPDATE") and ".OUTBOX SET PUBLISHED_AT" in s]
    assert len(marks) == 1
    assert bus.published_ids == [e.event_id for e in sent]


class HoldingBus(RecordingBus):
    """Holds the publishes of chosen messages (a confirm that is slow to come) until released."""

    def __init__(self) -> None:
        super().__init__()
        self.held: set[uuid.UUID] = set()
        self.release = asyncio.Event()

    async def publish(self, envelope: Envelope, *, exchange: ExchangeName = "events") -> None:
        if envelope.event_id in self.held:
            await self.release.wait()
        await super().publish(envelope, exchange=exchange)


async def test_a_row_handed_over_while_a_batch_waits_for_its_confirms_leaves_at_once(
    db: Database,
) -> None:
    bus = HoldingBus()
    await bus.start()
    slow, quick = trip_completed(27), trip_completed(28)
    bus.held.add(slow.event_id)
    async with relay_factory(db, bus, outbox) as make:
        relay = make(poll_interval=30.0, handoff_grace=60.0, mark_interval=0.05)
        await relay.start()
        await watched_commit(db, relay, slow)
        await asyncio.sleep(0.1)  # its batch waits for the broker

        await watched_commit(db, relay, quick)
        await eventually(lambda: bus.published_ids == [quick.event_id])
        await eventually(lambda: marked(db, quick))
        assert not await marked(db, slow)

        bus.release.set()
        await eventually(lambda: marked(db, slow))
    assert bus.published_ids == [quick.event_id, slow.event_id]
    await bus.close()


async def test_a_marked_row_tells_when_the_broker_confirmed_it_not_when_the_mark_ran(
    db: Database, bus: RecordingBus, make_relay: Callable[..., OutboxRelay]
) -> None:
    # Rows handed over one after another wait for one mark; each keeps its own publish time.
    relay = await handing_over(make_relay, mark_interval=0.8)
    first, second = trip_completed(25), trip_completed(26)

    await watched_commit(db, relay, first)
    await eventually(lambda: bus.published_ids == [first.event_id])
    first_seen = utcnow()
    await asyncio.sleep(0.3)
    await watched_commit(db, relay, second)
    await eventually(lambda: len(bus.published_ids) == 2)
    second_seen = utcnow()
    await eventually(lambda: marked(db, first, second))
    mark_ran = utcnow()

    first_at = (await outbox_row(db, first.event_id))["published_at"]
    second_at = (await outbox_row(db, second.event_id))["published_at"]
    assert isinstance(first_at, dt.datetime)
    assert isinstance(second_at, dt.datetime)
    assert first_at <= first_seen < second_at <= second_seen
    assert mark_ran - first_at >= dt.timedelta(seconds=0.7)  # the mark came long after


async def test_a_published_row_waiting_for_its_mark_is_not_sent_again_by_a_scan(
    db: Database, bus: RecordingBus, make_relay: Callable[..., OutboxRelay]
) -> None:
    # Due at once (no grace) and not marked for a long while: only the relay's in-flight set
    # keeps its own scan from publishing the row a second time.
    relay = make_relay(poll_interval=30.0, handoff_grace=0.0, mark_interval=30.0)
    await relay.start()
    await asyncio.sleep(0.1)
    sent = trip_completed(24)

    await watched_commit(db, relay, sent)
    await eventually(lambda: bus.published_ids == [sent.event_id])
    relay.notify()
    await asyncio.sleep(0.3)
    assert not await marked(db, sent)

    await relay.stop()  # marks what it published
    assert await marked(db, sent)
    assert bus.published_ids == [sent.event_id]


# -- inbox --------------------------------------------------------------------------------


async def test_inbox_claim_is_granted_once_per_consumer(db: Database) -> None:
    event_id = uuid.uuid4()
    async with db.transaction() as session:
        assert await claim_inbox(session, "billing.trip-completed", event_id, table=inbox)
    async with db.transaction() as session:
        assert not await claim_inbox(session, "billing.trip-completed", event_id, table=inbox)
        assert await claim_inbox(session, "vehicle.trip-completed", event_id, table=inbox)


async def count_effect(session: AsyncSession, envelope: Envelope) -> None:
    key = f"n{envelope.data['n']}"
    done = await session.execute(
        update(effects).where(effects.c.key == key).values(count=effects.c.count + 1)
    )
    if not done.rowcount:  # type: ignore[attr-defined]
        await session.execute(effects.insert().values(key=key, count=1))


async def effect_count(db: Database) -> int:
    async with db.session() as session:
        return int(
            (
                await session.execute(select(func.coalesce(func.sum(effects.c.count), 0)))
            ).scalar_one()
        )


async def test_redelivered_event_has_its_effect_once(db: Database) -> None:
    handler = handle_once(db, "billing.trip-completed", count_effect, table=inbox)
    envelope = trip_completed(7)

    await handler(envelope)
    await handler(envelope)
    await handler(Envelope.decode(envelope.encode()))

    assert await effect_count(db) == 1


@pytest.mark.parametrize("max_batch", [1, 8])
async def test_an_inbox_row_tells_when_its_handling_began_although_the_claim_comes_last(
    db: Database, max_batch: int
) -> None:
    async def slow(session: AsyncSession, envelope: Envelope) -> None:
        await count_effect(session, envelope)
        await asyncio.sleep(0.3)

    handler = handle_once(db, "billing.trip-completed", slow, table=inbox, max_batch=max_batch)
    envelope = trip_completed(11)
    began = utcnow()
    await handler(envelope)
    ended = utcnow()

    async with db.session() as session:
        handled_at = (
            await session.execute(
                select(inbox.c.handled_at).where(inbox.c.event_id == envelope.event_id)
            )
        ).scalar_one()
    assert began <= handled_at < began + dt.timedelta(seconds=0.2) < ended


async def test_failed_handler_releases_its_inbox_claim(db: Database) -> None:
    calls = 0

    async def fails_first(session: AsyncSession, envelope: Envelope) -> None:
        nonlocal calls
        calls += 1
        await count_effect(session, envelope)
        if calls == 1:
            raise RuntimeError("downstream hiccup")

    handler = handle_once(db, "billing.trip-completed", fails_first, table=inbox)
    envelope = trip_completed(8)

    with pytest.raises(RuntimeError):
        await handler(envelope)
    assert await effect_count(db) == 0
    await handler(envelope)
    await handler(envelope)  # a redelivery: it runs, finds its claim taken and rolls back

    assert calls == 3
    assert await effect_count(db) == 1


async def test_duplicate_messages_through_the_bus_apply_once(
    db: Database, bus: RecordingBus
) -> None:
    handled = 0

    async def counting(session: AsyncSession, envelope: Envelope) -> None:
        nonlocal handled
        await count_effect(session, envelope)
        handled += 1

    await bus.subscribe(
        "billing.events", ["trip.*"], handle_once(db, "billing", counting, table=inbox), prefetch=4
    )
    envelope = trip_completed(9)
    for _ in range(3):
        await bus.publish(envelope)
    await bus.publish(trip_completed(10))

    # Each copy runs (claims are taken last); the copies after the first roll back, or fail
    # on its effect, and are acked as handled before — none is retried into a dead letter.
    await eventually(lambda: handled >= 2)
    await asyncio.sleep(0.3)
    assert await effect_count(db) == 2
    assert await bus.dead_letters("billing.events") == []


async def test_purge_inbox_forgets_only_entries_older_than_the_retention(db: Database) -> None:
    old, recent = uuid.uuid4(), uuid.uuid4()
    async with db.transaction() as session:
        assert await claim_inbox(session, "billing.trip-completed", old, table=inbox)
        assert await claim_inbox(session, "billing.trip-completed", recent, table=inbox)
        await session.execute(
            update(inbox)
            .where(inbox.c.event_id == old)
            .values(handled_at=utcnow() - dt.timedelta(days=8))
        )

    assert await purge_inbox(db, inbox, dt.timedelta(days=7)) == 1

    async with db.session() as session:
        left = set((await session.execute(select(inbox.c.event_id))).scalars())
    assert left == {recent}

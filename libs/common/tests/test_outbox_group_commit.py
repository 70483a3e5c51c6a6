"""Group commit: messages that queue up while a transaction runs share the next one.

On SQLite (embedded) and PostgreSQL. The rules of one-message transactions must still hold: a
message's effect, inbox row and outgoing messages commit together; a failing message is retried
alone; a duplicate has no effect; nothing of a rolled-back batch survives.
"""

from __future__ import annotations

import asyncio
import contextvars
import uuid
from collections.abc import AsyncIterator, Sequence

import pytest
from pydantic import ValidationError
from sqlalchemy import Column, Integer, String, Table, event, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from fleet.common._group_commit import claim_inbox_many
from fleet.common.config import Settings
from fleet.common.db import Database, after_commit, service_metadata
from fleet.common.messaging import Envelope
from fleet.common.outbox import (
    BatchHooks,
    GroupCommit,
    enqueue,
    handle_once,
    inbox_table,
    outbox_table,
)
from fleet.common.testing import recorded_statements, tables_database

SCHEMA = "group_commit_test"
metadata = service_metadata(SCHEMA)
outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
effects = Table(
    "effects",
    metadata,
    Column("key", String(50), primary_key=True),
    Column("n", Integer, nullable=False),
)
CONSUMER = "test.events"
who = contextvars.ContextVar("who", default="nobody")


@pytest.fixture
async def db(backend_url: str) -> AsyncIterator[Database]:
    async with tables_database(backend_url, SCHEMA, metadata) as database:
        yield database


def message(n: int) -> Envelope:
    return Envelope.new(
        "test.happened",
        {"n": n},
        producer="test",
        aggregate_type="thing",
        aggregate_id=uuid.uuid4(),
    )


async def record(session: AsyncSession, envelope: Envelope) -> None:
    """The effect: a row per message, and a message out."""
    n = envelope.data["n"]
    await session.execute(effects.insert().values(key=f"n{n}", n=n))
    await enqueue(session, message(1000 + n), table=outbox)


def counting_commits(db: Database) -> list[int]:
    commits: list[int] = []
    event.listen(db.engine.sync_engine, "commit", lambda _conn: commits.append(1))
    return commits


async def rows(db: Database, table: Table) -> int:
    async with db.session() as session:
        return int((await session.execute(select(func.count()).select_from(table))).scalar_one())


async def run_together(handler: object, envelopes: list[Envelope]) -> list[BaseException | None]:
    """Deliver `envelopes` at once, as a consumer with that many prefetched messages does."""
    assert callable(handler)
    results = await asyncio.gather(*(handler(e) for e in envelopes), return_exceptions=True)
    return [r if isinstance(r, BaseException) else None for r in results]


def group_of(handler: object) -> GroupCommit:
    group = getattr(handler, "group", None)
    assert isinstance(group, GroupCommit)
    return group


async def test_messages_arriving_together_commit_in_one_transaction(db: Database) -> None:
    handler = handle_once(db, CONSUMER, record, table=inbox, max_batch=32)
    commits = counting_commits(db)

    assert await run_together(handler, [message(1)]) == [None]
    lone = len(commits)
    assert await run_together(handler, [message(n) for n in range(2, 12)]) == [None] * 10

    assert len(commits) - lone == 1
    assert group_of(handler).batches == 1
    assert await rows(db, effects) == 11
    assert await rows(db, inbox) == 11
    assert await rows(db, outbox) == 11


async def test_a_failing_message_fails_alone_and_the_rest_of_its_batch_commits(
    db: Database,
) -> None:
    async def poison_three(session: AsyncSession, envelope: Envelope) -> None:
        await record(session, envelope)
        if envelope.data["n"] == 3:
            raise RuntimeError("cannot handle three")

    handler = handle_once(db, CONSUMER, poison_three, table=inbox, max_batch=32)
    envelopes = [message(n) for n in range(1, 7)]

    results = await run_together(handler, envelopes)

    assert [type(r).__name__ if r else None for r in results] == [
        None,
        None,
        "RuntimeError",
        None,
        None,
        None,
    ]
    assert group_of(handler).fallbacks == 1
    async with db.session() as session:
        keys = set((await session.execute(select(effects.c.key))).scalars())
        claimed = set((await session.execute(select(inbox.c.event_id))).scalars())
    assert keys == {"n1", "n2", "n4", "n5", "n6"}
    assert claimed == {e.event_id for e in envelopes} - {envelopes[2].event_id}
    assert await rows(db, outbox) == 5

    # The bus retries the failed one later: it runs again (still failing, still alone).
    assert await run_together(handler, [envelopes[2]]) != [None]
    assert await rows(db, effects) == 5


async def test_a_message_twice_in_a_batch_or_already_handled_has_one_effect(
    db: Database,
) -> None:
    handler = handle_once(db, CONSUMER, record, table=inbox, max_batch=32)
    seen, new = message(1), message(2)
    await handler(seen)

    results = await run_together(handler, [message(3), seen, new, new, seen])

    assert results == [None] * 5
    assert await rows(db, effects) == 3
    assert await rows(db, inbox) == 3
    assert await rows(db, outbox) == 3


@pytest.mark.parametrize("backend_url", ["postgres"], indirect=True)
async def test_claims_of_any_batch_size_share_one_statement_on_postgresql(db: Database) -> None:
    # One SQL text, so one prepared statement per connection, whatever the batch's size.
    with recorded_statements(db) as seen:
        for size in (2, 5, 3):
            async with db.transaction() as session:
                ids = [uuid.uuid4() for _ in range(size)]
                assert await claim_inbox_many(session, CONSUMER, ids, table=inbox) == set(ids)

    assert len(seen) == 3
    assert len(set(seen)) == 1
    assert await rows(db, inbox) == 10


async def test_outbox_rows_enqueued_in_a_rolled_back_savepoint_are_not_sent(
    db: Database,
) -> None:
    async def refuse_odd(session: AsyncSession, envelope: Envelope) -> None:
        n = envelope.data["n"]
        await enqueue(session, message(2000 + n), table=outbox)  # kept: outside the savepoint
        try:
            async with session.begin_nested():
                await enqueue(session, message(3000 + n), table=outbox)
                if n % 2:
                    raise ValueError("odd")
        except ValueError:
            pass

    handler = handle_once(db, CONSUMER, refuse_odd, table=inbox, max_batch=32)

    assert await run_together(handler, [message(n) for n in range(1, 7)]) == [None] * 6

    async with db.session() as session:
        sent = sorted(
            int(Envelope.decode(body).data["n"])
            for body in (await session.execute(select(outbox.c.body))).scalars()
        )
    assert sent == [2001, 2002, 2003, 2004, 2005, 2006, 3002, 3004, 3006]


async def test_after_commit_work_of_a_failed_batch_runs_once_per_committed_message(
    db: Database,
) -> None:
    announced: list[int] = []

    async def announce(session: AsyncSession, envelope: Envelope) -> None:
        await record(session, envelope)
        n = envelope.data["n"]
        after_commit(session, lambda: announced.append(n))
        if n == 4:
            raise RuntimeError("four fails")

    handler = handle_once(db, CONSUMER, announce, table=inbox, max_batch=32)

    await run_together(handler, [message(n) for n in range(1, 7)])

    assert sorted(announced) == [1, 2, 3, 5, 6]


async def test_each_handler_runs_in_the_context_its_message_arrived_in(db: Database) -> None:
    saw: dict[int, str] = {}

    async def remember(session: AsyncSession, envelope: Envelope) -> None:
        await record(session, envelope)
        saw[envelope.data["n"]] = who.get()

    handler = handle_once(db, CONSUMER, remember, table=inbox, max_batch=32)

    async def deliver(n: int) -> None:
        who.set(f"consumer of {n}")  # as the tracing wrapper's span does, per message
        await handler(message(n))

    await asyncio.gather(*(deliver(n) for n in range(1, 6)))

    assert saw == {n: f"consumer of {n}" for n in range(1, 6)}
    assert group_of(handler).batches == 1


async def test_batches_are_capped_at_max_batch(db: Database) -> None:
    handler = handle_once(db, CONSUMER, record, table=inbox, max_batch=4)
    commits = counting_commits(db)

    assert await run_together(handler, [message(n) for n in range(1, 11)]) == [None] * 10

    assert len(commits) == 3  # 4 + 4 + 2
    assert await rows(db, effects) == 10


def test_a_group_commit_of_one_message_is_refused() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        GroupCommit(
            Database("sqlite+aiosqlite://", SCHEMA),
            CONSUMER,
            record,
            record,  # type: ignore[arg-type]
            table=inbox,
            relay=None,
            max_batch=1,
        )


async def test_a_closing_consumer_waits_for_its_running_batch_and_drops_the_queued_ones(
    db: Database,
) -> None:
    started, release = asyncio.Event(), asyncio.Event()

    async def slow(session: AsyncSession, envelope: Envelope) -> None:
        await record(session, envelope)
        started.set()
        await release.wait()

    handler = handle_once(db, CONSUMER, slow, table=inbox, max_batch=32)
    running = [asyncio.ensure_future(handler(message(n))) for n in (1, 2, 3)]
    await started.wait()
    queued = asyncio.ensure_future(handler(message(9)))
    await asyncio.sleep(0.01)

    for task in (*running, queued):
        task.cancel()
    await asyncio.sleep(0.05)
    assert queued.done()
    assert not any(task.done() for task in running)  # still inside their transaction

    release.set()
    outcomes = await asyncio.gather(*running, queued, return_exceptions=True)

    assert all(isinstance(o, asyncio.CancelledError) for o in outcomes)
    # The batch committed (unacked, its messages come back and find their inbox rows); the
    # queued message was never started.
    async with db.session() as session:
        keys = set((await session.execute(select(effects.c.key))).scalars())
    assert keys == {"n1", "n2", "n3"}


def test_one_message_per_transaction_is_kept_with_max_batch_one(db: Database) -> None:
    handler = handle_once(db, CONSUMER, record, table=inbox, max_batch=1)

    assert getattr(handler, "group", None) is None


def test_the_consumer_batch_setting_defaults_to_32_and_refuses_zero(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FLEET_CONSUMER_BATCH", raising=False)
    assert Settings(_env_file=None).consumer_batch == 32
    monkeypatch.setenv("FLEET_CONSUMER_BATCH", "0")
    with pytest.raises(ValidationError, match="FLEET_CONSUMER_BATCH"):
        Settings(_env_file=None)


async def test_batch_hooks_run_once_around_a_batch_with_only_the_messages_it_handles(
    db: Database,
) -> None:
    calls: list[tuple[str, object]] = []

    async def prepare(session: AsyncSession, envelopes: Sequence[Envelope]) -> None:
        calls.append(("prepare", sorted(e.data["n"] for e in envelopes)))

    async def finish(session: AsyncSession) -> None:  # after the handlers, in their transaction
        done = (await session.execute(select(func.count()).select_from(effects))).scalar_one()
        calls.append(("finish", done))

    hooks = BatchHooks(prepare=prepare, finish=finish)
    handler = handle_once(db, CONSUMER, record, table=inbox, max_batch=32, hooks=hooks)
    first = message(1)
    assert await run_together(handler, [first]) == [None]
    assert calls == []  # a message handled alone runs no hook

    twice = message(4)
    batch = [message(2), message(3), twice, twice]  # one of them twice
    assert await run_together(handler, batch) == [None] * 4

    assert calls == [("prepare", [2, 3, 4]), ("finish", 4)]
    assert await rows(db, effects) == 4


async def test_a_batch_holding_a_message_handled_before_is_redone_one_by_one(
    db: Database,
) -> None:
    handler = handle_once(db, CONSUMER, enqueue_only, table=inbox, max_batch=32)
    handled = message(1)
    assert await run_together(handler, [handled]) == [None]

    batch = [message(2), handled, message(3)]
    assert await run_together(handler, batch) == [None] * 3

    assert group_of(handler).fallbacks == 1  # the claim found message 1 taken: rolled back
    assert await rows(db, inbox) == 3
    assert await rows(db, outbox) == 3  # one out per message: the redelivery sent nothing


async def test_a_redelivery_whose_handler_fails_on_its_first_effect_is_acked(
    db: Database,
) -> None:
    handler = handle_once(db, CONSUMER, record, table=inbox)  # one message per transaction
    first = message(1)
    await handler(first)

    await handler(first)  # `record` hits its own row (unique key): handled before, acked

    assert (await rows(db, effects), await rows(db, inbox), await rows(db, outbox)) == (1, 1, 1)
    with pytest.raises(IntegrityError):  # a new message failing on it is not acked
        await handler(message(1))


@pytest.mark.parametrize("backend_url", ["postgres"], indirect=True)
async def test_a_message_is_its_statements_and_one_for_its_claim_and_outbox(
    db: Database,
) -> None:
    handler = handle_once(db, CONSUMER, record, table=inbox)
    with recorded_statements(db) as seen:
        await handler(message(1))
    # The effect, then the inbox claim with the outgoing message as one statement.
    assert [q.split()[0] for q in seen] == ["INSERT", "WITH"]
    assert "INTO GROUP_COMMIT_TEST.INBOX" in seen[1]
    assert "INTO GROUP_COMMIT_TEST.OUTBOX" in seen[1]


async def enqueue_only(session: AsyncSession, envelope: Envelope) -> None:
    await enqueue(session, message(1000 + envelope.data["n"]), table=outbox)

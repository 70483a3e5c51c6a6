"""The saga store's few statements: one query per load, one statement per save (PostgreSQL), one
of each for a whole batch of replies, and what they must not lose on the way (a concurrent
writer's steps, exact values, atomicity)."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import Column, String, Table, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from fleet.common.db import Database, service_metadata
from fleet.common.messaging import Envelope
from fleet.common.saga import (
    Phase,
    SagaCommand,
    SagaDefinition,
    SagaEngine,
    SagaInstance,
    SagaReply,
    SagaStatus,
    Step,
    StepStatus,
    no_savepoint,
    saga_tables,
)
from fleet.common.saga._store import SagaConcurrencyError, SagaStore
from fleet.common.testing import CommandOutbox, recorded_statements, tables_database

SCHEMA = "saga_store_test"
METADATA = service_metadata(SCHEMA)
TABLES = saga_tables(METADATA)
OUTBOX = CommandOutbox(METADATA)
NOTES = Table("notes", METADATA, Column("saga_id", String(36), primary_key=True))

# The booking saga's shape once quoting is local: a local step first, then remote ones.
BOOKING = SagaDefinition(
    "booking",
    [
        Step("quote-fare", "trip.quote-fare", local=True),
        Step("reserve-credits", "user.reserve-credits", "user.release-credits"),
        Step("create-trip", "trip.create-trip", "trip.cancel-trip", local=True),
        Step("send-confirmation", "user.send-confirmation"),
    ],
)


async def quote(session: AsyncSession, saga: SagaInstance) -> dict[str, Any]:
    await session.execute(insert(NOTES).values(saga_id=str(saga.id)))
    return {"fare_cents": 1250}


async def assign(_session: AsyncSession, _saga: SagaInstance) -> dict[str, Any]:
    return {"trip": "assigned"}


async def unassign(_session: AsyncSession, _saga: SagaInstance) -> None:
    return None


def make_engine(**locals_: Any) -> SagaEngine:
    actions = {"quote-fare": quote, "create-trip": assign} | locals_
    return SagaEngine(BOOKING, OUTBOX.send, actions, {"create-trip": unassign}, tables=TABLES)


@pytest.fixture
async def db(backend_url: str) -> AsyncIterator[Database]:
    async with tables_database(backend_url, SCHEMA, METADATA) as database:
        yield database


async def last_command(db: Database) -> SagaCommand:
    return (await OUTBOX.sent(db))[-1]


async def reply(db: Database, engine: SagaEngine, **kwargs: Any) -> SagaInstance | None:
    command = await last_command(db)
    async with db.transaction() as s:
        return await engine.handle_reply(s, command.reply(success=True, **kwargs))


@pytest.mark.parametrize("backend_url", ["postgres"], indirect=True)  # PostgreSQL's counts
async def test_on_postgresql_start_and_each_reply_write_the_saga_with_one_statement(
    db: Database,
) -> None:
    engine = make_engine(**{"create-trip": no_savepoint(assign)})
    saga_id = uuid.uuid4()

    with recorded_statements(db) as started:
        async with db.transaction() as s:
            await engine.start(s, saga_id, {"rider": "r-1"})

    async def answer_last() -> tuple[list[str], SagaInstance | None]:
        command = await last_command(db)
        with recorded_statements(db) as seen:
            async with db.transaction() as s:
                outcome = await engine.handle_reply(s, command.reply(success=True))
        return seen, outcome

    replied, _ = await answer_last()  # reserve-credits; create-trip runs locally, unguarded
    completed, done = await answer_last()

    # start: the local quote in its savepoint, the command, then the saga and its steps at once
    assert [s.split(" ")[0] for s in started] == [
        "SAVEPOINT",
        "INSERT",
        "RELEASE",
        "INSERT",
        "WITH",
    ]
    # a reply: one locking load, the next command, one save; no savepoint for a marked step
    assert [s.split(" ")[0] for s in replied] == ["SELECT", "INSERT", "WITH"]
    assert [s.split(" ")[0] for s in completed] == ["SELECT", "WITH"]
    assert done is not None
    assert done.status is SagaStatus.COMPLETED


async def test_a_saga_whose_first_step_is_local_leaves_nothing_when_its_transaction_rolls_back(
    db: Database,
) -> None:
    # On SQLite the savepoint of the first local step must not be the transaction's first
    # statement: its RELEASE would commit it.
    engine = make_engine()
    saga_id = uuid.uuid4()

    async def start_then_fail() -> None:
        async with db.transaction() as s:
            await engine.start(s, saga_id, {"rider": "r-1"})
            raise RuntimeError("the owner's own write failed")

    with pytest.raises(RuntimeError):
        await start_then_fail()

    async with db.session() as s:
        assert await engine.get(s, saga_id) is None
        assert (await s.execute(select(NOTES))).all() == []
        assert (await s.execute(select(OUTBOX.table))).all() == []


async def test_a_saved_saga_loads_back_exactly(db: Database) -> None:
    engine = make_engine()
    saga_id = uuid.uuid4()
    async with db.transaction() as s:
        started = await engine.start(s, saga_id, {"rider": "r-1", "note": 'quoted "ünïcode"'})
    await reply(db, engine, result={"hold": {"id": "h-1", "cents": [1, 2]}})
    command = await last_command(db)
    async with db.transaction() as s:
        failed = await engine.handle_reply(
            s, command.reply(success=False, error="push: 'down' \\ 100%")
        )

    async with db.session() as s:
        loaded = await engine.get(s, saga_id)
    assert loaded is not None
    assert loaded == failed
    assert loaded.status is SagaStatus.COMPENSATING
    assert loaded.data["note"] == 'quoted "ünïcode"'
    assert loaded.created_at == started.created_at
    assert [(r.name, r.phase.value, r.status.value, r.attempts) for r in loaded.steps] == [
        ("quote-fare", "action", "succeeded", 1),
        ("reserve-credits", "action", "succeeded", 1),
        ("reserve-credits", "compensation", "compensating", 1),
        ("create-trip", "action", "succeeded", 1),
        ("create-trip", "compensation", "compensated", 1),
        ("send-confirmation", "action", "failed", 1),
    ]
    steps = {(r.name, r.phase): r for r in loaded.steps}
    assert steps["quote-fare", Phase.ACTION].result == {"fare_cents": 1250}
    assert steps["reserve-credits", Phase.ACTION].result == {"hold": {"id": "h-1", "cents": [1, 2]}}
    assert steps["send-confirmation", Phase.ACTION].error == "push: 'down' \\ 100%"
    assert steps["reserve-credits", Phase.COMPENSATION].finished_at is None
    assert all(r.started_at is not None and r.started_at.tzinfo is dt.UTC for r in loaded.steps)


async def test_a_locking_load_that_waited_for_a_concurrent_save_sees_that_saves_steps(
    db: Database,
) -> None:
    engine, store = make_engine(), SagaStore(TABLES)
    saga_id = uuid.uuid4()
    async with db.transaction() as s:
        started = await engine.start(s, saga_id, {"rider": "r-1"})
    saved = asyncio.Event()

    async def writer() -> None:
        async with db.transaction() as s:
            state = await store.load(s, saga_id, lock=True)
            assert state is not None
            record = state.action(1)
            record.status, record.attempts = StepStatus.SUCCEEDED, 7
            state.compensation(1, "reserve-credits").status = StepStatus.COMPENSATING
            await store.save(s, state)
            saved.set()
            await asyncio.sleep(0.3)  # the reader queues behind this lock meanwhile

    async def reader() -> tuple[int, StepStatus, int, int]:
        await saved.wait()
        async with db.transaction() as s:
            state = await store.load(s, saga_id, lock=True)
        assert state is not None
        record = state.action(1)
        return state.version, record.status, record.attempts, len(state.steps)

    _, seen = await asyncio.gather(writer(), reader())

    assert seen == (started.version + 1, StepStatus.SUCCEEDED, 7, 5)


async def test_a_local_step_marked_no_savepoint_that_fails_is_compensated_without_one(
    db: Database,
) -> None:
    async def refuse(_session: AsyncSession, _saga: SagaInstance) -> None:
        raise LookupError("the trip is gone")

    engine = make_engine(**{"create-trip": no_savepoint(refuse)})
    saga_id = uuid.uuid4()
    async with db.transaction() as s:
        await engine.start(s, saga_id, {"rider": "r-1"})
    command = await last_command(db)

    with recorded_statements(db) as seen:
        async with db.transaction() as s:
            after = await engine.handle_reply(s, command.reply(success=True))

    assert after is not None
    assert after.status is SagaStatus.COMPENSATING
    assert after.error == "step create-trip failed: LookupError: the trip is gone"
    assert not any(statement.startswith("SAVEPOINT") for statement in seen)
    release = await last_command(db)
    assert (release.step, release.phase) == ("reserve-credits", Phase.COMPENSATION)


# --- a batch of replies (group commit): one load and one save for all of its sagas ---------


def as_envelope(reply: SagaReply) -> Envelope:
    """A reply as the orchestrator's consumer receives it."""
    data = reply.to_dict()
    return Envelope.new(
        "saga.reply", data, producer="test", aggregate_type="saga", aggregate_id=reply.saga_id
    )


async def start_sagas(db: Database, engine: SagaEngine, count: int) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in range(count)]
    for saga_id in ids:
        async with db.transaction() as s:
            await engine.start(s, saga_id, {"rider": "r-1"})
    return ids


async def pending_replies(db: Database, ids: list[uuid.UUID]) -> list[SagaReply]:
    """A successful reply to the last command each saga sent."""
    last = {c.saga_id: c for c in await OUTBOX.sent(db)}
    return [last[saga_id].reply(success=True) for saga_id in ids]


async def apply_as_batch(
    db: Database, engine: SagaEngine, replies: list[SagaReply]
) -> list[SagaInstance | None]:
    """What trip's reply consumer does with a batch: the engine's hooks around the handlers."""
    hooks = engine.batch_hooks()
    async with db.transaction() as s:
        await hooks.prepare(s, [as_envelope(r) for r in replies])
        outcomes = [await engine.handle_reply(s, r) for r in replies]
        await hooks.finish(s)
    return outcomes


async def test_a_batch_of_replies_leaves_each_saga_as_replies_applied_one_by_one_would(
    db: Database,
) -> None:
    engine = make_engine()
    batched, alone = await start_sagas(db, engine, 3), await start_sagas(db, engine, 3)

    outcomes = await apply_as_batch(db, engine, await pending_replies(db, batched))
    for reply_ in await pending_replies(db, alone):
        async with db.transaction() as s:
            await engine.handle_reply(s, reply_)
    outcomes += await apply_as_batch(db, engine, await pending_replies(db, batched))
    for reply_ in await pending_replies(db, alone):
        async with db.transaction() as s:
            await engine.handle_reply(s, reply_)

    def shape(saga: SagaInstance | None) -> tuple[Any, ...]:
        assert saga is not None
        steps = [(r.name, r.phase, r.status, r.attempts, r.result) for r in saga.steps]
        return saga.status, saga.current_step, saga.version, saga.data, steps

    async with db.session() as s:
        stored = {i: await engine.get(s, i) for i in batched + alone}
    assert all(shape(stored[i]) == shape(stored[alone[0]]) for i in batched + alone)
    assert shape(stored[alone[0]])[0] is SagaStatus.COMPLETED
    assert [stored[i] for i in batched] == outcomes[3:]  # what the batch answered is what it saved


@pytest.mark.parametrize("backend_url", ["postgres"], indirect=True)  # PostgreSQL's counts
async def test_on_postgresql_a_batch_of_replies_loads_its_sagas_with_one_query_and_saves_with_one(
    db: Database,
) -> None:
    engine = make_engine(**{"create-trip": no_savepoint(assign)})
    replies = await pending_replies(db, await start_sagas(db, engine, 4))

    with recorded_statements(db) as seen:
        await apply_as_batch(db, engine, replies)

    # one locking load of the four sagas, the four next commands, one save of the four
    assert [s.split(" ")[0] for s in seen] == ["SELECT"] + ["INSERT"] * 4 + ["WITH"]
    assert "FOR UPDATE" in seen[0]


@pytest.mark.parametrize("backend_url", ["postgres"], indirect=True)
async def test_a_saga_read_again_in_its_batch_sees_its_held_back_save_first(db: Database) -> None:
    engine, store = make_engine(), SagaStore(TABLES)
    [saga_id] = await start_sagas(db, engine, 1)

    async with db.transaction() as s:
        await store.prefetch(s, [saga_id])
        with recorded_statements(db) as first_load:
            state = await store.load(s, saga_id, lock=True)
        assert state is not None
        state.action(1).attempts = 5
        with recorded_statements(db) as held_back:
            await store.save(s, state)
        with recorded_statements(db) as second_load:
            again = await store.load(s, saga_id, lock=True)
        assert again is not None
        read_again = (again.version, again.action(1).attempts)
        again.action(1).attempts = 6
        await store.save(s, again)
        await store.flush(s)

    assert first_load == held_back == []  # taken from the prefetch; saved by `flush` later
    assert [s.split(" ")[0] for s in second_load] == ["WITH", "SELECT"]
    assert read_again == (state.version, 5)
    async with db.session() as s:
        stored = await store.load(s, saga_id, lock=False)
    assert stored is not None
    assert (stored.version, stored.action(1).attempts) == (again.version, 6)


@pytest.mark.parametrize("backend_url", ["postgres"], indirect=True)
async def test_a_held_back_save_whose_saga_moved_meanwhile_fails_the_batch(db: Database) -> None:
    engine, store = make_engine(), SagaStore(TABLES)
    [saga_id] = await start_sagas(db, engine, 1)

    async def save_after_a_move() -> None:
        async with db.transaction() as s:
            await store.prefetch(s, [saga_id])
            state = await store.load(s, saga_id, lock=True)
            assert state is not None
            state.action(1).attempts = 9
            await store.save(s, state)
            sagas = TABLES.sagas
            await s.execute(
                sagas.update().where(sagas.c.id == saga_id).values(version=sagas.c.version + 7)
            )
            await store.flush(s)

    with pytest.raises(SagaConcurrencyError):
        await save_after_a_move()
    async with db.session() as s:
        stored = await store.load(s, saga_id, lock=False)
    assert stored is not None
    assert stored.action(1).attempts == 1  # the batch rolled back as a whole


@pytest.mark.parametrize("backend_url", ["postgres"], indirect=True)
async def test_a_prefetch_that_waited_for_a_concurrent_save_reads_that_saga_again(
    db: Database,
) -> None:
    engine, store = make_engine(), SagaStore(TABLES)
    [saga_id, other] = await start_sagas(db, engine, 2)
    saved = asyncio.Event()

    async def writer() -> None:
        async with db.transaction() as s:
            state = await store.load(s, saga_id, lock=True)
            assert state is not None
            state.action(1).status, state.action(1).attempts = StepStatus.SUCCEEDED, 7
            await store.save(s, state)
            saved.set()
            await asyncio.sleep(0.3)  # the batch's prefetch queues behind this lock meanwhile

    async def batch() -> tuple[int, StepStatus, int]:
        await saved.wait()
        async with db.transaction() as s:
            await store.prefetch(s, [other, saga_id])
            state = await store.load(s, saga_id, lock=True)
            await store.flush(s)
        assert state is not None
        return state.version, state.action(1).status, state.action(1).attempts

    _, seen = await asyncio.gather(writer(), batch())

    assert seen == (2, StepStatus.SUCCEEDED, 7)

"""The saga engine under trouble: duplicates, stale replies, timeouts, restarts, races.

Same transactional `CommandOutbox` double as test_saga_engine_flow: commands are outbox rows.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from fleet.common.db import Database, service_metadata
from fleet.common.saga import (
    Phase,
    SagaCommand,
    SagaConcurrencyError,
    SagaDefinition,
    SagaEngine,
    SagaInstance,
    SagaReply,
    SagaStatus,
    Step,
    StepStatus,
    saga_tables,
)
from fleet.common.saga._store import SagaStore
from fleet.common.testing import CommandOutbox, tables_database

SCHEMA = "saga_recovery_test"
METADATA = service_metadata(SCHEMA)
TABLES = saga_tables(METADATA)
OUTBOX = CommandOutbox(METADATA)

BOOKING = SagaDefinition.from_dict(
    {
        "name": "TripBookingSaga",
        "steps": [
            {"name": "reserve-credits", "action": "user.reserve-credits",
             "compensation": "user.release-credits", "timeout_s": 5},
            {"name": "reserve-vehicle", "action": "vehicle.reserve-vehicle",
             "compensation": "vehicle.release-vehicle", "timeout_s": 10, "retries": 1},
            {"name": "create-trip", "action": "trip.create-trip",
             "compensation": "trip.cancel-trip", "local": True},
            {"name": "send-confirmation", "action": "user.send-confirmation",
             "compensation": "user.send-cancellation", "timeout_s": 5},
        ],
    }
)  # fmt: skip
T0 = dt.datetime(2030, 1, 1, 12, 0, tzinfo=dt.UTC)


class FakeClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> dt.datetime:
        self.now += dt.timedelta(seconds=seconds)
        return self.now


async def create_trip(session: AsyncSession, saga: SagaInstance) -> dict[str, Any]:
    return {"trip": "created"}


async def cancel_trip(session: AsyncSession, saga: SagaInstance) -> None:
    return None


@pytest.fixture
async def db(backend_url: str) -> AsyncIterator[Database]:
    async with tables_database(backend_url, SCHEMA, METADATA) as database:
        yield database


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_engine(clock: FakeClock, **kwargs: Any) -> SagaEngine:
    return SagaEngine(
        BOOKING,
        kwargs.pop("send", OUTBOX.send),
        {"create-trip": create_trip},
        {"create-trip": cancel_trip},
        tables=TABLES,
        clock=clock,
        **kwargs,
    )


@pytest.fixture
def engine(clock: FakeClock) -> SagaEngine:
    return make_engine(clock)


async def start(db: Database, engine: SagaEngine) -> uuid.UUID:
    saga_id = uuid.uuid4()
    async with db.transaction() as s:
        await engine.start(s, saga_id, {"rider_id": "r-1"})
    return saga_id


async def reply(db: Database, engine: SagaEngine, message: SagaReply) -> SagaInstance | None:
    async with db.transaction() as s:
        return await engine.handle_reply(s, message)


async def answer_last(
    db: Database, engine: SagaEngine, success: bool = True
) -> SagaInstance | None:
    command = (await OUTBOX.sent(db))[-1]
    return await reply(db, engine, command.reply(success=success, error=None if success else "no"))


async def sweep(db: Database, engine: SagaEngine, now: dt.datetime) -> int:
    async with db.transaction() as s:
        return await engine.sweep(s, now)


async def load(db: Database, engine: SagaEngine, saga_id: uuid.UUID) -> SagaInstance:
    async with db.session() as s:
        saga = await engine.get(s, saga_id)
    assert saga is not None
    return saga


async def test_a_duplicate_reply_changes_nothing(db: Database, engine: SagaEngine) -> None:
    saga_id = await start(db, engine)
    first = (await OUTBOX.sent(db))[-1].reply(success=True, result={"hold_id": "h-1"})
    await reply(db, engine, first)
    before = await load(db, engine, saga_id)

    assert await reply(db, engine, first) is None

    assert await load(db, engine, saga_id) == before
    assert len(await OUTBOX.sent(db)) == 2


async def test_replies_for_another_attempt_phase_step_or_saga_are_ignored(
    db: Database, engine: SagaEngine
) -> None:
    saga_id = await start(db, engine)
    command = (await OUTBOX.sent(db))[-1]
    before = await load(db, engine, saga_id)
    strays = [
        command.reply(success=True).model_copy(update={"attempt": 2}),
        command.reply(success=True).model_copy(update={"phase": Phase.COMPENSATION}),
        command.reply(success=True).model_copy(update={"step": "reserve-vehicle"}),
        command.reply(success=False).model_copy(update={"step": "create-trip"}),
        command.reply(success=True).model_copy(update={"saga_id": uuid.uuid4()}),
    ]

    for stray in strays:
        assert await reply(db, engine, stray) is None

    assert await load(db, engine, saga_id) == before
    assert len(await OUTBOX.sent(db)) == 1


async def test_a_timed_out_step_is_compensated_through_sweep_and_its_late_reply_ignored(
    db: Database, engine: SagaEngine, clock: FakeClock
) -> None:
    saga_id = await start(db, engine)
    await answer_last(db, engine)
    await answer_last(db, engine)  # reserve-credits ok; then create-trip, confirmation sent
    late = (await OUTBOX.sent(db))[-1].reply(success=True)

    assert await sweep(db, engine, clock.advance(4.9)) == 0
    assert await sweep(db, engine, clock.advance(0.2)) == 1

    saga = await load(db, engine, saga_id)
    assert saga.status is SagaStatus.COMPENSATING
    assert saga.error == "step send-confirmation timed out"
    last = next(r for r in saga.steps if r.name == "send-confirmation")
    assert last.status is StepStatus.TIMED_OUT
    assert last.error == "no reply within 5s (attempt 1)"
    # The participant may have acted without answering, so its step is compensated first.
    cancellation = (await OUTBOX.sent(db))[-1]
    assert (cancellation.command_type, cancellation.attempt) == ("user.send-cancellation", 1)
    assert await reply(db, engine, late) is None
    await answer_last(db, engine)
    await answer_last(db, engine)
    done = await answer_last(db, engine)
    assert done is not None
    assert done.status is SagaStatus.COMPENSATED
    assert [c.command_type for c in await OUTBOX.sent(db) if c.phase is Phase.COMPENSATION] == [
        "user.send-cancellation",
        "vehicle.release-vehicle",
        "user.release-credits",
    ]


async def test_an_action_with_retries_is_resent_before_it_times_out(
    db: Database, engine: SagaEngine, clock: FakeClock
) -> None:
    saga_id = await start(db, engine)
    await answer_last(db, engine)

    assert await sweep(db, engine, clock.advance(10)) == 1
    resent = (await OUTBOX.sent(db))[-1]
    assert (resent.step, resent.phase, resent.attempt) == ("reserve-vehicle", Phase.ACTION, 2)
    stale = resent.reply(success=True).model_copy(update={"attempt": 1})
    assert await reply(db, engine, stale) is None
    done_step = await reply(db, engine, resent.reply(success=True))

    assert done_step is not None
    assert done_step.status is SagaStatus.RUNNING
    row = next(r for r in done_step.steps if r.name == "reserve-vehicle")
    assert (row.status, row.attempts) == (StepStatus.SUCCEEDED, 2)
    assert (await load(db, engine, saga_id)).steps[-1].name == "send-confirmation"


async def test_a_compensation_that_times_out_is_resent_with_a_higher_attempt(
    db: Database, engine: SagaEngine, clock: FakeClock
) -> None:
    saga_id = await start(db, engine)
    await answer_last(db, engine)
    await answer_last(db, engine, success=False)  # vehicle refused; credits released
    first = (await OUTBOX.sent(db))[-1]
    assert (first.command_type, first.attempt) == ("user.release-credits", 1)

    assert await sweep(db, engine, clock.advance(5)) == 1
    assert await sweep(db, engine, clock.advance(5)) == 1

    resends = [c for c in await OUTBOX.sent(db) if c.command_type == "user.release-credits"]
    assert [c.attempt for c in resends] == [1, 2, 3]
    assert len({c.idempotency_key for c in resends}) == 1
    assert await reply(db, engine, resends[0].reply(success=True)) is None
    done = await reply(db, engine, resends[-1].reply(success=True))
    assert done is not None
    assert done.status is SagaStatus.COMPENSATED
    row = next(r for r in done.steps if r.phase is Phase.COMPENSATION)
    assert (row.status, row.attempts) == (StepStatus.COMPENSATED, 3)
    assert (await load(db, engine, saga_id)).deadline_at is None


async def test_a_failed_compensation_is_retried_after_a_back_off_then_flagged_as_failed(
    db: Database, clock: FakeClock
) -> None:
    failed: list[tuple[uuid.UUID, str]] = []

    async def on_failed(session: AsyncSession, saga: SagaInstance, reason: str) -> None:
        failed.append((saga.id, reason))

    engine = make_engine(clock, on_failed=on_failed, max_compensation_attempts=3)
    saga_id = await start(db, engine)
    await answer_last(db, engine)
    await answer_last(db, engine, success=False)

    await answer_last(db, engine, success=False)  # attempt 1 refused: back off 5 s
    assert await sweep(db, engine, clock.advance(4)) == 0
    assert await sweep(db, engine, clock.advance(1)) == 1
    await answer_last(db, engine, success=False)  # attempt 2 refused: back off 10 s
    assert await sweep(db, engine, clock.advance(9)) == 0
    assert await sweep(db, engine, clock.advance(1)) == 1
    saga = await answer_last(db, engine, success=False)  # attempt 3 refused: give up

    assert saga is not None
    assert saga.status is SagaStatus.FAILED
    assert saga.deadline_at is None
    assert saga.error == (
        "step reserve-vehicle failed: no; "
        "compensation of reserve-credits gave up after 3 attempts: no"
    )
    assert failed == [(saga_id, saga.error)]
    row = next(r for r in saga.steps if r.phase is Phase.COMPENSATION)
    assert (row.status, row.attempts) == (StepStatus.FAILED, 3)
    assert await sweep(db, engine, clock.advance(3600)) == 0


async def test_a_compensation_never_answered_gives_up_after_the_attempt_limit(
    db: Database, clock: FakeClock
) -> None:
    engine = make_engine(clock, max_compensation_attempts=2)
    saga_id = await start(db, engine)
    await answer_last(db, engine, success=False)  # nothing to compensate yet
    assert (await load(db, engine, saga_id)).status is SagaStatus.COMPENSATED

    saga_id = await start(db, engine)
    await answer_last(db, engine)
    await answer_last(db, engine, success=False)
    for _ in range(3):
        await sweep(db, engine, clock.advance(5))

    saga = await load(db, engine, saga_id)
    assert saga.status is SagaStatus.FAILED
    assert "gave up after 2 attempts: no reply within 5s (attempt 2)" in (saga.error or "")


async def test_a_saga_survives_a_restart_and_finishes(db: Database, clock: FakeClock) -> None:
    before_restart = make_engine(clock)
    saga_id = await start(db, before_restart)
    await answer_last(db, before_restart)
    del before_restart

    after_restart = make_engine(clock)
    assert await sweep(db, after_restart, clock.advance(10)) == 1  # vehicle resent
    await answer_last(db, after_restart)
    done = await answer_last(db, after_restart)

    assert done is not None
    assert done.id == saga_id
    assert done.status is SagaStatus.COMPLETED
    assert [r.attempts for r in done.steps] == [1, 2, 1, 1]


async def test_sweep_drives_only_its_own_definition_and_respects_the_limit(
    db: Database, engine: SagaEngine, clock: FakeClock
) -> None:
    other = SagaEngine(
        SagaDefinition("Other", [Step("only", "x.only", timeout_s=1)]),
        OUTBOX.send,
        tables=TABLES,
        clock=clock,
    )
    for _ in range(3):
        await start(db, engine)
    await start(db, other)

    now = clock.advance(60)
    assert await sweep(db, engine, now) == 3
    async with db.transaction() as s:
        assert await other.sweep(s, now, limit=1) == 1
        assert await other.sweep(s, now, limit=1) == 0


async def test_concurrent_replies_for_the_same_step_advance_the_saga_once(
    db: Database, clock: FakeClock
) -> None:
    async def slow_send(session: AsyncSession, command: SagaCommand) -> None:
        await asyncio.sleep(0.3)  # hold the lock while the other reply arrives
        await OUTBOX.send(session, command)

    engine = make_engine(clock, send=slow_send)
    saga_id = await start(db, engine)
    message = (await OUTBOX.sent(db))[-1].reply(success=True)

    outcomes = await asyncio.gather(
        reply(db, engine, message), reply(db, engine, message), return_exceptions=True
    )

    # The second waits for the first's lock (a row lock on PostgreSQL, the write lock on
    # SQLite), then sees the step already answered: one advance, one ignored reply.
    assert sorted(o is None for o in outcomes) == [False, True]
    assert [c.step for c in await OUTBOX.sent(db)] == ["reserve-credits", "reserve-vehicle"]
    saga = await load(db, engine, saga_id)
    assert [r.attempts for r in saga.steps] == [1, 1, 0, 0]


async def test_two_sweepers_never_drive_the_same_saga(db: Database, clock: FakeClock) -> None:
    # PostgreSQL: SKIP LOCKED splits the work; SQLite: the second waits for the write lock and
    # then finds the deadlines already moved.
    async def slow_send(session: AsyncSession, command: SagaCommand) -> None:
        await asyncio.sleep(0.2)
        await OUTBOX.send(session, command)

    engine = make_engine(clock, send=slow_send)
    for _ in range(4):
        await start(db, engine)
    now = clock.advance(5)

    counts = await asyncio.gather(sweep(db, engine, now), sweep(db, engine, now))

    assert sum(counts) == 4
    compensations = [c for c in await OUTBOX.sent(db) if c.phase is Phase.COMPENSATION]
    assert len(compensations) == 4


async def test_saving_a_saga_changed_meanwhile_raises_instead_of_overwriting(
    db: Database, engine: SagaEngine
) -> None:
    store = SagaStore(TABLES)
    saga_id = await start(db, engine)
    async with db.session() as s:
        stale = await store.load(s, saga_id, lock=False)
    await answer_last(db, engine)
    assert stale is not None

    stale.error = "overwrite"
    with pytest.raises(SagaConcurrencyError):
        async with db.transaction() as s:
            await store.save(s, stale)

    saga = await load(db, engine, saga_id)
    assert saga.error is None
    assert saga.steps[0].status is StepStatus.SUCCEEDED

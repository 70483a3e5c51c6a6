"""The saga engine's forward and backward paths, on SQLite and PostgreSQL.

Commands go to a `CommandOutbox`, a transactional test double of the transport: each command is
an outbox row written in the caller's transaction, so it counts as sent only if that commits.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest
from sqlalchemy import Column, String, Table, Uuid, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from fleet.common.db import Database, service_metadata
from fleet.common.saga import (
    Phase,
    SagaDefinition,
    SagaEngine,
    SagaInstance,
    SagaStatus,
    Step,
    StepStatus,
    saga_tables,
)
from fleet.common.shedding import QueueDelayShedder
from fleet.common.testing import CommandOutbox, tables_database

SCHEMA = "saga_flow_test"
METADATA = service_metadata(SCHEMA)
TABLES = saga_tables(METADATA)
OUTBOX = CommandOutbox(METADATA)
TRIPS = Table(
    "trips",
    METADATA,
    Column("id", Uuid, primary_key=True),
    Column("status", String(16), nullable=False),
)

BOOKING = SagaDefinition(
    "TripBookingSaga",
    [
        Step("reserve-credits", "user.reserve-credits", "user.release-credits"),
        Step("reserve-vehicle", "vehicle.reserve-vehicle", "vehicle.release-vehicle"),
        Step("create-trip", "trip.create-trip", "trip.cancel-trip", local=True),
        Step("send-confirmation", "user.send-confirmation", "user.send-cancellation"),
    ],
)


async def create_trip(session: AsyncSession, saga: SagaInstance) -> dict[str, Any]:
    trip_id = uuid.UUID(saga.data["trip_id"])
    await session.execute(insert(TRIPS).values(id=trip_id, status="pending"))
    return {"trip_status": "pending"}


async def cancel_trip(session: AsyncSession, saga: SagaInstance) -> None:
    trip_id = uuid.UUID(saga.data["trip_id"])
    await session.execute(update(TRIPS).where(TRIPS.c.id == trip_id).values(status="cancelled"))


class Recorder:
    """Hooks and observer in one: what the owning service would be told."""

    def __init__(self) -> None:
        self.ended: list[tuple[str, uuid.UUID, str]] = []
        self.steps: list[tuple[str, str, str]] = []
        self.sagas: list[tuple[str, str, float]] = []

    async def completed(self, _session: AsyncSession, saga: SagaInstance) -> None:
        self.ended.append(("completed", saga.id, ""))

    async def compensated(self, _session: AsyncSession, saga: SagaInstance, reason: str) -> None:
        self.ended.append(("compensated", saga.id, reason))

    def step_finished(
        self, _saga: str, step: str, phase: Phase, status: StepStatus, _seconds: float
    ) -> None:
        self.steps.append((step, phase.value, status.value))

    def saga_finished(self, saga: str, status: SagaStatus, seconds: float) -> None:
        self.sagas.append((saga, status.value, seconds))


@pytest.fixture
async def db(backend_url: str) -> AsyncIterator[Database]:
    async with tables_database(backend_url, SCHEMA, METADATA) as database:
        yield database


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def engine(recorder: Recorder) -> SagaEngine:
    return SagaEngine(
        BOOKING,
        OUTBOX.send,
        {"create-trip": create_trip},
        {"create-trip": cancel_trip},
        tables=TABLES,
        on_completed=recorder.completed,
        on_compensated=recorder.compensated,
        observer=recorder,
    )


async def start(db: Database, engine: SagaEngine) -> uuid.UUID:
    saga_id = uuid.uuid4()
    async with db.transaction() as s:
        await engine.start(s, saga_id, {"trip_id": uuid.uuid4(), "rider_id": "r-1"})
    return saga_id


async def answer(
    db: Database,
    engine: SagaEngine,
    *,
    success: bool = True,
    result: Mapping[str, Any] | None = None,
    error: str | None = None,
) -> SagaInstance | None:
    """Reply to the last command sent, as its participant would."""
    command = (await OUTBOX.sent(db))[-1]
    async with db.transaction() as s:
        return await engine.handle_reply(
            s, command.reply(success=success, result=result, error=error)
        )


async def trip_status(db: Database, saga: SagaInstance) -> str | None:
    async with db.session() as s:
        trip_id = uuid.UUID(saga.data["trip_id"])
        return (await s.execute(select(TRIPS.c.status).where(TRIPS.c.id == trip_id))).scalar()


def history(saga: SagaInstance) -> list[tuple[str, str, str, int]]:
    return [(r.name, r.phase.value, r.status.value, r.attempts) for r in saga.steps]


async def test_start_persists_the_saga_and_sends_the_first_command_only(
    db: Database, engine: SagaEngine
) -> None:
    saga_id = await start(db, engine)

    [command] = await OUTBOX.sent(db)
    assert (command.saga_id, command.step, command.phase, command.attempt) == (
        saga_id,
        "reserve-credits",
        Phase.ACTION,
        1,
    )
    assert command.command_type == "user.reserve-credits"
    assert command.reply_to == "saga.TripBookingSaga.reply"
    assert command.payload["rider_id"] == "r-1"
    async with db.session() as s:
        saga = await engine.get(s, saga_id)
    assert saga is not None
    assert saga.status is SagaStatus.RUNNING
    assert saga.deadline_at is not None
    assert history(saga)[0] == ("reserve-credits", "action", "running", 1)
    assert [h[2] for h in history(saga)[1:]] == ["pending", "pending", "pending"]


async def test_a_saga_started_in_a_rolled_back_transaction_leaves_nothing(
    db: Database, engine: SagaEngine
) -> None:
    saga_id = uuid.uuid4()

    async def start_then_fail() -> None:
        async with db.transaction() as s:
            await engine.start(s, saga_id, {"trip_id": str(uuid.uuid4())})
            raise RuntimeError("the owner's own write failed")

    with pytest.raises(RuntimeError):
        await start_then_fail()

    async with db.session() as s:
        assert await engine.get(s, saga_id) is None
    assert await OUTBOX.sent(db) == []


async def test_four_steps_complete_with_results_merged_and_full_history(
    db: Database, engine: SagaEngine, recorder: Recorder
) -> None:
    saga_id = await start(db, engine)

    await answer(db, engine, result={"hold_id": "h-1"})
    second = (await OUTBOX.sent(db))[-1]
    assert second.step == "reserve-vehicle"
    assert second.payload["hold_id"] == "h-1"
    await answer(db, engine, result={"vehicle_id": "v-7"})
    # create-trip ran locally in that same transaction; the confirmation is out
    third = (await OUTBOX.sent(db))[-1]
    assert third.step == "send-confirmation"
    assert third.payload["trip_status"] == "pending"
    done = await answer(db, engine)

    assert done is not None
    assert done.status is SagaStatus.COMPLETED
    assert done.deadline_at is None
    assert done.data["vehicle_id"] == "v-7"
    assert history(done) == [
        ("reserve-credits", "action", "succeeded", 1),
        ("reserve-vehicle", "action", "succeeded", 1),
        ("create-trip", "action", "succeeded", 1),
        ("send-confirmation", "action", "succeeded", 1),
    ]
    assert all(r.started_at and r.finished_at for r in done.steps)
    assert done.steps[0].result == {"hold_id": "h-1"}
    assert await trip_status(db, done) == "pending"
    assert recorder.ended == [("completed", saga_id, "")]
    assert [s[1] for s in recorder.sagas] == ["completed"]
    assert [s[0] for s in recorder.steps] == [step.name for step in BOOKING.steps]
    assert [c.step for c in await OUTBOX.sent(db)] == [
        step.name for step in BOOKING.steps if not step.local
    ]


async def test_failure_at_step_two_compensates_step_one_only(
    db: Database, engine: SagaEngine, recorder: Recorder
) -> None:
    saga_id = await start(db, engine)
    await answer(db, engine, result={"hold_id": "h-1"})

    await answer(db, engine, success=False, error="no vehicle free")

    release = (await OUTBOX.sent(db))[-1]
    assert (release.step, release.phase, release.command_type) == (
        "reserve-credits",
        Phase.COMPENSATION,
        "user.release-credits",
    )
    assert release.payload["hold_id"] == "h-1"
    done = await answer(db, engine)
    assert done is not None
    assert done.status is SagaStatus.COMPENSATED
    assert done.error == "step reserve-vehicle failed: no vehicle free"
    assert history(done) == [
        ("reserve-credits", "action", "succeeded", 1),
        ("reserve-credits", "compensation", "compensated", 1),
        ("reserve-vehicle", "action", "failed", 1),
        ("create-trip", "action", "skipped", 0),
        ("send-confirmation", "action", "skipped", 0),
    ]
    assert [(c.step, c.phase) for c in await OUTBOX.sent(db)] == [
        ("reserve-credits", Phase.ACTION),
        ("reserve-vehicle", Phase.ACTION),
        ("reserve-credits", Phase.COMPENSATION),
    ]
    assert recorder.ended == [("compensated", saga_id, done.error)]
    assert [s[1] for s in recorder.sagas] == ["compensated"]


async def test_failure_at_the_last_step_compensates_all_earlier_steps_in_reverse(
    db: Database, engine: SagaEngine
) -> None:
    await start(db, engine)
    await answer(db, engine)
    await answer(db, engine)

    after_failure = await answer(db, engine, success=False, error="push service down")
    # The local create-trip was compensated in-process at once; the vehicle release is out.
    assert after_failure is not None
    assert await trip_status(db, after_failure) == "cancelled"
    await answer(db, engine)
    done = await answer(db, engine)

    assert done is not None
    assert done.status is SagaStatus.COMPENSATED
    compensations = [c for c in await OUTBOX.sent(db) if c.phase is Phase.COMPENSATION]
    assert [c.command_type for c in compensations] == [
        "vehicle.release-vehicle",
        "user.release-credits",
    ]
    comp_rows = [r for r in done.steps if r.phase is Phase.COMPENSATION]
    assert [(r.name, r.status) for r in comp_rows] == [
        ("reserve-credits", StepStatus.COMPENSATED),
        ("reserve-vehicle", StepStatus.COMPENSATED),
        ("create-trip", StepStatus.COMPENSATED),
    ]
    # reverse order in time as well: trip, then vehicle, then credits
    finished = sorted(
        comp_rows, key=lambda r: r.finished_at or dt.datetime.max.replace(tzinfo=dt.UTC)
    )
    assert [r.name for r in finished] == ["create-trip", "reserve-vehicle", "reserve-credits"]


async def test_a_failing_local_step_rolls_back_its_writes_and_compensates(
    db: Database, recorder: Recorder
) -> None:
    async def create_trip_then_fail(session: AsyncSession, saga: SagaInstance) -> None:
        await create_trip(session, saga)
        raise LookupError("no route between pickup and drop-off")

    engine = SagaEngine(
        BOOKING,
        OUTBOX.send,
        {"create-trip": create_trip_then_fail},
        {"create-trip": cancel_trip},
        tables=TABLES,
        on_compensated=recorder.compensated,
        observer=recorder,
    )
    saga_id = await start(db, engine)
    await answer(db, engine)
    after_failure = await answer(db, engine)

    assert after_failure is not None
    assert after_failure.status is SagaStatus.COMPENSATING
    assert await trip_status(db, after_failure) is None
    assert [(c.step, c.phase) for c in (await OUTBOX.sent(db))[-1:]] == [
        ("reserve-vehicle", Phase.COMPENSATION)
    ]
    await answer(db, engine)
    done = await answer(db, engine)
    assert done is not None
    assert done.status is SagaStatus.COMPENSATED
    assert (
        done.error == "step create-trip failed: LookupError: no route between pickup and drop-off"
    )
    trip_row = next(r for r in done.steps if r.name == "create-trip")
    assert (trip_row.phase, trip_row.status) == (Phase.ACTION, StepStatus.FAILED)
    assert not any(r.name == "create-trip" and r.phase is Phase.COMPENSATION for r in done.steps)
    assert recorder.ended == [("compensated", saga_id, done.error)]
    # observations made before the failed savepoint survived its rollback
    assert ("reserve-credits", "action", "succeeded") in recorder.steps
    assert [s[1] for s in recorder.sagas] == ["compensated"]


async def test_observations_of_a_rolled_back_transaction_are_dropped(
    db: Database, engine: SagaEngine, recorder: Recorder
) -> None:
    await start(db, engine)
    command = (await OUTBOX.sent(db))[-1]

    async def handle_then_crash() -> None:
        async with db.transaction() as s:
            await engine.handle_reply(s, command.reply(success=True))
            raise RuntimeError("the consumer crashed before commit")

    with pytest.raises(RuntimeError):
        await handle_then_crash()

    assert recorder.steps == []
    async with db.session() as s:
        saga = await engine.get(s, command.saga_id)
    assert saga is not None
    assert history(saga)[0] == ("reserve-credits", "action", "running", 1)


class SampledShedder(QueueDelayShedder):
    def __init__(self) -> None:
        super().__init__(target_s=0.25)
        self.samples: list[float] = []

    def observe(self, seconds: float) -> None:
        self.samples.append(seconds)
        super().observe(seconds)


def shedding_engine(shedder: QueueDelayShedder) -> SagaEngine:
    local = {"create-trip": create_trip}, {"create-trip": cancel_trip}
    return SagaEngine(BOOKING, OUTBOX.send, *local, tables=TABLES, shedder=shedder)


async def test_each_remote_step_feeds_the_shedder_once_committed_and_local_steps_do_not(
    db: Database,
) -> None:
    shedder = SampledShedder()
    engine = shedding_engine(shedder)
    await start(db, engine)
    assert shedder.samples == []

    await answer(db, engine, result={"hold_id": "h-1"})
    await answer(db, engine, result={"vehicle_id": "v-7"})  # create-trip runs here, locally
    done = await answer(db, engine)

    assert done is not None
    assert done.status is SagaStatus.COMPLETED
    remote = [r for r in done.steps if r.name != "create-trip"]
    assert shedder.samples == [
        pytest.approx((r.finished_at - r.started_at).total_seconds())
        for r in remote
        if r.started_at and r.finished_at
    ]
    assert len(shedder.samples) == 3
    assert engine.admit()


async def test_a_reply_rolled_back_feeds_the_shedder_nothing(db: Database) -> None:
    shedder = SampledShedder()
    engine = shedding_engine(shedder)
    await start(db, engine)
    command = (await OUTBOX.sent(db))[-1]

    async def reply_then_fail() -> None:
        async with db.transaction() as s:
            await engine.handle_reply(s, command.reply(success=True, result={}))
            raise RuntimeError("the owner's write after the reply failed")

    with pytest.raises(RuntimeError):
        await reply_then_fail()

    assert shedder.samples == []

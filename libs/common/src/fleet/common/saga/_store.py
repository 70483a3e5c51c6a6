"""Loads and saves `SagaState`; every save of a stored saga checks the saga's version.

A saga costs what its statements cost (docs/performance.md), so a load is one query (the saga
row with its step rows aggregated as JSON) and a save on PostgreSQL one statement: a new saga's
rows are inserted with `fleet.common.inserts` (inside `write_behind`, together with the
transaction's other inserts), a stored saga's versioned UPDATE and the upsert of its changed
steps are one statement (`_store_pg`). SQLite
(embedded mode) saves with the saga's statement and one executemany for the changed steps.

A transaction applying a batch of replies (group commit) costs less still on PostgreSQL: `prefetch`
loads and locks every saga of the batch with one query, the loads that follow take their saga
from it, and the saves of stored sagas wait for `flush`, which writes them all with one
statement. Whatever reads a saga whose save waits writes that save first.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import (
    JSON,
    CursorResult,
    Select,
    Uuid,
    any_,
    bindparam,
    func,
    insert,
    select,
    type_coerce,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from fleet.common.db import insert_for
from fleet.common.errors import ConflictError
from fleet.common.inserts import insert_rows
from fleet.common.native import Native, native
from fleet.common.saga._model import (
    Phase,
    SagaState,
    SagaStatus,
    StepRecord,
    StepState,
    StepStatus,
)
from fleet.common.saga._store_pg import SagaWrite, saga_values, update_statement
from fleet.common.saga._tables import SagaTables

_ACTIVE = (SagaStatus.RUNNING.value, SagaStatus.COMPENSATING.value)
# Step columns a save may change (the key and the name never do).
_STEP_MUTABLE = ("status", "attempts", "started_at", "finished_at", "error", "result")


class SagaConcurrencyError(ConflictError):
    """Another transaction changed the saga first; roll back and let the message be redelivered."""

    title = "Saga Changed Concurrently"
    slug = "saga-conflict"


@dataclass
class _Batch:
    """A batch transaction's prefetched sagas and the saves it has not written yet."""

    loaded: dict[uuid.UUID, SagaState] = field(default_factory=dict)
    unwritten: dict[uuid.UUID, SagaWrite] = field(default_factory=dict)


class SagaStore:
    def __init__(self, tables: SagaTables) -> None:
        self.sagas = tables.sagas
        self.steps = tables.steps
        self._loads: dict[tuple[str, bool], Select[Any]] = {}
        self._load_many: Select[Any] | None = None
        self._batch_key = f"fleet.saga.batch:{tables.sagas.fullname}"

    async def prefetch(self, session: AsyncSession, saga_ids: Sequence[uuid.UUID]) -> int:
        """Load and lock the sagas `saga_ids` with one query for the loads of this transaction
        that follow, and hold back the saves of stored sagas until `flush` (PostgreSQL; elsewhere
        nothing changes). The rows are locked in id order, as every batch locks them. Returns
        how many sagas were found."""
        if _dialect(session) != "postgresql":
            return 0
        batch = _Batch()
        session.info[self._batch_key] = batch
        ids = sorted(set(saga_ids))
        if not ids:
            return 0
        query = self._load_many_query()
        if (pg := await native(session)) is not None:
            rows: Sequence[Any] = await pg.fetch_compiled(query, {"saga_ids": ids})
        else:
            rows = (await session.execute(query, {"saga_ids": ids})).mappings().all()
        for row in rows:
            # A row another transaction was writing is read again by its own load (see `load`).
            if row["seen_version"] == row["version"]:
                batch.loaded[row["id"]] = self._state(row)
        return len(rows)

    async def flush(self, session: AsyncSession) -> None:
        """Write the saves `prefetch` held back, with one statement; stop holding them back.
        Raises `SagaConcurrencyError` if a saga's version moved meanwhile."""
        batch: _Batch | None = session.info.pop(self._batch_key, None)
        if batch is not None and batch.unwritten:
            await self._write(session, list(batch.unwritten.values()))

    @staticmethod
    def inserts_first(session: AsyncSession) -> bool:
        """Whether a new saga is inserted before its first steps run, not after.

        SQLite's driver opens its transaction on the first DML statement only, and a local
        step's SAVEPOINT outside one would commit everything on release: the saga's INSERT opens
        it. (A reply or a sweep locks the saga with an UPDATE first, see `load`.)
        """
        return _dialect(session) == "sqlite"

    async def save(self, session: AsyncSession, state: SagaState) -> None:
        """Insert a new saga or write what changed of a stored one; raise
        `SagaConcurrencyError` if the stored version moved meanwhile. (A duplicate id of a new
        saga raises the driver's IntegrityError.) After `prefetch`, a stored saga's save is only
        taken down, to be written by `flush` (or by the next load of that saga)."""
        frozen = [(step, step.freeze()) for step in state.steps]
        changed = [record for step, record in frozen if state.persisted.get(step.key) != record]
        if _dialect(session) != "postgresql":
            if not await self._save_portably(session, state, changed):
                raise SagaConcurrencyError(f"saga {state.id} changed in another transaction")
        elif not state.stored:
            steps = [self._step_values(state.id, record) for record in changed]
            saga = self._saga_values(state) | {"version": state.version}
            await insert_rows(session, (self.sagas, [saga]), (self.steps, steps))
        else:
            await self._update(session, (saga_values(state), changed))
        if state.stored:
            state.version += 1
        state.stored = True
        state.persisted = {step.key: record for step, record in frozen}

    async def _update(self, session: AsyncSession, write: SagaWrite) -> None:
        """Write a stored saga now, or, in a batch (`prefetch`), at its `flush`."""
        batch: _Batch | None = session.info.get(self._batch_key)
        if batch is None:
            await self._write(session, [write])
            return
        saga_id = write[0]["id"]
        if saga_id in batch.unwritten:  # saved twice without a load between: write the first
            await self._write(session, [batch.unwritten.pop(saga_id)])
        batch.unwritten[saga_id] = write

    async def _write(self, session: AsyncSession, writes: Sequence[SagaWrite]) -> None:
        """Write stored sagas with one statement; raise `SagaConcurrencyError` unless it wrote
        them all."""
        statement, params = update_statement(self.sagas, self.steps, session, writes)
        if (pg := await native(session)) is not None:
            count = (await pg.fetch_compiled(statement, params))[0][0]
        else:
            count = (await session.execute(statement, params)).scalar_one()
        ids = [values["id"] for values, _ in writes]
        if count != len(ids):
            which = ", ".join(map(str, ids))
            raise SagaConcurrencyError(
                f"{len(ids) - count} of the sagas {which} changed in another transaction"
            )

    async def _save_portably(
        self, session: AsyncSession, state: SagaState, changed: Sequence[StepRecord]
    ) -> bool:
        values = self._saga_values(state)
        if state.stored:
            result = cast(
                CursorResult[Any],
                await session.execute(
                    update(self.sagas)
                    .where(self.sagas.c.id == state.id, self.sagas.c.version == state.version)
                    .values(**values, version=state.version + 1)
                ),
            )
            if result.rowcount != 1:
                return False
        else:
            await session.execute(insert(self.sagas).values(**values, version=state.version))
        if changed:
            upsert = insert_for(session, self.steps)
            upsert = upsert.on_conflict_do_update(
                index_elements=["saga_id", "idx", "phase"],
                set_={name: upsert.excluded[name] for name in _STEP_MUTABLE},
            )
            await session.execute(upsert, [self._step_values(state.id, s) for s in changed])
        return True

    async def load(
        self, session: AsyncSession, saga_id: uuid.UUID, *, lock: bool
    ) -> SagaState | None:
        """The saga and its history; `lock` takes a row lock (PostgreSQL) until commit."""
        batch: _Batch | None = session.info.get(self._batch_key)
        if batch is not None:
            if (unwritten := batch.unwritten.pop(saga_id, None)) is not None:
                await self._write(session, [unwritten])  # what is read is what was saved
            elif lock and (state := batch.loaded.pop(saga_id, None)) is not None:
                return state
        dialect = _dialect(session)
        if lock and dialect == "sqlite":
            # SQLite has no row locks: a no-op write takes its database write lock instead, so
            # the read below sees what a concurrent writer committed, as FOR UPDATE would.
            await session.execute(
                update(self.sagas)
                .where(self.sagas.c.id == saga_id)
                .values(version=self.sagas.c.version)
            )
        query = self._load_query(dialect, lock)
        pg = await native(session)
        row = await _one_or_none(session, pg, query, saga_id)
        if row is not None and row.get("seen_version", row["version"]) != row["version"]:
            # FOR UPDATE waited for a concurrent writer's commit and returned the saga row as
            # it committed, but the step subquery read with the snapshot taken before: read
            # again now that the lock is ours (a fresh snapshot, nobody else can write).
            row = await _one_or_none(session, pg, query, saga_id)
        return self._state(row) if row is not None else None

    def _load_many_query(self) -> Select[Any]:
        """`prefetch`'s query: the locking load's columns for every id of an array, in id order
        (the order every batch locks its sagas in)."""
        if self._load_many is None:
            self._load_many = (
                select(*self._load_columns("postgresql", lock=True))
                .where(self.sagas.c.id == any_(bindparam("saga_ids", type_=ARRAY(Uuid()))))
                .order_by(self.sagas.c.id)
                .with_for_update(of=self.sagas)
            )
        return self._load_many

    def _load_query(self, dialect: str, lock: bool) -> Select[Any]:
        """The saga row, its steps as a JSON array of arrays and, when locking on PostgreSQL,
        the version the statement's snapshot saw (see `load`)."""
        query = self._loads.get((dialect, lock))
        if query is not None:
            return query
        query = select(*self._load_columns(dialect, lock)).where(
            self.sagas.c.id == bindparam("saga_id")
        )
        if lock and dialect != "sqlite":
            query = query.with_for_update(of=self.sagas)
        self._loads[(dialect, lock)] = query
        return query

    def _load_columns(self, dialect: str, lock: bool) -> list[Any]:
        sagas, steps = self.sagas, self.steps
        columns = [steps.c[name] for name in _STEP_ROW[:-1]]
        if dialect == "sqlite":
            row = func.json_array(*columns, func.json(steps.c.result))
            aggregated = func.json_group_array(row)
        else:
            aggregated = func.json_agg(func.json_build_array(*columns, steps.c.result))
        history = select(aggregated).where(steps.c.saga_id == sagas.c.id).scalar_subquery()
        selected: list[Any] = [sagas, type_coerce(history, JSON).label("steps")]
        if lock and dialect != "sqlite":
            seen = sagas.alias("seen")
            version = select(seen.c.version).where(seen.c.id == sagas.c.id).scalar_subquery()
            selected.append(version.label("seen_version"))
        return selected

    @staticmethod
    def _state(row: Any) -> SagaState:
        steps = [_step(values) for values in row["steps"] or ()]
        state = SagaState(
            id=row["id"],
            name=row["name"],
            status=SagaStatus(row["status"]),
            current_step=row["current_step"],
            data=dict(row["data"]),
            error=row["error"],
            version=row["version"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            deadline_at=row["deadline_at"],
            steps=steps,
        )
        state.persisted = {s.key: s.freeze() for s in steps}
        return state

    async def due(
        self, session: AsyncSession, name: str, now: dt.datetime, limit: int
    ) -> list[uuid.UUID]:
        """Active sagas of `name` whose deadline passed, locked; rows other sweepers hold are
        skipped (FOR UPDATE SKIP LOCKED on PostgreSQL; SQLite serialises writers anyway)."""
        query = (
            select(self.sagas.c.id)
            .where(
                self.sagas.c.name == name,
                self.sagas.c.deadline_at.isnot(None),
                self.sagas.c.deadline_at <= now,
                self.sagas.c.status.in_(_ACTIVE),
            )
            .order_by(self.sagas.c.deadline_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list((await session.execute(query)).scalars().all())

    @staticmethod
    def _saga_values(state: SagaState) -> dict[str, Any]:
        return {
            "id": state.id,
            "name": state.name,
            "status": state.status.value,
            "current_step": state.current_step,
            "data": state.data,
            "error": state.error,
            "created_at": state.created_at,
            "updated_at": state.updated_at,
            "deadline_at": state.deadline_at,
        }

    @staticmethod
    def _step_values(saga_id: uuid.UUID, step: StepRecord) -> dict[str, Any]:
        return {
            "saga_id": saga_id,
            "idx": step.idx,
            "phase": step.phase.value,
            "name": step.name,
            "status": step.status.value,
            "attempts": step.attempts,
            "started_at": step.started_at,
            "finished_at": step.finished_at,
            "error": step.error,
            "result": step.result,
        }


# The order of a step's values in the loaded JSON array.
_STEP_ROW = (
    "idx",
    "phase",
    "name",
    "status",
    "attempts",
    "started_at",
    "finished_at",
    "error",
    "result",
)


def _step(values: Sequence[Any]) -> StepState:
    idx, phase, name, status, attempts, started_at, finished_at, error, result = values
    return StepState(
        idx=idx,
        name=name,
        phase=Phase(phase),
        status=StepStatus(status),
        attempts=attempts,
        started_at=_instant(started_at),
        finished_at=_instant(finished_at),
        error=error,
        result=result,
    )


def _instant(value: str | None) -> dt.datetime | None:
    """A timestamp as JSON renders it: ISO 8601 with an offset (PostgreSQL) or naive UTC
    (SQLite stores `UTCDateTime` without one)."""
    if value is None:
        return None
    parsed = dt.datetime.fromisoformat(value)
    return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)


async def _one_or_none(
    session: AsyncSession, pg: Native | None, query: Select[Any], saga_id: uuid.UUID
) -> Any:
    """The saga's row by column name (an asyncpg `Record` on PostgreSQL: no result processing,
    JSON decoded by the driver, timestamps already aware), or None."""
    if pg is not None:
        rows = await pg.fetch_compiled(query, {"saga_id": saga_id})
        return rows[0] if rows else None
    return (await session.execute(query, {"saga_id": saga_id})).mappings().one_or_none()


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name

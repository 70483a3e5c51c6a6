"""Loads and saves `SagaState` with Core statements; every save checks the saga's version."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, cast

from sqlalchemy import CursorResult, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from fleet.common.errors import ConflictError
from fleet.common.saga._model import Phase, SagaState, SagaStatus, StepState, StepStatus
from fleet.common.saga._tables import SagaTables

_ACTIVE = (SagaStatus.RUNNING.value, SagaStatus.COMPENSATING.value)


class SagaConcurrencyError(ConflictError):
    """Another transaction changed the saga first; roll back and let the message be redelivered."""

    title = "Saga Changed Concurrently"
    slug = "saga-conflict"


class SagaStore:
    def __init__(self, tables: SagaTables) -> None:
        self.sagas = tables.sagas
        self.steps = tables.steps

    async def insert(self, session: AsyncSession, state: SagaState) -> None:
        await session.execute(insert(self.sagas).values(**self._saga_values(state)))
        await session.execute(
            insert(self.steps), [self._step_values(state.id, s) for s in state.steps]
        )
        state.persisted = {s.key: s.freeze() for s in state.steps}

    async def save(self, session: AsyncSession, state: SagaState) -> None:
        """Write what changed; raise `SagaConcurrencyError` if the version moved meanwhile."""
        values = self._saga_values(state) | {"version": state.version + 1}
        result = cast(
            CursorResult[Any],
            await session.execute(
                update(self.sagas)
                .where(self.sagas.c.id == state.id, self.sagas.c.version == state.version)
                .values(**values)
            ),
        )
        if result.rowcount != 1:
            raise SagaConcurrencyError(f"saga {state.id} was changed by another transaction")
        state.version += 1
        for step in state.steps:
            frozen = step.freeze()
            before = state.persisted.get(step.key)
            if before is None:
                await session.execute(insert(self.steps).values(self._step_values(state.id, step)))
            elif before != frozen:
                await session.execute(
                    update(self.steps)
                    .where(
                        self.steps.c.saga_id == state.id,
                        self.steps.c.idx == step.idx,
                        self.steps.c.phase == step.phase.value,
                    )
                    .values(self._step_values(state.id, step))
                )
            state.persisted[step.key] = frozen

    async def load(
        self, session: AsyncSession, saga_id: uuid.UUID, *, lock: bool
    ) -> SagaState | None:
        """The saga and its history; `lock` takes a row lock (PostgreSQL) until commit."""
        query = select(self.sagas).where(self.sagas.c.id == saga_id)
        if lock and session.get_bind().dialect.name == "sqlite":
            # SQLite has no row locks: a no-op write takes its database write lock instead, so
            # the read below sees what a concurrent writer committed, as FOR UPDATE would.
            await session.execute(
                update(self.sagas)
                .where(self.sagas.c.id == saga_id)
                .values(version=self.sagas.c.version)
            )
        elif lock:
            query = query.with_for_update()
        row = (await session.execute(query)).mappings().one_or_none()
        if row is None:
            return None
        step_rows = (
            (await session.execute(select(self.steps).where(self.steps.c.saga_id == saga_id)))
            .mappings()
            .all()
        )
        steps = [
            StepState(
                idx=r["idx"],
                name=r["name"],
                phase=Phase(r["phase"]),
                status=StepStatus(r["status"]),
                attempts=r["attempts"],
                started_at=r["started_at"],
                finished_at=r["finished_at"],
                error=r["error"],
                result=r["result"],
            )
            for r in step_rows
        ]
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
            "version": state.version,
            "created_at": state.created_at,
            "updated_at": state.updated_at,
            "deadline_at": state.deadline_at,
        }

    @staticmethod
    def _step_values(saga_id: uuid.UUID, step: StepState) -> dict[str, Any]:
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

"""A saga's save as one PostgreSQL statement — and the saves of a whole batch as one.

The saga's INSERT (a new saga) or versioned UPDATE runs in a data-modifying CTE; the changed step
rows are upserted from arrays (`unnest`, one statement shape whatever their number) joined to that
CTE, so they are written only if the saga's row was. The statement answers 1 if it was, 0 if the
version moved meanwhile. JSON values travel as text (`json_text`) and datetimes as `timestamptz`.

`save_many_statement` writes several stored sagas the same way: their rows' new values travel as
arrays too (one `UPDATE … FROM unnest(…)`), each step row names its saga, and the statement
answers how many sagas were written.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import Table, TextClause, text
from sqlalchemy.ext.asyncio import AsyncSession

from fleet.common.db import json_text
from fleet.common.saga._model import SagaState, StepRecord, StepState

_INSERT_SAGA = """INSERT INTO {sagas} (id, name, status, current_step, data, error, version,
        created_at, updated_at, deadline_at)
    VALUES (:id, :name, :status, :current_step, CAST(:data AS JSON), :error, :version,
        :created_at, :updated_at, :deadline_at)
    RETURNING id"""

_UPDATE_SAGA = """UPDATE {sagas} SET status = :status, current_step = :current_step,
        data = CAST(:data AS JSON), error = :error, version = :version + 1,
        updated_at = :updated_at, deadline_at = :deadline_at
    WHERE id = :id AND version = :version
    RETURNING id"""

_UPSERT_STEPS = """INSERT INTO {steps} (saga_id, idx, phase, name, status, attempts, started_at,
        finished_at, error, result)
    SELECT saga.id, s.idx, s.phase, s.name, s.status, s.attempts, s.started_at, s.finished_at,
        s.error, CAST(s.result AS JSON)
    FROM saga, unnest(CAST(:s_idx AS INTEGER[]), CAST(:s_phase AS VARCHAR[]),
        CAST(:s_name AS VARCHAR[]), CAST(:s_status AS VARCHAR[]), CAST(:s_attempts AS INTEGER[]),
        CAST(:s_started_at AS TIMESTAMPTZ[]), CAST(:s_finished_at AS TIMESTAMPTZ[]),
        CAST(:s_error AS TEXT[]), CAST(:s_result AS TEXT[]))
        AS s(idx, phase, name, status, attempts, started_at, finished_at, error, result)
    ON CONFLICT (saga_id, idx, phase) DO UPDATE SET status = EXCLUDED.status,
        attempts = EXCLUDED.attempts, started_at = EXCLUDED.started_at,
        finished_at = EXCLUDED.finished_at, error = EXCLUDED.error, result = EXCLUDED.result"""


_UPDATE_SAGAS = """UPDATE {sagas} AS t SET status = v.status, current_step = v.current_step,
        data = CAST(v.data AS JSON), error = v.error, version = v.version + 1,
        updated_at = v.updated_at, deadline_at = v.deadline_at
    FROM unnest(CAST(:id AS UUID[]), CAST(:version AS INTEGER[]), CAST(:status AS VARCHAR[]),
        CAST(:current_step AS INTEGER[]), CAST(:data AS TEXT[]), CAST(:error AS TEXT[]),
        CAST(:updated_at AS TIMESTAMPTZ[]), CAST(:deadline_at AS TIMESTAMPTZ[]))
        AS v(id, version, status, current_step, data, error, updated_at, deadline_at)
    WHERE t.id = v.id AND t.version = v.version
    RETURNING t.id"""

_UPSERT_STEPS_OF_SAGAS = """INSERT INTO {steps} (saga_id, idx, phase, name, status, attempts,
        started_at, finished_at, error, result)
    SELECT s.saga_id, s.idx, s.phase, s.name, s.status, s.attempts, s.started_at,
        s.finished_at, s.error, CAST(s.result AS JSON)
    FROM unnest(CAST(:s_saga_id AS UUID[]), CAST(:s_idx AS INTEGER[]),
        CAST(:s_phase AS VARCHAR[]), CAST(:s_name AS VARCHAR[]), CAST(:s_status AS VARCHAR[]),
        CAST(:s_attempts AS INTEGER[]), CAST(:s_started_at AS TIMESTAMPTZ[]),
        CAST(:s_finished_at AS TIMESTAMPTZ[]), CAST(:s_error AS TEXT[]),
        CAST(:s_result AS TEXT[]))
        AS s(saga_id, idx, phase, name, status, attempts, started_at, finished_at, error, result)
    JOIN saga ON saga.id = s.saga_id
    ON CONFLICT (saga_id, idx, phase) DO UPDATE SET status = EXCLUDED.status,
        attempts = EXCLUDED.attempts, started_at = EXCLUDED.started_at,
        finished_at = EXCLUDED.finished_at, error = EXCLUDED.error, result = EXCLUDED.result"""


def save_statement(
    sagas: Table,
    steps: Table,
    session: AsyncSession,
    state: SagaState,
    changed: Sequence[StepState],
) -> tuple[TextClause, dict[str, Any]]:
    """The statement saving `state` (its `changed` steps only) and its parameters."""
    preparer = session.get_bind().dialect.identifier_preparer
    statement = _statement(
        preparer.format_table(sagas), preparer.format_table(steps), not state.stored, bool(changed)
    )
    params = saga_values(state)
    if not state.stored:
        params.update(name=state.name, created_at=state.created_at)
    if changed:
        params.update(_step_arrays(changed))
    return statement, params


def saga_values(state: SagaState) -> dict[str, Any]:
    """What a save writes of the saga's own row (as the statements here take it)."""
    return {
        "id": state.id,
        "status": state.status.value,
        "current_step": state.current_step,
        "data": json_text(state.data),
        "error": state.error,
        "version": state.version,
        "updated_at": state.updated_at,
        "deadline_at": state.deadline_at,
    }


def save_many_statement(
    sagas: Table,
    steps: Table,
    session: AsyncSession,
    writes: Sequence[tuple[dict[str, Any], Sequence[StepRecord]]],
) -> tuple[TextClause, dict[str, Any]]:
    """The statement writing several stored sagas — each given as (`saga_values` taken when it
    was saved, its changed steps) — and its parameters. It answers how many sagas it wrote:
    fewer than given if a version moved."""
    preparer = session.get_bind().dialect.identifier_preparer
    statement = _many_statement(preparer.format_table(sagas), preparer.format_table(steps))
    params: dict[str, Any] = {
        name: [values[name] for values, _ in writes]
        for name in (
            "id",
            "version",
            "status",
            "current_step",
            "data",
            "error",
            "updated_at",
            "deadline_at",
        )
    }
    changed = [step for _, steps_ in writes for step in steps_]
    params.update(_step_arrays(changed))
    params["s_saga_id"] = [values["id"] for values, steps_ in writes for _ in steps_]
    return statement, params


def _step_arrays(changed: Sequence[StepState] | Sequence[StepRecord]) -> dict[str, list[Any]]:
    return {
        "s_idx": [s.idx for s in changed],
        "s_phase": [s.phase.value for s in changed],
        "s_name": [s.name for s in changed],
        "s_status": [s.status.value for s in changed],
        "s_attempts": [s.attempts for s in changed],
        "s_started_at": [s.started_at for s in changed],
        "s_finished_at": [s.finished_at for s in changed],
        "s_error": [s.error for s in changed],
        "s_result": [None if s.result is None else json_text(s.result) for s in changed],
    }


@lru_cache(maxsize=64)
def _statement(sagas: str, steps: str, new: bool, with_steps: bool) -> TextClause:
    saga = (_INSERT_SAGA if new else _UPDATE_SAGA).format(sagas=sagas)
    ctes = f"WITH saga AS ({saga})"
    if with_steps:
        ctes += f", written_steps AS ({_UPSERT_STEPS.format(steps=steps)})"
    # Only the tables' names, quoted by the dialect, are formatted in; every value is bound.
    return text(f"{ctes} SELECT count(*) FROM saga")  # noqa: S608


@lru_cache(maxsize=16)
def _many_statement(sagas: str, steps: str) -> TextClause:
    saga = _UPDATE_SAGAS.format(sagas=sagas)
    written = _UPSERT_STEPS_OF_SAGAS.format(steps=steps)
    return text(f"WITH saga AS ({saga}), written_steps AS ({written}) SELECT count(*) FROM saga")  # noqa: S608

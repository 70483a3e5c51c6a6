"""The save of any number of stored sagas as one PostgreSQL statement.

The saga rows' versioned UPDATE (their new values as arrays: `UPDATE … FROM unnest(…)`) runs in
a data-modifying CTE; the changed step rows, each naming its saga, are upserted from arrays
(`unnest`: one statement shape whatever their number) joined to that CTE, so they are written
only where the saga's row was. The statement answers how many sagas it wrote: fewer than given
if a version moved meanwhile. JSON values travel as text (`json_text`) and datetimes as
`timestamptz`. (A new saga is a plain insert of its rows: `fleet.common.inserts`.)
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import Table, TextClause, text
from sqlalchemy.ext.asyncio import AsyncSession

from fleet.common.db import json_text
from fleet.common.saga._model import SagaState, StepRecord

_UPDATE_SAGAS = """UPDATE {sagas} AS t SET status = v.status, current_step = v.current_step,
        data = CAST(v.data AS JSON), error = v.error, version = v.version + 1,
        updated_at = v.updated_at, deadline_at = v.deadline_at
    FROM unnest(CAST(:id AS UUID[]), CAST(:version AS INTEGER[]), CAST(:status AS VARCHAR[]),
        CAST(:current_step AS INTEGER[]), CAST(:data AS TEXT[]), CAST(:error AS TEXT[]),
        CAST(:updated_at AS TIMESTAMPTZ[]), CAST(:deadline_at AS TIMESTAMPTZ[]))
        AS v(id, version, status, current_step, data, error, updated_at, deadline_at)
    WHERE t.id = v.id AND t.version = v.version
    RETURNING t.id"""

_UPSERT_STEPS = """INSERT INTO {steps} (saga_id, idx, phase, name, status, attempts,
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

# What a save writes of one stored saga: its row's values (`saga_values`) and its changed steps,
# both taken when it was saved.
SagaWrite = tuple[dict[str, Any], Sequence[StepRecord]]


def saga_values(state: SagaState) -> dict[str, Any]:
    """What a save writes of a stored saga's own row (as the statement here takes it)."""
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


def update_statement(
    sagas: Table, steps: Table, session: AsyncSession, writes: Sequence[SagaWrite]
) -> tuple[TextClause, dict[str, Any]]:
    """The statement writing the stored sagas of `writes`, and its parameters."""
    preparer = session.get_bind().dialect.identifier_preparer
    statement = _text(preparer.format_table(sagas), preparer.format_table(steps))
    names = ("id", "version", "status", "current_step", "data", "error")
    params = {name: [values[name] for values, _ in writes] for name in names}
    params["updated_at"] = [values["updated_at"] for values, _ in writes]
    params["deadline_at"] = [values["deadline_at"] for values, _ in writes]
    params.update(_step_arrays([(values["id"], r) for values, records in writes for r in records]))
    return statement, params


def _step_arrays(rows: Sequence[tuple[Any, StepRecord]]) -> dict[str, list[Any]]:
    """(saga id, step) pairs as the step upsert's arrays."""
    return {
        "s_saga_id": [saga_id for saga_id, _ in rows],
        "s_idx": [s.idx for _, s in rows],
        "s_phase": [s.phase.value for _, s in rows],
        "s_name": [s.name for _, s in rows],
        "s_status": [s.status.value for _, s in rows],
        "s_attempts": [s.attempts for _, s in rows],
        "s_started_at": [s.started_at for _, s in rows],
        "s_finished_at": [s.finished_at for _, s in rows],
        "s_error": [s.error for _, s in rows],
        "s_result": [None if s.result is None else json_text(s.result) for _, s in rows],
    }


@lru_cache(maxsize=64)
def _text(sagas: str, steps: str) -> TextClause:
    saga = _UPDATE_SAGAS.format(sagas=sagas)
    written = _UPSERT_STEPS.format(steps=steps)
    # Only the tables' names, quoted by the dialect, are formatted in; every value is bound.
    return text(f"WITH saga AS ({saga}), written_steps AS ({written}) SELECT count(*) FROM saga")  # noqa: S608

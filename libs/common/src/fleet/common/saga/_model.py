"""What a saga is at one moment: statuses, the step history and the public snapshots of both."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple


class SagaStatus(StrEnum):
    RUNNING = "running"
    COMPENSATING = "compensating"
    COMPLETED = "completed"
    COMPENSATED = "compensated"
    FAILED = "failed"

    @property
    def is_final(self) -> bool:
        return self not in (SagaStatus.RUNNING, SagaStatus.COMPENSATING)


class StepStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    COMPENSATING = "compensating"
    COMPENSATED = "compensated"
    SKIPPED = "skipped"


class Phase(StrEnum):
    ACTION = "action"
    COMPENSATION = "compensation"


class StepRecord(NamedTuple):
    """One row of a saga's history: a step's action or its compensation.

    A named tuple rather than a frozen dataclass: the engine snapshots every step of a saga
    several times per message, and a tuple is built ~3.5 times faster (0.8 against 2.9 µs).
    """

    idx: int
    name: str
    phase: Phase
    status: StepStatus
    attempts: int
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    error: str | None
    result: Mapping[str, Any] | None


@dataclass(frozen=True)
class SagaInstance:
    """A read-only snapshot of a saga and its history (what `GET /sagas/{id}` shows)."""

    id: uuid.UUID
    name: str
    status: SagaStatus
    current_step: int
    data: Mapping[str, Any]
    error: str | None
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime
    deadline_at: dt.datetime | None
    steps: tuple[StepRecord, ...]

    @property
    def phase(self) -> Phase:
        """Compensation once anything went wrong, action otherwise."""
        if self.status in (SagaStatus.RUNNING, SagaStatus.COMPLETED):
            return Phase.ACTION
        return Phase.COMPENSATION


@dataclass
class StepState:
    """The mutable twin of `StepRecord` the engine works on inside one transaction."""

    idx: int
    name: str
    phase: Phase
    status: StepStatus = StepStatus.PENDING
    attempts: int = 0
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    error: str | None = None
    result: dict[str, Any] | None = None

    @property
    def key(self) -> tuple[int, Phase]:
        return (self.idx, self.phase)

    @property
    def in_flight(self) -> bool:
        """Sent (or running) and not yet answered."""
        return (
            self.status in (StepStatus.RUNNING, StepStatus.COMPENSATING)
            and self.finished_at is None
        )

    def freeze(self) -> StepRecord:
        return StepRecord(
            self.idx,
            self.name,
            self.phase,
            self.status,
            self.attempts,
            self.started_at,
            self.finished_at,
            self.error,
            dict(self.result) if self.result is not None else None,
        )


@dataclass
class SagaState:
    """The mutable saga the engine advances; `SagaStore` loads and saves it."""

    id: uuid.UUID
    name: str
    status: SagaStatus
    current_step: int
    data: dict[str, Any]
    error: str | None
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime
    deadline_at: dt.datetime | None
    steps: list[StepState]
    # What the store last wrote, to save only the rows that changed.
    persisted: dict[tuple[int, Phase], StepRecord] = field(default_factory=dict)
    # False until the saga's row is written: a new saga is inserted by its first save.
    stored: bool = True
    # Set when this transaction moved the saga to a final status; drained by the engine.
    ended: bool = False
    finished_steps: list[StepState] = field(default_factory=list)

    def record(self, idx: int, phase: Phase) -> StepState | None:
        for step in self.steps:
            if step.idx == idx and step.phase is phase:
                return step
        return None

    def action(self, idx: int) -> StepState:
        record = self.record(idx, Phase.ACTION)
        if record is None:  # pragma: no cover - every action row is created at start
            raise LookupError(f"saga {self.id} has no action row {idx}")
        return record

    def compensation(self, idx: int, name: str) -> StepState:
        """The compensation row of step `idx`, created on first use."""
        record = self.record(idx, Phase.COMPENSATION)
        if record is None:
            record = StepState(idx, name, Phase.COMPENSATION)
            self.steps.append(record)
        return record

    def finish(self, status: SagaStatus, now: dt.datetime) -> None:
        self.status = status
        self.deadline_at = None
        self.updated_at = now
        self.ended = True
        for step in self.steps:
            if step.status is StepStatus.PENDING:
                step.status = StepStatus.SKIPPED

    def snapshot(self) -> SagaInstance:
        ordered = sorted(self.steps, key=lambda s: (s.idx, s.phase is Phase.COMPENSATION))
        return SagaInstance(
            id=self.id,
            name=self.name,
            status=self.status,
            current_step=self.current_step,
            data=dict(self.data),
            error=self.error,
            version=self.version,
            created_at=self.created_at,
            updated_at=self.updated_at,
            deadline_at=self.deadline_at,
            steps=tuple(s.freeze() for s in ordered),
        )

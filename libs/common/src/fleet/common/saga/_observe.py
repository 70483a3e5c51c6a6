"""Saga outcomes and durations, reported only once the transaction that decided them commits.

A decision rolled back (a lost race, a failing hook) must not be counted, so observations wait in
the session until `after_commit` and are dropped when the outermost transaction ends otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from fleet.common.logging import get_logger
from fleet.common.saga._model import Phase, SagaStatus, StepStatus

log = get_logger("fleet.saga")

_PENDING = "fleet.saga.pending_observations"

DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class SagaObserver(Protocol):
    """Receives what happened to sagas; `PrometheusSagaObserver` is the production one."""

    def step_finished(
        self, saga: str, step: str, phase: Phase, status: StepStatus, seconds: float
    ) -> None: ...

    def saga_finished(self, saga: str, status: SagaStatus, seconds: float) -> None: ...


class PrometheusSagaObserver:
    """`saga_outcomes_total`, `saga_duration_seconds` and `saga_step_duration_seconds`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.outcomes = Counter(
            "saga_outcomes_total",
            "Sagas that reached a final status, by saga and status.",
            ["saga", "status"],
            registry=registry,
        )
        self.duration = Histogram(
            "saga_duration_seconds",
            "Time from a saga's start to its final status.",
            ["saga", "status"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.step_duration = Histogram(
            "saga_step_duration_seconds",
            "Time from a step attempt's dispatch to its outcome.",
            ["saga", "step", "phase", "status"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )

    def step_finished(
        self, saga: str, step: str, phase: Phase, status: StepStatus, seconds: float
    ) -> None:
        self.step_duration.labels(saga, step, phase.value, status.value).observe(seconds)

    def saga_finished(self, saga: str, status: SagaStatus, seconds: float) -> None:
        self.outcomes.labels(saga, status.value).inc()
        self.duration.labels(saga, status.value).observe(seconds)


def after_commit(session: AsyncSession, callback: Callable[[], None]) -> None:
    """Run `callback` after the session's current outermost transaction commits."""
    sync = session.sync_session
    if _PENDING not in sync.info:
        sync.info[_PENDING] = []
        event.listen(sync, "after_commit", _flush)
        event.listen(sync, "after_transaction_end", _discard)
    pending: list[Callable[[], None]] = sync.info[_PENDING]
    pending.append(callback)


def _flush(session: Session) -> None:
    pending: list[Callable[[], None]] = session.info[_PENDING]
    callbacks = list(pending)
    pending.clear()
    for callback in callbacks:
        try:
            callback()
        except Exception:  # an observer must never turn a committed saga into an error
            log.exception("saga observer failed")


def _discard(session: Session, transaction: SessionTransaction, *_: Any) -> None:
    # Savepoints end too (a failed local step); only the outermost end drops what is left.
    if transaction.parent is None:
        session.info[_PENDING].clear()

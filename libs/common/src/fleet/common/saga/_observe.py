"""Saga outcomes and durations, reported only once the transaction that decided them commits.

A decision rolled back (a lost race, a failing hook) must not be counted, so the engine hands
observations to `fleet.common.db.after_commit`, which drops them if the transaction rolls back.
"""

from __future__ import annotations

from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram

from fleet.common.saga._model import Phase, SagaStatus, StepStatus

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

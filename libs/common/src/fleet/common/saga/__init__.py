"""A generic, declarative, persisted orchestration saga engine.

A service owning a saga adds the tables to its schema with `saga_tables(metadata)`, describes the
saga as data (`SagaDefinition`), and builds a `SagaEngine` with a `send` that writes commands into
its outbox. It calls `start` in the transaction that creates its own rows, feeds participants'
replies to `handle_reply`, and runs `sweep` periodically to act on timeouts (and to resume sagas
after a restart). See docs/adr/0003-orchestrated-saga-engine.md.
"""

from fleet.common.saga._definition import SagaDefinition, Step
from fleet.common.saga._engine import (
    Clock,
    CompletedHook,
    EndedHook,
    LocalStep,
    SagaEngine,
    SendCommand,
    no_savepoint,
)
from fleet.common.saga._messages import SagaCommand, SagaReply
from fleet.common.saga._model import Phase, SagaInstance, SagaStatus, StepRecord, StepStatus
from fleet.common.saga._observe import PrometheusSagaObserver, SagaObserver
from fleet.common.saga._store import SagaConcurrencyError
from fleet.common.saga._tables import SAGA_STEPS, SAGAS, SagaTables, saga_tables

__all__ = [
    "SAGAS",
    "SAGA_STEPS",
    "Clock",
    "CompletedHook",
    "EndedHook",
    "LocalStep",
    "Phase",
    "PrometheusSagaObserver",
    "SagaCommand",
    "SagaConcurrencyError",
    "SagaDefinition",
    "SagaEngine",
    "SagaInstance",
    "SagaObserver",
    "SagaReply",
    "SagaStatus",
    "SagaTables",
    "SendCommand",
    "Step",
    "StepRecord",
    "StepStatus",
    "no_savepoint",
    "saga_tables",
]

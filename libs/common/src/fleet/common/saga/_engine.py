"""The orchestrator: drives one saga definition's instances step by step, persisted as it goes.

Every entry point runs inside the caller's transaction and leaves the saga in a state that is
safe to commit: a command handed to `send` (the caller's outbox) is committed together with the
state that expects its reply, so a crash loses neither.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from fleet.common.db import after_commit, utcnow
from fleet.common.logging import get_logger
from fleet.common.messaging.envelope import Envelope
from fleet.common.outbox import BatchHooks
from fleet.common.saga._definition import SagaDefinition
from fleet.common.saga._flow import (
    Clock,
    LocalStep,
    SagaFlow,
    SendCommand,
    jsonable,
    no_savepoint,
    step_span_name,
)
from fleet.common.saga._messages import SagaReply
from fleet.common.saga._model import Phase, SagaInstance, SagaState, SagaStatus, StepState
from fleet.common.saga._observe import SagaObserver
from fleet.common.saga._store import SagaStore
from fleet.common.saga._tables import SagaTables
from fleet.common.shedding import QueueDelayShedder
from fleet.common.tracing import span

log = get_logger("fleet.saga")

CompletedHook = Callable[[AsyncSession, SagaInstance], Awaitable[None]]
EndedHook = Callable[[AsyncSession, SagaInstance, str], Awaitable[None]]

__all__ = [
    "Clock",
    "CompletedHook",
    "EndedHook",
    "LocalStep",
    "SagaEngine",
    "SendCommand",
    "no_savepoint",
]


class SagaEngine:
    """Runs the sagas of one `SagaDefinition`; see docs/adr/0003-orchestrated-saga-engine.md.

    `send(session, command)` must put the command on its way in the same transaction (write it
    to the outbox). `local_actions`/`local_compensations` map local step names to callables
    `(session, instance) -> dict | None`; a returned dict is merged into the saga's data.
    Hooks run in the transaction that ends the saga, after it is saved. With a `shedder`, every
    remote step's time from dispatch to outcome is a sample of the queueing it met, and
    `admit()` says whether a new saga may start (fleet.common.shedding).
    """

    def __init__(
        self,
        definition: SagaDefinition,
        send: SendCommand,
        local_actions: Mapping[str, LocalStep] | None = None,
        local_compensations: Mapping[str, LocalStep] | None = None,
        *,
        tables: SagaTables,
        reply_to: str | None = None,
        clock: Clock = utcnow,
        on_completed: CompletedHook | None = None,
        on_compensated: EndedHook | None = None,
        on_failed: EndedHook | None = None,
        observer: SagaObserver | None = None,
        shedder: QueueDelayShedder | None = None,
        max_compensation_attempts: int = 10,
        max_backoff_s: float = 300.0,
    ) -> None:
        actions, compensations = dict(local_actions or {}), dict(local_compensations or {})
        _check_locals(definition, actions, compensations, max_compensation_attempts)
        self.definition = definition
        self._store = SagaStore(tables)
        self._clock = clock
        self._flow = SagaFlow(
            definition,
            send,
            actions,
            compensations,
            clock=clock,
            reply_to=reply_to or f"saga.{definition.name}.reply",
            max_compensation_attempts=max_compensation_attempts,
            max_backoff_s=max_backoff_s,
        )
        self._on_completed = on_completed
        self._on_compensated = on_compensated
        self._on_failed = on_failed
        self._observer = observer
        self._shedder = shedder if shedder is not None and shedder.enabled else None
        self._remote = frozenset(s.name for s in definition.steps if not s.local)

    def admit(self) -> bool:
        """May a new saga start now? Not while a standing queue delays the remote steps."""
        return self._shedder is None or self._shedder.admit()

    @property
    def reply_to(self) -> str:
        """The routing key put on every command for participants' replies."""
        return self._flow.reply_to

    async def start(
        self, session: AsyncSession, saga_id: uuid.UUID, data: Mapping[str, Any]
    ) -> SagaInstance:
        """Persist a new saga and dispatch its first step(s), in the caller's transaction.

        `data` (JSON-able; UUIDs and datetimes become strings) is the saga's initial context
        and the payload of its commands. A duplicate `saga_id` raises the driver's
        IntegrityError: use an id derived from the caller's idempotency key, and `get` first.
        """
        now = self._clock()
        state = SagaState(
            id=saga_id,
            name=self.definition.name,
            status=SagaStatus.RUNNING,
            current_step=0,
            data=jsonable(data),
            error=None,
            version=1,
            created_at=now,
            updated_at=now,
            deadline_at=None,
            steps=[StepState(i, s.name, Phase.ACTION) for i, s in enumerate(self.definition.steps)],
            stored=False,
        )
        if self._store.inserts_first(session):
            await self._store.save(session, state)
        # Otherwise the saga is written once, by `_commit`, after its first steps ran.
        await self._flow.run_from(session, state, 0, now)
        return await self._commit(session, state, now)

    async def handle_reply(self, session: AsyncSession, reply: SagaReply) -> SagaInstance | None:
        """Apply a participant's reply; `None` (and no change) if it is unknown, stale, a
        duplicate, or arrives after the step timed out. Raises `SagaConcurrencyError` if another
        transaction changed the saga meanwhile (roll back; the redelivery will be ignored)."""
        attributes = {
            "saga.id": str(reply.saga_id),
            "saga.step": reply.step,
            "saga.phase": reply.phase.value,
            "saga.attempt": reply.attempt,
            "saga.reply.success": reply.success,
        }
        with span(step_span_name(self.definition.name, reply.step), attributes):
            return await self._handle_reply(session, reply)

    async def _handle_reply(self, session: AsyncSession, reply: SagaReply) -> SagaInstance | None:
        state = await self._store.load(session, reply.saga_id, lock=True)
        record = self._flow.expecting(state, reply) if state is not None else None
        if state is None or record is None:
            log.info(
                "saga reply ignored",
                saga_id=str(reply.saga_id),
                step=reply.step,
                phase=reply.phase.value,
                attempt=reply.attempt,
            )
            return None
        now = self._clock()
        await self._flow.apply_reply(session, state, record, reply, now)
        return await self._commit(session, state, now)

    def batch_hooks(self) -> BatchHooks:
        """Hooks for the consumer of this saga's replies (`ServiceRuntime.consumer(…, hooks=)`):
        a batch of replies loads and locks its sagas with one query and saves them with one
        statement (PostgreSQL), instead of one load and one save per reply."""
        return BatchHooks(prepare=self._prefetch, finish=self._store.flush)

    async def _prefetch(self, session: AsyncSession, envelopes: Sequence[Envelope]) -> None:
        ids = []
        for envelope in envelopes:
            try:
                ids.append(uuid.UUID(str(envelope.data["saga_id"])))
            except (KeyError, TypeError, ValueError):
                continue  # not a reply: its handler says so
        await self._store.prefetch(session, ids)

    async def sweep(
        self, session: AsyncSession, now: dt.datetime | None = None, limit: int = 100
    ) -> int:
        """Act on this definition's sagas whose current step's deadline passed: resend, time
        out and compensate, or retry a compensation. Returns how many sagas it drove. Run it
        periodically (and at start-up, which resumes what a restart interrupted)."""
        now = now or self._clock()
        driven = 0
        for saga_id in await self._store.due(session, self.definition.name, now, limit):
            state = await self._store.load(session, saga_id, lock=True)
            if state is None or state.status.is_final or state.deadline_at is None:
                continue
            if state.deadline_at > now:
                continue
            await self._flow.deadline_passed(session, state, now)
            await self._commit(session, state, now)
            driven += 1
        return driven

    async def get(self, session: AsyncSession, saga_id: uuid.UUID) -> SagaInstance | None:
        """The saga and every step row (action and compensation), or `None` if unknown."""
        state = await self._store.load(session, saga_id, lock=False)
        return state.snapshot() if state is not None else None

    async def _commit(
        self, session: AsyncSession, state: SagaState, now: dt.datetime
    ) -> SagaInstance:
        """Save the saga, then run the owner's hook and queue the observations."""
        await self._store.save(session, state)
        instance = state.snapshot()
        self._observe(session, state, now)
        if state.ended:
            state.ended = False
            reason = state.error or ""
            if state.status is SagaStatus.COMPLETED and self._on_completed:
                await self._on_completed(session, instance)
            elif state.status is SagaStatus.COMPENSATED and self._on_compensated:
                await self._on_compensated(session, instance, reason)
            elif state.status is SagaStatus.FAILED and self._on_failed:
                await self._on_failed(session, instance, reason)
        return instance

    def _observe(self, session: AsyncSession, state: SagaState, now: dt.datetime) -> None:
        observer, shedder, name = self._observer, self._shedder, state.name
        finished, state.finished_steps = state.finished_steps, []
        for r in finished:
            seconds = _seconds(r.started_at, r.finished_at)
            if observer is not None:
                call = partial(observer.step_finished, name, r.name, r.phase, r.status, seconds)
                after_commit(session, call)
            if shedder is not None and r.started_at and r.name in self._remote:
                after_commit(session, partial(shedder.observe, seconds))
        if observer is not None and state.ended:
            seconds = _seconds(state.created_at, now)
            after_commit(session, partial(observer.saga_finished, name, state.status, seconds))


def _check_locals(
    definition: SagaDefinition,
    actions: Mapping[str, LocalStep],
    compensations: Mapping[str, LocalStep],
    max_compensation_attempts: int,
) -> None:
    if max_compensation_attempts < 1:
        raise ValueError("max_compensation_attempts must be at least 1")
    local = {s.name for s in definition.steps if s.local}
    compensable = {s.name for s in definition.steps if s.local and s.compensation}
    if set(actions) != local:
        raise ValueError(f"local actions must be given for exactly {sorted(local)}")
    if set(compensations) != compensable:
        raise ValueError(f"local compensations must be given for exactly {sorted(compensable)}")


def _seconds(start: dt.datetime | None, end: dt.datetime | None) -> float:
    if start is None or end is None:
        return 0.0
    return max((end - start).total_seconds(), 0.0)

"""How a saga moves: forward through its steps, backward through their compensations.

`SagaFlow` only changes a `SagaState` (and hands commands to `send`); loading, locking, saving,
hooks and observations are the engine's business.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from pydantic_core import to_jsonable_python
from sqlalchemy.ext.asyncio import AsyncSession

from fleet.common.errors import FleetError
from fleet.common.saga._definition import SagaDefinition, Step
from fleet.common.saga._messages import SagaCommand, SagaReply
from fleet.common.saga._model import (
    Phase,
    SagaInstance,
    SagaState,
    SagaStatus,
    StepState,
    StepStatus,
)
from fleet.common.tracing import span

SendCommand = Callable[[AsyncSession, SagaCommand], Awaitable[None]]
LocalStep = Callable[[AsyncSession, SagaInstance], Awaitable[Mapping[str, Any] | None]]
Clock = Callable[[], dt.datetime]


class SagaFlow:
    def __init__(
        self,
        definition: SagaDefinition,
        send: SendCommand,
        actions: Mapping[str, LocalStep],
        compensations: Mapping[str, LocalStep],
        *,
        clock: Clock,
        reply_to: str,
        max_compensation_attempts: int,
        max_backoff_s: float,
    ) -> None:
        self.definition = definition
        self.reply_to = reply_to
        self._send = send
        self._actions = dict(actions)
        self._compensations = dict(compensations)
        self._clock = clock
        self._max_comp_attempts = max_compensation_attempts
        self._max_backoff_s = max_backoff_s

    async def apply_reply(
        self,
        session: AsyncSession,
        state: SagaState,
        record: StepState,
        reply: SagaReply,
        now: dt.datetime,
    ) -> None:
        """Apply a reply that `expecting` matched to `record`."""
        step = self.definition.steps[record.idx]
        if reply.phase is Phase.ACTION:
            await self._action_replied(session, state, step, record, reply, now)
        elif reply.success:
            self._step_done(state, record, StepStatus.COMPENSATED, jsonable(reply.result), now)
            await self._compensate_from(session, state, record.idx - 1, now)
        else:
            error = reply.error or "compensation failed"
            self._compensation_failed(state, step, record, error, now)

    # -- forward ------------------------------------------------------------------------------

    async def run_from(
        self, session: AsyncSession, state: SagaState, idx: int, now: dt.datetime
    ) -> None:
        steps = self.definition.steps
        while idx < len(steps):
            state.current_step = idx
            step, record = steps[idx], state.action(idx)
            if not step.local:
                await self._dispatch(session, state, step, record, now)
                return
            succeeded = await self._run_local(session, state, record, self._actions[step.name])
            now = self._clock()  # what follows starts after this local step finished
            if not succeeded:
                reason = f"step {step.name} failed: {record.error}"
                await self._begin_compensation(session, state, idx - 1, reason, now)
                return
            idx += 1
        state.current_step = len(steps) - 1
        state.finish(SagaStatus.COMPLETED, now)

    async def _action_replied(
        self,
        session: AsyncSession,
        state: SagaState,
        step: Step,
        record: StepState,
        reply: SagaReply,
        now: dt.datetime,
    ) -> None:
        if reply.success:
            result = jsonable(reply.result)
            state.data.update(result)
            self._step_done(state, record, StepStatus.SUCCEEDED, result, now)
            await self.run_from(session, state, record.idx + 1, now)
            return
        record.error = reply.error or "failed"
        self._step_done(state, record, StepStatus.FAILED, None, now)
        reason = f"step {step.name} failed: {record.error}"
        await self._begin_compensation(session, state, record.idx - 1, reason, now)

    async def deadline_passed(
        self, session: AsyncSession, state: SagaState, now: dt.datetime
    ) -> None:
        idx = state.current_step
        step = self.definition.steps[idx]
        if state.status is SagaStatus.RUNNING:
            record = state.action(idx)
            if record.attempts <= step.retries:
                await self._dispatch(session, state, step, record, now)
                return
            record.error = f"no reply within {step.timeout_s:g}s (attempt {record.attempts})"
            self._step_done(state, record, StepStatus.TIMED_OUT, None, now)
            # The participant may have acted without answering: compensate this step too.
            await self._begin_compensation(session, state, idx, f"step {step.name} timed out", now)
            return
        record = state.compensation(idx, step.name)
        if record.finished_at is None:  # no answer at all (a failure reply sets finished_at)
            record.error = f"no reply within {step.timeout_s:g}s (attempt {record.attempts})"
            if record.attempts >= self._max_comp_attempts:
                self._give_up(state, step, record, now)
                return
        if await self._compensate_step(session, state, step, record, now):
            await self._compensate_from(session, state, idx - 1, self._clock())

    # -- backward -----------------------------------------------------------------------------

    async def _begin_compensation(
        self, session: AsyncSession, state: SagaState, idx: int, reason: str, now: dt.datetime
    ) -> None:
        state.status = SagaStatus.COMPENSATING
        state.error = reason
        for record in state.steps:
            if record.status is StepStatus.PENDING:
                record.status = StepStatus.SKIPPED
        await self._compensate_from(session, state, idx, now)

    async def _compensate_from(
        self, session: AsyncSession, state: SagaState, idx: int, now: dt.datetime
    ) -> None:
        """Compensate steps `idx`, `idx - 1`, … 0 that may have taken effect."""
        for i in range(idx, -1, -1):
            step = self.definition.steps[i]
            done = state.action(i).status in (StepStatus.SUCCEEDED, StepStatus.TIMED_OUT)
            if not done or step.compensation is None:
                continue
            state.current_step = i
            record = state.compensation(i, step.name)
            if not await self._compensate_step(session, state, step, record, now):
                return
            now = self._clock()  # the next compensation starts after this local one finished
        state.finish(SagaStatus.COMPENSATED, now)

    async def _compensate_step(
        self,
        session: AsyncSession,
        state: SagaState,
        step: Step,
        record: StepState,
        now: dt.datetime,
    ) -> bool:
        """Dispatch one compensation attempt; True if it already succeeded (a local step)."""
        if not step.local:
            await self._dispatch(session, state, step, record, now)
            return False
        if await self._run_local(session, state, record, self._compensations[step.name]):
            return True
        self._compensation_failed(state, step, record, record.error or "failed", self._clock())
        return False

    def _compensation_failed(
        self, state: SagaState, step: Step, record: StepState, error: str, now: dt.datetime
    ) -> None:
        """Compensations never give up silently: retry after a back-off, then flag an operator."""
        record.error = error
        record.finished_at = now
        if record.attempts >= self._max_comp_attempts:
            self._give_up(state, step, record, now)
            return
        backoff = min(step.timeout_s * 2 ** (record.attempts - 1), self._max_backoff_s)
        state.deadline_at = now + dt.timedelta(seconds=backoff)
        state.updated_at = now

    def _give_up(self, state: SagaState, step: Step, record: StepState, now: dt.datetime) -> None:
        self._step_done(state, record, StepStatus.FAILED, None, now)
        state.error = (
            f"{state.error}; compensation of {step.name} gave up after "
            f"{record.attempts} attempts: {record.error}"
        )
        state.finish(SagaStatus.FAILED, now)

    # -- mechanics ----------------------------------------------------------------------------

    async def _dispatch(
        self,
        session: AsyncSession,
        state: SagaState,
        step: Step,
        record: StepState,
        now: dt.datetime,
    ) -> None:
        """Send the next attempt of a remote action or compensation and arm its timeout."""
        compensating = record.phase is Phase.COMPENSATION
        record.attempts += 1
        record.status = StepStatus.COMPENSATING if compensating else StepStatus.RUNNING
        record.started_at, record.finished_at = now, None
        state.deadline_at = now + dt.timedelta(seconds=step.timeout_s)
        state.updated_at = now
        command = SagaCommand(
            saga_id=state.id,
            saga_name=state.name,
            step=step.name,
            phase=record.phase,
            attempt=record.attempts,
            command_type=(step.compensation or "") if compensating else step.action,
            payload=dict(state.data),
            reply_to=self.reply_to,
        )
        # The command's envelope is created inside this span: the participant continues it.
        with span(step_span_name(state.name, step.name), step_attributes(state.id, record)):
            await self._send(session, command)

    async def _run_local(
        self, session: AsyncSession, state: SagaState, record: StepState, run: LocalStep
    ) -> bool:
        """Run a local step in a savepoint (unless it is marked `no_savepoint`): its writes
        commit with the saga or not at all.

        The transaction is open on every backend by now: SQLite's driver opens it on the first
        DML only, and a SAVEPOINT outside one would commit everything on release, so the store
        writes a new saga first there (`SagaStore.inserts_first`) and locks with an UPDATE.
        """
        now = self._clock()
        compensating = record.phase is Phase.COMPENSATION
        record.attempts += 1
        record.status = StepStatus.COMPENSATING if compensating else StepStatus.RUNNING
        record.started_at, record.finished_at = now, None
        state.deadline_at = None
        state.updated_at = now
        try:
            with span(step_span_name(state.name, record.name), step_attributes(state.id, record)):
                if isinstance(run, _NoSavepoint):
                    result = await run(session, state.snapshot())
                else:
                    async with session.begin_nested():
                        result = await run(session, state.snapshot())
        except Exception as exc:  # the owner's step failing is an outcome, not a crash
            # A refusal reads as a participant's would (its detail); anything else names its type.
            record.error = (
                exc.detail if isinstance(exc, FleetError) else f"{type(exc).__name__}: {exc}"
            )
            if not compensating:
                self._step_done(state, record, StepStatus.FAILED, None, self._clock())
            return False
        values = jsonable(result or {})
        if not compensating:
            state.data.update(values)
        status = StepStatus.COMPENSATED if compensating else StepStatus.SUCCEEDED
        self._step_done(state, record, status, values, self._clock())
        return True

    @staticmethod
    def _step_done(
        state: SagaState,
        record: StepState,
        status: StepStatus,
        result: dict[str, Any] | None,
        now: dt.datetime,
    ) -> None:
        record.status = status
        record.finished_at = now
        if result is not None:
            record.result = result
        state.updated_at = now
        state.finished_steps.append(record)

    def expecting(self, state: SagaState, reply: SagaReply) -> StepState | None:
        """The in-flight step row this reply answers, if it answers the current one."""
        if state.name != self.definition.name or state.status.is_final:
            return None
        phase = Phase.ACTION if state.status is SagaStatus.RUNNING else Phase.COMPENSATION
        step = self.definition.steps[state.current_step]
        if reply.phase is not phase or reply.step != step.name or step.local:
            return None
        record = state.record(state.current_step, phase)
        if record is None or not record.in_flight or record.attempts != reply.attempt:
            return None
        return record


class _NoSavepoint:
    """A local step that runs without a savepoint, see `no_savepoint`."""

    def __init__(self, step: LocalStep) -> None:
        self.step = step

    async def __call__(self, session: AsyncSession, saga: SagaInstance) -> Mapping[str, Any] | None:
        return await self.step(session, saga)


def no_savepoint(step: LocalStep) -> LocalStep:
    """Mark a local step (action or compensation) that writes nothing before it can fail.

    Such a step runs without the SAVEPOINT/RELEASE pair (two round trips) around it: a failure
    has nothing to undo. A step that raises after a write would have that write committed with
    the saga's compensation, so only mark steps that check everything first. (A database error
    inside an unmarked step fails the step; inside a marked one, PostgreSQL fails the whole
    transaction, which is then retried as a whole.)
    """
    return step if isinstance(step, _NoSavepoint) else _NoSavepoint(step)


def step_span_name(saga: str, step: str) -> str:
    return f"saga {saga} step {step}"


def step_attributes(saga_id: uuid.UUID, record: StepState) -> dict[str, Any]:
    return {
        "saga.id": str(saga_id),
        "saga.step": record.name,
        "saga.phase": record.phase.value,
        "saga.attempt": record.attempts,
    }


def jsonable(data: Mapping[str, Any]) -> dict[str, Any]:
    """Saga data is stored as JSON: UUIDs, datetimes and decimals become strings once, here."""
    value = to_jsonable_python(dict(data))
    if not isinstance(value, dict):  # pragma: no cover - a dict stays a dict
        raise TypeError("saga data must be a mapping")
    return value

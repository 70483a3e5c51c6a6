"""`AsyncCircuitBreaker`: pybreaker's state machine driving asyncio calls.

pybreaker only knows synchronous (and Tornado) calls, so the awaitable runs here, under a timeout,
and its outcome is then fed to pybreaker as a tiny synchronous call that succeeds or raises: the
closed/open/half-open transitions, listeners and `opened_at` stay pybreaker's. Two rules are ours:

- Opening: pybreaker opens after N *consecutive* failures; we open when, over a rolling window
  (10 s in 10 buckets), at least `min_calls` calls were made and `failure_threshold` (50 %) of them
  failed — the seed's opossum rule. It is a pybreaker listener that calls `open()`.
- Half-open admits one trial call at a time; concurrent callers fail fast until it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import inspect
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

import pybreaker
from pybreaker import STATE_CLOSED, STATE_HALF_OPEN, STATE_OPEN

from fleet.common.breaker._metrics import BreakerMetrics
from fleet.common.breaker._shared import SharedSnapshot, SharedState
from fleet.common.breaker._window import RollingWindow
from fleet.common.errors import ServiceUnavailableError
from fleet.common.logging import get_logger

P = ParamSpec("P")
T = TypeVar("T")
Fallback = Callable[[Exception], Any]

log = get_logger("fleet.breaker")


class CircuitOpenError(ServiceUnavailableError, pybreaker.CircuitBreakerError):
    """The breaker refused the call without making it. Unhandled, it renders as a 503 problem."""


@dataclass(frozen=True)
class BreakerConfig:
    """The seed's settings (opossum: timeout 3000, errorThresholdPercentage 50, resetTimeout
    30000, rollingCountTimeout 10000, rollingCountBuckets 10) plus a minimum volume."""

    timeout: float = 3.0
    failure_threshold: float = 0.5
    min_calls: int = 5
    window_seconds: float = 10.0
    window_buckets: int = 10
    reset_timeout: float = 30.0
    # How stale a replica's view of the shared state may be; 0 reads it before every call.
    sync_interval: float = 0.1


def _succeed() -> None:
    return None


def _fail(exc: Exception) -> None:
    raise exc


class _RateRule(pybreaker.CircuitBreakerListener):
    """Feeds the rolling window and opens the circuit on the error-rate rule."""

    def __init__(self, owner: AsyncCircuitBreaker) -> None:
        self._owner = owner

    def success(self, cb: pybreaker.CircuitBreaker) -> None:  # noqa: ARG002 - pybreaker's hook
        self._owner.window.record(ok=True)

    def failure(self, cb: pybreaker.CircuitBreaker, exc: BaseException) -> None:  # noqa: ARG002
        self._owner.window.record(ok=False)
        if cb.current_state == STATE_CLOSED and self._owner.rate_exceeded():
            cb.open()

    def state_change(
        self,
        cb: pybreaker.CircuitBreaker,  # noqa: ARG002
        old_state: pybreaker.CircuitBreakerState | None,
        new_state: pybreaker.CircuitBreakerState,
    ) -> None:
        self._owner._on_transition(old_state.name if old_state else STATE_CLOSED, new_state.name)


class AsyncCircuitBreaker:
    """A circuit breaker for coroutines: `await breaker.call(fetch, vehicle_id)`.

    Failures are exceptions not listed in `exclude` (timeouts included); excluded ones are
    business answers and count as successes. With a `fallback`, a failed or refused call returns
    `fallback(error)` (a value or an awaitable) instead of raising.
    """

    def __init__(
        self,
        name: str,
        config: BreakerConfig | None = None,
        *,
        fallback: Fallback | None = None,
        exclude: tuple[type[Exception], ...] = (),
        metrics: BreakerMetrics | None = None,
        shared: SharedState | None = None,
        shared_key: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.config = config or BreakerConfig()
        self.fallback = fallback
        self.metrics = metrics
        self.shared = shared
        self.shared_key = shared_key or f"breaker:{name}"
        self._clock = clock
        self.window = RollingWindow(clock, self.config.window_seconds, self.config.window_buckets)
        self._storage = pybreaker.CircuitMemoryStorage(STATE_CLOSED)
        self._trial = False
        self._applying_remote = False
        self._pending: SharedSnapshot | None = None
        self._seen = 0.0
        self._pulled = -float("inf")
        self._cb = pybreaker.CircuitBreaker(
            fail_max=sys.maxsize,  # the rate rule decides; pybreaker's consecutive count never
            reset_timeout=self.config.reset_timeout,
            exclude=list(exclude),
            listeners=[_RateRule(self)],
            state_storage=self._storage,
            name=name,
            throw_new_error_on_trip=False,
        )
        if metrics is not None:
            metrics.set_state(name, STATE_CLOSED)

    @property
    def state(self) -> str:
        """`closed`, `open` or `half-open`."""
        return str(self._cb.current_state)

    @property
    def opened_at(self) -> dt.datetime | None:
        """When the circuit last opened (None if it never did)."""
        opened: dt.datetime | None = self._storage.opened_at
        return opened

    def rate_exceeded(self) -> bool:
        calls, failures = self.window.counts()
        return calls >= self.config.min_calls and failures / calls >= self.config.failure_threshold

    async def call(self, fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `fn(*args, **kwargs)` under the breaker's rules and timeout."""
        await self._pull()
        try:
            trial = self._admit()
        except CircuitOpenError as exc:
            self._count("rejected")
            fallen: T = await self._fall_back(exc)
            return fallen
        try:
            async with asyncio.timeout(self.config.timeout):
                result = await fn(*args, **kwargs)
        except Exception as exc:
            failed = self._record(exc)
            await self._push()
            if not failed:
                raise
            fallen = await self._fall_back(exc)
            return fallen
        finally:
            if trial:
                self._trial = False
        self._record(None)
        await self._push()
        return result

    async def refresh(self) -> None:
        """Adopt the newest shared decision now (the operator view calls this)."""
        self._pulled = -float("inf")
        await self._pull()

    def _admit(self) -> bool:
        """Raise `CircuitOpenError` to refuse; True if this call is the half-open trial."""
        state = self._cb.state.name
        if state == STATE_OPEN:
            opened = self.opened_at
            if opened and self._clock() < opened.timestamp() + self.config.reset_timeout:
                raise CircuitOpenError(f"circuit {self.name!r} is open", breaker=self.name)
            self._cb.half_open()
            state = STATE_HALF_OPEN
        if state == STATE_HALF_OPEN:
            if self._trial:
                raise CircuitOpenError(f"circuit {self.name!r} is testing", breaker=self.name)
            self._trial = True
            return True
        return False

    def _record(self, exc: Exception | None) -> bool:
        """Feed the outcome to pybreaker; True if it counted as a failure."""
        failed = exc is not None and self._cb.is_system_error(exc)
        result = "success" if exc is None else "excluded"
        if failed:
            result = "timeout" if isinstance(exc, TimeoutError) else "failure"
        self._count(result)
        if self._cb.current_state == STATE_OPEN:
            return failed  # it started before the circuit opened: too late to count
        # pybreaker re-raises the failure we feed it (throw_new_error_on_trip=False).
        with contextlib.suppress(Exception):
            if exc is None:
                self._cb.call(_succeed)
            else:
                self._cb.call(_fail, exc)
        return failed

    async def _fall_back(self, exc: Exception) -> Any:
        if self.fallback is None:
            raise exc
        self.note_fallback()
        value = self.fallback(exc)
        return await value if inspect.isawaitable(value) else value

    def note_fallback(self) -> None:
        """Count an answer served by a fallback (callers with their own fallbacks use this)."""
        if self.metrics is not None:
            self.metrics.fallbacks.labels(self.name).inc()

    def _count(self, result: str) -> None:
        if self.metrics is not None:
            self.metrics.calls.labels(self.name, result).inc()

    def _on_transition(self, old: str, new: str) -> None:
        if new == STATE_OPEN and not self._applying_remote:
            # pybreaker stamps opened_at with its own clock; ours may be a test's fake one.
            self._storage.opened_at = dt.datetime.fromtimestamp(self._clock(), dt.UTC)
        if new == STATE_CLOSED:
            self.window.clear()
        if self.metrics is not None:
            self.metrics.transition(self.name, old, new)
        log.info("circuit breaker transition", breaker=self.name, old=old, new=new)
        if new != STATE_HALF_OPEN and not self._applying_remote:
            opened = self.opened_at
            self._pending = SharedSnapshot(
                new, opened.timestamp() if opened else None, self._clock()
            )

    async def _push(self) -> None:
        snapshot, self._pending = self._pending, None
        if snapshot is None or self.shared is None:
            return
        self._seen = max(self._seen, snapshot.changed_at)
        await self.shared.save(self.shared_key, snapshot)

    async def _pull(self) -> None:
        if self.shared is None or self._clock() - self._pulled < self.config.sync_interval:
            return
        self._pulled = self._clock()
        snapshot = await self.shared.load(self.shared_key)
        if snapshot is None or snapshot.changed_at <= self._seen:
            return
        self._seen = snapshot.changed_at
        self._applying_remote = True
        try:
            self._adopt(snapshot)
        finally:
            self._applying_remote = False

    def _adopt(self, snapshot: SharedSnapshot) -> None:
        local = self._cb.current_state
        if snapshot.state == STATE_OPEN:
            if local != STATE_OPEN:
                self._cb.open()
            if snapshot.opened_at is not None:
                self._storage.opened_at = dt.datetime.fromtimestamp(snapshot.opened_at, dt.UTC)
        elif snapshot.state == STATE_CLOSED and local != STATE_CLOSED:
            self._cb.close()

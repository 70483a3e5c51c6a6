"""AsyncCircuitBreaker: the error-rate rule, fail-fast, half-open trials, fallbacks, metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pybreaker
import pytest
from prometheus_client import CollectorRegistry

from fleet.common.breaker import (
    AsyncCircuitBreaker,
    BreakerConfig,
    BreakerMetrics,
    CircuitOpenError,
)
from fleet.common.errors import ServiceUnavailableError

CONFIG = BreakerConfig(timeout=0.5, min_calls=5, window_seconds=10, reset_timeout=30)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Upstream:
    """A protected operation whose behaviour the test switches; it counts the calls it gets."""

    def __init__(self) -> None:
        self.calls = 0
        self.failing = False

    async def __call__(self, value: str = "ok") -> str:
        self.calls += 1
        if self.failing:
            raise ConnectionError("upstream down")
        return value


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def make(clock: FakeClock, registry: CollectorRegistry) -> Callable[..., AsyncCircuitBreaker]:
    metrics = BreakerMetrics(registry)

    def make(config: BreakerConfig = CONFIG, **kwargs: object) -> AsyncCircuitBreaker:
        return AsyncCircuitBreaker("vehicle", config, metrics=metrics, clock=clock, **kwargs)  # type: ignore[arg-type]

    return make


async def fail(breaker: AsyncCircuitBreaker, upstream: Upstream, times: int) -> None:
    upstream.failing = True
    for _ in range(times):
        with pytest.raises((ConnectionError, CircuitOpenError)):
            await breaker.call(upstream)


async def succeed(breaker: AsyncCircuitBreaker, upstream: Upstream, times: int) -> None:
    upstream.failing = False
    for _ in range(times):
        assert await breaker.call(upstream) == "ok"


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, {"name": "vehicle", **labels})


async def test_the_circuit_stays_closed_below_the_minimum_volume(
    make: Callable[..., AsyncCircuitBreaker],
) -> None:
    breaker, upstream = make(), Upstream()
    await fail(breaker, upstream, 4)
    assert breaker.state == "closed"
    await fail(breaker, upstream, 1)
    assert breaker.state == "open"


async def test_the_circuit_opens_when_half_the_calls_in_the_window_fail(
    make: Callable[..., AsyncCircuitBreaker],
) -> None:
    breaker, upstream = make(), Upstream()
    await succeed(breaker, upstream, 5)
    await fail(breaker, upstream, 4)
    assert breaker.state == "closed"  # 4 of 9 failed: 44 %
    await fail(breaker, upstream, 1)
    assert breaker.state == "open"  # 5 of 10: 50 %


async def test_interleaved_failures_open_it_although_never_consecutive(
    make: Callable[..., AsyncCircuitBreaker],
) -> None:
    breaker, upstream = make(), Upstream()
    for _ in range(3):
        await succeed(breaker, upstream, 1)
        await fail(breaker, upstream, 1)
    assert breaker.state == "open"


async def test_failures_older_than_the_window_no_longer_count(
    make: Callable[..., AsyncCircuitBreaker], clock: FakeClock
) -> None:
    breaker, upstream = make(), Upstream()
    await fail(breaker, upstream, 4)
    clock.advance(11)
    await fail(breaker, upstream, 1)
    assert breaker.state == "closed"
    assert breaker.window.counts() == (1, 1)


async def test_an_open_circuit_fails_fast_without_calling(
    make: Callable[..., AsyncCircuitBreaker],
) -> None:
    breaker, upstream = make(), Upstream()
    await fail(breaker, upstream, 5)
    calls = upstream.calls
    with pytest.raises(CircuitOpenError) as refused:
        await breaker.call(upstream)
    assert upstream.calls == calls
    assert isinstance(refused.value, pybreaker.CircuitBreakerError)
    assert isinstance(refused.value, ServiceUnavailableError)  # a 503 problem if unhandled


async def test_the_fallback_answers_failed_and_refused_calls(
    make: Callable[..., AsyncCircuitBreaker], registry: CollectorRegistry
) -> None:
    seen: list[type[Exception]] = []

    def cached(exc: Exception) -> str:
        seen.append(type(exc))
        return "cached"

    breaker, upstream = make(fallback=cached), Upstream()
    upstream.failing = True
    assert [await breaker.call(upstream) for _ in range(6)] == ["cached"] * 6
    assert upstream.calls == 5
    assert seen == [ConnectionError] * 5 + [CircuitOpenError]
    assert sample(registry, "circuit_breaker_fallbacks_total") == 6


async def test_an_async_fallback_is_awaited(make: Callable[..., AsyncCircuitBreaker]) -> None:
    async def default(exc: Exception) -> str:
        return "default"

    breaker, upstream = make(fallback=default), Upstream()
    upstream.failing = True
    assert await breaker.call(upstream) == "default"


async def test_it_half_opens_after_the_reset_timeout_and_closes_on_success(
    make: Callable[..., AsyncCircuitBreaker], clock: FakeClock
) -> None:
    breaker, upstream = make(), Upstream()
    await fail(breaker, upstream, 5)
    clock.advance(29.9)
    with pytest.raises(CircuitOpenError):
        await breaker.call(upstream)
    clock.advance(0.2)
    upstream.failing = False
    assert await breaker.call(upstream, "trial") == "trial"
    assert breaker.state == "closed"
    assert breaker.window.counts() == (1, 0)  # the old failures do not re-open it at once


async def test_a_failed_trial_reopens_the_circuit_for_another_reset_period(
    make: Callable[..., AsyncCircuitBreaker], clock: FakeClock
) -> None:
    breaker, upstream = make(), Upstream()
    await fail(breaker, upstream, 5)
    first_open = breaker.opened_at
    clock.advance(31)
    await fail(breaker, upstream, 1)
    assert breaker.state == "open"
    assert breaker.opened_at is not None
    assert first_open is not None
    assert breaker.opened_at.timestamp() == pytest.approx(first_open.timestamp() + 31)
    calls = upstream.calls
    with pytest.raises(CircuitOpenError):
        await breaker.call(upstream)
    assert upstream.calls == calls


async def test_half_open_lets_a_single_trial_through(
    make: Callable[..., AsyncCircuitBreaker], clock: FakeClock
) -> None:
    breaker, upstream = make(), Upstream()
    await fail(breaker, upstream, 5)
    clock.advance(31)
    release = asyncio.Event()

    async def slow_trial() -> str:
        await release.wait()
        return "trial"

    trial = asyncio.create_task(breaker.call(slow_trial))
    await asyncio.sleep(0)
    assert breaker.state == "half-open"
    with pytest.raises(CircuitOpenError, match="testing"):
        await breaker.call(upstream)
    release.set()
    assert await trial == "trial"
    assert breaker.state == "closed"


async def test_a_slow_call_times_out_and_counts_as_a_failure(
    make: Callable[..., AsyncCircuitBreaker], registry: CollectorRegistry
) -> None:
    breaker = make(BreakerConfig(timeout=0.05, min_calls=1))

    async def hang() -> None:
        await asyncio.sleep(5)

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(breaker.call(hang), 1)
    assert breaker.state == "open"
    assert sample(registry, "circuit_breaker_calls_total", result="timeout") == 1


async def test_excluded_errors_are_business_answers_not_failures(
    make: Callable[..., AsyncCircuitBreaker],
) -> None:
    breaker = make(exclude=(LookupError,), fallback=lambda _: "fallback")

    async def missing() -> None:
        raise KeyError("no such vehicle")

    for _ in range(10):
        with pytest.raises(KeyError):
            await breaker.call(missing)
    assert breaker.state == "closed"
    assert breaker.window.counts() == (10, 0)


async def test_a_call_that_ends_after_the_circuit_opened_is_not_counted(
    make: Callable[..., AsyncCircuitBreaker], clock: FakeClock
) -> None:
    breaker, upstream = make(), Upstream()
    release = asyncio.Event()

    async def straggler() -> str:
        await release.wait()
        return "late"

    late = asyncio.create_task(breaker.call(straggler))
    await asyncio.sleep(0)
    await fail(breaker, upstream, 5)
    release.set()
    assert await late == "late"
    assert breaker.state == "open"


async def test_metrics_follow_states_transitions_and_calls(
    make: Callable[..., AsyncCircuitBreaker], clock: FakeClock, registry: CollectorRegistry
) -> None:
    breaker, upstream = make(), Upstream()
    assert sample(registry, "circuit_breaker_state") == 0
    await succeed(breaker, upstream, 2)
    await fail(breaker, upstream, 3)
    assert sample(registry, "circuit_breaker_state") == 1
    with pytest.raises(CircuitOpenError):
        await breaker.call(upstream)
    clock.advance(31)
    await succeed(breaker, upstream, 1)
    assert sample(registry, "circuit_breaker_state") == 0

    def moved(old: str, new: str) -> float | None:
        labels = {"from": old, "to": new}
        return sample(registry, "circuit_breaker_transitions_total", **labels)

    assert moved("closed", "open") == 1
    assert moved("open", "half-open") == 1
    assert moved("half-open", "closed") == 1
    assert sample(registry, "circuit_breaker_calls_total", result="success") == 3
    assert sample(registry, "circuit_breaker_calls_total", result="failure") == 3
    assert sample(registry, "circuit_breaker_calls_total", result="rejected") == 1


async def test_a_cancelled_trial_frees_the_half_open_slot(
    make: Callable[..., AsyncCircuitBreaker], clock: FakeClock
) -> None:
    breaker, upstream = make(), Upstream()
    await fail(breaker, upstream, 5)
    clock.advance(31)

    async def hang() -> None:
        await asyncio.sleep(5)

    trial = asyncio.create_task(breaker.call(hang))
    await asyncio.sleep(0)
    trial.cancel()
    with pytest.raises(asyncio.CancelledError):
        await trial
    await succeed(breaker, upstream, 1)
    assert breaker.state == "closed"

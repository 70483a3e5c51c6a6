"""Breaker state shared through Redis: one replica opening makes the others fail fast."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio import Redis

from fleet.common.app import make_redis
from fleet.common.breaker import (
    AsyncCircuitBreaker,
    BreakerConfig,
    CircuitOpenError,
    RedisSharedState,
    SharedSnapshot,
)

pytestmark = pytest.mark.redis

CONFIG = BreakerConfig(min_calls=2, reset_timeout=30, sync_interval=0)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = make_redis("redis://127.0.0.1:6379/0")
    yield client
    await client.aclose()


@pytest.fixture
async def key(redis: Redis) -> AsyncIterator[str]:
    name = f"fleet-test-{uuid.uuid4().hex}:breaker:trip:vehicle"
    yield name
    await redis.delete(name)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def replica(redis: Redis, key: str, clock: FakeClock) -> Callable[[], AsyncCircuitBreaker]:
    """A breaker as one replica of the trip service would build it."""

    def make() -> AsyncCircuitBreaker:
        return AsyncCircuitBreaker(
            "vehicle", CONFIG, shared=RedisSharedState(redis), shared_key=key, clock=clock
        )

    return make


class Upstream:
    def __init__(self) -> None:
        self.calls = 0
        self.failing = True

    async def __call__(self) -> str:
        self.calls += 1
        if self.failing:
            raise ConnectionError("vehicle down")
        return "ok"


async def open_circuit(breaker: AsyncCircuitBreaker) -> None:
    for _ in range(CONFIG.min_calls):
        with pytest.raises(ConnectionError):
            await breaker.call(Upstream())
    assert breaker.state == "open"


async def test_one_replica_opening_makes_the_other_fail_fast(
    replica: Callable[[], AsyncCircuitBreaker], redis: Redis, key: str
) -> None:
    a, b = replica(), replica()
    await open_circuit(a)
    assert (await redis.hget(key, "state")) == b"open"
    upstream = Upstream()
    with pytest.raises(CircuitOpenError):
        await b.call(upstream)
    assert upstream.calls == 0
    assert b.state == "open"
    assert b.opened_at == a.opened_at


async def test_a_successful_trial_on_one_replica_closes_the_others(
    replica: Callable[[], AsyncCircuitBreaker], clock: FakeClock
) -> None:
    a, b = replica(), replica()
    await open_circuit(a)
    await b.refresh()
    assert b.state == "open"
    clock.now += 31
    healthy = Upstream()
    healthy.failing = False
    assert await a.call(healthy) == "ok"
    assert a.state == "closed"
    clock.now += 1
    assert await b.call(healthy) == "ok"
    assert b.state == "closed"
    assert healthy.calls == 2


async def test_an_older_decision_does_not_overwrite_a_newer_one(
    replica: Callable[[], AsyncCircuitBreaker], redis: Redis, key: str, clock: FakeClock
) -> None:
    a = replica()
    await open_circuit(a)
    shared = RedisSharedState(redis)
    await shared.save(key, SharedSnapshot("closed", None, clock.now - 5))
    snapshot = await shared.load(key)
    assert snapshot is not None
    assert snapshot.state == "open"


async def test_the_breaker_works_alone_when_redis_is_unreachable(clock: FakeClock) -> None:
    dead = make_redis("redis://127.0.0.1:1/0")
    try:
        breaker = AsyncCircuitBreaker(
            "vehicle", CONFIG, shared=RedisSharedState(dead), shared_key="x", clock=clock
        )
        await open_circuit(breaker)
        upstream = Upstream()
        with pytest.raises(CircuitOpenError):
            await breaker.call(upstream)
        assert upstream.calls == 0
    finally:
        await dead.aclose()

"""L2 reads of keys missed in the same event-loop turn go to Redis as one MGET (real Redis)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from fleet.common.app import make_redis
from fleet.common.cache import TieredCache
from fleet.common.cache._batch import BatchedReader
from fleet.common.cache._guard import ERROR, RedisGuard

REDIS_URL = os.environ.get("FLEET_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


class CountingRedis(Redis):
    """A real client that counts the MGET/GET round trips it makes."""

    calls: list[tuple[str, int]]

    async def mget(self, keys: Any, *args: Any) -> Any:
        self.calls.append(("mget", len(keys)))
        return await super().mget(keys, *args)

    async def get(self, name: Any) -> Any:
        self.calls.append(("get", 1))
        return await super().get(name)


@pytest.fixture
async def redis() -> AsyncIterator[CountingRedis]:
    client = CountingRedis.from_url(REDIS_URL, socket_timeout=0.25)
    assert isinstance(client, CountingRedis)  # from_url builds the class it is called on
    client.calls = []
    yield client
    await client.aclose()


@pytest.fixture
def name() -> str:
    return f"test-batch-{uuid.uuid4().hex[:12]}"


async def test_misses_of_many_keys_at_once_are_one_mget(redis: CountingRedis, name: str) -> None:
    writer = make_redis(REDIS_URL)
    cache = TieredCache[Any](name, redis=redis)
    try:
        for i in range(20):
            await writer.set(f"fleet:cache:{name}:k{i}", f'{{"n": {i}}}', px=60_000)
        loads: list[str] = []

        def loader(key: str) -> Any:
            async def load() -> Any:
                loads.append(key)
                return {"n": -1}

            return load

        values = await asyncio.gather(
            *(cache.get_or_load(f"k{i}", loader(f"k{i}")) for i in range(20))
        )
        assert values == [{"n": i} for i in range(20)]
        assert redis.calls == [("mget", 20)]
        assert loads == []
        assert cache.stats.counts[("l2", "hit")] == 20
    finally:
        await cache.close()
        await writer.delete(*[f"fleet:cache:{name}:k{i}" for i in range(20)])
        await writer.aclose()


async def test_a_lone_miss_is_read_at_once_and_absent_keys_load(
    redis: CountingRedis, name: str
) -> None:
    cache = TieredCache[Any](name, redis=redis)
    try:
        assert await cache.get_or_load("absent", lambda: _value({"fresh": True})) == {"fresh": True}
        assert redis.calls == [("mget", 1)]
        assert cache.stats.counts[("l2", "miss")] == 1
        assert cache.stats.counts[("loader", "ok")] == 1
    finally:
        await cache.close()
        await redis.delete(f"fleet:cache:{name}:absent")


async def test_batches_are_capped(redis: CountingRedis, name: str) -> None:
    reader = BatchedReader(redis, RedisGuard(), max_batch=8)
    results = await asyncio.gather(*(reader.get(f"{name}:{i}") for i in range(20)))
    assert results == [None] * 20
    assert [size for _, size in redis.calls] == [8, 8, 4]


async def test_a_failed_batch_answers_every_key_with_the_failure(name: str) -> None:
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    reader = BatchedReader(dead, RedisGuard(timeout=1.0))
    try:
        results = await asyncio.gather(*(reader.get(f"{name}:{i}") for i in range(5)))
        assert results == [ERROR] * 5
    finally:
        await dead.aclose()


async def test_a_waiter_that_goes_away_does_not_break_the_batch(
    redis: CountingRedis, name: str
) -> None:
    reader = BatchedReader(redis, RedisGuard())
    gone = reader.get(f"{name}:gone")
    kept = reader.get(f"{name}:kept")
    gone.cancel()
    assert await kept is None
    assert redis.calls == [("mget", 2)]


async def _value(value: Any) -> Any:
    return value

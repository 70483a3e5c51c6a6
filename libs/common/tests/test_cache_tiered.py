"""TieredCache against the real Redis: TTLs, single flight, write-through, invalidation across
instances (and across OS processes), the write/load races, metrics."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from fleet.common.app import make_redis
from fleet.common.cache import TOMBSTONE, TieredCache
from fleet.common.testing import eventually

REDIS_URL = os.environ.get("FLEET_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

MakeCache = Callable[..., Awaitable[TieredCache[Any]]]


@pytest.fixture
def name() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def redis(name: str) -> AsyncIterator[Redis]:
    client = make_redis(REDIS_URL)
    yield client
    keys = [k async for k in client.scan_iter(match=f"fleet:cache:{name}:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture
async def make_cache(name: str) -> AsyncIterator[MakeCache]:
    """`await make_cache(**options)`: an instance of cache `name` with its own Redis client and
    L1, listening for invalidations (each one stands for a separate process)."""
    made: list[tuple[TieredCache[Any], Redis]] = []

    async def make(**options: Any) -> TieredCache[Any]:
        client = make_redis(REDIS_URL)
        cache = TieredCache[Any](name, redis=client, **options)
        made.append((cache, client))
        await cache.start()
        assert cache.listener is not None
        await asyncio.wait_for(cache.listener.subscribed.wait(), 5)
        return cache

    yield make
    for cache, client in made:
        await cache.close()
        await client.aclose()


def loader_of(value: Any, calls: list[int] | None = None, delay: float = 0.0) -> Any:
    async def load() -> Any:
        if calls is not None:
            calls.append(1)
        if delay:
            await asyncio.sleep(delay)
        return value

    return load


async def must_not_load() -> Any:
    raise AssertionError("the loader must not be called")


async def test_l1_expiry_is_served_from_l2_without_loading(make_cache: MakeCache) -> None:
    cache = await make_cache(l1_ttl=0.05)
    assert await cache.get_or_load("k", loader_of({"v": 1})) == {"v": 1}
    assert await cache.get_or_load("k", must_not_load) == {"v": 1}  # L1
    await asyncio.sleep(0.08)
    assert await cache.get_or_load("k", must_not_load) == {"v": 1}  # L2
    counts = cache.stats.counts
    assert counts[("l1", "hit")] == 1
    assert counts[("l2", "hit")] == 1
    assert counts[("loader", "ok")] == 1


async def test_l2_expiry_loads_again(make_cache: MakeCache, redis: Redis, name: str) -> None:
    cache = await make_cache(l1_ttl=0.05, l2_ttl=0.25)
    assert await cache.get_or_load("k", loader_of("first")) == "first"
    assert 0 < await redis.pttl(f"fleet:cache:{name}:k") <= 250
    await asyncio.sleep(0.35)
    calls: list[int] = []
    assert await cache.get_or_load("k", loader_of("second", calls)) == "second"
    assert calls == [1]
    assert cache.stats.counts[("l2", "miss")] == 2


async def test_hundred_concurrent_misses_load_once(make_cache: MakeCache) -> None:
    cache = await make_cache()
    calls: list[int] = []
    load = loader_of({"lat": 52.5}, calls, delay=0.05)
    results = await asyncio.gather(*(cache.get_or_load("k", load) for _ in range(100)))
    assert results == [{"lat": 52.5}] * 100
    assert calls == [1]
    assert cache.stats.counts[("l2", "miss")] == 1  # one Redis read for the hundred, too


async def test_hundred_concurrent_misses_read_l2_once_when_it_has_the_value(
    make_cache: MakeCache,
) -> None:
    writer, reader = await make_cache(), await make_cache()
    await writer.set("k", [1, 2, 3])
    results = await asyncio.gather(*(reader.get_or_load("k", must_not_load) for _ in range(100)))
    assert results == [[1, 2, 3]] * 100
    assert reader.stats.counts[("l2", "hit")] == 1
    assert reader.stats.counts[("l1", "miss")] == 100


async def test_loader_error_reaches_every_waiter_and_is_not_cached(make_cache: MakeCache) -> None:
    cache = await make_cache()
    calls: list[int] = []

    async def missing() -> Any:
        calls.append(1)
        await asyncio.sleep(0.02)
        raise LookupError("vehicle not found")

    outcomes = await asyncio.gather(
        *(cache.get_or_load("k", missing) for _ in range(10)), return_exceptions=True
    )
    assert all(isinstance(o, LookupError) for o in outcomes)
    assert calls == [1]
    assert await cache.get_or_load("k", loader_of("found")) == "found"
    assert cache.stats.counts[("loader", "error")] == 1


async def test_invalidate_reaches_the_other_instances_l1(make_cache: MakeCache) -> None:
    # L1 TTLs of a minute: only the invalidation message can make the second instance reload.
    first, second = await make_cache(l1_ttl=60), await make_cache(l1_ttl=60)
    assert await first.get_or_load("k", loader_of("v1")) == "v1"
    assert await second.get_or_load("k", must_not_load) == "v1"
    await first.invalidate("k")
    await eventually(lambda: not second.l1.get("k")[0])
    calls: list[int] = []
    assert await second.get_or_load("k", loader_of("v2", calls)) == "v2"
    assert await first.get_or_load("k", loader_of("v2", calls)) == "v2"
    assert len(calls) == 2  # the tombstone keeps L2 empty for a moment: both load
    assert second.stats.counts[("l2", "miss")] == 1


async def test_set_writes_through_and_the_other_instance_reads_the_new_value(
    make_cache: MakeCache,
) -> None:
    first, second = await make_cache(l1_ttl=60), await make_cache(l1_ttl=60)
    await first.set("k", {"lat": 1.0})
    assert await second.get_or_load("k", must_not_load) == {"lat": 1.0}
    await first.set("k", {"lat": 2.0})
    assert await first.get_or_load("k", must_not_load) == {"lat": 2.0}  # own L1 updated
    await eventually(lambda: not second.l1.get("k")[0])
    assert await second.get_or_load("k", must_not_load) == {"lat": 2.0}  # from L2


async def test_versioned_writes_out_of_order_leave_the_newest_in_l2_and_every_l1(
    make_cache: MakeCache, redis: Redis, name: str
) -> None:
    # Two replicas write the same vehicle's position; the older one's write arrives last.
    newer, older, reader = [await make_cache(l1_ttl=60) for _ in range(3)]
    await newer.set("k", {"lat": 2.0}, version=2_000)
    await older.set("k", {"lat": 1.0}, version=1_000)

    assert await redis.get(f"fleet:cache:{name}:k") == b'{"lat":2.0}'
    assert await reader.get_or_load("k", must_not_load) == {"lat": 2.0}
    # the refused writer dropped its own copy and reads the newest from L2
    assert await older.get_or_load("k", must_not_load) == {"lat": 2.0}
    assert await newer.get_or_load("k", must_not_load) == {"lat": 2.0}
    # a newer write still goes through, and the same version again changes nothing
    await older.set("k", {"lat": 3.0}, version=3_000)
    await newer.set("k", {"lat": 9.9}, version=3_000)
    assert await redis.get(f"fleet:cache:{name}:k") == b'{"lat":3.0}'
    assert await redis.pttl(f"fleet:cache:{name}:k:version") > 0  # expires with the value


async def test_a_load_racing_a_write_does_not_cache_the_old_value(
    make_cache: MakeCache, redis: Redis, name: str
) -> None:
    cache = await make_cache()
    release = asyncio.Event()

    async def slow_old_read() -> str:
        await release.wait()
        return "old"  # what the database said before the write committed

    reader = asyncio.create_task(cache.get_or_load("k", slow_old_read))
    await asyncio.sleep(0.02)
    await cache.set("k", "new")
    release.set()
    assert await reader == "old"  # the caller asked before the write
    assert await cache.get_or_load("k", must_not_load) == "new"
    assert await redis.get(f"fleet:cache:{name}:k") == b'"new"'


async def test_a_slow_load_elsewhere_cannot_refill_l2_after_an_invalidation(
    make_cache: MakeCache, redis: Redis, name: str
) -> None:
    writer, slow = await make_cache(), await make_cache()
    release = asyncio.Event()

    async def slow_old_read() -> str:
        await release.wait()
        return "old"

    reader = asyncio.create_task(slow.get_or_load("k", slow_old_read))
    await asyncio.sleep(0.02)  # `slow` has missed L2 and is reading the database
    await writer.invalidate("k")
    release.set()
    assert await reader == "old"
    assert await redis.get(f"fleet:cache:{name}:k") == TOMBSTONE
    fresh = await make_cache()
    assert await fresh.get_or_load("k", loader_of("new")) == "new"


async def test_undecodable_l2_entry_is_reloaded(
    make_cache: MakeCache, redis: Redis, name: str
) -> None:
    await redis.set(f"fleet:cache:{name}:k", b"{not json")
    cache = await make_cache()
    assert await cache.get_or_load("k", loader_of("loaded")) == "loaded"


async def test_a_value_the_codec_cannot_encode_is_served_but_not_put_in_l2(
    make_cache: MakeCache, redis: Redis, name: str
) -> None:
    cache = await make_cache()
    odd = {"when": object()}
    assert await cache.get_or_load("k", loader_of(odd)) is odd
    await cache.set("k", odd)
    assert await cache.get_or_load("k", must_not_load) is odd
    assert await redis.get(f"fleet:cache:{name}:k") == TOMBSTONE


async def test_without_redis_the_cache_is_l1_plus_loader() -> None:
    cache = TieredCache[str]("no-redis", redis=None, l1_ttl=0.05)
    await cache.start()
    calls: list[int] = []
    assert await cache.get_or_load("k", loader_of("v", calls)) == "v"
    assert await cache.get_or_load("k", loader_of("v", calls)) == "v"
    await cache.set("k", "w")
    assert await cache.get_or_load("k", must_not_load) == "w"
    await cache.invalidate("k")
    assert await cache.get_or_load("k", loader_of("x", calls)) == "x"
    await asyncio.sleep(0.08)
    assert await cache.get_or_load("k", loader_of("y", calls)) == "y"
    assert len(calls) == 3
    assert ("l2", "miss") not in cache.stats.counts
    await cache.close()


async def test_metrics_count_per_tier_on_the_app_registry(make_cache: MakeCache) -> None:
    registry = CollectorRegistry()
    cache = await make_cache(registry=registry)
    other = TieredCache[str]("other", redis=None, registry=registry)  # same registry: no clash
    await cache.get_or_load("k", loader_of("v"))
    for _ in range(3):
        await cache.get_or_load("k", must_not_load)
    await other.get_or_load("k", loader_of("v"))

    def sample(tier: str, result: str, name: str = cache.name) -> float | None:
        labels = {"cache": name, "tier": tier, "result": result}
        return registry.get_sample_value("cache_requests_total", labels)

    assert sample("l1", "hit") == 3
    assert sample("l1", "miss") == 1
    assert sample("l2", "miss") == 1
    assert sample("loader", "ok") == 1
    assert sample("loader", "ok", "other") == 1
    assert cache.hit_ratio() == 0.75
    assert cache.hit_ratio("l1") == 0.75
    assert cache.hit_ratio("l2") == 0.0


CHILD = """
import asyncio, sys
from redis.asyncio import Redis
from fleet.common.cache import TieredCache

async def main(url: str, name: str) -> None:
    redis = Redis.from_url(url, socket_timeout=0.25)
    cache = TieredCache[str](name, redis=redis, l1_ttl=60)
    await cache.start()
    await asyncio.wait_for(cache.listener.subscribed.wait(), 5)

    async def old() -> str:
        return "old"

    async def reloaded() -> str:
        return "reloaded"

    assert await cache.get_or_load("k", old) == "old"
    print("ready", flush=True)
    while (value := await cache.get_or_load("k", reloaded)) == "old":
        await asyncio.sleep(0.01)
    print(value, flush=True)
    await cache.close()
    await redis.aclose()

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


async def test_a_write_in_one_process_reaches_another_process(
    make_cache: MakeCache, name: str
) -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, REDIS_URL, name, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert child.stdout is not None
        assert await asyncio.wait_for(child.stdout.readline(), 20) == b"ready\n"
        here = await make_cache(l1_ttl=60)
        await here.set("k", "new")
        # The child's L1 would keep "old" for a minute: only the invalidation gets it to L2.
        assert await asyncio.wait_for(child.stdout.readline(), 10) == b"new\n"
        assert await asyncio.wait_for(child.wait(), 10) == 0
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()

"""Redis down, hung or back: reads never fail and never stall, and L2 is used again after.

Each test runs its own redis-server on a free port, which it kills, pauses and restarts (the
shared server on 6379 is never touched).
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from fleet.common.app import make_redis
from fleet.common.cache import TOMBSTONE, RedisGuard, TieredCache

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OwnRedis:
    """A throwaway redis-server this test may kill, pause and restart."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.proc = subprocess.Popen(  # noqa: S603 - our own arguments
            ["redis-server", *args, "--daemonize", "no"],  # noqa: S607 - the server, from PATH
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.02)
        raise TimeoutError("redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    server = OwnRedis()
    server.start()
    try:
        yield server
    finally:
        if server.proc is not None:
            server.resume()
        server.kill()


@dataclass
class Made:
    caches: list[TieredCache[Any]] = field(default_factory=list)
    clients: list[Redis] = field(default_factory=list)

    def client(self, url: str) -> Redis:
        self.clients.append(make_redis(url))  # socket timeouts of 0.25 s, as in the services
        return self.clients[-1]


@pytest.fixture
async def made(own_redis: OwnRedis) -> AsyncIterator[Made]:
    made = Made()
    yield made
    for cache in made.caches:  # listeners first: they would reconnect on closed clients
        await cache.close()
    for client in made.clients:
        await client.aclose()


async def cache_on(
    own_redis: OwnRedis, made: Made, registry: CollectorRegistry | None = None
) -> TieredCache[Any]:
    guard = RedisGuard(timeout=0.5, failure_threshold=3, reset_after=0.3)
    cache = TieredCache[Any](
        "outage", redis=made.client(own_redis.url), registry=registry, l1_ttl=0.05, guard=guard
    )
    made.caches.append(cache)
    await cache.start()
    assert cache.listener is not None
    await asyncio.wait_for(cache.listener.subscribed.wait(), 5)
    return cache


def loader_of(value: Any) -> Any:
    async def load() -> Any:
        return value

    return load


async def timed_read(cache: TieredCache[Any], key: str, value: Any) -> float:
    started = time.perf_counter()
    assert await cache.get_or_load(key, loader_of(value)) == value
    return time.perf_counter() - started


async def wait_for(check: Any, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(0.02)


async def test_reads_survive_a_dead_redis_and_use_l2_again_once_it_is_back(
    own_redis: OwnRedis, made: Made
) -> None:
    registry = CollectorRegistry()
    cache = await cache_on(own_redis, made, registry)

    def sample(name: str, **labels: str) -> float:
        return registry.get_sample_value(name, {"cache": "outage", **labels}) or 0.0

    await cache.get_or_load("k", loader_of("v"))
    own_redis.kill()
    latencies = [await timed_read(cache, f"key-{i}", i) for i in range(50)]
    assert max(latencies) < 0.1, latencies  # refused connections fail at once
    assert sample("cache_requests_total", tier="l2", result="error") >= 3
    assert sample("cache_requests_total", tier="l2", result="skipped") > 0  # circuit open
    assert sample("cache_redis_errors_total", operation="get") >= 3
    await cache.set("k", "written while down")  # no error either
    assert await cache.get_or_load("k", loader_of("x")) == "written while down"

    own_redis.start()  # empty, as after a crash
    hits_before = sample("cache_requests_total", tier="l2", result="hit")

    async def l2_hit_again() -> bool:
        await cache.get_or_load("back", loader_of("again"))
        await asyncio.sleep(0.06)  # let L1 expire so the next read asks L2
        await cache.get_or_load("back", loader_of("again"))
        return sample("cache_requests_total", tier="l2", result="hit") > hits_before

    await wait_for(l2_hit_again)
    assert sample("cache_invalidations_total", origin="resync") >= 1  # re-subscribed, L1 cleared


async def test_a_hung_redis_costs_at_most_the_timeout_and_then_nothing(
    own_redis: OwnRedis, made: Made
) -> None:
    cache = await cache_on(own_redis, made)
    own_redis.pause()
    latencies = [await timed_read(cache, f"key-{i}", i) for i in range(20)]
    own_redis.resume()
    assert max(latencies[:3]) < 0.25 + 0.15  # the client's socket timeout, plus slack
    assert max(latencies[3:]) < 0.02, latencies  # circuit open: Redis not even tried
    assert cache.stats.counts[("l2", "error")] == 3


async def test_writes_redis_missed_are_replayed_as_invalidations_when_it_answers_again(
    own_redis: OwnRedis, made: Made
) -> None:
    writer, reader = await cache_on(own_redis, made), await cache_on(own_redis, made)
    await writer.set("k", "v1")
    assert await reader.get_or_load("k", loader_of("unused")) == "v1"
    own_redis.pause()
    await writer.set("k", "v2")  # Redis keeps "v1": it is only unreachable, not gone
    own_redis.resume()
    probe = made.client(own_redis.url)

    async def replayed() -> bool:
        await writer.get_or_load("other", loader_of("o"))  # any call: the circuit closes
        return bool(await probe.get("fleet:cache:outage:k") in (TOMBSTONE, None))

    await wait_for(replayed)
    await asyncio.sleep(0.06)  # the reader's L1 copy expires
    assert await reader.get_or_load("k", loader_of("v2 from the database")) == (
        "v2 from the database"
    )

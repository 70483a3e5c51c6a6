"""L1: the size-bounded LRU with a TTL, and the Redis guard's circuit (fake clocks, no I/O)."""

from __future__ import annotations

import asyncio

import pytest

from fleet.common.cache import ERROR, SKIPPED, LocalCache, RedisGuard


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_entry_is_served_until_its_ttl_then_dropped() -> None:
    clock = Clock()
    l1 = LocalCache[str](maxsize=10, ttl=0.1, clock=clock)
    l1.set("k", "v")
    clock.now += 0.099
    assert l1.get("k") == (True, "v")
    clock.now += 0.002
    assert l1.get("k") == (False, None)
    assert len(l1) == 0


def test_least_recently_used_entry_is_evicted_beyond_maxsize() -> None:
    l1 = LocalCache[int](maxsize=2, ttl=10)
    l1.set("a", 1)
    l1.set("b", 2)
    assert l1.get("a") == (True, 1)  # "b" is now the least recently used
    l1.set("c", 3)
    assert l1.get("b") == (False, None)
    assert l1.get("a") == (True, 1)
    assert l1.get("c") == (True, 3)
    assert len(l1) == 2


def test_delete_and_clear_drop_entries() -> None:
    l1 = LocalCache[int](maxsize=5, ttl=10)
    l1.set("a", 1)
    l1.set("b", 2)
    l1.delete("a")
    l1.delete("missing")
    assert l1.get("a") == (False, None)
    l1.clear()
    assert len(l1) == 0


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="maxsize"):
        LocalCache[int](maxsize=0, ttl=1)
    with pytest.raises(ValueError, match="ttl"):
        LocalCache[int](maxsize=1, ttl=0)


async def _boom() -> int:
    raise ConnectionError("redis is gone")


async def _ok() -> int:
    return 7


async def test_guard_opens_after_consecutive_failures_and_retries_after_the_pause() -> None:
    clock = Clock()
    guard = RedisGuard(failure_threshold=3, reset_after=5.0, clock=clock)
    errors: list[str] = []
    recovered: list[bool] = []
    guard.error_hooks.append(errors.append)
    guard.recover_hooks.append(lambda: recovered.append(True))
    assert [await guard.run("get", _boom) for _ in range(3)] == [ERROR] * 3
    assert guard.is_open
    assert await guard.run("get", _ok) is SKIPPED  # skipped: not even tried
    assert errors == ["get"] * 3
    clock.now += 5.1
    assert await guard.run("get", _boom) is ERROR  # the trial fails: open again at once
    assert await guard.run("get", _ok) is SKIPPED
    clock.now += 5.1
    assert await guard.run("get", _ok) == 7
    assert not guard.is_open
    assert recovered == [True]


async def test_guard_turns_a_slow_call_into_a_prompt_error() -> None:
    guard = RedisGuard(timeout=0.05)

    async def hang() -> int:
        await asyncio.sleep(10)
        return 0

    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await guard.run("get", hang) is ERROR
    assert loop.time() - started < 0.5

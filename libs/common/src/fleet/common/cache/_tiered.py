"""The tiered cache: L1 in-process, L2 Redis, L3 the caller's loader.

Reads: L1, then (once per key and process, however many callers miss at the same time) L2 —
one MGET for all the keys missed in the same event-loop turn (`_batch.py`) — then the loader;
what was found is copied into the tiers above. Writes: `set` writes through L1 and L2,
`invalidate` drops the key everywhere; both tell every other instance to drop its L1 copy.

Two races are closed rather than left to the TTL:
- a load that started before a write must not put the old value back. Locally, a write marks
  the key's load in flight as stale (its result is returned, not cached); across processes, loads
  fill L2 with SET NX, and `invalidate` leaves a short tombstone instead of deleting, so a slow
  reader elsewhere cannot refill the key with what it read before the write.
- writes that could not reach Redis are remembered (bounded) and replayed as invalidations when
  Redis answers again, so a Redis that was only unreachable does not serve old values for 5 min.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import orjson
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from fleet.common.cache._batch import BatchedReader
from fleet.common.cache._guard import Failed, RedisGuard
from fleet.common.cache._listener import InvalidationListener, encode_message
from fleet.common.cache._local import LocalCache
from fleet.common.cache._metrics import CacheStats, metrics_for
from fleet.common.logging import get_logger

log = get_logger("fleet.cache")
T = TypeVar("T")
Loader = Callable[[], Awaitable[T]]

TOMBSTONE = b"\x00deleted"
VERSION_SUFFIX = ":version"
# A versioned write: taken (value, its version, the invalidation message) only if the version is
# newer than the last one written; atomic in Redis. Versions are integers below 2**53 (Lua
# compares them as doubles). The value and its version key are two keys: one Redis, not Cluster.
SET_IF_NEWER = """
local last = redis.call('GET', KEYS[2])
if last and tonumber(last) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[2])
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1
"""
MAX_PENDING = 10_000


@dataclass(eq=False)
class _Flight(Generic[T]):
    task: asyncio.Task[T] | None = None
    stale: bool = False


class TieredCache(Generic[T]):
    """A named cache of `T` values (JSON via orjson unless `encode`/`decode` are given)."""

    def __init__(
        self,
        name: str,
        *,
        redis: Redis | None,
        registry: CollectorRegistry | None = None,
        l1_ttl: float = 0.1,
        l1_maxsize: int = 10_000,
        l2_ttl: float = 300.0,
        tombstone_ttl: float = 2.0,
        encode: Callable[[T], bytes] = orjson.dumps,
        decode: Callable[[bytes], T] = orjson.loads,
        guard: RedisGuard | None = None,
        prefix: str = "fleet:cache",
    ) -> None:
        self.name = name
        self.l1 = LocalCache[T](maxsize=l1_maxsize, ttl=l1_ttl)
        self.l2_ttl_ms = int(l2_ttl * 1000)
        self.tombstone_ttl_ms = int(tombstone_ttl * 1000)
        self.stats = CacheStats(name, metrics_for(registry) if registry is not None else None)
        self._redis = redis
        self._encode = encode
        self._decode = decode
        self._prefix = f"{prefix}:{name}:"
        self.origin = uuid.uuid4().hex[:16]
        self.guard = guard or RedisGuard()
        self.guard.error_hooks.append(self.stats.redis_error)
        self.guard.recover_hooks.append(self._resync_later)
        self._reader = BatchedReader(redis, self.guard) if redis is not None else None
        self._set_if_newer = redis.register_script(SET_IF_NEWER) if redis is not None else None
        self._flights: dict[str, _Flight[T]] = {}
        self._pending: set[str] = set()
        self._background: set[asyncio.Task[None]] = set()
        self.listener = (
            InvalidationListener(
                redis,
                f"{prefix}:{name}:invalidate",
                self.origin,
                on_key=self._remote_invalidation,
                on_resync=self._clear_l1,
                on_error=self.stats.redis_error,
            )
            if redis is not None
            else None
        )

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Start listening for other instances' invalidations (no-op without Redis)."""
        if self.listener is not None:
            self.listener.start()

    async def close(self) -> None:
        if self.listener is not None:
            await self.listener.stop()
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self._reader is not None:
            await self._reader.close()

    # -- reads ------------------------------------------------------------------------------

    async def get_or_load(self, key: str, loader: Loader[T]) -> T:
        """The cached value of `key`, else `await loader()` (once for concurrent callers)."""
        hit, value = self.l1.get(key)
        if hit:
            self.stats.record("l1", "hit")
            return value  # type: ignore[return-value]
        self.stats.record("l1", "miss")
        flight = self._flights.get(key)
        if flight is None or flight.task is None:
            flight = _Flight()
            flight.task = asyncio.create_task(self._fill(key, loader, flight))
            flight.task.add_done_callback(lambda task: self._landed(key, flight, task))
            self._flights[key] = flight
        # Shielded: a caller that goes away (client disconnect) must not cancel the others' load.
        return await asyncio.shield(flight.task)

    def _landed(self, key: str, flight: _Flight[T], task: asyncio.Task[T]) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
        if not task.cancelled():
            task.exception()  # retrieved here, so an error nobody waited for is not reported

    async def _fill(self, key: str, loader: Loader[T], flight: _Flight[T]) -> T:
        fill_l2 = False
        if self._reader is not None:
            # Batched with the other keys missed in this loop turn (one MGET).
            raw = await self._reader.get(self._prefix + key)
            if isinstance(raw, Failed):
                self.stats.record("l2", raw.value)
            elif raw is None or raw == TOMBSTONE:
                self.stats.record("l2", "miss")
                fill_l2 = raw is None
            else:
                found = self._decoded(key, raw if isinstance(raw, bytes) else raw.encode())
                if found is not None:
                    self.stats.record("l2", "hit")
                    if not flight.stale:
                        self.l1.set(key, found[0])
                    return found[0]
                self.stats.record("l2", "miss")
                fill_l2 = True
        try:
            value = await loader()
        except BaseException:
            self.stats.record("loader", "error")
            raise
        self.stats.record("loader", "ok")
        if not flight.stale:
            self.l1.set(key, value)
            if fill_l2:
                await self._fill_l2(key, value)
        return value

    def _decoded(self, key: str, raw: bytes) -> tuple[T] | None:
        try:
            return (self._decode(raw),)
        except Exception as exc:  # a foreign or outdated entry: reload and overwrite it
            log.debug("undecodable cache entry", cache=self.name, key=key, error=repr(exc))
            return None

    def _encoded(self, key: str, value: T) -> bytes | None:
        try:
            return self._encode(value)
        except Exception:  # a bug in the codec: log it loudly, but serve the value anyway
            log.exception("cache value not encodable; L2 skipped", cache=self.name, key=key)
            return None

    async def _fill_l2(self, key: str, value: T) -> None:
        redis, data = self._redis, self._encoded(key, value)
        if redis is not None and data is not None:
            # NX: a write that landed since our L2 miss (set or tombstone) wins over this load.
            await self.guard.run(
                "fill", lambda: redis.set(self._prefix + key, data, px=self.l2_ttl_ms, nx=True)
            )

    # -- writes -----------------------------------------------------------------------------

    async def set(self, key: str, value: T, *, version: int | None = None) -> None:
        """Write through: this L1, L2, and every other instance's L1 dropped.

        With `version` (e.g. the value's timestamp in microseconds), L2 takes the write only if
        no newer version of the key was written there, so two instances writing the same key out
        of order (two replicas, late telemetry) leave the newest in L2; a refused write also drops
        this instance's L1 copy, and the next read here finds the newer value in L2.
        """
        self._mark_stale(key)
        self.l1.set(key, value)
        data = self._encoded(key, value)
        # Unencodable: drop the old value everywhere rather than leave it to other instances.
        if data is None:
            await self._write_l2(key, TOMBSTONE, self.tombstone_ttl_ms)
        elif version is None:
            await self._write_l2(key, data, self.l2_ttl_ms)
        elif await self._write_l2_versioned(key, data, version) is False:
            self.l1.delete(key)

    async def invalidate(self, key: str) -> None:
        """Drop `key` from every tier of every instance; the next read loads it."""
        self._mark_stale(key)
        self.l1.delete(key)
        self.stats.invalidated("local")
        await self._write_l2(key, TOMBSTONE, self.tombstone_ttl_ms)

    async def _write_l2(self, key: str, data: bytes, ttl_ms: int) -> None:
        redis = self._redis
        if redis is None:
            return

        async def write() -> Any:
            async with redis.pipeline(transaction=False) as pipe:
                pipe.set(self._prefix + key, data, px=ttl_ms)
                pipe.publish(self._prefix + "invalidate", encode_message(self.origin, key))
                return await pipe.execute()

        if isinstance(await self.guard.run("set", write), Failed):
            self._remember(key)

    async def _write_l2_versioned(self, key: str, data: bytes, version: int) -> bool | None:
        """True if L2 took the write, False if it holds a newer version, None if unreachable."""
        script = self._set_if_newer
        if script is None:
            return None
        keys = (self._prefix + key, self._prefix + key + VERSION_SUFFIX)
        message = encode_message(self.origin, key)
        channel = self._prefix + "invalidate"

        async def write() -> Any:
            # EVALSHA, loading the script once per server (redis-py's Script does the fallback).
            return await script(
                keys=list(keys), args=[data, self.l2_ttl_ms, version, channel, message]
            )

        taken = await self.guard.run("set", write)
        if isinstance(taken, Failed):
            self._remember(key)
            return None
        return bool(taken)

    def _mark_stale(self, key: str) -> None:
        flight = self._flights.get(key)
        if flight is not None:
            flight.stale = True

    # -- invalidations from elsewhere and recovery ------------------------------------------

    def _remote_invalidation(self, key: str) -> None:
        self._mark_stale(key)
        self.l1.delete(key)
        self.stats.invalidated("remote")

    def _clear_l1(self) -> None:
        self.l1.clear()
        for flight in self._flights.values():
            flight.stale = True
        self.stats.invalidated("resync")

    def _remember(self, key: str) -> None:
        if len(self._pending) < MAX_PENDING:
            self._pending.add(key)
        else:
            log.warning("too many unsynced cache writes; some keys may stay stale", cache=self.name)

    def _resync_later(self) -> None:
        if self._pending:
            task = asyncio.create_task(self._resync())
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _resync(self) -> None:
        """Redis is back: tombstone the keys whose writes it missed (newer values reload)."""
        keys, self._pending = self._pending, set()
        for key in keys:
            await self._write_l2(key, TOMBSTONE, self.tombstone_ttl_ms)

    # -- introspection ----------------------------------------------------------------------

    def hit_ratio(self, tier: str | None = None) -> float:
        """Hits over lookups: overall (L1 or L2 hit per read), or of `tier` ("l1", "l2")."""
        return self.stats.hit_ratio(tier)

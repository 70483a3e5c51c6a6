"""L2 reads coalesced: the keys missed during one event-loop turn are fetched with one MGET.

Under load many requests miss L1 at about the same time (each key's L1 copy expires every
`l1_ttl`); a GET each costs a full redis-py round trip (~330 k instructions), an MGET of ten
~70 k per key. Reads are queued and flushed on the next loop turn, so a lone read waits for no
timer, only for the callbacks already queued; a burst becomes a few round trips instead of one
per key. Like every Redis call of the cache, the batch runs through the guard: an error or a
skipped Redis answers every key in the batch with the same `Failed` value.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis

from fleet.common.cache._guard import Failed, RedisGuard

MAX_BATCH = 256

Raw = bytes | str | None
Outcome = Raw | Failed


class BatchedReader:
    """`await reader.get(key)`: the raw L2 value of `key` (None if absent) or a `Failed`."""

    def __init__(self, redis: Redis, guard: RedisGuard, *, max_batch: int = MAX_BATCH) -> None:
        self._redis = redis
        self._guard = guard
        self._max_batch = max_batch
        self._queued: dict[str, asyncio.Future[Outcome]] = {}
        self._flush_scheduled = False
        self._inflight: set[asyncio.Task[None]] = set()

    def get(self, key: str) -> asyncio.Future[Outcome]:
        """A future of `key`'s value; one per key among the reads queued for the next MGET."""
        future = self._queued.get(key)
        if future is None:
            loop = asyncio.get_running_loop()
            future = loop.create_future()
            self._queued[key] = future
            if len(self._queued) >= self._max_batch:
                self._flush()
            elif not self._flush_scheduled:
                self._flush_scheduled = True
                loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self._flush_scheduled = False
        if not self._queued:
            return
        batch, self._queued = self._queued, {}
        task = asyncio.get_running_loop().create_task(self._fetch(batch))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _fetch(self, batch: dict[str, asyncio.Future[Outcome]]) -> None:
        keys = list(batch)
        try:
            values: Any = await self._guard.run("get", lambda: self._redis.mget(keys))
        except BaseException:  # cancelled (the guard raises nothing else): nobody waits forever
            for future in batch.values():
                future.cancel()
            raise
        for index, future in enumerate(batch.values()):
            if not future.done():  # a waiter that went away cancelled its future
                future.set_result(values if isinstance(values, Failed) else values[index])

    async def close(self) -> None:
        """Cancel the batches in flight (their waiters get an error, not a hang)."""
        for task in list(self._inflight):
            task.cancel()
        await asyncio.gather(*self._inflight, return_exceptions=True)

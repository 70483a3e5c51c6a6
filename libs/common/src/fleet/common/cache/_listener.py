"""Cross-process L1 invalidation over Redis pub/sub.

Every cache publishes `<origin>\\n<key>` on its channel when it writes or invalidates a key; every
other instance of the same cache drops that key from its L1. Messages lost while Redis or the
subscription is down are covered by the L1 TTL (100 ms by default) and by clearing the whole L1
when the subscription comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from redis.asyncio import Redis

from fleet.common.logging import get_logger

log = get_logger("fleet.cache")

MAX_BACKOFF = 2.0


def encode_message(origin: str, key: str) -> bytes:
    return f"{origin}\n{key}".encode()


def decode_message(data: bytes) -> tuple[str, str] | None:
    origin, sep, key = data.decode(errors="replace").partition("\n")
    return (origin, key) if sep else None


class InvalidationListener:
    """Subscribes to `channel` and calls `on_key(key)` for keys other instances changed."""

    def __init__(
        self,
        redis: Redis,
        channel: str,
        origin: str,
        *,
        on_key: Callable[[str], None],
        on_resync: Callable[[], None],
        on_error: Callable[[str], None],
    ) -> None:
        self._redis = redis
        self._channel = channel
        self._origin = origin
        self._on_key = on_key
        self._on_resync = on_resync
        self._on_error = on_error
        self.subscribed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"cache-listener:{self._channel}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        backoff = 0.05
        lost = False
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._channel)
                if lost:
                    self._on_resync()  # messages may have been missed while disconnected
                self.subscribed.set()
                backoff = 0.05
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self._handle(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis down: retry with backoff, never crash the service
                lost = True
                self.subscribed.clear()
                self._on_error("subscribe")
                log.debug("cache invalidation channel lost", channel=self._channel, error=repr(exc))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _handle(self, data: bytes) -> None:
        decoded = decode_message(data)
        if decoded is not None and decoded[0] != self._origin:
            self._on_key(decoded[1])

"""Breaker state shared by every replica of a service, so one replica opening fails all fast.

Only the decisions are shared — `open` (with its `opened_at`) and `closed` — not the counts: each
replica judges the error rate it sees and publishes a transition; the others adopt the newest one.
Half-open is local: after the reset timeout each replica makes its own single trial call.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from fleet.common.logging import get_logger

log = get_logger("fleet.breaker")


@dataclass(frozen=True)
class SharedSnapshot:
    """A published transition: the state, when the circuit opened, when this was decided."""

    state: str
    opened_at: float | None
    changed_at: float


class SharedState(Protocol):
    """Where the replicas of a breaker meet. Errors are swallowed: shared state is an aid."""

    async def load(self, key: str) -> SharedSnapshot | None: ...

    async def save(self, key: str, snapshot: SharedSnapshot) -> None: ...


# Newest decision wins: a replica that publishes late (its call started before a peer's later
# transition) must not overwrite the newer decision.
_SAVE_IF_NEWER = """
local current = redis.call('HGET', KEYS[1], 'changed_at')
if current and tonumber(current) >= tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'opened_at', ARGV[2], 'changed_at', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisSharedState:
    """`SharedState` in a Redis hash per breaker. After a Redis error it stays away for
    `backoff` seconds, so a dead Redis costs one timeout, not one per call."""

    def __init__(self, redis: Redis, *, ttl_seconds: int = 86_400, backoff: float = 5.0) -> None:
        self._redis = redis
        self._ttl = ttl_seconds
        self._backoff = backoff
        self._down_until = 0.0
        self._save = redis.register_script(_SAVE_IF_NEWER)

    def _available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, op: str, exc: Exception) -> None:
        self._down_until = time.monotonic() + self._backoff
        log.warning("breaker shared state unavailable", op=op, error=type(exc).__name__)

    async def load(self, key: str) -> SharedSnapshot | None:
        if not self._available():
            return None
        try:
            raw = await self._redis.hgetall(key)
        except (RedisError, OSError) as exc:
            self._failed("load", exc)
            return None
        if not raw:
            return None
        fields = {_text(k): _text(v) for k, v in raw.items()}
        opened = fields.get("opened_at", "")
        return SharedSnapshot(
            state=fields["state"],
            opened_at=float(opened) if opened else None,
            changed_at=float(fields["changed_at"]),
        )

    async def save(self, key: str, snapshot: SharedSnapshot) -> None:
        if not self._available():
            return
        opened = "" if snapshot.opened_at is None else repr(snapshot.opened_at)
        args: list[str | int] = [snapshot.state, opened, repr(snapshot.changed_at), self._ttl]
        try:
            await self._save(keys=[key], args=args)
        except (RedisError, OSError) as exc:
            self._failed("save", exc)

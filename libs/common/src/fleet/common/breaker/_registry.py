"""The breakers of one app: created on first use, listed by `GET /breakers`."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from fleet.common.breaker._breaker import AsyncCircuitBreaker, BreakerConfig, Fallback
from fleet.common.breaker._metrics import BreakerMetrics
from fleet.common.breaker._shared import RedisSharedState


class BreakerRegistry:
    """Breakers by name, their metrics on the app's Prometheus registry.

    With Redis bound (`bind_redis`, done by the app when `REDIS_URL` is set) new breakers share
    their state across the replicas of the same service, under
    `{prefix}:breaker:{namespace}:{name}` — `namespace` is the service (or `user+vehicle+…`).
    """

    def __init__(
        self, registry: CollectorRegistry | None = None, *, namespace: str = "fleet"
    ) -> None:
        self.metrics = BreakerMetrics(registry or CollectorRegistry())
        self.namespace = namespace
        self._breakers: dict[str, AsyncCircuitBreaker] = {}
        self._shared: RedisSharedState | None = None
        self._prefix = "fleet"

    def bind_redis(self, redis: Redis | None, prefix: str = "fleet") -> None:
        """Share the state of breakers created from now on through `redis` (None: local)."""
        self._shared = RedisSharedState(redis) if redis is not None else None
        self._prefix = prefix

    def get(
        self,
        name: str,
        config: BreakerConfig | None = None,
        *,
        fallback: Fallback | None = None,
        exclude: tuple[type[Exception], ...] = (),
        shared: bool = True,
    ) -> AsyncCircuitBreaker:
        """The breaker called `name`, created with these settings on first use."""
        breaker = self._breakers.get(name)
        if breaker is None:
            breaker = AsyncCircuitBreaker(
                name,
                config,
                fallback=fallback,
                exclude=exclude,
                metrics=self.metrics,
                shared=self._shared if shared else None,
                shared_key=f"{self._prefix}:breaker:{self.namespace}:{name}",
            )
            self._breakers[name] = breaker
        return breaker

    def __iter__(self) -> Iterator[AsyncCircuitBreaker]:
        return iter(sorted(self._breakers.values(), key=lambda b: b.name))

    def __len__(self) -> int:
        return len(self._breakers)

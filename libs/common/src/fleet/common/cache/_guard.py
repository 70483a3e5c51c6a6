"""Redis behind a short timeout and a small circuit: a dead Redis costs a skipped branch.

The client's own socket timeouts (0.25 s in `make_redis`) are the first line; `timeout` is a
backstop around the whole call, pool wait included (cancelling redis-py mid-command is safe but
leaves more to clean up, so it should rarely be what fires).

Every failure (error or timeout) is counted and logged at debug, never raised. After
`failure_threshold` consecutive failures the circuit opens and Redis is skipped for `reset_after`
seconds; then calls go through again and the first success closes it (one more failure re-opens).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Final, TypeVar

from fleet.common.logging import get_logger

log = get_logger("fleet.cache")
T = TypeVar("T")


class Failed(Enum):
    """What `RedisGuard.run` returns when Redis was skipped or failed."""

    SKIPPED = "skipped"
    ERROR = "error"


SKIPPED: Final = Failed.SKIPPED
ERROR: Final = Failed.ERROR


class RedisGuard:
    """Runs Redis operations with a timeout, a concurrency cap and a circuit breaker."""

    def __init__(
        self,
        *,
        timeout: float = 0.5,
        failure_threshold: int = 3,
        reset_after: float = 5.0,
        max_concurrency: int = 64,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timeout = timeout
        self.failure_threshold = failure_threshold
        self.reset_after = reset_after
        self._clock = clock
        # Bounded so a burst of distinct keys queues here (within the timeout) instead of
        # exhausting the client's connection pool, which redis-py reports as an error.
        self._slots = asyncio.Semaphore(max_concurrency)
        self._failures = 0
        self._open_until = 0.0
        # Who wants to know: the caches sharing this guard count errors and resync on recovery.
        self.error_hooks: list[Callable[[str], None]] = []
        self.recover_hooks: list[Callable[[], None]] = []

    @property
    def is_open(self) -> bool:
        """True while Redis is being skipped."""
        return self._failures >= self.failure_threshold and self._clock() < self._open_until

    async def run(self, operation: str, call: Callable[[], Awaitable[T]]) -> T | Failed:
        """`await call()` unless the circuit is open; SKIPPED or ERROR instead of raising."""
        if self.is_open:
            return SKIPPED
        try:
            async with asyncio.timeout(self.timeout):
                async with self._slots:
                    result = await call()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any Redis trouble means "no L2", never an error for the caller
            self._failed(operation, exc)
            return ERROR
        if self._failures:
            self._failures = 0
            log.info("redis reachable again")
            for recovered in self.recover_hooks:
                recovered()
        return result

    def _failed(self, operation: str, exc: BaseException) -> None:
        self._failures += 1
        for hook in self.error_hooks:
            hook(operation)
        log.debug("redis call failed", operation=operation, error=repr(exc))
        if self._failures >= self.failure_threshold:
            if self._failures == self.failure_threshold:
                log.warning("redis unavailable; skipping it", seconds=self.reset_after)
            self._open_until = self._clock() + self.reset_after

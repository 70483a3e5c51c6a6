"""When and how long to wait before trying an inter-service request again."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

# POST is never retried: a request that reached the upstream before the connection broke may
# have had its effect, and a second one would repeat it.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRY_STATUSES = frozenset({502, 503, 504})

Uniform = Callable[[float, float], float]


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential back-off with full jitter (AWS Architecture Blog, "Exponential Backoff And
    Jitter"): the n-th retry waits uniform(0, min(max_delay, base_delay * 2**n)) seconds, which
    spreads the retries of many callers instead of having them hit a recovering upstream in
    lockstep."""

    attempts: int = 3
    base_delay: float = 0.05
    max_delay: float = 1.0
    statuses: frozenset[int] = RETRY_STATUSES
    methods: frozenset[str] = IDEMPOTENT_METHODS

    def retries_for(self, method: str) -> int:
        """How many times a failed `method` request may be sent again."""
        return self.attempts - 1 if method.upper() in self.methods else 0

    def ceiling(self, retry: int) -> float:
        """The longest wait before retry number `retry` (0-based)."""
        return float(min(self.max_delay, self.base_delay * 2**retry))

    def delay(self, retry: int, uniform: Uniform = random.uniform) -> float:
        return uniform(0.0, self.ceiling(retry))


NO_RETRY = RetryPolicy(attempts=1)

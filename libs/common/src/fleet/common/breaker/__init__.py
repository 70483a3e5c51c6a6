"""Circuit breaking for asyncio on pybreaker's state machine (see docs/adr/0004).

`AsyncCircuitBreaker.call(fn, *args)` runs a coroutine with a timeout and opens the circuit when
the error rate over a rolling window crosses the threshold; `BreakerRegistry` holds an app's
breakers (on `FleetState.breakers`) and `router` serves `GET /breakers` to operators.
"""

from fleet.common.breaker._breaker import (
    AsyncCircuitBreaker,
    BreakerConfig,
    CircuitOpenError,
    Fallback,
)
from fleet.common.breaker._metrics import BreakerMetrics
from fleet.common.breaker._registry import BreakerRegistry
from fleet.common.breaker._routes import router
from fleet.common.breaker._shared import RedisSharedState, SharedSnapshot, SharedState
from fleet.common.breaker._window import RollingWindow

__all__ = [
    "AsyncCircuitBreaker",
    "BreakerConfig",
    "BreakerMetrics",
    "BreakerRegistry",
    "CircuitOpenError",
    "Fallback",
    "RedisSharedState",
    "RollingWindow",
    "SharedSnapshot",
    "SharedState",
    "router",
]

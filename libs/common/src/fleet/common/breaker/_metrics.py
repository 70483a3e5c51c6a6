"""Breaker state, transitions, calls and fallbacks as Prometheus metrics on the app's registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

# The usual encoding (resilience4j, Hystrix dashboards): alert on `circuit_breaker_state == 1`.
STATE_VALUES = {"closed": 0, "open": 1, "half-open": 2}


class BreakerMetrics:
    """One set per app registry, labelled by breaker name."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.state = Gauge(
            "circuit_breaker_state",
            "Circuit breaker state: 0 closed, 1 open, 2 half-open.",
            ["name"],
            registry=registry,
        )
        self.transitions = Counter(
            "circuit_breaker_transitions_total",
            "Circuit breaker state changes, by previous and new state.",
            ["name", "from", "to"],
            registry=registry,
        )
        self.calls = Counter(
            "circuit_breaker_calls_total",
            "Calls through a circuit breaker by result: success, failure, timeout, rejected "
            "(short-circuited while open), excluded (a business error, not counted).",
            ["name", "result"],
            registry=registry,
        )
        self.fallbacks = Counter(
            "circuit_breaker_fallbacks_total",
            "Calls answered by a fallback instead of the protected operation.",
            ["name"],
            registry=registry,
        )

    def set_state(self, name: str, state: str) -> None:
        self.state.labels(name).set(STATE_VALUES[state])

    def transition(self, name: str, old: str, new: str) -> None:
        self.transitions.labels(name, old, new).inc()
        self.set_state(name, new)

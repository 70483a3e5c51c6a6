"""Cache metrics on the app's registry, plus the per-instance counts behind `hit_ratio`."""

from __future__ import annotations

from collections import Counter as Tally
from typing import Any
from weakref import WeakKeyDictionary

from prometheus_client import CollectorRegistry, Counter

Tier = str  # "l1" | "l2" | "loader"
Result = str  # "hit" | "miss" | "skipped" | "error" for l1/l2; "ok" | "error" for the loader


class CacheMetrics:
    """The cache counters of one registry (shared by every cache of an app, `cache` label)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "cache_requests_total",
            "Cache lookups by cache, tier (l1, l2, loader) and result "
            "(hit, miss, skipped = Redis bypassed by the circuit, error; loader: ok, error).",
            ["cache", "tier", "result"],
            registry=registry,
        )
        self.redis_errors = Counter(
            "cache_redis_errors_total",
            "Redis errors and timeouts the cache absorbed, by cache and operation.",
            ["cache", "operation"],
            registry=registry,
        )
        self.invalidations = Counter(
            "cache_invalidations_total",
            "L1 entries dropped by invalidation, by cache and origin (local, remote, resync).",
            ["cache", "origin"],
            registry=registry,
        )


_by_registry: WeakKeyDictionary[CollectorRegistry, CacheMetrics] = WeakKeyDictionary()


def metrics_for(registry: CollectorRegistry) -> CacheMetrics:
    """The registry's cache metrics, created on first use (a metric name registers once)."""
    metrics = _by_registry.get(registry)
    if metrics is None:
        metrics = _by_registry[registry] = CacheMetrics(registry)
    return metrics


class CacheStats:
    """This cache instance's own counts, mirrored into the registry's counters."""

    def __init__(self, name: str, metrics: CacheMetrics | None) -> None:
        self.name = name
        self.counts: Tally[tuple[Tier, Result]] = Tally()
        self._metrics = metrics
        self._children: dict[tuple[Tier, Result], Any] = {}  # labelled counters, bound once

    def record(self, tier: Tier, result: Result) -> None:
        self.counts[(tier, result)] += 1
        if self._metrics is not None:
            child = self._children.get((tier, result))
            if child is None:
                child = self._metrics.requests.labels(self.name, tier, result)
                self._children[(tier, result)] = child
            child.inc()

    def redis_error(self, operation: str) -> None:
        if self._metrics is not None:
            self._metrics.redis_errors.labels(self.name, operation).inc()

    def invalidated(self, origin: str) -> None:
        if self._metrics is not None:
            self._metrics.invalidations.labels(self.name, origin).inc()

    def hit_ratio(self, tier: Tier | None = None) -> float:
        """Hits / lookups: of one tier, or overall (a hit in L1 or L2 over all reads)."""
        if tier is not None:
            hits = self.counts[(tier, "hit")]
            total = sum(n for (t, _), n in self.counts.items() if t == tier)
            return hits / total if total else 0.0
        reads = sum(n for (t, _), n in self.counts.items() if t == "l1")
        hits = self.counts[("l1", "hit")] + self.counts[("l2", "hit")]
        return hits / reads if reads else 0.0

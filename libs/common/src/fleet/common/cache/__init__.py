"""Tiered caching: L1 in-process (~100 ms), L2 Redis (~5 min), L3 the caller's loader.

    cache = TieredCache[dict[str, Any]]("vehicle-location", redis=redis, registry=registry)
    await cache.start()                      # listen for other processes' invalidations
    value = await cache.get_or_load(key, lambda: load_from_db(key))
    await cache.set(key, new_value)          # write-through after a change
    await cache.invalidate(key)              # or drop it everywhere
    cache.hit_ratio()                        # and cache_requests_total{cache,tier,result}

Redis is an optimisation: without it (`redis=None`) the cache is L1 + loader; when it fails or
times out the error is counted and the read goes on without it (see `RedisGuard`).
"""

from fleet.common.cache._guard import ERROR, SKIPPED, Failed, RedisGuard
from fleet.common.cache._local import LocalCache
from fleet.common.cache._metrics import CacheMetrics, CacheStats, metrics_for
from fleet.common.cache._tiered import TOMBSTONE, Loader, TieredCache

__all__ = [
    "ERROR",
    "SKIPPED",
    "TOMBSTONE",
    "CacheMetrics",
    "CacheStats",
    "Failed",
    "Loader",
    "LocalCache",
    "RedisGuard",
    "TieredCache",
    "metrics_for",
]

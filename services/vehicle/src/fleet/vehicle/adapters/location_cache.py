"""The vehicle-location cache: L1 in-process → L2 Redis → the database (the seed's
VehicleLocationService). Built in the module's startup hook and kept in `rt.extras`.

Telemetry that moves a vehicle writes the new position through (this process's L1, Redis, and an
invalidation of every other process's L1), so a read after a move shows the move.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import orjson

from fleet.common.cache import TieredCache
from fleet.common.runtime import ServiceRuntime
from fleet.vehicle.domain.vehicles import Vehicle

EXTRAS_KEY = "location_cache"
CACHE_NAME = "vehicle-location"


@dataclass(frozen=True, slots=True)
class Location:
    """A vehicle's latest known position, as cached and as served."""

    vehicle_id: uuid.UUID
    lat: float
    lon: float
    recorded_at: dt.datetime | None

    @classmethod
    def of(cls, vehicle: Vehicle) -> Location:
        return cls(vehicle.id, vehicle.lat, vehicle.lon, vehicle.position_recorded_at)


def encode(location: Location) -> bytes:
    # str(): the id may be asyncpg's own UUID class, which orjson does not know.
    return orjson.dumps(
        {
            "vehicle_id": str(location.vehicle_id),
            "lat": location.lat,
            "lon": location.lon,
            "recorded_at": location.recorded_at,
        }
    )


def decode(raw: bytes) -> Location:
    data = orjson.loads(raw)
    recorded_at = data["recorded_at"]
    return Location(
        uuid.UUID(data["vehicle_id"]),
        float(data["lat"]),
        float(data["lon"]),
        dt.datetime.fromisoformat(recorded_at) if recorded_at is not None else None,
    )


class LocationCache:
    """Vehicle positions by id, over a `TieredCache` (L2 only when the app has Redis)."""

    def __init__(self, cache: TieredCache[Location]) -> None:
        self.cache = cache

    async def get(self, vehicle_id: uuid.UUID, load: Callable[[], Awaitable[Location]]) -> Location:
        return await self.cache.get_or_load(str(vehicle_id), load)

    async def moved(self, location: Location) -> None:
        # Versioned by the position's own time: a replica writing an older position after a
        # newer one (out-of-order batches) cannot put it back in Redis.
        recorded = location.recorded_at
        version = round(recorded.timestamp() * 1_000_000) if recorded is not None else None
        await self.cache.set(str(location.vehicle_id), location, version=version)


async def start(rt: ServiceRuntime) -> None:
    """Startup hook: the cache on the app's Redis and registry, listening for invalidations."""
    cache = TieredCache[Location](
        CACHE_NAME,
        redis=rt.platform.redis,
        registry=rt.platform.registry,
        encode=encode,
        decode=decode,
        prefix=f"{rt.settings.redis_prefix}:cache",
    )
    await cache.start()
    rt.extras[EXTRAS_KEY] = LocationCache(cache)


async def stop(rt: ServiceRuntime) -> None:
    located = rt.extras.pop(EXTRAS_KEY, None)
    if isinstance(located, LocationCache):
        await located.cache.close()

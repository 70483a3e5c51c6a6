"""Fares in the trip service: the replica of billing's tariffs and the booking's local quote.

billing announces every tariff change (`billing.tariff-changed`); trip keeps the newest version
per model and prices a booking with the replicated `default` tariff (the vehicle is not chosen
yet), through the same rule billing invoices with (`fleet.contracts.fares`). billing remains
the authority: it prices the invoice with its own tariffs when the ride completes.

Every booking quotes, and tariffs change a few times a day: quotes read the replica through a
`TieredCache` (L1 in this process for `L1_TTL_S`, L2 Redis, then the table) instead of with a
statement each. A replicated change drops the model's entry in every trip process once it
commits (Redis pub/sub); should that message be lost (Redis down), the L1 TTL bounds how long a
process quotes with the previous tariff.
"""

from __future__ import annotations

import asyncio
from functools import partial

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from fleet.common.cache import TieredCache
from fleet.common.db import Database, after_commit
from fleet.common.geo import Point
from fleet.common.logging import get_logger
from fleet.common.messaging import Envelope, default_registry
from fleet.common.runtime import ServiceRuntime
from fleet.contracts import fares
from fleet.contracts.events import TariffChanged
from fleet.contracts.fares import DEFAULT_MODEL, DEFAULT_TARIFF, Quote, Tariff
from fleet.trip.adapters.tariffs import SqlTariffReplica

log = get_logger("fleet.trip.fares")

CACHE_NAME = "trip-tariffs"
EXTRAS_KEY = "tariffs"
L1_TTL_S = 1.0


def _encode(tariff: Tariff | None) -> bytes:
    if tariff is None:
        return b"null"
    return orjson.dumps(
        [tariff.vehicle_model, tariff.base_cents, tariff.per_km_cents, tariff.per_min_cents]
    )


def _decode(raw: bytes) -> Tariff | None:
    data = orjson.loads(raw)
    if data is None:
        return None
    model, base, per_km, per_min = data
    return Tariff(str(model), int(base), int(per_km), int(per_min))


class Tariffs:
    """trip's tariffs as quotes read them (cached) and as the replica consumer writes them."""

    def __init__(self, db: Database, cache: TieredCache[Tariff | None]) -> None:
        self.db = db
        self.cache = cache
        self._invalidations: set[asyncio.Task[None]] = set()

    async def get(self, vehicle_model: str) -> Tariff | None:
        """The replicated tariff of `vehicle_model`, None if none was replicated."""
        return await self.cache.get_or_load(vehicle_model, partial(self._load, vehicle_model))

    async def _load(self, vehicle_model: str) -> Tariff | None:
        async with self.db.session() as session:
            return await SqlTariffReplica(session).get(vehicle_model)

    async def quote(self, pickup: Point, dropoff: Point) -> Quote:
        """The ride priced with the replicated default tariff, else the built-in default.

        Refuses (`RideTooLong`) what billing's quote refuses.
        """
        tariff = await self.get(DEFAULT_MODEL) or DEFAULT_TARIFF
        return fares.quote(tariff, pickup, dropoff)

    async def record(self, session: AsyncSession, envelope: Envelope) -> None:
        """Inbox handler of `trip.tariffs`: keep the tariff unless a newer version is held;
        once that commits, every trip process reads the model's tariff afresh."""
        event = default_registry.parse_as(envelope, TariffChanged)
        if await SqlTariffReplica(session).apply(event):
            after_commit(session, partial(self._invalidate, event.vehicle_model))
            log.info("tariff replicated", vehicle_model=event.vehicle_model, version=event.version)

    def _invalidate(self, vehicle_model: str) -> None:
        task = asyncio.get_running_loop().create_task(self.cache.invalidate(vehicle_model))
        self._invalidations.add(task)
        task.add_done_callback(self._invalidations.discard)

    async def close(self) -> None:
        await asyncio.gather(*self._invalidations, return_exceptions=True)
        await self.cache.close()


async def start(rt: ServiceRuntime) -> Tariffs:
    """Startup hook: the tariffs on the app's Redis and registry, listening for invalidations."""
    cache = TieredCache[Tariff | None](
        CACHE_NAME,
        redis=rt.platform.redis,
        registry=rt.platform.registry,
        l1_ttl=L1_TTL_S,
        encode=_encode,
        decode=_decode,
        prefix=f"{rt.settings.redis_prefix}:cache",
    )
    await cache.start()
    tariffs = rt.extras[EXTRAS_KEY] = Tariffs(rt.db, cache)
    return tariffs


async def stop(rt: ServiceRuntime) -> None:
    tariffs = rt.extras.pop(EXTRAS_KEY, None)
    if isinstance(tariffs, Tariffs):
        await tariffs.close()

"""The quote's tariff cache: one replica read per L1 period instead of one per booking, and a
replicated change quoted at once by every trip process (Redis invalidation), on both backends."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from redis.asyncio import Redis

from fleet.common.app import make_redis
from fleet.common.cache import TieredCache
from fleet.common.db import Database
from fleet.common.geo import Point
from fleet.common.testing import MakeDb, eventually, recorded_statements
from fleet.contracts import fares
from fleet.contracts.events import TariffChanged
from fleet.contracts.fares import DEFAULT_TARIFF, Tariff
from fleet.trip.app import module
from fleet.trip.service.fares import Tariffs, _decode, _encode

REDIS_URL = os.environ.get("FLEET_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SEOUL, GWANGHWAMUN = Point(lat=37.5665, lon=126.978), Point(lat=37.5796, lon=126.977)
T0 = dt.datetime(2026, 3, 1, 8, 0, tzinfo=dt.UTC)

MakeTariffs = Callable[..., Awaitable[Tariffs]]


def fare(tariff: Tariff) -> int:
    return fares.quote(tariff, SEOUL, GWANGHWAMUN).fare_cents


def changed(version: int, base_cents: int) -> TariffChanged:
    return TariffChanged(
        vehicle_model="default",
        base_cents=base_cents,
        per_km_cents=100,
        per_min_cents=10,
        version=version,
        updated_at=T0,
    )


@pytest.fixture
async def db(make_db: MakeDb) -> Database:
    return await make_db(module())


@pytest.fixture
async def make_tariffs(db: Database) -> AsyncIterator[MakeTariffs]:
    """`await make_tariffs(redis=True)`: a trip process's tariffs, on a Redis client of its own
    (a long L1 TTL: only an invalidation can make a cached tariff change within a test)."""
    name = f"test-tariffs-{uuid.uuid4().hex[:12]}"
    made: list[Tariffs] = []
    clients: list[Redis] = []

    async def make(*, redis: bool = False) -> Tariffs:
        client = make_redis(REDIS_URL) if redis else None
        if client is not None:
            clients.append(client)
        cache = TieredCache[Tariff | None](
            name, redis=client, l1_ttl=600, encode=_encode, decode=_decode
        )
        await cache.start()
        if cache.listener is not None:
            await asyncio.wait_for(cache.listener.subscribed.wait(), 5)
        made.append(Tariffs(db, cache))
        return made[-1]

    yield make
    for tariffs in made:
        await tariffs.close()
    if clients:
        keys = [k async for k in clients[0].scan_iter(match=f"fleet:cache:{name}:*")]
        if keys:
            await clients[0].delete(*keys)
    for client in clients:
        await client.aclose()


async def record(db: Database, tariffs: Tariffs, event: TariffChanged) -> None:
    envelope = event.to_envelope(
        producer="billing", aggregate_type="tariff", aggregate_id="default", version=1
    )
    async with db.transaction() as session:
        await tariffs.record(session, envelope)


async def test_quotes_read_the_replica_once_not_once_per_booking(
    db: Database, make_tariffs: MakeTariffs
) -> None:
    tariffs = await make_tariffs()
    with recorded_statements(db) as seen:
        quotes = [await tariffs.quote(SEOUL, GWANGHWAMUN) for _ in range(5)]
    assert {q.fare_cents for q in quotes} == {fare(DEFAULT_TARIFF)}  # nothing replicated yet
    assert len([s for s in seen if "TARIFFS" in s]) == 1


async def test_a_replicated_change_is_quoted_at_once_by_the_process_that_recorded_it(
    db: Database, make_tariffs: MakeTariffs
) -> None:
    tariffs = await make_tariffs()
    assert (await tariffs.quote(SEOUL, GWANGHWAMUN)).fare_cents == fare(DEFAULT_TARIFF)

    await record(db, tariffs, changed(1, base_cents=900))

    expected = fare(Tariff("default", 900, 100, 10))
    assert expected != fare(DEFAULT_TARIFF)
    # The invalidation runs once the commit is done, as a task on the loop.
    await eventually(lambda: _fare_is(tariffs, expected), within=2)


async def test_a_replicated_change_is_quoted_at_once_by_every_other_trip_process(
    db: Database, make_tariffs: MakeTariffs
) -> None:
    recorder, other = await make_tariffs(redis=True), await make_tariffs(redis=True)
    for tariffs in (recorder, other):  # both hold the built-in default in L1 (for 10 minutes)
        assert (await tariffs.quote(SEOUL, GWANGHWAMUN)).fare_cents == fare(DEFAULT_TARIFF)

    await record(db, recorder, changed(1, base_cents=700))

    expected = fare(Tariff("default", 700, 100, 10))
    await eventually(lambda: _fare_is(other, expected), within=2)


async def test_a_change_rolled_back_leaves_the_cached_tariff(
    db: Database, make_tariffs: MakeTariffs
) -> None:
    tariffs = await make_tariffs()
    await tariffs.quote(SEOUL, GWANGHWAMUN)
    envelope = changed(1, base_cents=900).to_envelope(
        producer="billing", aggregate_type="tariff", aggregate_id="default", version=1
    )

    async def failing_inbox_transaction() -> None:
        async with db.transaction() as session:
            await tariffs.record(session, envelope)
            raise RuntimeError("the inbox transaction fails after the upsert")

    with pytest.raises(RuntimeError):
        await failing_inbox_transaction()
    await asyncio.sleep(0.05)
    assert tariffs.cache.l1.get("default") == (True, None)  # not dropped: nothing changed


async def _fare_is(tariffs: Tariffs, expected: int) -> bool:
    return (await tariffs.quote(SEOUL, GWANGHWAMUN)).fare_cents == expected

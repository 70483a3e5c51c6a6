"""Chaos: bookings and rides while service processes are SIGKILLed, then the invariants audited.

A longer run: `uv run fleet chaos --bookings 200 --crashes 10 --seed 3` (see docs/chaos.md).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import create_async_engine

from fleet.common.messaging.rabbit import RabbitBus
from fleet.common.testing import create_database, drop_database
from fleet.contracts.events import CreditsCaptured
from fleet.platform.audit import audit, audit_database, audit_queues
from fleet.platform.chaos import ChaosPlan, ChaosRun
from fleet.platform.distributed import DistributedStack
from fleet.trip.adapters.tables import trips
from fleet.user.adapters.tables import users, wallets
from fleet.vehicle.adapters.tables import vehicles

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.rabbitmq]


@pytest.mark.timeout(420)
async def test_bookings_and_rides_through_crashes_of_every_service_keep_every_invariant(
    stack: DistributedStack,
) -> None:
    plan = ChaosPlan(
        bookings=16,
        concurrency=4,
        vehicles=8,
        riders=4,
        crashes=3,
        targets=("trip", "user", "vehicle", "billing"),
        pause_s=(0.5, 1.5),
        down_s=(0.2, 1.0),
        seed=11,
    )
    lines: list[str] = []
    result = await ChaosRun(stack, plan, lines.append).run()

    assert result.ok, "\n".join([result.summary(), *map(str, result.violations), *lines])
    assert len(result.crashes) == 3
    assert sum(result.outcomes.values()) >= plan.bookings
    assert set(result.outcomes) <= {"confirmed", "completed", "cancelled", "rejected"}
    assert result.outcomes["completed"] > 0  # billing ran: invoices paid through the crashes

    # The queue audit is not vacuous: a poison message ends in a dead-letter queue and shows,
    # whether the audit connects itself or is given a started bus (which it leaves open).
    bus = RabbitBus(stack.amqp_url, "test-poison")
    await bus.start()
    try:
        await bus.publish_raw(b"{not json", CreditsCaptured.event_type)  # billing only
        for _ in range(100):
            found = {v.invariant for v in await audit_queues(bus)}
            if "dead-letters-billing.events" in found:
                break
            await asyncio.sleep(0.1)
        assert await bus.queue_depth("billing.events") is not None  # still open
    finally:
        await bus.close()
    assert found == {"dead-letters-billing.events"}
    assert {v.invariant for v in await audit_queues(stack.amqp_url)} == found


@pytest.fixture
def migrated_database(tmp_path: Path) -> Iterator[str]:
    """All four schemas, migrated, with no data and no running service."""
    url = create_database()
    try:
        DistributedStack(database_url=url, amqp_url="amqp://unused/", data_dir=tmp_path).migrate()
        yield url
    finally:
        drop_database(url)


async def test_the_audit_of_an_empty_platform_finds_nothing(migrated_database: str) -> None:
    assert await audit(migrated_database) == []


async def test_the_audit_names_each_broken_invariant(migrated_database: str) -> None:
    now = dt.datetime.now(dt.UTC)
    rider, trip_id = uuid.uuid4(), uuid.uuid4()
    eng = create_async_engine(migrated_database)
    try:
        async with eng.begin() as conn:
            await conn.execute(
                insert(users).values(
                    id=rider,
                    email="r@example.com",
                    name="R",
                    role="rider",
                    password_hash="x",
                    created_at=now,
                )
            )
            # held credits with no hold behind them, and a balance no ledger entry explains
            await conn.execute(
                insert(wallets).values(
                    user_id=rider, balance_cents=1_000, held_cents=500, version=1, updated_at=now
                )
            )
            # a vehicle reserved for a trip that does not exist
            await conn.execute(
                insert(vehicles).values(
                    id=uuid.uuid4(),
                    vin="5YJ3E1EA000000001",
                    model="Ioniq5",
                    seats=4,
                    status="reserved",
                    battery_pct=90.0,
                    lat=37.5,
                    lon=127.0,
                    odometer_km=0.0,
                    reserved_trip_id=uuid.uuid4(),
                    device_token_hash="0" * 64,
                    version=1,
                    created_at=now,
                    updated_at=now,
                )
            )
            # a trip whose saga never ended
            await conn.execute(
                insert(trips).values(
                    id=trip_id,
                    rider_id=rider,
                    status="pending",
                    pickup_lat=37.5,
                    pickup_lon=127.0,
                    dropoff_lat=37.6,
                    dropoff_lon=127.0,
                    version=1,
                    created_at=now,
                    updated_at=now,
                )
            )
        found = {v.invariant: v for v in await audit_database(eng)}  # an engine of the caller's
    finally:
        await eng.dispose()

    assert set(found) == {
        "wallet-held",
        "wallet-ledger",
        "busy-vehicle-has-trip",
        "trip-settled",
    }
    assert str(trip_id) in found["trip-settled"].sample[0]
    assert found["wallet-held"].offenders == 1

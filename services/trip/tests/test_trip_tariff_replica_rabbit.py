"""The tariff replica over RabbitMQ: the whole platform in one process on a vhost of its own.

A tariff put in billing leaves through billing's outbox as `billing.tariff-changed`, crosses the
broker to trip's `trip.tariffs` queue and prices the next booking's local quote.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from fleet.common.app import create_app
from fleet.common.config import Settings
from fleet.common.db import Database
from fleet.common.geo import Point
from fleet.common.messaging.rabbit import RabbitBus
from fleet.common.testing import app_client, create_vhost, delete_vhost, truncate_schemas
from fleet.contracts import fares
from fleet.contracts.fares import Tariff
from fleet.platform.client import SEOUL, Platform, eventually
from fleet.platform.services import all_modules
from fleet.trip.adapters.tables import tariffs

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq, pytest.mark.slow]


@pytest.fixture
async def api(tmp_path: Path, pg_url: str) -> AsyncIterator[Platform]:
    if shutil.which("rabbitmqctl") is None:
        pytest.skip("rabbitmqctl is not installed")
    amqp = create_vhost()
    try:
        await truncate_schemas(pg_url, [m.schema for m in all_modules()])
        settings = Settings(
            env="test", data_dir=tmp_path, database_url=pg_url, amqp_url=amqp, log_level="WARNING"
        )
        app = create_app(all_modules(), settings, access_log=False)
        async with app_client(app) as client:
            assert isinstance(app.state.fleet.bus, RabbitBus)
            yield Platform(client)
    finally:
        delete_vhost(amqp)


async def test_a_tariff_put_crosses_rabbitmq_into_trips_replica_and_prices_bookings(
    api: Platform, pg_url: str
) -> None:
    op = await api.operator()
    await api.vehicle(op, 1)
    rider = await api.rider(credits_cents=10_000)
    body = {"base_cents": 800, "per_km_cents": 250, "per_min_cents": 45}

    r = await api.http.put("/tariffs/default", json=body, headers=op.headers)
    assert r.status_code == 200, r.text
    trip_db = Database(pg_url, "trip")
    try:

        async def replica() -> list[Any]:
            async with trip_db.session() as session:
                return list(await session.execute(select(tariffs)))

        rows = await eventually(replica, lambda found: bool(found), within=10)
    finally:
        await trip_db.dispose()
    assert [(t.vehicle_model, t.version, t.base_cents) for t in rows] == [("default", 1, 800)]

    trip = await api.settled(rider, (await api.book(rider))["id"], within=15)

    dropoff = Point(lat=37.5796, lon=126.9770)  # what Platform.book asks for
    expected = fares.quote(Tariff("default", **body), Point(**SEOUL), dropoff).fare_cents
    assert (trip["status"], trip["quoted_fare_cents"]) == ("confirmed", expected), trip
    assert (await api.wallet(rider))["held_cents"] == expected

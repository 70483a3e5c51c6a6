"""GET /vehicles/{id}/location through the tiered cache, with Redis: two replicas of the vehicle
service (two apps, each with its own L1 and Redis client) against one database and one Redis."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from fleet.common.app import create_app
from fleet.common.config import Settings
from fleet.common.testing import app_client, truncate_schemas
from fleet.vehicle.adapters.location_cache import EXTRAS_KEY, LocationCache
from fleet.vehicle.adapters.tables import SCHEMA
from fleet.vehicle.app import module

REDIS_URL = os.environ.get("FLEET_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

Replica = tuple[FastAPI, httpx.AsyncClient]
StartReplica = Callable[..., Awaitable[Replica]]


@pytest.fixture
async def replica(tmp_path: Path, pg_url: str) -> AsyncIterator[StartReplica]:
    """`await replica(redis_url=...)`: a running vehicle-service app and its client."""
    await truncate_schemas(pg_url, [SCHEMA])
    async with AsyncExitStack() as stack:

        async def start(redis_url: str = REDIS_URL) -> Replica:
            settings = Settings(
                env="test",
                data_dir=tmp_path,  # one key pair for every replica
                database_url=pg_url,
                redis_url=redis_url,
                log_level="WARNING",
            )
            app = create_app([module()], settings, access_log=False)
            client = await stack.enter_async_context(app_client(app))
            return app, client

        yield start


def headers(app: FastAPI, role: str = "operator") -> dict[str, str]:
    token = app.state.fleet.issuer.issue(uuid.uuid4(), role, f"{role}@example.com")
    return {"Authorization": f"Bearer {token}"}


def location_cache(app: FastAPI) -> LocationCache:
    located = app.state.fleet.services["vehicle"].extras[EXTRAS_KEY]
    assert isinstance(located, LocationCache)
    return located


async def register(client: httpx.AsyncClient, h: dict[str, str]) -> str:
    vin = uuid.uuid4().hex[:17].upper().replace("O", "A").replace("I", "B").replace("Q", "C")
    body = {"vin": vin, "model": "Robo-1", "seats": 4, "lat": 52.52, "lon": 13.405}
    r = await client.post("/vehicles", json=body, headers=h)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def location(client: httpx.AsyncClient, vid: str, h: dict[str, str]) -> dict[str, Any]:
    r = await client.get(f"/vehicles/{vid}/location", headers=h)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_a_move_reported_to_one_replica_is_read_on_the_other(
    replica: StartReplica,
) -> None:
    (app_a, a), (app_b, b) = await replica(), await replica()
    op, rider = headers(app_a), headers(app_b, "rider")
    vid = await register(a, op)
    assert (await location(b, vid, rider))["lat"] == 52.52  # now cached in b's L1 and in Redis
    recorded_at = dt.datetime.now(dt.UTC).isoformat()
    reading = {"lat": 48.85, "lon": 2.35, "speed_kph": 30, "battery_pct": 80}
    r = await a.post(
        f"/vehicles/{vid}/telemetry", json={**reading, "recorded_at": recorded_at}, headers=op
    )
    assert r.status_code == 202, r.text
    assert (await location(a, vid, op))["lat"] == 48.85  # read your writes on the same replica

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while (seen := await location(b, vid, rider))["lat"] != 48.85:
        assert loop.time() < deadline, seen
        await asyncio.sleep(0.01)
    assert (seen["lon"], dt.datetime.fromisoformat(seen["recorded_at"])) == (
        2.35,
        dt.datetime.fromisoformat(recorded_at),
    )
    counts = location_cache(app_b).cache.stats.counts
    assert counts[("l2", "hit")] + counts[("l1", "hit")] >= 1


async def test_repeated_reads_are_served_from_the_cache_and_counted_in_metrics(
    replica: StartReplica,
) -> None:
    app, client = await replica()
    h = headers(app)
    vid = await register(client, h)
    for _ in range(5):
        assert (await location(client, vid, h))["vehicle_id"] == vid
    stats = location_cache(app).cache.stats.counts
    assert stats[("loader", "ok")] == 1  # one database read for five requests
    text = (await client.get("/metrics")).text
    assert 'cache_requests_total{cache="vehicle-location",result="hit",tier="l1"} 4.0' in text


async def test_location_is_served_while_redis_is_unreachable(replica: StartReplica) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"redis://127.0.0.1:{s.getsockname()[1]}/0"
    app, client = await replica(redis_url=dead)
    h = headers(app)
    vid = await register(client, h)
    for _ in range(3):
        assert (await location(client, vid, h))["lat"] == 52.52
        location_cache(app).cache.l1.clear()  # force the path through Redis each time
    counts = location_cache(app).cache.stats.counts
    assert counts[("l2", "error")] + counts[("l2", "skipped")] == 3
    assert (await client.get(f"/vehicles/{uuid.uuid4()}/location", headers=h)).status_code == 404
    assert (await client.get("/ready")).status_code == 503  # the dependency is reported, though

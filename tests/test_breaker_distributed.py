"""The trip service reads vehicle details over HTTP in distributed mode, and keeps answering
(from its last copy, flagged) when the vehicle process is killed; its breaker opens in Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from redis.asyncio import Redis

from fleet.platform.client import Platform
from fleet.platform.distributed import DistributedStack

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.rabbitmq,
    pytest.mark.redis,
    pytest.mark.timeout(180),
]


@pytest.fixture
async def api(stack: DistributedStack) -> AsyncIterator[Platform]:
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as http:
        yield Platform(http)


async def test_trip_reads_survive_the_vehicle_service_dying(
    api: Platform, stack: DistributedStack
) -> None:
    op = await api.operator()
    vehicle_id = await api.vehicle(op, 1)
    rider = await api.rider(credits_cents=10_000)
    trip = await api.settled(rider, (await api.book(rider))["id"])
    assert trip["status"] == "confirmed", trip
    expanded = f"/trips/{trip['id']}?expand=vehicle"

    live = await api.get(rider, expanded)
    assert live["vehicle"]["id"] == vehicle_id
    assert live["vehicle"]["status"] == "reserved"
    assert live["vehicle_unavailable"] is False

    stack.kill("vehicle")
    for _ in range(3):
        degraded = await api.get(rider, expanded)
        assert degraded["vehicle"] == live["vehicle"]  # the trip process's last good copy
        assert degraded["vehicle_unavailable"] is True

    async with httpx.AsyncClient(base_url=stack.url("trip"), timeout=10) as trip_service:
        r = await trip_service.get("/breakers", headers=op.headers)
    assert r.status_code == 200, r.text
    [breaker] = [b for b in r.json() if b["name"] == "vehicle"]
    assert (breaker["state"], breaker["shared"]) == ("open", True)

    redis = Redis.from_url(stack.redis_url or "")
    key = f"{stack.redis_prefix}:breaker:trip:vehicle"
    try:
        assert await redis.hget(key, "state") == b"open"
    finally:
        await redis.delete(key)
        await redis.aclose()

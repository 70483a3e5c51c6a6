"""GET /trips/{id}?expand=vehicle: the vehicle's details read live from the vehicle service,
degrading to the last copy seen (or null) when it does not answer — never failing the read."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable

import httpx
import pytest
from fastapi import FastAPI

from fleet.common.breaker import BreakerConfig
from fleet.common.db import Database
from fleet.common.http import RetryPolicy, ServiceClient, Upstreams
from fleet.common.testing import Account, RiderFactory
from fleet.platform.client import vin
from fleet.trip.adapters.repository import SqlTripRepository
from fleet.trip.domain.trips import Trip

T0 = dt.datetime(2026, 3, 1, 8, 0, tzinfo=dt.UTC)
BuildTrip = Callable[..., Trip]
SeedTrip = Callable[[uuid.UUID, uuid.UUID | None], Awaitable[Trip]]


class Switchable(httpx.AsyncBaseTransport):
    """The in-process route to the vehicle service, with a switch to take vehicle down."""

    def __init__(self, app: FastAPI) -> None:
        self.inner = httpx.ASGITransport(app)
        self.down = False
        self.sent = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent += 1
        if self.down:
            raise httpx.ConnectError("vehicle is down", request=request)
        return await self.inner.handle_async_request(request)


@pytest.fixture
async def vehicle_id(client: httpx.AsyncClient, operator: Account) -> uuid.UUID:
    body = {"vin": vin(7), "model": "Ioniq5", "seats": 4, "lat": 37.5665, "lon": 126.978}
    r = await client.post("/vehicles", json=body, headers=operator.headers)
    assert r.status_code == 201, r.text
    return uuid.UUID(r.json()["id"])


@pytest.fixture
def seed(trip_db: Database, build_trip: BuildTrip) -> SeedTrip:
    async def seed(rider_id: uuid.UUID, vehicle: uuid.UUID | None) -> Trip:
        trip = build_trip(rider_id)
        if vehicle is not None:
            trip.confirm(vehicle, T0)
        async with trip_db.transaction() as session:
            await SqlTripRepository(session).add(trip)
        return trip

    return seed


@pytest.fixture
async def switch(app: FastAPI, client: httpx.AsyncClient) -> Switchable:
    """Route the trip service's vehicle calls through a switchable transport."""
    transport = Switchable(app)
    upstreams: Upstreams = app.state.fleet.upstreams
    vehicle = ServiceClient(
        "vehicle",
        "http://vehicle.embedded",
        breaker=app.state.fleet.breakers.get("vehicle"),
        transport=transport,
        retry=RetryPolicy(attempts=2, base_delay=0.001),
    )
    await upstreams.use("vehicle", vehicle)
    return transport


async def test_expand_adds_the_vehicle_details(
    client: httpx.AsyncClient, rider: Account, seed: SeedTrip, vehicle_id: uuid.UUID
) -> None:
    trip = await seed(rider.id, vehicle_id)
    r = await client.get(f"/trips/{trip.id}", params={"expand": "vehicle"}, headers=rider.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["vehicle"] == {
        "id": str(vehicle_id),
        "model": "Ioniq5",
        "status": "available",
        "lat": 37.5665,
        "lon": 126.978,
    }
    assert body["vehicle_unavailable"] is False
    assert body["status"] == "confirmed"


async def test_without_expand_the_trip_has_no_vehicle_fields(
    client: httpx.AsyncClient, rider: Account, seed: SeedTrip, vehicle_id: uuid.UUID
) -> None:
    trip = await seed(rider.id, vehicle_id)
    body = (await client.get(f"/trips/{trip.id}", headers=rider.headers)).json()
    assert body["vehicle_id"] == str(vehicle_id)
    assert "vehicle" not in body
    assert "vehicle_unavailable" not in body


async def test_a_pending_trip_has_no_vehicle_to_expand(
    client: httpx.AsyncClient, rider: Account, seed: SeedTrip
) -> None:
    trip = await seed(rider.id, None)
    r = await client.get(f"/trips/{trip.id}?expand=vehicle", headers=rider.headers)
    assert r.status_code == 200, r.text
    assert (r.json()["vehicle"], r.json()["vehicle_unavailable"]) == (None, False)


async def test_an_unknown_vehicle_is_null_but_not_unavailable(
    client: httpx.AsyncClient, rider: Account, seed: SeedTrip
) -> None:
    trip = await seed(rider.id, uuid.uuid4())
    r = await client.get(f"/trips/{trip.id}?expand=vehicle", headers=rider.headers)
    assert r.status_code == 200, r.text
    assert (r.json()["vehicle"], r.json()["vehicle_unavailable"]) == (None, False)


async def test_with_vehicle_down_the_last_copy_is_served_and_flagged(
    client: httpx.AsyncClient,
    rider: Account,
    seed: SeedTrip,
    vehicle_id: uuid.UUID,
    switch: Switchable,
) -> None:
    trip = await seed(rider.id, vehicle_id)
    url = f"/trips/{trip.id}?expand=vehicle"
    live = (await client.get(url, headers=rider.headers)).json()
    switch.down = True
    r = await client.get(url, headers=rider.headers)
    assert r.status_code == 200, r.text
    assert r.json()["vehicle"] == live["vehicle"]
    assert r.json()["vehicle_unavailable"] is True


async def test_with_vehicle_down_and_nothing_cached_the_vehicle_is_null(
    client: httpx.AsyncClient, rider: Account, seed: SeedTrip, switch: Switchable
) -> None:
    trip = await seed(rider.id, uuid.uuid4())
    switch.down = True
    r = await client.get(f"/trips/{trip.id}?expand=vehicle", headers=rider.headers)
    assert r.status_code == 200, r.text
    assert (r.json()["vehicle"], r.json()["vehicle_unavailable"]) == (None, True)
    assert r.json()["id"] == str(trip.id)


async def test_a_dead_vehicle_service_opens_the_breaker_and_reads_stay_fast(
    app: FastAPI,
    client: httpx.AsyncClient,
    rider: Account,
    operator: Account,
    seed: SeedTrip,
) -> None:
    dead = ServiceClient(
        "vehicle",
        "http://127.0.0.1:9",  # discard port: nothing listens
        breaker=app.state.fleet.breakers.get("vehicle", BreakerConfig()),
        retry=RetryPolicy(attempts=1),
    )
    await app.state.fleet.upstreams.use("vehicle", dead)
    trip = await seed(rider.id, uuid.uuid4())
    for _ in range(6):
        r = await client.get(f"/trips/{trip.id}?expand=vehicle", headers=rider.headers)
        assert r.status_code == 200, r.text
        assert r.json()["vehicle_unavailable"] is True
    breakers = (await client.get("/breakers", headers=operator.headers)).json()
    vehicle = next(b for b in breakers if b["name"] == "vehicle")
    assert vehicle["state"] == "open"


async def test_the_riders_authorization_reaches_the_vehicle_service(
    app: FastAPI, client: httpx.AsyncClient, rider: Account, seed: SeedTrip
) -> None:
    seen: list[str | None] = []

    def vehicle(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        return httpx.Response(404, json={"title": "Not Found"})

    spy = ServiceClient(
        "vehicle",
        "http://vehicle.test",
        breaker=app.state.fleet.breakers.get("vehicle"),
        transport=httpx.MockTransport(vehicle),
    )
    await app.state.fleet.upstreams.use("vehicle", spy)
    trip = await seed(rider.id, uuid.uuid4())
    await client.get(f"/trips/{trip.id}?expand=vehicle", headers=rider.headers)
    assert seen == [rider.headers["Authorization"]]


async def test_another_riders_trip_is_404_and_vehicle_is_not_asked(
    client: httpx.AsyncClient,
    rider: Account,
    make_rider: RiderFactory,
    seed: SeedTrip,
    vehicle_id: uuid.UUID,
    switch: Switchable,
) -> None:
    trip = await seed(rider.id, vehicle_id)
    other = await make_rider()
    r = await client.get(f"/trips/{trip.id}?expand=vehicle", headers=other.headers)
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")
    assert switch.sent == 0


async def test_an_unknown_expansion_is_a_422_naming_expand(
    client: httpx.AsyncClient, rider: Account, seed: SeedTrip
) -> None:
    trip = await seed(rider.id, None)
    r = await client.get(f"/trips/{trip.id}?expand=driver", headers=rider.headers)
    assert r.status_code == 422
    assert ["query", "expand"] in [e["loc"] for e in r.json()["errors"]]


async def test_expand_needs_a_token(client: httpx.AsyncClient) -> None:
    r = await client.get(f"/trips/{uuid.uuid4()}?expand=vehicle")
    assert r.status_code == 401

"""Fixtures of the vehicle service's tests.

Tokens are signed with the platform app's own issuer, so these tests depend on the user service
only for the key pair the app factory loads, not on its routes.
"""

from __future__ import annotations

import asyncio
import random
import string
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
import pytest
from fastapi import FastAPI

from fleet.common.auth import Role
from fleet.common.db import Database
from fleet.common.messaging import InMemoryBus

VIN_ALPHABET = "".join(c for c in string.ascii_uppercase + string.digits if c not in "IOQ")

Headers = dict[str, str]
MakeVehicle = Callable[..., Awaitable[dict[str, Any]]]


def random_vin() -> str:
    return "".join(random.choices(VIN_ALPHABET, k=17))


@pytest.fixture
def vin() -> Callable[[], str]:
    return random_vin


@pytest.fixture
def issue(app: FastAPI, client: httpx.AsyncClient) -> Callable[[Role], Headers]:
    """Bearer headers of a fresh user with the given role (needs the app's lifespan: `client`)."""

    def make(role: Role) -> Headers:
        token = app.state.fleet.issuer.issue(uuid.uuid4(), role, f"{role}@example.com")
        return {"Authorization": f"Bearer {token}"}

    return make


@pytest.fixture
def op(issue: Callable[[Role], Headers]) -> Headers:
    return issue("operator")


@pytest.fixture
def rider_h(issue: Callable[[Role], Headers]) -> Headers:
    return issue("rider")


@pytest.fixture
def make_vehicle(client: httpx.AsyncClient, op: Headers) -> MakeVehicle:
    """Register a vehicle through the API; the answer includes its `device_token`."""

    async def make(**fields: Any) -> dict[str, Any]:
        body = {"vin": random_vin(), "model": "Robo-1", "seats": 4, "lat": 52.52, "lon": 13.405}
        body.update(fields)
        r = await client.post("/vehicles", json=body, headers=op)
        assert r.status_code == 201, r.text
        return dict(r.json())

    return make


CheckProblem = Callable[..., None]


def _check_problem(r: httpx.Response, status: int, field: str | None = None) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    body = r.json()
    assert body["status"] == status
    if field is not None:
        locs = [e["loc"] for e in body.get("errors", [])]
        assert any((loc and loc[-1] == field) or field in loc for loc in locs), body


@pytest.fixture
def problem() -> CheckProblem:
    """`problem(response, status, field=None)`: a problem+json answer, naming `field` if given."""
    return _check_problem


@pytest.fixture
def vehicle_db(app: FastAPI, client: httpx.AsyncClient) -> Database:
    """The running app's vehicle database, to drive saga use cases the API does not expose."""
    db: Database = app.state.fleet.services["vehicle"].db
    return db


T = TypeVar("T")
Eventually = Callable[..., Awaitable[Any]]


async def _eventually(check: Callable[[], Awaitable[T | None]], within: float = 5.0) -> T:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = await check()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(0.02)


@pytest.fixture
def eventually() -> Eventually:
    """`await eventually(check, within=5.0)`: poll `check()` until it returns something truthy."""
    return _eventually


@pytest.fixture
def bus(app: FastAPI, client: httpx.AsyncClient) -> InMemoryBus:
    """The running app's in-memory bus, to talk to the vehicle service as the other services do."""
    the_bus = app.state.fleet.bus
    assert isinstance(the_bus, InMemoryBus)
    return the_bus

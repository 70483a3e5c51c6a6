"""POST /feedback asks the trip service whose the trip is, in each way the platform runs: the
embedded platform (trip in the same app, called in process) and the user service on its own
(trip at FLEET_TRIP_URL, over the network; or nowhere, and feedback cannot be checked)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from fleet.common.testing import local_settings, serving
from fleet.platform.client import Platform, User
from fleet.platform.embedded import embedded_app, service_app
from fleet.user.adapters.notifications import SqlFeedbackRepository


@pytest.fixture
async def platform(tmp_path: Path) -> AsyncIterator[FastAPI]:
    app = embedded_app(local_settings(tmp_path), console=False)
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
        yield app


def _api(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://fleet.test")


async def _stored(app: FastAPI, who: User) -> list[Any]:
    async with app.state.fleet.services["user"].db.session() as s:
        return await SqlFeedbackRepository(s).of_rider(uuid.UUID(who.id))


async def _rate(api: Platform, who: User, trip_id: object) -> httpx.Response:
    body = {"trip_id": str(trip_id), "rating": 4, "comment": "ok"}
    return await api.http.post("/feedback", json=body, headers=who.headers)


async def test_on_the_embedded_platform_riders_rate_only_their_own_trips(
    platform: FastAPI,
) -> None:
    async with _api(platform) as http:
        api = Platform(http)
        owner, stranger = await api.rider(), await api.rider()
        trip = (await api.book(owner))["id"]

        r = await _rate(api, stranger, trip)
        assert r.status_code == 404, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["detail"] == f"trip {trip} not found"
        unknown = uuid.uuid4()
        r = await _rate(api, stranger, unknown)
        assert (r.status_code, r.json()["detail"]) == (404, f"trip {unknown} not found")
        assert await _stored(platform, stranger) == []

        r = await _rate(api, owner, trip)
        assert r.status_code == 201, r.text
        assert [str(f.trip_id) for f in await _stored(platform, owner)] == [trip]


async def test_a_user_service_of_its_own_asks_the_trip_service_at_fleet_trip_url(
    tmp_path: Path,
) -> None:
    trip_app = service_app("trip", local_settings(tmp_path), migrate=True)
    async with serving(trip_app, lifespan="on") as trip_url:
        user_app = service_app("user", local_settings(tmp_path, trip_url=trip_url), migrate=True)
        async with LifespanManager(user_app), _api(user_app) as users:
            owner, stranger = await Platform(users).rider(), await Platform(users).rider()
            async with httpx.AsyncClient(base_url=trip_url) as trips:
                trip = (await Platform(trips).book(owner))["id"]

            assert (await _rate(Platform(users), stranger, trip)).status_code == 404
            assert await _stored(user_app, stranger) == []
            r = await _rate(Platform(users), owner, trip)
            assert r.status_code == 201, r.text


async def test_a_user_service_without_a_trip_service_stores_no_feedback_and_says_503(
    tmp_path: Path,
) -> None:
    user_app = service_app("user", local_settings(tmp_path, trip_url=None), migrate=True)
    async with LifespanManager(user_app), _api(user_app) as http:
        api = Platform(http)
        rider = await api.rider()
        r = await _rate(api, rider, uuid.uuid4())
        assert r.status_code == 503, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert "feedback cannot be checked now" in r.json()["detail"]
        assert await _stored(user_app, rider) == []

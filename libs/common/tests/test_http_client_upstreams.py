"""Upstreams: which way a service reaches another — in-process, by URL, or not at all."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import structlog
from fastapi import FastAPI, Request
from prometheus_client import CollectorRegistry

from fleet.common.breaker import BreakerRegistry
from fleet.common.config import Settings
from fleet.common.errors import ServiceUnavailableError
from fleet.common.http import Upstreams
from fleet.common.metrics import HttpMetrics
from fleet.common.middleware import RequestContextMiddleware


def vehicle_app() -> FastAPI:
    app = FastAPI()
    app.add_middleware(
        RequestContextMiddleware,
        metrics=HttpMetrics(CollectorRegistry()),
        max_body_bytes=10_000,
        access_log=False,
    )

    @app.get("/vehicles/{vehicle_id}")
    async def vehicle(vehicle_id: str, request: Request) -> dict[str, str | None]:
        return {
            "id": vehicle_id,
            "authorization": request.headers.get("authorization"),
            "request_id": request.headers.get("x-request-id"),
        }

    return app


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(env="test", data_dir=tmp_path)


@pytest.fixture
async def upstreams(settings: Settings) -> AsyncIterator[Upstreams]:
    u = Upstreams(settings, BreakerRegistry(), app=vehicle_app(), local=["vehicle"], timeout=1)
    yield u
    await u.aclose()


async def test_an_embedded_service_is_called_in_process(upstreams: Upstreams) -> None:
    structlog.contextvars.bind_contextvars(request_id="outer-1")
    try:
        r = await upstreams.client("vehicle").request(
            "GET", "/vehicles/v1", authorization="Bearer t"
        )
        # The inner request ran in its own task: its middleware did not unbind our request id.
        assert structlog.contextvars.get_contextvars().get("request_id") == "outer-1"
    finally:
        structlog.contextvars.unbind_contextvars("request_id")
    assert r.json() == {"id": "v1", "authorization": "Bearer t", "request_id": "outer-1"}


async def test_one_client_and_one_breaker_per_upstream(upstreams: Upstreams) -> None:
    assert upstreams.client("vehicle") is upstreams.client("vehicle")
    assert [b.name for b in upstreams.breakers] == ["vehicle"]
    assert upstreams.client("vehicle").breaker is upstreams.breakers.get("vehicle")


async def test_a_configured_url_wins_over_the_in_process_route(tmp_path: Path) -> None:
    settings = Settings(env="test", data_dir=tmp_path, vehicle_url="http://10.1.2.3:8002")
    u = Upstreams(settings, BreakerRegistry(), app=vehicle_app(), local=["vehicle"])
    try:
        assert str(u.client("vehicle")._http.base_url) == "http://10.1.2.3:8002"
    finally:
        await u.aclose()


def test_service_urls_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEET_VEHICLE_URL", "http://127.0.0.1:8002")
    settings = Settings(env="test")
    assert settings.service_url("vehicle") == "http://127.0.0.1:8002"
    assert settings.service_url("billing") is None


async def test_a_service_neither_embedded_nor_configured_is_unavailable(
    upstreams: Upstreams,
) -> None:
    with pytest.raises(ServiceUnavailableError) as failed:
        await upstreams.client("billing").request("GET", "/tariffs")
    assert "FLEET_BILLING_URL" in str(failed.value.__cause__)
    fetched = await upstreams.client("billing").get_json("/tariffs", fallback=lambda _: [])
    assert fetched.value == []

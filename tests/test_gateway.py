"""The distributed-mode gateway: routes by prefix, passes answers and streams through."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from fleet.common.testing import serving
from fleet.platform.gateway import gateway_app


async def _events() -> AsyncIterator[bytes]:
    yield b"data: first\n\n"
    await asyncio.sleep(1.0)
    yield b"data: second\n\n"


async def _stream(_request: Request) -> StreamingResponse:
    return StreamingResponse(_events(), media_type="text/event-stream")


async def _trip(request: Request) -> JSONResponse:
    return JSONResponse(
        {"path": request.url.path, "q": request.query_params.get("expand")}, status_code=201
    )


@pytest.fixture
async def upstream() -> AsyncIterator[str]:
    app = Starlette(routes=[Route("/trips/1/tracking/stream", _stream), Route("/trips/1", _trip)])
    async with serving(app, lifespan="on") as url:
        yield url


@pytest.fixture
async def gateway(upstream: str) -> AsyncIterator[httpx.AsyncClient]:
    app = gateway_app({"trip": upstream, "user": "http://127.0.0.1:1"})
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://gw") as client,
    ):
        yield client


async def test_answers_pass_through_with_status_and_query(gateway: httpx.AsyncClient) -> None:
    r = await gateway.get("/trips/1", params={"expand": "vehicle"})
    assert r.status_code == 201
    assert r.json() == {"path": "/trips/1", "q": "vehicle"}


async def test_unknown_prefixes_and_dead_upstreams_are_problems(
    gateway: httpx.AsyncClient,
) -> None:
    r = await gateway.get("/nowhere")
    assert (r.status_code, r.headers["content-type"]) == (404, "application/problem+json")
    r = await gateway.get("/users/me")
    assert (r.status_code, r.headers["content-type"]) == (502, "application/problem+json")


async def test_event_streams_flow_through_as_they_are_sent(upstream: str) -> None:
    async with (
        serving(gateway_app({"trip": upstream}), lifespan="on") as gw,
        httpx.AsyncClient() as client,
        client.stream("GET", f"{gw}/trips/1/tracking/stream") as r,
    ):
        start = time.monotonic()
        first = await anext(r.aiter_text())
        assert "first" in first
        assert time.monotonic() - start < 0.8  # before the upstream sent the second event

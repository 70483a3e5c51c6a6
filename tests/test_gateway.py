"""The distributed-mode gateway: routes by prefix, passes answers and streams through, and
unites the services' dead-letter queues."""

from __future__ import annotations

import asyncio
import gzip
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from fleet.common.testing import serving
from fleet.platform.gateway import gateway_app

DOWN = "http://127.0.0.1:1"  # nothing listens there


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


async def _compressed(_request: Request) -> Response:
    body = gzip.compress(b'{"packed": true}')
    return Response(body, media_type="application/json", headers={"content-encoding": "gzip"})


async def _echo(request: Request) -> JSONResponse:
    """What reached the service: method, path and query as sent, headers, body."""
    return JSONResponse(
        {
            "method": request.method,
            "raw_path": request.scope["raw_path"].decode(),
            "query": request.scope["query_string"].decode(),
            "headers": dict(request.headers.items()),
            "body": (await request.body()).decode(),
        }
    )


OVERLOADED = {"type": "https://fleet.dev/problems/overloaded", "status": 503}
refused: list[str] = []  # what reached the shedding route


async def _shedding(request: Request) -> JSONResponse:
    refused.append(request.url.path)
    if request.url.path.endswith("/no-retry-after"):
        return JSONResponse({"status": 503}, status_code=503)
    return JSONResponse(OVERLOADED, status_code=503, headers={"Retry-After": "1"})


@pytest.fixture
async def upstream() -> AsyncIterator[str]:
    refused.clear()
    routes = [
        Route("/trips/shed/{rest:path}", _shedding, methods=["GET", "POST"]),
        Route("/trips/1/tracking/stream", _stream),
        Route("/trips/1", _trip),
        Route("/trips/packed", _compressed),
        Route("/trips/echo/{rest:path}", _echo, methods=["GET", "POST", "PATCH"]),
    ]
    app = Starlette(routes=routes)
    async with serving(app, lifespan="on") as url:
        yield url


@asynccontextmanager
async def gateway_to(
    upstreams: dict[str, str], hold_max_s: float = 0.25
) -> AsyncIterator[httpx.AsyncClient]:
    app = gateway_app(upstreams, hold_max_s=hold_max_s)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://gw") as client,
    ):
        yield client


@pytest.fixture
async def gateway(upstream: str) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway_to({"trip": upstream, "user": DOWN}) as client:
        yield client


@pytest.fixture
async def queue_lists() -> AsyncIterator[str]:
    """Services at `{url}/{name}` each listing `{name}.events` and `fleet.shared`, but only once
    two of them have been asked (one asked alone gives up with 504); at `{url}/refusing` one
    that refuses with 401, at `{url}/garbled` one whose answer cannot be decoded."""
    both_asked = asyncio.Barrier(2)

    async def queues(request: Request) -> Response:
        name = request.path_params["name"]
        if name == "refusing":
            return JSONResponse({"detail": "who are you?"}, status_code=401)
        if name == "garbled":  # says gzip, is not: the client fails decoding, not connecting
            return Response(b"not gzip", headers={"content-encoding": "gzip"})
        try:
            async with asyncio.timeout(5):  # bounds a failure, so the server can stop
                await both_asked.wait()
        except TimeoutError:
            return JSONResponse({"detail": f"{name} was asked alone"}, status_code=504)
        return JSONResponse([f"{name}.events", "fleet.shared"])

    async with serving(Starlette(routes=[Route("/{name}/dead-letters", queues)])) as url:
        yield url


async def test_answers_pass_through_with_status_and_query(gateway: httpx.AsyncClient) -> None:
    r = await gateway.get("/trips/1", params={"expand": "vehicle"})
    assert r.status_code == 201
    assert r.json() == {"path": "/trips/1", "q": "vehicle"}


async def test_an_encoded_answer_passes_through_as_sent(gateway: httpx.AsyncClient) -> None:
    r = await gateway.get("/trips/packed")
    assert r.headers["content-encoding"] == "gzip"
    assert r.json() == {"packed": True}  # decoded once, by the client


async def test_a_request_reaches_the_service_as_the_caller_sent_it(upstream: str) -> None:
    async with (
        serving(gateway_app({"trip": upstream}), lifespan="on") as gw,
        httpx.AsyncClient() as client,
    ):
        r = await client.post(
            f"{gw}/trips/echo/a%2Fb%20c?q=x%20y&q=2",
            content=b'{"pickup": 1}',
            headers={"content-type": "application/json", "idempotency-key": "k-1"},
        )
        bare = await client.get(f"{gw}/trips/echo/bare", headers={"accept-encoding": ""})
    assert r.status_code == 200
    seen = r.json()
    assert seen["method"] == "POST"
    assert seen["raw_path"] == "/trips/echo/a%2Fb%20c"  # not decoded and encoded again
    assert seen["query"] == "q=x%20y&q=2"
    assert seen["body"] == '{"pickup": 1}'
    assert seen["headers"]["content-type"] == "application/json"
    assert seen["headers"]["idempotency-key"] == "k-1"
    assert seen["headers"]["content-length"] == "13"
    # Nothing the caller did not send: no client library's user agent or encodings.
    headers = bare.json()["headers"]
    assert not headers.get("accept-encoding")
    assert "aiohttp" not in headers.get("user-agent", "")
    assert "content-type" not in headers


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


async def test_the_dead_letter_queues_are_the_union_of_every_service_asked_at_once(
    queue_lists: str,
) -> None:
    async with gateway_to({"trip": f"{queue_lists}/trip", "user": f"{queue_lists}/user"}) as gw:
        r = await gw.get("/dead-letters")
    assert r.json() == ["fleet.shared", "trip.events", "user.events"]


async def test_of_several_failing_services_the_first_one_answers_for_the_queues(
    queue_lists: str,
) -> None:
    refusing = f"{queue_lists}/refusing"
    async with gateway_to({"user": refusing, "trip": DOWN}) as gw:
        r = await gw.get("/dead-letters")
    assert (r.status_code, r.json()) == (401, {"detail": "who are you?"})
    async with gateway_to({"trip": DOWN, "user": refusing}) as gw:
        r = await gw.get("/dead-letters")
    assert (r.status_code, r.headers["content-type"]) == (502, "application/problem+json")
    assert r.json()["detail"] == "trip service unreachable: ConnectError"


async def test_a_service_answer_that_cannot_be_read_is_a_bad_gateway_not_a_crash(
    queue_lists: str,
) -> None:
    async with gateway_to({"user": f"{queue_lists}/garbled"}) as gw:
        r = await gw.get("/dead-letters")
    assert (r.status_code, r.headers["content-type"]) == (502, "application/problem+json")
    assert r.json()["detail"] == "user service answer unreadable: DecodingError"


async def test_an_overloaded_refusal_is_repeated_by_the_gateway_for_a_moment_then_asked_again(
    upstream: str,
) -> None:
    async with gateway_to({"trip": upstream}, hold_max_s=0.3) as gateway:
        first = await gateway.post("/trips/shed/book", json={})
        held = await gateway.post("/trips/shed/book", json={})
        other_path = await gateway.post("/trips/shed/other", json={})
        other_method = await gateway.get("/trips/shed/book")
        assert refused == ["/trips/shed/book", "/trips/shed/other", "/trips/shed/book"]
        await asyncio.sleep(0.35)
        again = await gateway.post("/trips/shed/book", json={})

    for r in (first, held, other_path, other_method, again):
        assert r.status_code == 503
        assert r.headers["retry-after"] == "1"
        assert r.json() == OVERLOADED
    assert held.headers["content-type"] == first.headers["content-type"]
    assert refused[-1] == "/trips/shed/book"
    assert len(refused) == 4


async def test_a_503_without_retry_after_is_never_repeated_by_the_gateway(upstream: str) -> None:
    async with gateway_to({"trip": upstream}) as gateway:
        answers = [await gateway.get("/trips/shed/no-retry-after") for _ in range(3)]

    assert [r.status_code for r in answers] == [503] * 3
    assert len(refused) == 3

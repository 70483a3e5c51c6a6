"""ServiceClient: retries (idempotent only, jittered), time budget, breaker, headers, fallbacks."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
import structlog
from prometheus_client import CollectorRegistry

from fleet.common.breaker import AsyncCircuitBreaker, BreakerConfig, BreakerMetrics
from fleet.common.errors import ServiceUnavailableError
from fleet.common.http import RetryPolicy, ServiceClient, UpstreamStatusError

Handler = Callable[[httpx.Request], httpx.Response]


class Upstream:
    """A scripted upstream: answers the listed statuses in turn, then the last one forever."""

    def __init__(self, *statuses: int, body: object = None) -> None:
        self.statuses = list(statuses) or [200]
        self.body = body if body is not None else {"id": "v1"}
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        return httpx.Response(status, json=self.body if status < 400 else {"title": "down"})


class Recorder:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def sleeps() -> Recorder:
    return Recorder()


@pytest.fixture
async def make(
    registry: CollectorRegistry, sleeps: Recorder
) -> AsyncIterator[Callable[..., ServiceClient]]:
    made: list[ServiceClient] = []
    metrics = BreakerMetrics(registry)

    def make(
        handler: Handler | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        breaker: BreakerConfig | None = None,
        base_url: str = "http://vehicle.test",
        **kwargs: object,
    ) -> ServiceClient:
        if transport is None:
            assert handler is not None, "a test client needs a handler or a transport"
            transport = httpx.MockTransport(handler)
        client = ServiceClient(
            "vehicle",
            base_url,
            breaker=AsyncCircuitBreaker("vehicle", breaker or BreakerConfig(), metrics=metrics),
            transport=transport,
            sleep=sleeps,
            **kwargs,  # type: ignore[arg-type]
        )
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()


async def test_a_get_is_retried_on_503_and_succeeds(
    make: Callable[..., ServiceClient], sleeps: Recorder
) -> None:
    upstream = Upstream(503, 503, 200)
    r = await make(upstream).request("GET", "/vehicles/v1")
    assert r.status_code == 200
    assert len(upstream.requests) == 3
    policy = RetryPolicy()
    assert len(sleeps.delays) == 2
    for n, delay in enumerate(sleeps.delays):
        assert 0 <= delay <= policy.ceiling(n)


async def test_jitter_stays_under_an_exponentially_growing_cap(
    make: Callable[..., ServiceClient], sleeps: Recorder
) -> None:
    policy = RetryPolicy(attempts=6, base_delay=0.01, max_delay=0.05)
    client = make(Upstream(502), retry=policy, uniform=lambda _low, high: high)
    with pytest.raises(ServiceUnavailableError):
        await client.request("GET", "/vehicles/v1")
    assert sleeps.delays == [0.01, 0.02, 0.04, 0.05, 0.05]
    draws = [policy.delay(3) for _ in range(200)]
    assert all(0 <= d <= 0.05 for d in draws)
    assert len(set(draws)) > 100  # jittered, not a fixed schedule


@pytest.mark.parametrize("status", [502, 503, 504])
async def test_a_get_gives_up_after_its_attempts_with_a_503(
    make: Callable[..., ServiceClient], status: int
) -> None:
    upstream = Upstream(status)
    with pytest.raises(ServiceUnavailableError) as failed:
        await make(upstream).request("GET", "/vehicles/v1")
    assert failed.value.status == 503
    assert len(upstream.requests) == 3


@pytest.mark.parametrize("method", ["PUT", "DELETE", "HEAD"])
async def test_other_idempotent_methods_are_retried(
    make: Callable[..., ServiceClient], method: str
) -> None:
    upstream = Upstream(503, 204)
    r = await make(upstream).request(method, "/vehicles/v1")
    assert r.status_code == 204
    assert len(upstream.requests) == 2


async def test_a_post_is_never_retried(
    make: Callable[..., ServiceClient], sleeps: Recorder
) -> None:
    upstream = Upstream(503, 201)
    with pytest.raises(ServiceUnavailableError):
        await make(upstream).request("POST", "/vehicles", json={"vin": "x"})
    assert len(upstream.requests) == 1
    assert sleeps.delays == []


async def test_a_post_is_not_retried_after_a_broken_connection(
    make: Callable[..., ServiceClient],
) -> None:
    sent: list[httpx.Request] = []

    def broken(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        raise httpx.RemoteProtocolError("connection reset", request=request)

    with pytest.raises(ServiceUnavailableError):
        await make(broken).request("POST", "/vehicles")
    assert len(sent) == 1


async def test_client_errors_and_500s_are_answers_not_retried(
    make: Callable[..., ServiceClient],
) -> None:
    upstream = Upstream(404)
    r = await make(upstream).request("GET", "/vehicles/missing")
    assert r.status_code == 404
    assert len(upstream.requests) == 1
    crashing = Upstream(500)
    with pytest.raises(ServiceUnavailableError):
        await make(crashing).request("GET", "/vehicles/v1")
    assert len(crashing.requests) == 1


async def test_transport_errors_are_retried_then_reported_as_unavailable(
    make: Callable[..., ServiceClient],
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = make(transport=httpx.AsyncHTTPTransport(), base_url=f"http://127.0.0.1:{port}")
    with pytest.raises(ServiceUnavailableError) as failed:
        await client.request("GET", "/vehicles/v1")
    assert isinstance(failed.value.__cause__, httpx.ConnectError)


async def slow_app(scope: dict[str, object], receive: object, send: object) -> None:
    await asyncio.sleep(10)


async def test_the_time_budget_bounds_the_whole_call(make: Callable[..., ServiceClient]) -> None:
    client = make(transport=httpx.ASGITransport(slow_app), timeout=0.2)  # type: ignore[arg-type]
    started = time.monotonic()
    with pytest.raises(ServiceUnavailableError) as failed:
        await client.request("GET", "/vehicles/v1")
    assert time.monotonic() - started < 1.0
    assert isinstance(failed.value.__cause__, TimeoutError)


async def test_the_breaker_opens_and_stops_calling_a_failing_upstream(
    make: Callable[..., ServiceClient], registry: CollectorRegistry
) -> None:
    upstream = Upstream(503)
    client = make(upstream, retry=RetryPolicy(attempts=1))
    for _ in range(5):
        with pytest.raises(ServiceUnavailableError):
            await client.request("GET", "/vehicles/v1")
    assert client.breaker.state == "open"
    with pytest.raises(ServiceUnavailableError, match="open"):
        await client.request("GET", "/vehicles/v1")
    assert len(upstream.requests) == 5
    assert registry.get_sample_value("circuit_breaker_state", {"name": "vehicle"}) == 1


async def test_an_open_breaker_cuts_retries_short(make: Callable[..., ServiceClient]) -> None:
    upstream = Upstream(503)
    client = make(upstream, breaker=BreakerConfig(min_calls=2), retry=RetryPolicy(attempts=5))
    with pytest.raises(ServiceUnavailableError):
        await client.request("GET", "/vehicles/v1")
    assert len(upstream.requests) == 2


async def test_authorization_is_forwarded_only_when_asked(
    make: Callable[..., ServiceClient],
) -> None:
    upstream = Upstream(200)
    client = make(upstream)
    await client.request("GET", "/vehicles/v1", authorization="Bearer rider-token")
    await client.request("GET", "/vehicles/v1")
    assert upstream.requests[0].headers["authorization"] == "Bearer rider-token"
    assert "authorization" not in upstream.requests[1].headers


async def test_the_request_id_travels_to_the_upstream(make: Callable[..., ServiceClient]) -> None:
    upstream = Upstream(200)
    structlog.contextvars.bind_contextvars(request_id="req-42")
    try:
        await make(upstream).request("GET", "/vehicles/v1")
    finally:
        structlog.contextvars.unbind_contextvars("request_id")
    assert upstream.requests[0].headers["x-request-id"] == "req-42"


async def test_the_last_good_copy_is_served_when_the_upstream_fails(
    make: Callable[..., ServiceClient], registry: CollectorRegistry
) -> None:
    upstream = Upstream(200, 503, body={"id": "v1", "status": "available"})
    client = make(upstream, retry=RetryPolicy(attempts=1))
    fresh = await client.get_json("/vehicles/v1", cache_key="vehicle:v1")
    stale = await client.get_json("/vehicles/v1", cache_key="vehicle:v1")
    assert (fresh.source, fresh.degraded) == ("upstream", False)
    assert (stale.source, stale.degraded) == ("cache", True)
    assert stale.value == {"id": "v1", "status": "available"}
    assert registry.get_sample_value("circuit_breaker_fallbacks_total", {"name": "vehicle"}) == 1


async def test_without_a_cached_copy_the_fallback_answers_else_a_503(
    make: Callable[..., ServiceClient],
) -> None:
    client = make(Upstream(503), retry=RetryPolicy(attempts=1))
    got = await client.get_json("/vehicles/v1", cache_key="vehicle:v1", fallback=lambda _: None)
    assert (got.value, got.source) == (None, "fallback")
    with pytest.raises(ServiceUnavailableError):
        await client.get_json("/vehicles/v1", cache_key="vehicle:v1")


async def test_a_4xx_is_not_papered_over_by_the_fallback(
    make: Callable[..., ServiceClient],
) -> None:
    client = make(Upstream(404))
    with pytest.raises(UpstreamStatusError) as answered:
        await client.get_json("/vehicles/v1", fallback=lambda _: "default")
    assert answered.value.status_code == 404

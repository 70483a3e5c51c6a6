"""`ServiceClient`: the one way a service calls another synchronously (read paths only).

Each request gets a time budget (3 s, retries included), is retried with jittered back-off when it
is idempotent and failed in a way worth retrying (transport error, 502/503/504), and goes through
the upstream's circuit breaker attempt by attempt — so an open circuit also stops the retries. A
final failure is a `ServiceUnavailableError` (503 problem) unless a fallback answers instead.
"""

from __future__ import annotations

import asyncio
import inspect
import random
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import structlog

from fleet.common.breaker import AsyncCircuitBreaker, CircuitOpenError
from fleet.common.errors import ServiceUnavailableError
from fleet.common.http._retry import RetryPolicy, Uniform
from fleet.common.logging import get_logger

log = get_logger("fleet.http.client")

Sleep = Callable[[float], Awaitable[None]]
FallbackFn = Callable[[ServiceUnavailableError], Any]


class UpstreamStatusError(Exception):
    """The upstream answered with an error status (5xx ones count against its breaker)."""

    def __init__(self, service: str, response: httpx.Response) -> None:
        super().__init__(f"{service} answered {response.status_code}")
        self.service = service
        self.response = response
        self.status_code = response.status_code


@dataclass(frozen=True)
class Fetched:
    """A value read from an upstream, or what stood in for it."""

    value: Any
    source: Literal["upstream", "cache", "fallback"]

    @property
    def degraded(self) -> bool:
        """True if the upstream did not answer and a cached copy or a default was served."""
        return self.source != "upstream"


class ServiceClient:
    """An `httpx.AsyncClient` on one upstream service with timeout, retries, breaker, fallback."""

    def __init__(
        self,
        service: str,
        base_url: str,
        *,
        breaker: AsyncCircuitBreaker,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 3.0,
        retry: RetryPolicy | None = None,
        cache_size: int = 1024,
        sleep: Sleep = asyncio.sleep,
        uniform: Uniform | None = None,
    ) -> None:
        self.service = service
        self.breaker = breaker
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._uniform = uniform or random.uniform
        self._last_good: OrderedDict[str, Any] = OrderedDict()
        self._cache_size = cache_size
        # httpx's own timeout is a backstop: the budget below is what callers rely on.
        self._http = httpx.AsyncClient(
            base_url=base_url, transport=transport, timeout=timeout + 1.0
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        authorization: str | None = None,
    ) -> httpx.Response:
        """The upstream's answer below 500; `ServiceUnavailableError` if there is none."""
        request = self._http.build_request(
            method, path, params=params, json=json, headers=self._headers(headers, authorization)
        )
        try:
            return await self._attempts(request)
        except CircuitOpenError:
            raise
        except (httpx.TransportError, TimeoutError, UpstreamStatusError) as exc:
            raise ServiceUnavailableError(
                f"the {self.service} service is unavailable", upstream=self.service
            ) from exc

    async def get_json(
        self,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        authorization: str | None = None,
        cache_key: str | None = None,
        fallback: FallbackFn | None = None,
    ) -> Fetched:
        """GET a JSON document. If the upstream is unavailable: the last good copy stored under
        `cache_key`, else `fallback(error)`, else `ServiceUnavailableError`. A 4xx answer raises
        `UpstreamStatusError` (the upstream answered; there is nothing to fall back from)."""
        try:
            response = await self.request("GET", path, params=params, authorization=authorization)
            if response.is_error:
                raise UpstreamStatusError(self.service, response)
            value = response.json()
        except ServiceUnavailableError as exc:
            return await self._fall_back(exc, cache_key, fallback)
        except ValueError as exc:  # not JSON: as useless as no answer
            error = ServiceUnavailableError(f"the {self.service} service answered garbage")
            error.__cause__ = exc
            return await self._fall_back(error, cache_key, fallback)
        if cache_key is not None:
            self._remember(cache_key, value)
        return Fetched(value, "upstream")

    def forget(self, cache_key: str) -> None:
        """Drop a last good copy (e.g. the upstream said 404: the thing is gone)."""
        self._last_good.pop(cache_key, None)

    async def _attempts(self, request: httpx.Request) -> httpx.Response:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        retries = self.retry.retries_for(request.method)
        for attempt in range(retries + 1):
            try:
                return await self.breaker.call(self._send, request, deadline)
            except (httpx.TransportError, TimeoutError, UpstreamStatusError) as exc:
                if attempt == retries or not self._retryable(exc):
                    raise
                delay = self.retry.delay(attempt, self._uniform)
                if loop.time() + delay >= deadline:
                    raise
                log.info(
                    "retrying upstream request",
                    upstream=self.service,
                    method=request.method,
                    attempt=attempt + 1,
                    error=str(exc) or type(exc).__name__,
                    delay_s=round(delay, 3),
                )
                await self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send(self, request: httpx.Request, deadline: float) -> httpx.Response:
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise TimeoutError(f"no time left for {self.service}")
        async with asyncio.timeout(remaining):
            response = await self._http.send(request)
        if response.status_code >= 500:
            raise UpstreamStatusError(self.service, response)
        return response

    def _retryable(self, exc: Exception) -> bool:
        if isinstance(exc, UpstreamStatusError):
            return exc.status_code in self.retry.statuses
        return True

    def _headers(
        self, extra: Mapping[str, str] | None, authorization: str | None
    ) -> dict[str, str]:
        headers = dict(extra or {})
        request_id = structlog.contextvars.get_contextvars().get("request_id")
        if request_id:
            headers.setdefault("X-Request-ID", str(request_id))
        if authorization:
            headers["Authorization"] = authorization
        return headers

    def _remember(self, key: str, value: Any) -> None:
        self._last_good[key] = value
        self._last_good.move_to_end(key)
        while len(self._last_good) > self._cache_size:
            self._last_good.popitem(last=False)

    async def _fall_back(
        self, exc: ServiceUnavailableError, cache_key: str | None, fallback: FallbackFn | None
    ) -> Fetched:
        if cache_key is not None and cache_key in self._last_good:
            self.breaker.note_fallback()
            return Fetched(self._last_good[cache_key], "cache")
        if fallback is None:
            raise exc
        self.breaker.note_fallback()
        value = fallback(exc)
        return Fetched(await value if inspect.isawaitable(value) else value, "fallback")

"""The `ServiceClient`s of one app: one per upstream service, its URL chosen by running mode.

- `FLEET_<SERVICE>_URL` set (distributed mode; `DistributedStack` sets them): over the network.
- Unset, and the service is part of this app (embedded mode): in-process through
  `httpx.ASGITransport` on the app itself — the same client, retries, breaker and fallback, with
  no network hop and no port to know.
- Unset and not in this app: every call fails as a connection error, so callers get their
  fallback (and the breaker opens) instead of a crash; a warning says what to set.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection

import httpx
from starlette.types import ASGIApp, Receive, Scope, Send

from fleet.common.breaker import BreakerConfig, BreakerRegistry
from fleet.common.config import Settings
from fleet.common.http._client import ServiceClient
from fleet.common.http._retry import RetryPolicy
from fleet.common.logging import get_logger

log = get_logger("fleet.http.upstreams")


class _Unrouted(httpx.AsyncBaseTransport):
    def __init__(self, service: str) -> None:
        self.service = service

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(
            f"no URL for the {self.service} service: set FLEET_{self.service.upper()}_URL",
            request=request,
        )


def _isolated(app: ASGIApp) -> ASGIApp:
    """Run each in-process request in its own task: the inner request's context variables
    (request id, log bindings) stay apart from the caller's, and a caller's timeout cancels it."""

    async def isolated(scope: Scope, receive: Receive, send: Send) -> None:
        async def run() -> None:
            await app(scope, receive, send)

        await asyncio.create_task(run())

    return isolated


class Upstreams:
    """`upstreams.client("vehicle")`: the shared client of an upstream, built on first use."""

    def __init__(
        self,
        settings: Settings,
        breakers: BreakerRegistry,
        *,
        app: ASGIApp | None = None,
        local: Collection[str] = (),
        timeout: float = 3.0,
        retry: RetryPolicy | None = None,
        breaker: BreakerConfig | None = None,
    ) -> None:
        self.settings = settings
        self.breakers = breakers
        self._app = app
        self._local = set(local)
        self._timeout = timeout
        self._retry = retry
        self._breaker = breaker
        self._clients: dict[str, ServiceClient] = {}

    def client(self, service: str) -> ServiceClient:
        existing = self._clients.get(service)
        if existing is not None:
            return existing
        url = self.settings.service_url(service)
        transport: httpx.AsyncBaseTransport | None = None
        if url is None and service in self._local and self._app is not None:
            url, transport = f"http://{service}.embedded", httpx.ASGITransport(_isolated(self._app))
        elif url is None:
            log.warning("no URL for upstream; its calls will fail over", upstream=service)
            url, transport = f"http://{service}.unrouted", _Unrouted(service)
        client = ServiceClient(
            service,
            url,
            breaker=self.breakers.get(service, self._breaker),
            transport=transport,
            timeout=self._timeout,
            retry=self._retry,
        )
        self._clients[service] = client
        return client

    async def use(self, service: str, client: ServiceClient) -> None:
        """Route `service` through `client` from now on (tests, special wiring)."""
        replaced = self._clients.get(service)
        self._clients[service] = client
        if replaced is not None and replaced is not client:
            await replaced.aclose()

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()

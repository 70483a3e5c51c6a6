"""A small reverse proxy for distributed mode: one port, routed by path prefix to each service.

Good enough for local runs, tests and benchmarks; production puts a real gateway (Istio, nginx)
in front, as the Kubernetes manifests do. It also serves the operations console at /console, whose
API calls go through this same proxy.

A service that refuses a request as overloaded (503 with `Retry-After`, as trip's load shedding
does, ADR 0010) is not asked again for the same method and path for a moment (`HOLD_MAX_S`): the
gateway repeats the refusal itself.

Requests are forwarded with aiohttp's client: at 16 requests in flight httpx's cost the gateway
≈ 1 ms of CPU per request, aiohttp's ≈ 70 µs (docs/performance.md), and every booking goes
through here. The operator-only union of dead-letter queues asks the services with httpx.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import quote

import aiohttp
import httpx
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route
from yarl import URL

from fleet.common.errors import PROBLEM_MEDIA_TYPE, problem
from fleet.platform.client import retry_after
from fleet.platform.console import LocalTransport, console_app, console_secret
from fleet.platform.services import SERVICE_NAMES, service_for_path

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "host"}
# Not forwarded either: the client library sets the body's length itself.
NOT_FORWARDED = HOP_BY_HOP | {"content-length"}
# Headers aiohttp would add on its own; a proxy sends only what the caller sent.
NOT_ADDED = ("User-Agent", "Accept-Encoding", "Content-Type")
EVENT_STREAM = "text/event-stream"
# After a service refuses a request as overloaded (503 with Retry-After: nothing was done), the
# gateway answers the same request (method and path) that way itself for this long at most: the
# refusals a flood would cost the service's event loop, taken from the work it is behind on.
HOLD_MAX_S = 0.25


class _Refusals:
    """The overloaded answers the gateway repeats itself, by method and path, until they expire."""

    def __init__(self, hold_max_s: float) -> None:
        self.hold_max_s = hold_max_s
        self._held: dict[tuple[str, str], tuple[float, Response]] = {}

    def answer(self, method: str, path: str) -> Response | None:
        held = self._held.get((method, path))
        if held is None:
            return None
        until, response = held
        if time.monotonic() >= until:
            del self._held[(method, path)]
            return None
        return Response(response.body, response.status_code, headers=dict(response.headers))

    def remember(self, method: str, path: str, response: Response) -> None:
        delay = retry_after(response.status_code, response.headers)
        if delay is not None and self.hold_max_s > 0:
            now = time.monotonic()
            if len(self._held) >= 1024:  # paths refused once and never asked again
                self._held = {k: v for k, v in self._held.items() if v[0] > now}
            self._held[(method, path)] = (now + min(delay, self.hold_max_s), response)


def owner_of(path: str) -> str | None:
    """The service answering `path`: by prefix; a queue's dead letters by the queue's name, since
    each service consumes the queues named after it (`/dead-letters/billing.events` → billing)."""
    service = service_for_path(path)
    if service is None and path.startswith("/dead-letters/"):
        owner = path.removeprefix("/dead-letters/").split(".", 1)[0]
        service = owner if owner in SERVICE_NAMES else None
    return service


def _target(base: str, request: Request) -> URL:
    """The upstream URL: the path and query exactly as the caller sent them (still encoded)."""
    raw = request.scope.get("raw_path")
    path = raw.decode("latin-1") if raw else quote(request.url.path)
    query = request.scope.get("query_string", b"").decode("latin-1")
    return URL(base + path + (f"?{query}" if query else ""), encoded=True)


def _bad_gateway(detail: str) -> Response:
    body = problem(502, "Bad Gateway", detail)
    return JSONResponse(body, status_code=502, media_type=PROBLEM_MEDIA_TYPE)


async def _queues_of(
    client: httpx.AsyncClient, service: str, base: str, headers: dict[str, str]
) -> list[str] | Response:
    """The queues `service` consumes, or the response that says why they are not known."""
    try:
        r = await client.get(base + "/dead-letters", headers=headers)
    except httpx.TransportError as exc:
        return _bad_gateway(f"{service} service unreachable: {type(exc).__name__}")
    except httpx.HTTPError as exc:  # reached, but its answer could not be read (encoding)
        return _bad_gateway(f"{service} service answer unreadable: {type(exc).__name__}")
    if r.status_code != 200:  # refusals (401, 403) and failures pass through as they are
        return Response(r.content, r.status_code, media_type=r.headers.get("content-type"))
    try:
        return [str(q) for q in r.json()]
    except (ValueError, TypeError):
        return _bad_gateway(f"{service} service answered no list of queues")


def gateway_app(
    upstreams: dict[str, str],
    timeout: float = 30.0,
    *,
    console: bool = True,
    hold_max_s: float = HOLD_MAX_S,
) -> Starlette:
    """Proxy requests to `upstreams[service]` (base URLs), choosing the service by path; with
    `console`, the operations console at /console on top of that proxy. A service's 503 with
    `Retry-After` is repeated by the gateway for the same method and path for up to
    `hold_max_s` (0: never)."""
    client: httpx.AsyncClient | None = None
    session: aiohttp.ClientSession | None = None
    refusals = _Refusals(hold_max_s)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        nonlocal client, session
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=100)
        # Per step, as httpx's timeout: connecting, and each read (an event stream may last).
        timeouts = aiohttp.ClientTimeout(total=None, connect=timeout, sock_read=timeout)
        async with (
            httpx.AsyncClient(timeout=timeout, limits=limits) as c,
            aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=200),
                timeout=timeouts,
                auto_decompress=False,  # answers pass through as sent, still encoded
                skip_auto_headers=NOT_ADDED,
            ) as s,
        ):
            client, session = c, s
            yield

    async def proxy(request: Request) -> Response:
        service = owner_of(request.url.path)
        if service is None or service not in upstreams or session is None:
            return JSONResponse(
                problem(404, "Not Found", f"no service serves {request.url.path}"),
                status_code=404,
                media_type=PROBLEM_MEDIA_TYPE,
            )
        if (held := refusals.answer(request.method, request.url.path)) is not None:
            return held
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in NOT_FORWARDED]
        try:
            upstream = await session.request(
                request.method,
                _target(upstreams[service], request),
                headers=headers,
                data=await request.body(),
                allow_redirects=False,
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            return _bad_gateway(f"{service} service unreachable: {type(exc).__name__}")
        out = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP}
        if upstream.headers.get("content-type", "").startswith(EVENT_STREAM):
            # Streamed through, so Server-Sent Events (tracking streams) flow as they are sent.
            return StreamingResponse(
                upstream.content.iter_any(),
                status_code=upstream.status,
                headers=out,
                background=BackgroundTask(upstream.release),
            )
        try:
            content = await upstream.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            return _bad_gateway(f"{service} service unreachable: {type(exc).__name__}")
        finally:
            upstream.release()
        response = Response(content, status_code=upstream.status, headers=out)
        refusals.remember(request.method, request.url.path, response)
        return response

    async def dead_letter_queues(request: Request) -> Response:
        """Every service's consumed queues: each service lists only its own. The services are
        asked at once; where some fail, the first failing one in `upstreams`' order answers."""
        if client is None:
            return _bad_gateway("the gateway is not started")
        auth = request.headers.get("authorization")
        headers = {"authorization": auth} if auth else {}
        answers = await asyncio.gather(
            *(_queues_of(client, service, base, headers) for service, base in upstreams.items())
        )
        queues: set[str] = set()
        for answer in answers:
            if isinstance(answer, Response):
                return answer
            queues.update(answer)
        return JSONResponse(sorted(queues))

    async def health(_request: Request) -> Response:
        return JSONResponse({"status": "ok", "upstreams": upstreams})

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    api: list[BaseRoute] = [
        Route("/dead-letters", dead_letter_queues),
        Route("/{path:path}", proxy, methods=methods),
    ]
    routes: list[BaseRoute] = [Route("/health", health)]
    if console:
        # The console's API calls enter the proxy in process and go on to the services.
        routes.append(
            Mount(
                "/console",
                console_app(
                    LocalTransport(app=Starlette(routes=api)),
                    secret=console_secret(os.environ, required=False),
                ),
            )
        )
    return Starlette(routes=[*routes, *api], lifespan=lifespan)

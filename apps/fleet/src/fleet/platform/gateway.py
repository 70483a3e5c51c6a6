"""A small reverse proxy for distributed mode: one port, routed by path prefix to each service.

Good enough for local runs, tests and benchmarks; production puts a real gateway (Istio, nginx)
in front, as the Kubernetes manifests do.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from fleet.common.errors import PROBLEM_MEDIA_TYPE, problem
from fleet.platform.services import service_for_path

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "host"}


def gateway_app(upstreams: dict[str, str], timeout: float = 30.0) -> Starlette:
    """Proxy requests to `upstreams[service]` (base URLs), choosing the service by path."""
    client: httpx.AsyncClient | None = None

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        nonlocal client
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=100)
        async with httpx.AsyncClient(timeout=timeout, limits=limits) as c:
            client = c
            yield

    async def proxy(request: Request) -> Response:
        service = service_for_path(request.url.path)
        if service is None or service not in upstreams or client is None:
            return JSONResponse(
                problem(404, "Not Found", f"no service serves {request.url.path}"),
                status_code=404,
                media_type=PROBLEM_MEDIA_TYPE,
            )
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP]
        outgoing = client.build_request(
            request.method,
            upstreams[service] + request.url.path,
            params=str(request.query_params),
            headers=headers,
            content=await request.body(),
        )
        try:
            # Streamed through, so Server-Sent Events (tracking streams) flow as they are sent.
            upstream = await client.send(outgoing, stream=True)
        except httpx.TransportError as exc:
            body = problem(
                502, "Bad Gateway", f"{service} service unreachable: {type(exc).__name__}"
            )
            return JSONResponse(body, status_code=502, media_type=PROBLEM_MEDIA_TYPE)
        out = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP}
        return StreamingResponse(
            upstream.aiter_raw(),
            status_code=upstream.status_code,
            headers=out,
            background=BackgroundTask(upstream.aclose),
        )

    async def health(_request: Request) -> Response:
        return JSONResponse({"status": "ok", "upstreams": upstreams})

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    return Starlette(
        routes=[Route("/health", health), Route("/{path:path}", proxy, methods=methods)],
        lifespan=lifespan,
    )

"""Spans around what a service does over the wire: HTTP requests in, SQL and Redis calls out.

Outgoing HTTP (httpx) is patched process-wide by `setup_tracing`; SQL and Redis are instrumented
per engine / per client, and only when tracing is on, so an untraced app pays nothing.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.applications import Starlette
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fleet.common.tracing._setup import _state, provider, tracer

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from fleet.common.db import Database

_PROPAGATED = (b"traceparent", b"tracestate", b"baggage")


def _fastapi_traces_natively() -> bool:
    return importlib.util.find_spec("fastapi.telemetry") is not None


def fastapi_options(traced: bool) -> dict[str, Any]:
    """Keyword arguments for `FastAPI(...)`: its native request tracing follows our switch.

    FastAPI (0.16x) traces requests by itself whenever a global provider exists; an app built
    with tracing off must stay untraced even if something else in the process set one up.
    """
    if not _fastapi_traces_natively():
        return {}
    return {"telemetry": {"tracing": traced, "exclude": _not_recording}}


def _not_recording(_scope: Any) -> bool:
    return not _state.active


def trace_requests(app: Starlette) -> None:
    """SERVER spans for `app`'s requests: FastAPI's own when it has them, else ours.

    FastAPI (0.16x) traces requests natively, outside every middleware, with spans for
    dependencies, endpoint and serialization (see `fastapi_options`); adding ours would double
    the server span.
    """
    from fastapi import FastAPI

    if isinstance(app, FastAPI) and _fastapi_traces_natively():
        return
    # Added last, so outermost: the access log line is written inside the span.
    app.add_middleware(TracingMiddleware)


class TracingMiddleware:
    """A SERVER span per HTTP request, continuing the caller's trace (W3C `traceparent`).

    For apps whose framework does not trace requests itself (see `trace_requests`). Pure ASGI;
    the span is named `METHOD /route/{template}` once routing has matched.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _state.active:
            await self.app(scope, receive, send)
            return
        carrier = {
            k.decode("latin-1"): v.decode("latin-1")
            for k, v in scope["headers"]
            if k in _PROPAGATED
        }
        parent = propagate.extract(carrier) if carrier else None
        method = scope["method"]
        span = tracer().start_span(
            method, context=parent, kind=SpanKind.SERVER, attributes=_request_attributes(scope)
        )
        status = 0

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        token = otel_context.attach(trace.set_span_in_context(span, parent))
        try:
            await self.app(scope, receive, send_status)
        except BaseException as exc:
            span.record_exception(exc)
            status = status or 500
            raise
        finally:
            _finish(span, scope, method, status)
            otel_context.detach(token)


def _request_attributes(scope: Scope) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "http.request.method": scope["method"],
        "url.path": scope["path"],
        "url.scheme": scope.get("scheme", "http"),
        "network.protocol.version": scope.get("http_version", "1.1"),
    }
    server = scope.get("server")
    if server:
        attributes["server.address"], attributes["server.port"] = server[0], server[1] or 0
    client = scope.get("client")
    if client:
        attributes["client.address"] = client[0]
    return attributes


def _finish(span: trace.Span, scope: Scope, method: str, status: int) -> None:
    route: Any = scope.get("route")
    template = getattr(route, "path", None)
    if template:
        span.update_name(f"{method} {template}")
        span.set_attribute("http.route", template)
    if status:
        span.set_attribute("http.response.status_code", status)
    if not status or status >= 500:
        span.set_status(Status(StatusCode.ERROR))
    span.end()


def instrument_database(db: Database) -> None:
    """SQL spans (`SELECT <db>` …) for every statement on `db`'s engine, if tracing is on."""
    tracer_provider = provider()
    if not _state.active or tracer_provider is None:
        return
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
    from opentelemetry.instrumentation.sqlalchemy.version import __version__
    from opentelemetry.metrics import get_meter

    # Per engine, not `SQLAlchemyInstrumentor().instrument()`: that one patches
    # `create_engine` for the whole process, traced or not.
    name = "opentelemetry.instrumentation.sqlalchemy"
    usage = get_meter(name, __version__).create_up_down_counter(
        "db.client.connections.usage", unit="connections"
    )
    sql_tracer = tracer_provider.get_tracer(name, __version__)
    EngineTracer(sql_tracer, db.engine.sync_engine, usage)  # type: ignore[no-untyped-call]


def instrument_redis(client: Redis | None) -> None:
    """Redis command spans for `client`, if tracing is on."""
    tracer_provider = provider()
    if client is None or not _state.active or tracer_provider is None:
        return
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    RedisInstrumentor.instrument_client(client, tracer_provider=tracer_provider)

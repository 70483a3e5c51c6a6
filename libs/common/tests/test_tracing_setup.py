"""Tracing set-up and its building blocks: exporters from the environment, the JSON-lines file,
the sampler's rules, our ASGI server span, outgoing HTTP, Redis and the envelope's context."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from fleet.common import tracing
from fleet.common.config import Settings
from fleet.common.messaging import Envelope
from fleet.common.testing import app_client

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    with tracing.capture_spans() as exporter:
        yield exporter


@pytest.fixture
def no_trace_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_TRACES_EXPORTER", tracing.TRACE_FILE_ENV):
        monkeypatch.delenv(name, raising=False)


def _envelope(
    *, causation: Envelope | None = None, headers: dict[str, str] | None = None
) -> Envelope:
    return Envelope.new(
        "demo.happened",
        {},
        producer="test",
        aggregate_type="demo",
        aggregate_id="1",
        causation=causation,
        headers=headers,
    )


# -- set-up ---------------------------------------------------------------------------------


@pytest.mark.usefixtures("no_trace_env")
def test_with_nothing_configured_tracing_stays_off(tmp_path: Path) -> None:
    assert tracing.exporters_from_env() == []
    assert tracing.setup_tracing(Settings(env="test", data_dir=tmp_path), "fleet-demo") is False
    assert tracing.is_active() is False


def test_exporters_follow_the_standard_variables_and_the_trace_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp, console")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    monkeypatch.setenv(tracing.TRACE_FILE_ENV, str(tmp_path / "spans.jsonl"))

    otlp, console, file = tracing.exporters_from_env()

    assert isinstance(otlp, OTLPSpanExporter)
    assert otlp._endpoint == "http://collector:4318/v1/traces"
    assert isinstance(console, ConsoleSpanExporter)
    assert isinstance(file, tracing.JsonLinesSpanExporter)
    assert file.path == tmp_path / "spans.jsonl"


def test_an_unknown_exporter_is_refused_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "jaeger")
    with pytest.raises(ValueError, match="jaeger"):
        tracing.exporters_from_env()


def test_the_service_name_is_the_service_or_the_platform() -> None:
    assert tracing.service_name(["trip"]) == "fleet-trip"
    assert tracing.service_name(["user", "vehicle", "trip", "billing"]) == "fleet-platform"


def test_captures_share_the_one_global_provider() -> None:
    with tracing.capture_spans() as first, tracing.capture_spans() as second:
        provider = tracing.provider()
        assert provider is not None
        assert trace.get_tracer_provider() is provider
        with tracing.tracer().start_as_current_span("both"):
            pass
    assert tracing.provider() is provider
    assert [s.name for s in first.get_finished_spans()] == ["both"]
    assert [s.name for s in second.get_finished_spans()] == ["both"]


# -- the JSON-lines exporter ----------------------------------------------------------------


def test_the_trace_file_holds_one_json_object_per_span(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "spans.jsonl"
    provider = TracerProvider()  # a private provider: the global one is not touched
    provider.add_span_processor(SimpleSpanProcessor(tracing.JsonLinesSpanExporter(path)))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("outer", kind=SpanKind.SERVER) as outer:
        with tracer.start_as_current_span("inner", attributes={"n": 3, "tags": ("a", "b")}):
            pass
        outer.set_status(StatusCode.ERROR, "bad")

    inner, outer_line = (json.loads(line) for line in path.read_text().splitlines())
    assert (inner["name"], outer_line["name"]) == ("inner", "outer")
    assert inner["trace_id"] == outer_line["trace_id"]
    assert len(inner["trace_id"]) == 32
    assert inner["parent_span_id"] == outer_line["span_id"]
    assert outer_line["parent_span_id"] is None
    assert outer_line["kind"] == "SERVER"
    assert outer_line["status"] == "ERROR"
    assert inner["attributes"] == {"n": 3, "tags": ["a", "b"]}
    assert "service.name" in inner["resource"]


# -- the sampler ----------------------------------------------------------------------------


@pytest.mark.usefixtures("spans")
def test_sql_and_redis_calls_outside_a_trace_are_not_recorded() -> None:
    tracer = tracing.tracer()
    background = tracer.start_span("SELECT fleet", kind=SpanKind.CLIENT)
    outgoing = tracer.start_span(
        "GET", kind=SpanKind.CLIENT, attributes={"http.request.method": "GET"}
    )
    with tracer.start_as_current_span("request", kind=SpanKind.SERVER):
        inside = tracer.start_span("SELECT fleet", kind=SpanKind.CLIENT)
    assert not background.is_recording()
    assert outgoing.is_recording()
    assert inside.is_recording()


def test_nothing_is_recorded_once_the_capture_ends() -> None:
    with tracing.capture_spans():
        pass
    span = tracing.tracer().start_span("late")
    assert not span.is_recording()
    assert tracing.traced_handler("q", _noop, system="in-memory") is _noop


async def _noop(_envelope: Envelope) -> None:
    return None


# -- our server span (for apps without FastAPI's own) ---------------------------------------


async def _hello(request: Request) -> PlainTextResponse:
    if request.path_params["name"] == "boom":
        raise RuntimeError("kaput")
    return PlainTextResponse("hi")


@pytest.fixture
def starlette_app(spans: InMemorySpanExporter) -> Starlette:
    app = Starlette(routes=[Route("/hello/{name}", _hello)])
    tracing.trace_requests(app)
    return app


async def test_the_middleware_names_the_span_after_the_route_and_continues_the_caller(
    starlette_app: Starlette, spans: InMemorySpanExporter
) -> None:
    async with app_client(starlette_app) as client:  # type: ignore[arg-type]
        r = await client.get("/hello/ann", headers={"traceparent": PARENT})
    assert r.status_code == 200

    [server] = spans.get_finished_spans()
    assert server.name == "GET /hello/{name}"
    assert server.kind is SpanKind.SERVER
    assert server.context is not None
    assert f"{server.context.trace_id:032x}" == TRACE_ID
    attributes = server.attributes or {}
    assert attributes["http.route"] == "/hello/{name}"
    assert attributes["http.response.status_code"] == 200
    assert attributes["url.path"] == "/hello/ann"


async def test_the_middleware_records_a_crash_as_an_error(
    starlette_app: Starlette, spans: InMemorySpanExporter
) -> None:
    async with app_client(starlette_app) as client:  # type: ignore[arg-type]
        with pytest.raises(RuntimeError):
            await client.get("/hello/boom")

    [server] = spans.get_finished_spans()
    assert server.status.status_code is StatusCode.ERROR
    assert [e.name for e in server.events] == ["exception"]


# -- outgoing HTTP and Redis ----------------------------------------------------------------


@pytest.fixture
async def echo_server() -> AsyncIterator[tuple[str, list[bytes]]]:
    """A tiny HTTP server that records the raw request heads it receives."""
    heads: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}", heads


async def test_an_outgoing_request_is_a_child_span_and_carries_the_trace(
    spans: InMemorySpanExporter, echo_server: tuple[str, list[bytes]]
) -> None:
    url, heads = echo_server
    with tracing.tracer().start_as_current_span("use case") as parent:
        async with httpx.AsyncClient() as client:
            r = await client.get(url + "/ping")
    assert r.status_code == 204

    [client_span] = [s for s in spans.get_finished_spans() if s.kind is SpanKind.CLIENT]
    assert client_span.parent is not None
    assert client_span.parent.span_id == parent.get_span_context().span_id
    assert client_span.context is not None
    sent = f"traceparent: 00-{client_span.context.trace_id:032x}-{client_span.context.span_id:016x}"
    assert sent.encode() in heads[0].lower()


@pytest.mark.redis
async def test_redis_commands_are_child_spans(spans: InMemorySpanExporter) -> None:
    client = Redis.from_url("redis://127.0.0.1:6379/0")
    tracing.instrument_redis(client)
    try:
        with tracing.tracer().start_as_current_span("use case") as parent:
            await client.set(f"tracing-test-{uuid.uuid4().hex}", "1", ex=5)
    finally:
        await client.aclose()

    [command] = [s for s in spans.get_finished_spans() if s.kind is SpanKind.CLIENT]
    assert command.name == "SET"
    assert command.parent is not None
    assert command.parent.span_id == parent.get_span_context().span_id


# -- the envelope's trace context -----------------------------------------------------------


@pytest.mark.usefixtures("spans")
def test_a_message_created_inside_a_span_carries_that_span() -> None:
    with tracing.tracer().start_as_current_span("use case") as current:
        envelope = _envelope()
    ctx = current.get_span_context()
    assert envelope.headers["traceparent"].startswith(f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-")


def test_a_message_created_outside_any_span_inherits_its_causation() -> None:
    cause = _envelope(headers={"traceparent": PARENT, "x-other": "dropped"})
    assert _envelope(causation=cause).headers == {"traceparent": PARENT}
    assert _envelope().headers == {}


@pytest.mark.usefixtures("spans")
def test_explicit_headers_are_kept_as_given() -> None:
    with tracing.tracer().start_as_current_span("use case"):
        envelope = _envelope(headers={"traceparent": PARENT})
    assert envelope.headers == {"traceparent": PARENT}

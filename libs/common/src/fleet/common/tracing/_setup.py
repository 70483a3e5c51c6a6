"""The process's tracer provider: built once, from the standard OpenTelemetry environment.

One provider per process (OpenTelemetry's global provider can be set only once). Apps built later
in the same process share it; its resource names the first app (`fleet-<svc>` or
`fleet-platform`). Nothing happens at import time.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

from fleet.common.tracing._export import JsonLinesSpanExporter

if TYPE_CHECKING:
    from fleet.common.config import Settings

TRACER_NAME = "fleet"
TRACE_FILE_ENV = "FLEET_TRACE_FILE"
EXPORTERS = ("otlp", "console", "none")
_HTTP_METHOD_KEYS = ("http.request.method", "http.method")


@dataclass
class _State:
    provider: TracerProvider | None = None
    exporting: bool = False  # exporters from the environment are attached
    captures: list[SpanProcessor] = field(default_factory=list)
    active: bool = False  # spans are recorded: an exporter or a capture is attached
    httpx_patched: bool = False

    def refresh(self) -> None:
        self.active = self.provider is not None and (self.exporting or bool(self.captures))


_state = _State()


def is_active() -> bool:
    """True when spans are recorded and exported (tracing is on in this process)."""
    return _state.active


def tracer() -> trace.Tracer:
    """The tracer of fleet's own spans (publish, consume, saga steps, HTTP server)."""
    provider = _state.provider
    if provider is None:
        return trace.NoOpTracer()
    return provider.get_tracer(TRACER_NAME)


def provider() -> TracerProvider | None:
    return _state.provider


def service_name(names: Sequence[str]) -> str:
    """The `service.name` of an app: `fleet-<svc>`, or `fleet-platform` for several services."""
    return f"fleet-{names[0]}" if len(names) == 1 else "fleet-platform"


def setup_tracing(settings: Settings, service_name: str) -> bool:
    """Turn tracing on for this process if the environment asks for it; True if it is on.

    `OTEL_TRACES_EXPORTER` (comma-separated `otlp`, `console`, `none`; default `none`) picks the
    exporters — OTLP over HTTP reads `OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT` and the other standard
    variables itself — and `FLEET_TRACE_FILE` adds one appending spans as JSON lines to that file.
    All export through a `BatchSpanProcessor` (tuned by `OTEL_BSP_*`); `OTEL_SDK_DISABLED=true`
    turns everything off. Idempotent: the provider
    is built once per process; with nothing configured this costs nothing and returns False
    (unless a test is capturing spans, see `capture_spans`).
    """
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return _state.active
    exporters = exporters_from_env()
    if exporters and not _state.exporting:
        provider = _ensure_provider(service_name, settings.env)
        for exporter in exporters:
            provider.add_span_processor(BatchSpanProcessor(exporter))
        _state.exporting = True
        _patch_httpx(provider)
    _state.refresh()
    return _state.active


def exporters_from_env() -> list[SpanExporter]:
    """The exporters `OTEL_TRACES_EXPORTER` and `FLEET_TRACE_FILE` ask for (maybe none)."""
    names = [
        n.strip().lower()
        for n in os.environ.get("OTEL_TRACES_EXPORTER", "none").split(",")
        if n.strip()
    ]
    unknown = sorted(set(names) - set(EXPORTERS))
    if unknown:
        raise ValueError(f"OTEL_TRACES_EXPORTER: unknown exporter(s) {unknown}; use {EXPORTERS}")
    exporters: list[SpanExporter] = []
    if "otlp" in names:
        # Imported here: the protobuf stack is paid for only by processes that export OTLP.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporters.append(OTLPSpanExporter())
    if "console" in names:
        exporters.append(ConsoleSpanExporter(service_name=None))
    if path := os.environ.get(TRACE_FILE_ENV):
        exporters.append(JsonLinesSpanExporter(path))
    return exporters


def flush(timeout_millis: int = 5000) -> None:
    """Export what is buffered now (at shutdown: the last spans must not be lost)."""
    if _state.provider is not None and _state.active:
        _state.provider.force_flush(timeout_millis)


@contextmanager
def capture_spans(
    exporter: InMemorySpanExporter | None = None, *, service_name: str = "fleet-test"
) -> Iterator[InMemorySpanExporter]:
    """Record spans into `exporter` (synchronously) while the block runs: for tests.

    Apps built inside the block are instrumented as if an exporter were configured.
    """
    exporter = exporter or InMemorySpanExporter()
    provider = _ensure_provider(service_name, "test")
    processor = SimpleSpanProcessor(exporter)
    _state.captures.append(processor)
    _state.refresh()
    patched_here = _patch_httpx(provider)
    try:
        yield exporter
    finally:
        _state.captures.remove(processor)
        _state.refresh()
        if patched_here and not _state.exporting:
            _unpatch_httpx()


def _ensure_provider(service_name: str, environment: str) -> TracerProvider:
    if _state.provider is not None:
        return _state.provider
    resource = Resource.create(
        {
            "service.name": service_name,
            "service.version": _version(),
            "service.instance.id": f"{socket.gethostname()}:{os.getpid()}",
            "deployment.environment": environment,
            "deployment.environment.name": environment,
        }
    )
    provider = TracerProvider(resource=resource, sampler=_FleetSampler(_root_sampler()))
    provider.add_span_processor(_Captures())
    _state.provider = provider
    trace.set_tracer_provider(provider)
    return provider


def _version() -> str:
    try:
        return metadata.version("fleet-common")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0.0.0"


def _root_sampler() -> Sampler:
    """`ParentBased(always_on)`, or a trace-id ratio if `OTEL_TRACES_SAMPLER` asks for one."""
    name = os.environ.get("OTEL_TRACES_SAMPLER", "").lower()
    if name in ("traceidratio", "parentbased_traceidratio"):
        try:
            ratio = float(os.environ.get("OTEL_TRACES_SAMPLER_ARG", "1.0"))
        except ValueError:
            ratio = 1.0
        return ParentBased(TraceIdRatioBased(min(max(ratio, 0.0), 1.0)))
    return ParentBased(ALWAYS_ON)


class _FleetSampler(Sampler):
    """Drops everything while tracing is off, and root spans of SQL and Redis calls.

    A query with no trace around it comes from a background loop (the outbox relay's poll, a
    sweeper): one root span per poll would bury the traces that matter.
    """

    def __init__(self, delegate: Sampler) -> None:
        self._delegate = delegate

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        if not _state.active:
            return SamplingResult(Decision.DROP, None, trace_state)
        if kind is SpanKind.CLIENT and not _has_http_method(attributes):
            parent = trace.get_current_span(parent_context).get_span_context()
            if not parent.is_valid:
                return SamplingResult(Decision.DROP, None, trace_state)
        return self._delegate.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"FleetSampler{{{self._delegate.get_description()}}}"


def _has_http_method(attributes: Attributes) -> bool:
    return attributes is not None and any(k in attributes for k in _HTTP_METHOD_KEYS)


class _Captures(SpanProcessor):
    """Forwards to the processors `capture_spans` attached (which come and go with tests)."""

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        for processor in _state.captures:
            processor.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        for processor in _state.captures:
            processor.on_end(span)

    def shutdown(self) -> None:
        for processor in _state.captures:
            processor.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return all(p.force_flush(timeout_millis) for p in _state.captures)


def _patch_httpx(provider: TracerProvider) -> bool:
    """Trace every httpx request of the process (outgoing calls); True if patched now."""
    if _state.httpx_patched:
        return False
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    HTTPXClientInstrumentor().instrument(tracer_provider=provider)
    _state.httpx_patched = True
    return True


def _unpatch_httpx() -> None:
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    HTTPXClientInstrumentor().uninstrument()
    _state.httpx_patched = False

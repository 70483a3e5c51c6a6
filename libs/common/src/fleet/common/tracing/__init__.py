"""OpenTelemetry tracing for the platform: one booking is one trace across the four services.

* `setup_tracing(settings, service_name)` builds the process's provider from the standard
  environment (`OTEL_TRACES_EXPORTER=otlp|console|none`, `OTEL_EXPORTER_OTLP_ENDPOINT`, …) plus
  `FLEET_TRACE_FILE` (JSON lines); with nothing configured tracing stays off and costs nothing.
* Spans: HTTP in (`trace_requests`: FastAPI's own spans, else `TracingMiddleware`), HTTP out
  (httpx), SQL (`instrument_database`), Redis (`instrument_redis`), publish and consume
  (`publish_span`, `traced_handler`), saga steps (`span`). `create_app` wires all of them.
* Logs carry `trace_id`/`span_id` whenever a span is active (`fleet.common.logging`).
* Tests: `capture_spans()` records spans in memory while a block runs.

See docs/adr/0005-tracing.md.
"""

from fleet.common.tracing._export import JsonLinesSpanExporter, span_record
from fleet.common.tracing._instrument import (
    TracingMiddleware,
    fastapi_options,
    instrument_database,
    instrument_redis,
    trace_requests,
)
from fleet.common.tracing._messaging import (
    current_trace_headers,
    messaging_system,
    publish_span,
    span,
    traced_handler,
)
from fleet.common.tracing._setup import (
    TRACE_FILE_ENV,
    capture_spans,
    exporters_from_env,
    flush,
    is_active,
    provider,
    service_name,
    setup_tracing,
    tracer,
)

__all__ = [
    "TRACE_FILE_ENV",
    "JsonLinesSpanExporter",
    "TracingMiddleware",
    "capture_spans",
    "current_trace_headers",
    "exporters_from_env",
    "fastapi_options",
    "flush",
    "instrument_database",
    "instrument_redis",
    "is_active",
    "messaging_system",
    "provider",
    "publish_span",
    "service_name",
    "setup_tracing",
    "span",
    "span_record",
    "trace_requests",
    "traced_handler",
    "tracer",
]

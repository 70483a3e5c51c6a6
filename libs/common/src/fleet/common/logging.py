"""Structured logs: JSON lines with the service, request id and trace ids bound in."""

from __future__ import annotations

import logging
import sys
from typing import Any

import orjson
import structlog
from opentelemetry import trace
from structlog.typing import EventDict, WrappedLogger


def configure_logging(level: str = "INFO", *, json: bool = True) -> None:
    """Route stdlib and structlog output through one JSON (or console) renderer on stderr."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        add_trace_ids,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    # structlog's own lines (the access log among them) are rendered by orjson straight to bytes:
    # about half the cost of the stdlib encoder and a text stream per line.
    own: tuple[Any, Any] = (
        (
            structlog.processors.JSONRenderer(serializer=_orjson_dumps),
            structlog.BytesLoggerFactory(sys.stderr.buffer),
        )
        if json
        else (renderer, structlog.PrintLoggerFactory(sys.stderr))
    )
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, own[0]],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=own[1],
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processor=renderer,
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("uvicorn.access", "aiormq", "aio_pika"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _orjson_dumps(event: Any, **_kw: Any) -> bytes:
    # default=str: anything orjson does not know (a Decimal, an exception…) as its text.
    return orjson.dumps(event, default=str)


def add_trace_ids(_logger: WrappedLogger, _method: str, event: EventDict) -> EventDict:
    """`trace_id`/`span_id` of the active span (W3C hex), so a log line finds its trace."""
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        event.setdefault("trace_id", f"{ctx.trace_id:032x}")
        event.setdefault("span_id", f"{ctx.span_id:016x}")
    return event


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)

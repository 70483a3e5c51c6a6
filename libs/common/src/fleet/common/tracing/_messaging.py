"""Trace context across the bus: PRODUCER spans at publish, CONSUMER spans around handlers.

The context travels in `Envelope.headers` (W3C `traceparent`/`tracestate`): `Envelope.new` puts
the current span's there when the message is created (in the use case's transaction), the relay's
`publish <routing key>` span continues it later from a background task and re-injects itself, and
the consumer's `consume <queue>` span continues that. Everything a handler does — SQL, the next
command it enqueues — is a child, so one booking is one trace across the four services.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind

from fleet.common.tracing._setup import _state, tracer

if TYPE_CHECKING:
    # Type-only: the messaging package imports this module (no import cycle at run time).
    from fleet.common.messaging.envelope import Envelope

EnvelopeHandler = Callable[["Envelope"], Awaitable[None]]
_NO_SPAN: AbstractContextManager[None] = nullcontext()


def span(name: str, attributes: Mapping[str, Any] | None = None) -> AbstractContextManager[Any]:
    """An INTERNAL span around the block, child of the current one; nothing if tracing is off."""
    if not _state.active:
        return _NO_SPAN
    return tracer().start_as_current_span(name, attributes=attributes)


def messaging_system(bus: object) -> str:
    """`rabbitmq` for the RabbitMQ adapter, else `in-memory` (embedded mode, tests)."""
    return "rabbitmq" if type(bus).__name__ == "RabbitBus" else "in-memory"


def _message_attributes(envelope: Envelope, system: str) -> dict[str, Any]:
    return {
        "messaging.system": system,
        "messaging.message.id": str(envelope.event_id),
        "messaging.message.conversation_id": envelope.correlation_id,
        "messaging.rabbitmq.destination.routing_key": envelope.event_type,
        "fleet.message.kind": envelope.kind,
        "fleet.message.producer": envelope.producer,
    }


def _parent(headers: Mapping[str, str]) -> Context | None:
    # An explicit empty context, not the current one: the relay and the consumers run in
    # long-lived tasks whose own context must not leak into the message's trace.
    return propagate.extract(headers, context=Context()) if headers else Context()


@contextmanager
def publish_span(envelope: Envelope, exchange: str, *, system: str) -> Iterator[Envelope]:
    """A PRODUCER span `publish <routing key>` continuing the envelope's stored context.

    Yields the envelope to publish: the same one, with this span's context in its headers so
    that consumers become children of the publish.
    """
    if not _state.active:
        yield envelope
        return
    attributes = _message_attributes(envelope, system)
    attributes.update(
        {
            "messaging.operation.type": "send",
            "messaging.operation.name": "publish",
            "messaging.destination.name": exchange,
        }
    )
    with tracer().start_as_current_span(
        f"publish {envelope.event_type}",
        context=_parent(envelope.headers),
        kind=SpanKind.PRODUCER,
        attributes=attributes,
    ):
        headers = dict(envelope.headers)
        propagate.inject(headers)
        yield envelope.model_copy(update={"headers": headers})


def traced_handler(
    queue: str, handler: EnvelopeHandler, *, system: str, service: str | None = None
) -> EnvelopeHandler:
    """`handler` run inside a CONSUMER span `consume <queue>` that continues the message's trace.

    Returned unchanged when tracing is off, so untraced apps pay nothing per message.
    """
    if not _state.active:
        return handler

    @functools.wraps(handler)
    async def consume(envelope: Envelope) -> None:
        if not _state.active:
            await handler(envelope)
            return
        attributes = _message_attributes(envelope, system)
        attributes.update(
            {
                "messaging.operation.type": "process",
                "messaging.operation.name": "consume",
                "messaging.destination.name": queue,
            }
        )
        if service:
            attributes["fleet.service"] = service
        with tracer().start_as_current_span(
            f"consume {queue}",
            context=_parent(envelope.headers),
            kind=SpanKind.CONSUMER,
            attributes=attributes,
        ):
            await handler(envelope)

    return consume


def current_trace_headers() -> dict[str, str]:
    """The current span's W3C headers, or {} when no span is active (for hand-built carriers)."""
    if not trace.get_current_span().get_span_context().is_valid:
        return {}
    headers: dict[str, str] = {}
    propagate.inject(headers)
    return headers

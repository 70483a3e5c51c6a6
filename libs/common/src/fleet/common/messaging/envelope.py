"""The envelope every message travels in: ids for tracing and idempotency, a type, a payload.

An envelope is the one wire format of the platform (JSON, UTF-8, encoded with orjson). Its
`event_type` is also the routing key, so `trip.completed` reaches every queue bound to `trip.*`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any, Literal

import orjson
from opentelemetry import propagate, trace
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

Kind = Literal["event", "command", "reply"]

# W3C trace context keys; a derived message inherits them so one booking stays one trace.
TRACE_HEADERS = ("traceparent", "tracestate", "baggage")

ROUTING_KEY_PATTERN = r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$"


class MalformedMessage(ValueError):
    """The bytes are not an envelope, or the envelope's data does not fit its schema."""


class Envelope(BaseModel):
    """A message with its metadata. Immutable; build one with `Envelope.new`."""

    # Unknown top-level fields are ignored so that a newer producer does not break older consumers.
    model_config = ConfigDict(frozen=True, extra="ignore")

    event_id: uuid.UUID
    event_type: str = Field(min_length=1, max_length=255, pattern=ROUTING_KEY_PATTERN)
    kind: Kind = "event"
    aggregate_type: str = Field(min_length=1, max_length=100)
    aggregate_id: str = Field(min_length=1, max_length=200)
    version: int = Field(0, ge=0)
    schema_version: int = Field(1, ge=1)
    occurred_at: AwareDatetime
    producer: str = Field(min_length=1, max_length=100)
    correlation_id: str = Field(min_length=1, max_length=200)
    causation_id: str | None = Field(None, max_length=200)
    reply_to: str | None = Field(None, max_length=255, pattern=ROUTING_KEY_PATTERN)
    data: dict[str, Any] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("occurred_at")
    @classmethod
    def _to_utc(cls, value: dt.datetime) -> dt.datetime:
        return value.astimezone(dt.UTC)

    @classmethod
    def new(
        cls,
        event_type: str,
        data: Mapping[str, Any],
        *,
        producer: str,
        aggregate_type: str,
        aggregate_id: str | uuid.UUID,
        version: int = 0,
        correlation_id: str | None = None,
        causation: Envelope | None = None,
        kind: Kind = "event",
        reply_to: str | None = None,
        schema_version: int = 1,
        headers: Mapping[str, str] | None = None,
    ) -> Envelope:
        """A new message; `causation` (the message being handled) links ids and trace context.

        Without a causation and a correlation id, the message starts its own correlation. Unless
        `headers` are given, the message carries the current span's trace context (the request
        or the consumer span it is created in), else the causation's.
        """
        event_id = uuid.uuid4()
        if correlation_id is None:
            correlation_id = causation.correlation_id if causation else str(event_id)
        if headers is None:
            inherited = causation.headers if causation else {}
            headers = {k: v for k, v in inherited.items() if k in TRACE_HEADERS}
            if trace.get_current_span().get_span_context().is_valid:
                headers.pop("tracestate", None)
                propagate.inject(headers)
        return cls(
            event_id=event_id,
            event_type=event_type,
            kind=kind,
            aggregate_type=aggregate_type,
            aggregate_id=str(aggregate_id),
            version=version,
            schema_version=schema_version,
            occurred_at=dt.datetime.now(dt.UTC),
            producer=producer,
            correlation_id=correlation_id,
            causation_id=str(causation.event_id) if causation else None,
            reply_to=reply_to,
            data=dict(data),
            headers=dict(headers),
        )

    def reply(self, data: Mapping[str, Any], *, producer: str) -> Envelope:
        """The reply to this command, routed to its `reply_to` key."""
        if self.reply_to is None:
            raise ValueError(f"{self.event_type} has no reply_to")
        return Envelope.new(
            self.reply_to,
            data,
            producer=producer,
            aggregate_type=self.aggregate_type,
            aggregate_id=self.aggregate_id,
            version=self.version,
            causation=self,
            kind="reply",
        )

    def encode(self) -> bytes:
        """The JSON bytes sent on the wire."""
        return orjson.dumps(self.model_dump(mode="json"))

    @classmethod
    def decode(cls, body: bytes) -> Envelope:
        """Parse wire bytes; anything that is not a valid envelope raises `MalformedMessage`."""
        try:
            raw = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise MalformedMessage(f"not JSON: {exc}") from None
        if not isinstance(raw, dict):
            raise MalformedMessage("not a JSON object")
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise MalformedMessage(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    problems = [
        f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()
    ]
    return "invalid envelope: " + "; ".join(problems[:10])

"""Typed, versioned message schemas and the registry that turns envelopes into them.

A schema is a pydantic model with a `ClassVar` `event_type` and `schema_version`. Producers build
envelopes from instances (`TripCompleted(...).to_envelope(...)`); consumers parse envelopes back
with `registry.parse(envelope)`. Unknown fields are ignored so that adding a field is compatible.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from fleet.common.messaging.envelope import Envelope, Kind, MalformedMessage

M = TypeVar("M", bound="Message")


class Message(BaseModel):
    """Base class of every event, command and reply schema."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_type: ClassVar[str]
    schema_version: ClassVar[int] = 1
    kind: ClassVar[Kind] = "event"

    def to_envelope(
        self,
        *,
        producer: str,
        aggregate_type: str,
        aggregate_id: str | uuid.UUID,
        version: int = 0,
        correlation_id: str | None = None,
        causation: Envelope | None = None,
        reply_to: str | None = None,
    ) -> Envelope:
        """This message wrapped in a new envelope (type, version and kind from the class)."""
        return Envelope.new(
            self.event_type,
            self.model_dump(mode="json"),
            producer=producer,
            aggregate_type=aggregate_type,
            aggregate_id=aggregate_id,
            version=version,
            correlation_id=correlation_id,
            causation=causation,
            kind=self.kind,
            reply_to=reply_to,
            schema_version=self.schema_version,
        )


class MessageRegistry:
    """Message classes by (event_type, schema_version)."""

    def __init__(self) -> None:
        self._types: dict[tuple[str, int], type[Message]] = {}

    def register(self, cls: type[M]) -> type[M]:
        """Class decorator. Registering another class under a taken type+version is an error."""
        event_type = getattr(cls, "event_type", None)
        if not isinstance(event_type, str) or not event_type:
            raise TypeError(f"{cls.__qualname__} needs a ClassVar event_type")
        key = (event_type, cls.schema_version)
        existing = self._types.get(key)
        if existing is not None and existing is not cls:
            raise ValueError(
                f"{event_type} v{cls.schema_version} is already registered by "
                f"{existing.__module__}.{existing.__qualname__}"
            )
        self._types[key] = cls
        return cls

    def get(self, event_type: str, schema_version: int = 1) -> type[Message] | None:
        return self._types.get((event_type, schema_version))

    def parse(self, envelope: Envelope) -> Message:
        """The typed message in `envelope`; `MalformedMessage` if unknown or invalid."""
        cls = self.get(envelope.event_type, envelope.schema_version)
        if cls is None:
            raise MalformedMessage(
                f"unknown message type {envelope.event_type} v{envelope.schema_version}"
            )
        try:
            return cls.model_validate(envelope.data)
        except ValidationError as exc:
            raise MalformedMessage(f"invalid {envelope.event_type} data: {exc}") from None

    def parse_as(self, envelope: Envelope, cls: type[M]) -> M:
        """Like `parse`, but also checks that the message is a `cls`."""
        message = self.parse(envelope)
        if not isinstance(message, cls):
            raise MalformedMessage(f"{envelope.event_type} is not a {cls.__qualname__}")
        return message

    def __iter__(self) -> Iterator[type[Message]]:
        return iter(self._types.values())

    def __contains__(self, event_type: object) -> bool:
        return any(key[0] == event_type for key in self._types)

    def schemas(self) -> dict[str, dict[str, Any]]:
        """JSON Schemas of every registered message, keyed `type@vN` (for docs/contract tests)."""
        return {f"{t}@v{v}": cls.model_json_schema() for (t, v), cls in sorted(self._types.items())}


default_registry = MessageRegistry()
register = default_registry.register

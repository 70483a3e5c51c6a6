"""docs/asyncapi.yaml from the code: the platform's messaging as an AsyncAPI 3.0 document.

Sources, so the document cannot drift from them: the registered message classes
(`fleet.contracts.events`, `fleet.contracts.booking`) give the payloads, the envelope
(`fleet.common.messaging.Envelope`) wraps them, `fleet.common.messaging.EXCHANGES` names the
exchanges, `fleet.contracts.queues.QUEUES` says who receives what and
`fleet.contracts.producers` who sends what. A channel is one routing key on its exchange; an
operation is one service sending on it, or one queue receiving it.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

import fleet.contracts  # noqa: F401 - registers every message class
from fleet.common.messaging import EXCHANGES, Envelope, ExchangeName, Kind, default_registry
from fleet.common.messaging.bus import topic_matches
from fleet.common.saga import SagaCommand, SagaReply
from fleet.contracts import booking
from fleet.contracts.producers import OUTWARD, PRODUCERS, ROUTING_KEY_VARIANTS
from fleet.contracts.queues import QUEUES

SPEC_VERSION = "3.0.0"
AMQP_BINDING_VERSION = "0.3.0"
OUTWARD_TAG = "outward"
SCHEMAS = "#/components/schemas/"
_PARAMETER = re.compile(r"\{(\w+)\}")

DESCRIPTION = """\
Every message between the services of the fleet platform, generated from the code by
`fleet asyncapi > docs/asyncapi.yaml` (a test keeps it current and checks the messages of a
real booking and trip against it).

A message is a JSON envelope (`Envelope`: ids, type, producer, correlation, trace context)
whose `data` is the typed payload. Its `event_type` is the routing key on one of two topic
exchanges: `fleet.events` for domain events (facts, past tense) and `fleet.commands` for the
booking saga's commands and their replies. Producers publish through a transactional outbox;
consumers read durable queues bound to routing-key patterns, handle each message at most once
(inbox), retry failures and dead-letter what keeps failing. Delivery is at least once.
Embedded mode runs the same channels on an in-process bus.
"""


@dataclass(frozen=True)
class _Message:
    """One kind of message as it travels: routing key, exchange, kind and payload model."""

    key: str
    exchange: ExchangeName
    kind: Kind
    schema_version: int
    name: str  # the component name (the message class's)
    model: type[BaseModel]
    data_schema: dict[str, Any]  # the envelope's `data`

    @property
    def summary(self) -> str:
        doc = inspect.cleandoc(self.model.__doc__) if self.model.__doc__ else None  # not inherited
        return doc.split("\n\n", 1)[0].replace("\n", " ") if doc else f"The {self.key} {self.kind}."


def _messages() -> list[_Message]:
    found = []
    for cls in default_registry:
        data: dict[str, Any]
        if cls.kind == "command":
            # A command's data is the saga engine's SagaCommand; its payload is the saga's data,
            # of which the class is the participant's view.
            data = {
                "allOf": [
                    {"$ref": SCHEMAS + SagaCommand.__name__},
                    {
                        "type": "object",
                        "properties": {
                            "command_type": {"const": cls.event_type},
                            "payload": {"$ref": SCHEMAS + cls.__name__},
                        },
                    },
                ]
            }
        else:
            data = {"$ref": SCHEMAS + cls.__name__}
        exchange: ExchangeName = "events" if cls.kind == "event" else "commands"
        found.append(
            _Message(
                cls.event_type, exchange, cls.kind, cls.schema_version, cls.__name__, cls, data
            )
        )
    # Participants reply to the saga's commands on its reply key (fleet.common.participant).
    found.append(
        _Message(
            booking.REPLY_KEY,
            "commands",
            "reply",
            1,
            SagaReply.__name__,
            SagaReply,
            {"$ref": SCHEMAS + SagaReply.__name__},
        )
    )
    return sorted(found, key=lambda m: (m.exchange, m.key))


def _schemas(messages: list[_Message]) -> dict[str, Any]:
    models: list[type[BaseModel]] = [Envelope, SagaCommand, *(m.model for m in messages)]
    _, top = models_json_schema(
        [(m, "validation") for m in dict.fromkeys(models)], ref_template=SCHEMAS + "{model}"
    )
    defs: dict[str, Any] = top["$defs"]
    return dict(sorted(defs.items()))


def _message_object(m: _Message) -> dict[str, Any]:
    return {
        "name": m.key,
        "title": m.name,
        "summary": m.summary,
        "contentType": "application/json",
        "correlationId": {
            "description": "Shared by a message and the messages it causes (a saga's: its id).",
            "location": "$message.payload#/correlation_id",
        },
        "payload": {
            "allOf": [
                {"$ref": SCHEMAS + Envelope.__name__},
                {
                    "type": "object",
                    "required": ["data"],
                    "properties": {
                        "event_type": {"const": m.key},
                        "kind": {"const": m.kind},
                        "schema_version": {"const": m.schema_version},
                        "data": m.data_schema,
                    },
                },
            ]
        },
    }


@dataclass(frozen=True)
class _Channel:
    id: str
    address: str
    message: _Message

    @property
    def parameters(self) -> list[str]:
        return _PARAMETER.findall(self.address)

    def matched_by(self, pattern: str) -> bool:
        """Whether a queue bound with `pattern` gets this channel's messages."""
        return topic_matches(pattern, _PARAMETER.sub("x", self.address))


def _channels(messages: list[_Message]) -> list[_Channel]:
    channels = []
    for m in messages:
        for address in (m.key, *ROUTING_KEY_VARIANTS.get(m.key, ())):
            channel_id = _PARAMETER.sub(r"by-\1", address)
            channels.append(_Channel(channel_id, address, m))
    return channels


def _channel_object(c: _Channel, received: bool) -> dict[str, Any]:
    exchange = EXCHANGES[c.message.exchange]
    description = f"Routing key `{c.address}` on the topic exchange `{exchange}`."
    if c.parameters:
        description += f" The same message as `{c.message.key}`, under a more specific key."
    channel: dict[str, Any] = {
        "address": c.address,
        "summary": c.message.summary,
        "description": description,
        "messages": {c.message.name: {"$ref": f"#/components/messages/{c.message.name}"}},
    }
    if c.parameters:
        fields = c.message.model.model_fields
        channel["parameters"] = {
            p: {
                "description": f"The payload's `{p}`.",
                **({"location": f"$message.payload#/data/{p}"} if p in fields else {}),
            }
            for p in c.parameters
        }
    if not received and c.message.key in OUTWARD:
        channel["tags"] = [{"name": OUTWARD_TAG, "description": OUTWARD[c.message.key]}]
    channel["bindings"] = {
        "amqp": {
            "is": "routingKey",
            "exchange": {"name": exchange, "type": "topic", "durable": True, "autoDelete": False},
            "bindingVersion": AMQP_BINDING_VERSION,
        }
    }
    return channel


def _operations(channels: list[_Channel]) -> Iterator[tuple[str, dict[str, Any]]]:
    for c in channels:
        ref = {"$ref": f"#/channels/{c.id}"}
        messages = [{"$ref": f"#/channels/{c.id}/messages/{c.message.name}"}]
        for sender in PRODUCERS.get(c.message.key, ()):
            yield (
                f"{sender}.send.{c.id}",
                {
                    "action": "send",
                    "channel": ref,
                    "summary": f"{sender} publishes {c.message.key} on `{c.address}`.",
                    "tags": [{"name": sender}],
                    "messages": messages,
                },
            )
        for queue in QUEUES:
            if queue.exchange != c.message.exchange:
                continue
            patterns = [p for p in queue.bindings if c.matched_by(p)]
            if not patterns:
                continue
            bound = ", ".join(f"`{p}`" for p in patterns)
            yield (
                f"{queue.name}.receive.{c.id}",
                {
                    "action": "receive",
                    "channel": ref,
                    "summary": f"{queue.service} consumes it from queue `{queue.name}` ({bound}).",
                    "tags": [{"name": queue.service}],
                    "messages": messages,
                    "bindings": {"amqp": {"ack": True, "bindingVersion": AMQP_BINDING_VERSION}},
                },
            )


def document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the platform's messaging, as plain data."""
    messages = _messages()
    channels = _channels(messages)
    operations = dict(_operations(channels))
    received = {op["channel"]["$ref"] for op in operations.values() if op["action"] == "receive"}
    return {
        "asyncapi": SPEC_VERSION,
        "info": {
            "title": "Fleet platform messaging",
            "version": version("fleet-contracts"),
            "description": DESCRIPTION,
        },
        "defaultContentType": "application/json",
        "servers": {
            "rabbitmq": {
                "host": "rabbitmq:5672",
                "protocol": "amqp",
                "protocolVersion": "0.9.1",
                "description": "The broker of distributed mode (`AMQP_URL`, e.g. deploy/compose).",
            }
        },
        "channels": {c.id: _channel_object(c, f"#/channels/{c.id}" in received) for c in channels},
        "operations": operations,
        "components": {
            "messages": {m.name: _message_object(m) for m in messages},
            "schemas": _schemas(messages),
        },
    }


class _Dumper(yaml.SafeDumper):
    """Block style for multi-line text, so descriptions read as written; no anchors."""

    def ignore_aliases(self, data: Any) -> bool:  # noqa: ARG002 - yaml's signature
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def render() -> str:
    """docs/asyncapi.yaml."""
    return yaml.dump(document(), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)

"""Messaging: the envelope, typed message schemas, the bus contract and its two adapters.

`RabbitBus` is imported lazily by callers that need it (`fleet.common.messaging.rabbit`), so that
embedded mode never touches aio-pika.
"""

from fleet.common.messaging.bus import (
    DEFAULT_RETRY_DELAYS,
    EXCHANGES,
    BusNotStarted,
    DeadLetter,
    ExchangeName,
    Handler,
    MessageBus,
    PublishError,
    QueueDepth,
    UnroutableMessage,
    topic_matches,
)
from fleet.common.messaging.envelope import TRACE_HEADERS, Envelope, Kind, MalformedMessage
from fleet.common.messaging.memory import InMemoryBus
from fleet.common.messaging.registry import Message, MessageRegistry, default_registry, register

__all__ = [
    "DEFAULT_RETRY_DELAYS",
    "EXCHANGES",
    "TRACE_HEADERS",
    "BusNotStarted",
    "DeadLetter",
    "Envelope",
    "ExchangeName",
    "Handler",
    "InMemoryBus",
    "Kind",
    "MalformedMessage",
    "Message",
    "MessageBus",
    "MessageRegistry",
    "PublishError",
    "QueueDepth",
    "UnroutableMessage",
    "default_registry",
    "register",
    "topic_matches",
]

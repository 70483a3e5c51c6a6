"""The message bus contract every adapter honours (RabbitMQ, in-memory) and its shared rules.

Delivery is at least once: a handler may see a message again (retry, redelivery after a crash,
replay), so handlers are idempotent (see `fleet.common.outbox.handle_once`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, Protocol

from fleet.common.messaging.envelope import Envelope

ExchangeName = Literal["events", "commands"]
Handler = Callable[[Envelope], Awaitable[None]]

EXCHANGES: dict[ExchangeName, str] = {"events": "fleet.events", "commands": "fleet.commands"}
DEFAULT_RETRY_DELAYS: tuple[float, ...] = (0.2, 1.0, 5.0)

# Message headers the bus itself reads and writes.
RETRY_COUNT = "x-retry-count"
DEAD_LETTER_ID = "x-dead-letter-id"
DEAD_ERROR = "x-error"
DEAD_HANDLER = "x-handler"
DEAD_AT = "x-dead-at"
MAX_ERROR_CHARS = 2000


class PublishError(RuntimeError):
    """The broker did not confirm the message (nack, connection lost, timeout)."""


class UnroutableMessage(PublishError):
    """A command matched no queue: nobody would ever execute it.

    Events that match no queue are dropped silently, as RabbitMQ does.
    """


class BusNotStarted(RuntimeError):
    """The bus was used before `start()` or after `close()`."""


@dataclass(frozen=True)
class DeadLetter:
    """A message that a queue's handler gave up on."""

    id: str
    queue: str
    handler: str
    body: bytes
    envelope: Envelope | None  # None when the body could not be decoded
    error: str
    attempts: int
    dead_at: dt.datetime


class MessageBus(Protocol):
    """Publish with confirms; consume with bounded concurrency, retries and a dead-letter queue."""

    async def start(self) -> None:
        """Connect and declare the exchanges."""
        ...

    async def close(self) -> None:
        """Stop consuming, let running handlers finish, disconnect."""
        ...

    async def publish(self, envelope: Envelope, *, exchange: ExchangeName = "events") -> None:
        """Publish `envelope` with its `event_type` as routing key; returns once confirmed."""
        ...

    async def subscribe(
        self,
        queue: str,
        bindings: Sequence[str],
        handler: Handler,
        *,
        exchange: ExchangeName = "events",
        prefetch: int = 32,
        max_retries: int = 3,
        retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
    ) -> None:
        """Consume `queue` (bound to topic patterns `bindings`) with `handler`.

        Up to `prefetch` handlers run at once; a message is acked once its handler returned. A
        failing handler is retried after `retry_delays[n]` (the last delay repeats), then the
        message moves to the queue's dead-letter queue; an undecodable body, or one whose
        handler raises `MalformedMessage`, goes there at once.
        """
        ...

    async def dead_letters(self, queue: str, limit: int = 100) -> list[DeadLetter]:
        """The first `limit` dead letters of `queue`, without removing them."""
        ...

    async def replay_dead_letters(self, queue: str, ids: Sequence[str] | None = None) -> int:
        """Move dead letters (all, or those with `ids`) back to `queue` with a fresh retry count."""
        ...

    async def ping(self) -> None:
        """Raise if the broker is unreachable (readiness check)."""
        ...

    async def queue_depth(self, queue: str) -> QueueDepth:
        """How many messages wait in `queue` (consumer lag) and in its dead-letter queue."""
        ...


@dataclass(frozen=True)
class QueueDepth:
    ready: int
    dead: int


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int
    delays: tuple[float, ...]

    def delay(self, retries_done: int) -> float:
        """The wait before retry number `retries_done + 1`."""
        return self.delays[min(retries_done, len(self.delays) - 1)]


def check_subscription(
    queue: str,
    bindings: Sequence[str],
    prefetch: int,
    max_retries: int,
    retry_delays: Sequence[float],
) -> RetryPolicy:
    """Validate `subscribe` arguments (the same on every adapter) and build the retry policy."""
    if not queue or queue.endswith((".retry", ".dlq")):
        raise ValueError(f"bad queue name {queue!r}")
    if not bindings:
        raise ValueError("a subscription needs at least one binding")
    if prefetch < 1:
        raise ValueError("prefetch must be at least 1")
    if max_retries < 0:
        raise ValueError("max_retries must not be negative")
    if max_retries and not retry_delays:
        raise ValueError("retry_delays must not be empty when retrying")
    if any(d < 0 for d in retry_delays):
        raise ValueError("retry delays must not be negative")
    return RetryPolicy(max_retries, tuple(retry_delays) or (0.0,))


def describe_error(exc: BaseException) -> str:
    """The error text kept with a dead letter."""
    return f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]


def handler_name(queue: str, handler: Handler) -> str:
    name = getattr(handler, "__qualname__", None) or type(handler).__qualname__
    return f"{queue}:{getattr(handler, '__module__', '?')}.{name}"


@lru_cache(maxsize=4096)
def topic_matches(pattern: str, routing_key: str) -> bool:
    """AMQP topic matching: `*` is exactly one word, `#` zero or more words."""
    return _match(tuple(pattern.split(".")), tuple(routing_key.split(".")))


def _match(pattern: tuple[str, ...], words: tuple[str, ...]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(_match(rest, words[i:]) for i in range(len(words) + 1))
    if not words:
        return False
    return head in ("*", words[0]) and _match(rest, words[1:])

"""Retry and dead-letter plumbing of `RabbitBus`: header bookkeeping, listing and replay.

Listing must not lose or reorder anything for good, so it reads the DLQ with `basic.get` without
acking, on a channel of its own, and finally rejects every read message with `requeue=True`; if
the process dies meanwhile, closing the channel gives the messages back to the broker all the same.
While a listing or a replay runs, the messages it holds are invisible to a concurrent listing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from aio_pika import DeliveryMode, Message
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from aio_pika.exceptions import ChannelNotFoundEntity

from fleet.common.db import utcnow
from fleet.common.messaging.bus import (
    DEAD_AT,
    DEAD_ERROR,
    DEAD_HANDLER,
    DEAD_LETTER_ID,
    RETRY_COUNT,
    DeadLetter,
    PublishError,
)
from fleet.common.messaging.envelope import Envelope, MalformedMessage

ATTEMPTS = "x-attempts"
_OWN_HEADERS = {RETRY_COUNT, DEAD_LETTER_ID, DEAD_ERROR, DEAD_HANDLER, DEAD_AT, ATTEMPTS}
# Headers RabbitMQ adds when it dead-letters (the retry queue does); not worth carrying along.
_BROKER_PREFIXES = ("x-death", "x-first-death", "x-last-death")


def retry_queue(queue: str) -> str:
    return f"{queue}.retry"


def dlq(queue: str) -> str:
    return f"{queue}.dlq"


def retry_count(message: AbstractIncomingMessage) -> int:
    value = (message.headers or {}).get(RETRY_COUNT, 0)
    return value if isinstance(value, int) and value >= 0 else 0


def copy_message(
    message: AbstractIncomingMessage,
    *,
    headers: Mapping[str, Any],
    expiration: float | None = None,
) -> Message:
    """A persistent copy of `message` with our bookkeeping headers replaced by `headers`."""
    kept = {
        k: v
        for k, v in (message.headers or {}).items()
        if k not in _OWN_HEADERS and not k.startswith(_BROKER_PREFIXES)
    }
    return Message(
        message.body,
        headers={**kept, **headers},
        content_type=message.content_type,
        delivery_mode=DeliveryMode.PERSISTENT,
        message_id=message.message_id,
        correlation_id=message.correlation_id,
        reply_to=message.reply_to,
        timestamp=message.timestamp,
        type=message.type,
        app_id=message.app_id,
        expiration=expiration,
    )


def dead_letter_message(
    message: AbstractIncomingMessage, *, error: str, handler: str, attempts: int
) -> Message:
    return copy_message(
        message,
        headers={
            DEAD_LETTER_ID: uuid.uuid4().hex,
            DEAD_ERROR: error,
            DEAD_HANDLER: handler,
            DEAD_AT: utcnow().isoformat(),
            ATTEMPTS: attempts,
        },
    )


def to_dead_letter(queue: str, message: AbstractIncomingMessage) -> DeadLetter:
    headers = message.headers or {}
    try:
        envelope: Envelope | None = Envelope.decode(message.body)
    except MalformedMessage:
        envelope = None
    attempts = headers.get(ATTEMPTS, 0)
    return DeadLetter(
        id=_text(headers.get(DEAD_LETTER_ID)) or message.message_id or "",
        queue=queue,
        handler=_text(headers.get(DEAD_HANDLER)),
        body=message.body,
        envelope=envelope,
        error=_text(headers.get(DEAD_ERROR)),
        attempts=attempts if isinstance(attempts, int) else 0,
        dead_at=_when(headers.get(DEAD_AT)),
    )


async def list_dead_letters(
    connection: AbstractRobustConnection, queue: str, limit: int
) -> list[DeadLetter]:
    """The first `limit` dead letters of `queue`, all put back where they were."""
    async with _dlq_session(connection, queue) as (_channel, source, held):
        if source is None:
            return []
        while len(held) < limit:
            message = await source.get(no_ack=False, fail=False)
            if message is None:
                break
            held.append(message)
        return [to_dead_letter(queue, m) for m in held]


async def replay(
    connection: AbstractRobustConnection, queue: str, ids: Sequence[str] | None
) -> int:
    """Republish chosen dead letters to `queue` (confirmed), then ack them off the DLQ."""
    wanted = None if ids is None else set(ids)
    moved = 0
    async with _dlq_session(connection, queue) as (channel, source, held):
        if source is None or wanted == set():
            return 0
        # Bounded by the count at the start: messages that die again meanwhile stay for later.
        for _ in range(source.declaration_result.message_count or 0):
            message = await source.get(no_ack=False, fail=False)
            if message is None:
                break
            dead_id = _text((message.headers or {}).get(DEAD_LETTER_ID))
            if wanted is not None and dead_id not in wanted:
                held.append(message)
                continue
            fresh = copy_message(message, headers={})
            confirm = await channel.default_exchange.publish(fresh, routing_key=queue)
            if confirm is None:
                raise PublishError(f"replay to {queue} was not confirmed")
            await message.ack()
            moved += 1
            if wanted is not None:
                wanted.discard(dead_id)
                if not wanted:
                    break
    return moved


@asynccontextmanager
async def _dlq_session(
    connection: AbstractRobustConnection, queue: str
) -> AsyncIterator[tuple[AbstractChannel, AbstractQueue | None, list[AbstractIncomingMessage]]]:
    """A private channel on the DLQ (None if it does not exist); held messages are requeued."""
    channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
    held: list[AbstractIncomingMessage] = []
    try:
        try:
            source: AbstractQueue | None = await channel.get_queue(dlq(queue), ensure=True)
        except ChannelNotFoundEntity:
            source = None
        yield channel, source, held
    finally:
        with contextlib.suppress(Exception):
            for message in held:
                await message.nack(requeue=True)
        with contextlib.suppress(Exception):
            await channel.close()


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else ""


def _when(value: Any) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(_text(value))
    except ValueError:
        return utcnow()
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)

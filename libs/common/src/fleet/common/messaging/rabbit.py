"""`RabbitBus`: the `MessageBus` on RabbitMQ (aio-pika), for the distributed modes.

Topology, declared by whoever needs it (idempotent, all durable):

* topic exchanges `fleet.events` and `fleet.commands`;
* per subscribed queue `<q>`: `<q>` itself, `<q>.retry` (no consumer; every message carries its
  own TTL = the retry delay and is dead-lettered back to `<q>` through the default exchange when it
  expires) and `<q>.dlq` (where messages end with their error in headers, until replayed).

Publishing waits for the publisher confirm. A command that no queue is bound to is returned by
the broker (`mandatory`) and raises `UnroutableMessage`; an event no queue wants is dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika import DeliveryMode, ExchangeType, Message
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from aio_pika.exceptions import AMQPError, DeliveryError
from aio_pika.exceptions import PublishError as AmqpPublishError

from fleet.common.logging import get_logger
from fleet.common.messaging import _rabbit_dead as dead
from fleet.common.messaging.bus import (
    DEFAULT_RETRY_DELAYS,
    EXCHANGES,
    RETRY_COUNT,
    BusNotStarted,
    DeadLetter,
    ExchangeName,
    Handler,
    PublishError,
    QueueDepth,
    RetryPolicy,
    UnroutableMessage,
    check_subscription,
    describe_error,
    handler_name,
)
from fleet.common.messaging.envelope import TRACE_HEADERS, Envelope, MalformedMessage

log = get_logger("fleet.bus.rabbit")


@dataclass
class _Subscription:
    queue: AbstractQueue
    channel: AbstractChannel
    handler: Handler
    policy: RetryPolicy
    name: str
    tag: str = ""


class RabbitBus:
    """A `MessageBus` on RabbitMQ. `quorum=True` declares quorum queues (production clusters)."""

    def __init__(
        self,
        url: str,
        service: str,
        *,
        quorum: bool = False,
        publish_timeout: float = 10.0,
        close_grace: float = 10.0,
    ) -> None:
        self.url = url
        self.service = service
        self.quorum = quorum
        self.publish_timeout = publish_timeout
        self.close_grace = close_grace
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchanges: dict[ExchangeName, AbstractExchange] = {}
        self._subscriptions: list[_Subscription] = []
        self._inflight: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        # The vhost is the URL's path; aio-pika reads it from there.
        self._connection = await aio_pika.connect_robust(
            self.url, client_properties={"connection_name": self.service}
        )
        # `on_return_raises`: a mandatory publish that no queue takes fails instead of vanishing.
        self._channel = await self._connection.channel(
            publisher_confirms=True, on_return_raises=True
        )
        for name, exchange in EXCHANGES.items():
            self._exchanges[name] = await self._channel.declare_exchange(
                exchange, ExchangeType.TOPIC, durable=True
            )

    async def close(self) -> None:
        if self._connection is None:
            return
        for sub in self._subscriptions:
            try:
                await sub.queue.cancel(sub.tag)
            except (AMQPError, ConnectionError, RuntimeError) as exc:
                log.warning("cancel failed", queue=sub.queue.name, error=describe_error(exc))
        if self._inflight:
            await asyncio.wait(list(self._inflight), timeout=self.close_grace)
        connection, self._connection = self._connection, None
        self._channel = None
        self._exchanges.clear()
        self._subscriptions.clear()
        # Messages whose handler has not finished are unacked: the broker redelivers them.
        await connection.close()

    async def ping(self) -> None:
        channel = self._require_channel()
        # A passive declare is a real round trip; a reconnecting channel must not hang the probe.
        async with asyncio.timeout(5.0):
            await channel.get_exchange(EXCHANGES["events"], ensure=True)

    async def publish(self, envelope: Envelope, *, exchange: ExchangeName = "events") -> None:
        message = Message(
            envelope.encode(),
            headers={**envelope.headers},
            content_type="application/json",
            delivery_mode=DeliveryMode.PERSISTENT,
            message_id=str(envelope.event_id),
            correlation_id=envelope.correlation_id,
            reply_to=envelope.reply_to,
            timestamp=envelope.occurred_at,
            type=envelope.event_type,
            app_id=envelope.producer,
        )
        await self._publish(
            self._exchange(exchange), message, envelope.event_type, mandatory=exchange == "commands"
        )

    async def publish_raw(
        self, body: bytes, routing_key: str, *, exchange: ExchangeName = "events"
    ) -> None:
        """Publish bytes as they are (tools and tests: e.g. a malformed body)."""
        message = Message(body, delivery_mode=DeliveryMode.PERSISTENT)
        await self._publish(
            self._exchange(exchange), message, routing_key, mandatory=exchange == "commands"
        )

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
        policy = check_subscription(queue, bindings, prefetch, max_retries, retry_delays)
        connection = self._require_connection()
        # One channel per subscription: basic_qos then bounds this consumer alone.
        channel = await connection.channel(publisher_confirms=True)
        await channel.set_qos(prefetch_count=prefetch)
        main = await self._declare_queues(channel, queue)
        source = await channel.declare_exchange(
            EXCHANGES[exchange], ExchangeType.TOPIC, durable=True
        )
        for pattern in bindings:
            await main.bind(source, routing_key=pattern)
        sub = _Subscription(main, channel, handler, policy, handler_name(queue, handler))

        async def on_message(message: AbstractIncomingMessage) -> None:
            await self._on_message(sub, message)

        sub.tag = await main.consume(on_message)
        self._subscriptions.append(sub)

    async def dead_letters(self, queue: str, limit: int = 100) -> list[DeadLetter]:
        return await dead.list_dead_letters(self._require_connection(), queue, limit)

    async def replay_dead_letters(self, queue: str, ids: Sequence[str] | None = None) -> int:
        return await dead.replay(self._require_connection(), queue, ids)

    async def queue_depth(self, queue: str) -> QueueDepth:
        # A passive declare of a missing queue closes its channel: use a throwaway one.
        async with asyncio.timeout(5.0), self._require_connection().channel() as channel:
            main = await channel.declare_queue(queue, passive=True)
            dlq = await channel.declare_queue(dead.dlq(queue), passive=True)
        return QueueDepth(
            main.declaration_result.message_count or 0, dlq.declaration_result.message_count or 0
        )

    def queue_arguments(self) -> dict[str, Any]:
        return {"x-queue-type": "quorum"} if self.quorum else {}

    async def _declare_queues(self, channel: AbstractChannel, queue: str) -> AbstractQueue:
        args = self.queue_arguments()
        main = await channel.declare_queue(queue, durable=True, arguments=args)
        retry_args = {
            **args,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": queue,
        }
        await channel.declare_queue(dead.retry_queue(queue), durable=True, arguments=retry_args)
        await channel.declare_queue(dead.dlq(queue), durable=True, arguments=args)
        return main

    async def _publish(
        self, exchange: AbstractExchange, message: Message, key: str, *, mandatory: bool = True
    ) -> None:
        try:
            # The outer timeout also bounds waiting for a robust channel that is reconnecting.
            async with asyncio.timeout(self.publish_timeout):
                await exchange.publish(
                    message, routing_key=key, mandatory=mandatory, timeout=self.publish_timeout
                )
        except AmqpPublishError as exc:
            raise UnroutableMessage(f"no queue is bound to {key} on {exchange.name}") from exc
        except DeliveryError as exc:
            raise PublishError(f"broker refused {key}: {exc}") from exc
        except (AMQPError, ConnectionError, RuntimeError, TimeoutError) as exc:
            raise PublishError(f"publishing {key} failed: {describe_error(exc)}") from exc

    async def _on_message(self, sub: _Subscription, message: AbstractIncomingMessage) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
        try:
            await self._handle(sub, message)
        except Exception as exc:
            # Retry/DLQ publish or ack failed (broker gone): leave it to redelivery.
            log.warning("could not settle message", queue=sub.queue.name, error=describe_error(exc))
            await _requeue_quietly(message)
        finally:
            if task is not None:
                self._inflight.discard(task)

    async def _handle(self, sub: _Subscription, message: AbstractIncomingMessage) -> None:
        try:
            envelope = _envelope_of(message)
        except MalformedMessage as exc:
            await self._to_dlq(sub, message, f"malformed message: {exc}", attempts=0)
            return
        retries = dead.retry_count(message)
        try:
            await sub.handler(envelope)
        except Exception as exc:
            # A handler that finds the message malformed will never accept it: no retries.
            if retries >= sub.policy.max_retries or isinstance(exc, MalformedMessage):
                await self._to_dlq(sub, message, describe_error(exc), attempts=retries + 1)
                return
            await self._to_retry(sub, message, retries, exc)
            return
        await message.ack()

    async def _to_retry(
        self, sub: _Subscription, message: AbstractIncomingMessage, retries: int, exc: Exception
    ) -> None:
        log.warning(
            "handler failed, will retry",
            queue=sub.queue.name,
            retry=retries + 1,
            error=describe_error(exc),
        )
        copy = dead.copy_message(
            message,
            headers={RETRY_COUNT: retries + 1},
            expiration=sub.policy.delay(retries),
        )
        await self._publish(self._default_exchange(), copy, dead.retry_queue(sub.queue.name))
        await message.ack()

    async def _to_dlq(
        self, sub: _Subscription, message: AbstractIncomingMessage, error: str, *, attempts: int
    ) -> None:
        log.error("message dead-lettered", queue=sub.queue.name, error=error)
        copy = dead.dead_letter_message(message, error=error, handler=sub.name, attempts=attempts)
        await self._publish(self._default_exchange(), copy, dead.dlq(sub.queue.name))
        await message.ack()

    def _require_connection(self) -> AbstractRobustConnection:
        if self._connection is None:
            raise BusNotStarted("the RabbitMQ bus is not started")
        return self._connection

    def _require_channel(self) -> AbstractChannel:
        if self._channel is None:
            raise BusNotStarted("the RabbitMQ bus is not started")
        return self._channel

    def _exchange(self, name: ExchangeName) -> AbstractExchange:
        self._require_channel()
        return self._exchanges[name]

    def _default_exchange(self) -> AbstractExchange:
        return self._require_channel().default_exchange


def _envelope_of(message: AbstractIncomingMessage) -> Envelope:
    """The envelope in the body; trace headers added by AMQP instrumentation fill the gaps."""
    envelope = Envelope.decode(message.body)
    extra = {
        k: v
        for k, v in (message.headers or {}).items()
        if k in TRACE_HEADERS and isinstance(v, str) and k not in envelope.headers
    }
    if not extra:
        return envelope
    return envelope.model_copy(update={"headers": {**envelope.headers, **extra}})


async def _requeue_quietly(message: AbstractIncomingMessage) -> None:
    try:
        await message.nack(requeue=True)
    except Exception as exc:  # the channel is gone; the broker requeues on its own
        log.debug("nack failed", error=describe_error(exc))

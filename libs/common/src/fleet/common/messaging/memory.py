"""`InMemoryBus`: the bus of embedded mode and of unit tests, with RabbitMQ's semantics in-process.

Queues, retries and dead letters live in memory, so they are lost when the process stops; the
transactional outbox still holds every message that was not yet published.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from fleet.common.db import utcnow
from fleet.common.logging import get_logger
from fleet.common.messaging.bus import (
    DEFAULT_RETRY_DELAYS,
    BusNotStarted,
    DeadLetter,
    ExchangeName,
    Handler,
    QueueDepth,
    RetryPolicy,
    UnroutableMessage,
    check_subscription,
    describe_error,
    handler_name,
    topic_matches,
)
from fleet.common.messaging.envelope import Envelope, MalformedMessage

log = get_logger("fleet.bus.memory")


@dataclass(frozen=True)
class _Delivery:
    body: bytes
    retries: int = 0


@dataclass
class _Queue:
    name: str
    items: asyncio.Queue[_Delivery] = field(default_factory=asyncio.Queue)
    bindings: dict[ExchangeName, set[str]] = field(
        default_factory=lambda: {"events": set(), "commands": set()}
    )
    dead: dict[str, DeadLetter] = field(default_factory=dict)

    def bound_to(self, exchange: ExchangeName, routing_key: str) -> bool:
        return any(topic_matches(p, routing_key) for p in self.bindings[exchange])


@dataclass(frozen=True)
class _Subscription:
    queue: _Queue
    handler: Handler
    policy: RetryPolicy
    name: str


class InMemoryBus:
    """A `MessageBus` in one process: topic routing, bounded concurrency, retries, DLQ, replay."""

    def __init__(self) -> None:
        self._queues: dict[str, _Queue] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._started = False

    async def start(self) -> None:
        self._started = True

    async def close(self) -> None:
        self._started = False
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    async def ping(self) -> None:
        self._require_started()

    async def queue_depth(self, queue: str) -> QueueDepth:
        q = self._queues.get(queue)
        return QueueDepth(q.items.qsize(), len(q.dead)) if q else QueueDepth(0, 0)

    async def publish(self, envelope: Envelope, *, exchange: ExchangeName = "events") -> None:
        await self.publish_raw(envelope.encode(), envelope.event_type, exchange=exchange)

    async def publish_raw(
        self, body: bytes, routing_key: str, *, exchange: ExchangeName = "events"
    ) -> None:
        """Publish bytes as they are (tools and tests: e.g. a malformed body)."""
        self._require_started()
        targets = [q for q in self._queues.values() if q.bound_to(exchange, routing_key)]
        if not targets and exchange == "commands":
            raise UnroutableMessage(f"no queue is bound to command {routing_key}")
        for queue in targets:
            queue.items.put_nowait(_Delivery(body))

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
        self._require_started()
        q = self._queues.setdefault(queue, _Queue(queue))
        q.bindings[exchange].update(bindings)
        sub = _Subscription(q, handler, policy, handler_name(queue, handler))
        # `prefetch` workers share the queue: at most `prefetch` handlers run at once.
        for _ in range(prefetch):
            self._spawn(self._work(sub))

    async def dead_letters(self, queue: str, limit: int = 100) -> list[DeadLetter]:
        q = self._queues.get(queue)
        return list(q.dead.values())[:limit] if q else []

    async def replay_dead_letters(self, queue: str, ids: Sequence[str] | None = None) -> int:
        q = self._queues.get(queue)
        if q is None:
            return 0
        chosen = list(q.dead) if ids is None else [i for i in dict.fromkeys(ids) if i in q.dead]
        for dead_id in chosen:
            q.items.put_nowait(_Delivery(q.dead.pop(dead_id).body))
        return len(chosen)

    def _require_started(self) -> None:
        if not self._started:
            raise BusNotStarted("the in-memory bus is not started")

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _work(self, sub: _Subscription) -> None:
        while True:
            delivery = await sub.queue.items.get()
            try:
                await self._deliver(sub, delivery)
            except Exception:  # a bug here must not kill the worker
                log.exception("delivery failed", queue=sub.queue.name)

    async def _deliver(self, sub: _Subscription, delivery: _Delivery) -> None:
        try:
            envelope = Envelope.decode(delivery.body)
        except MalformedMessage as exc:
            self._dead(sub, delivery, None, f"malformed message: {exc}", attempts=0)
            return
        try:
            await sub.handler(envelope)
        except Exception as exc:
            # A handler that finds the message malformed will never accept it: no retries.
            if delivery.retries >= sub.policy.max_retries or isinstance(exc, MalformedMessage):
                attempts = delivery.retries + 1
                self._dead(sub, delivery, envelope, describe_error(exc), attempts=attempts)
                return
            log.warning(
                "handler failed, will retry",
                queue=sub.queue.name,
                event_id=str(envelope.event_id),
                retry=delivery.retries + 1,
                error=describe_error(exc),
            )
            delay = sub.policy.delay(delivery.retries)
            self._spawn(self._requeue_later(sub.queue, delivery, delay))

    async def _requeue_later(self, queue: _Queue, delivery: _Delivery, delay: float) -> None:
        await asyncio.sleep(delay)
        queue.items.put_nowait(_Delivery(delivery.body, delivery.retries + 1))

    def _dead(
        self,
        sub: _Subscription,
        delivery: _Delivery,
        envelope: Envelope | None,
        error: str,
        *,
        attempts: int,
    ) -> None:
        dead = DeadLetter(
            id=uuid.uuid4().hex,
            queue=sub.queue.name,
            handler=sub.name,
            body=delivery.body,
            envelope=envelope,
            error=error,
            attempts=attempts,
            dead_at=utcnow(),
        )
        sub.queue.dead[dead.id] = dead
        log.error("message dead-lettered", queue=sub.queue.name, error=error, id=dead.id)

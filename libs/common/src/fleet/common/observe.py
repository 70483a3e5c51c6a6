"""Gauges read at scrape time: outbox backlog and age, consumer lag and dead letters per queue.

They are refreshed by `/metrics` itself (a few cheap queries), so they are never staler than the
scrape and no background task is needed. A dependency that does not answer leaves the previous
value and is logged; it never fails the scrape.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Gauge

from fleet.common.logging import get_logger
from fleet.common.messaging import MessageBus
from fleet.common.outbox import OutboxRelay

log = get_logger("fleet.observe")
REFRESH_TIMEOUT_S = 2.0


class MessagingGauges:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.outbox_backlog = Gauge(
            "outbox_backlog",
            "Committed messages not yet published.",
            ["service"],
            registry=registry,
        )
        self.outbox_age = Gauge(
            "outbox_oldest_age_seconds",
            "Age of the oldest unpublished outbox message.",
            ["service"],
            registry=registry,
        )
        self.queue_depth = Gauge(
            "queue_depth",
            "Messages waiting in a consumer queue (consumer lag).",
            ["queue"],
            registry=registry,
        )
        self.dead_letters = Gauge(
            "dead_letters",
            "Messages in a queue's dead-letter queue.",
            ["queue"],
            registry=registry,
        )

    async def refresh(
        self, relays: dict[str, OutboxRelay], bus: MessageBus, queues: Iterable[str]
    ) -> None:
        """Read every gauge's current value (bounded by REFRESH_TIMEOUT_S)."""
        try:
            async with asyncio.timeout(REFRESH_TIMEOUT_S):
                for service, relay in relays.items():
                    count, age = await relay.backlog()
                    self.outbox_backlog.labels(service).set(count)
                    self.outbox_age.labels(service).set(age)
                for queue in queues:
                    depth = await bus.queue_depth(queue)
                    self.queue_depth.labels(queue).set(depth.ready)
                    self.dead_letters.labels(queue).set(depth.dead)
        except Exception as exc:  # a scrape must not fail because a dependency is slow
            log.warning("metrics refresh incomplete", error=f"{type(exc).__name__}: {exc}")

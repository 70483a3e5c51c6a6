"""How a benchmark learns that a booking settled: the trip's events on the bus, or polling.

Events (the default when the broker is known) cost the platform nothing: a private queue bound to
`trip.confirmed`/`trip.rejected` on `fleet.events` receives what the trip service publishes anyway,
as a rider's app notified by push would. Polling `GET /trips/{id}` is the fallback for a stack
whose broker the benchmark cannot reach; every poll is a request through the gateway, so on a
small machine the polling itself takes CPU from the platform (keep the interval modest).
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

import aio_pika
import orjson

from fleet.platform.client import Platform, User

SETTLED = {"trip.confirmed": "confirmed", "trip.rejected": "rejected"}


class Observer(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def settled(self, rider: User, trip_id: str, within: float) -> tuple[str, float]:
        """(final status, perf_counter() when it was seen); TimeoutError after `within` s."""
        ...


class EventObserver:
    """Settlements seen on the bus: `trip.confirmed` / `trip.rejected` events."""

    def __init__(self, amqp_url: str) -> None:
        self.amqp_url = amqp_url
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._seen: dict[str, tuple[str, float]] = {}
        self._waiting: dict[str, asyncio.Future[tuple[str, float]]] = {}

    async def start(self) -> None:
        self._connection = await aio_pika.connect_robust(self.amqp_url)
        channel = await self._connection.channel()
        exchange = await channel.declare_exchange(
            "fleet.events", aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        for key in SETTLED:
            await queue.bind(exchange, routing_key=key)
        await queue.consume(self._on_message, no_ack=True)

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()

    async def _on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        seen_at = time.perf_counter()
        envelope = orjson.loads(message.body)
        trip_id = str(envelope["data"]["trip_id"])
        outcome = (SETTLED[envelope["event_type"]], seen_at)
        waiter = self._waiting.pop(trip_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(outcome)
        else:  # settled before the 202 reached the client (or a stray event)
            self._seen[trip_id] = outcome

    async def settled(self, rider: User, trip_id: str, within: float) -> tuple[str, float]:
        del rider  # events identify the trip by themselves
        if (early := self._seen.pop(trip_id, None)) is not None:
            return early
        waiter = asyncio.get_running_loop().create_future()
        self._waiting[trip_id] = waiter
        try:
            return await asyncio.wait_for(waiter, within)
        finally:
            self._waiting.pop(trip_id, None)


class PollObserver:
    """Settlements seen by polling `GET /trips/{id}` every `interval` seconds."""

    def __init__(self, api: Platform, interval: float) -> None:
        self.api = api
        self.interval = interval
        self.polls = 0

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def settled(self, rider: User, trip_id: str, within: float) -> tuple[str, float]:
        deadline = time.perf_counter() + within
        while True:
            await asyncio.sleep(self.interval)
            self.polls += 1
            status = str((await self.api.trip(rider, trip_id))["status"])
            if status != "pending":
                return status, time.perf_counter()
            if time.perf_counter() > deadline:
                raise TimeoutError(f"trip {trip_id} still pending after {within}s")

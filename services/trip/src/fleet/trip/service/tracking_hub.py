"""In-process fan-out of new tracking points to the live streams of this process.

The tracking consumer publishes what it committed; each open stream of that trip has a bounded
queue. The hub is a wake-up, not the record: a stream whose queue overflowed, or that runs on
another replica than the consumer, catches up from the database on its next heartbeat.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from fleet.trip.domain.tracking import TrackingPoint

QUEUE_SIZE = 256


@dataclass(frozen=True, slots=True)
class Ended:
    """The trip is over: streams send what is left and close."""

    status: str


Item = Sequence[TrackingPoint] | Ended


class TrackingHub:
    def __init__(self) -> None:
        self._subscribers: dict[uuid.UUID, set[asyncio.Queue[Item]]] = {}

    def subscribe(self, trip_id: uuid.UUID) -> asyncio.Queue[Item]:
        queue: asyncio.Queue[Item] = asyncio.Queue(QUEUE_SIZE)
        self._subscribers.setdefault(trip_id, set()).add(queue)
        return queue

    def unsubscribe(self, trip_id: uuid.UUID, queue: asyncio.Queue[Item]) -> None:
        queues = self._subscribers.get(trip_id)
        if queues is not None:
            queues.discard(queue)
            if not queues:
                del self._subscribers[trip_id]

    def listeners(self, trip_id: uuid.UUID) -> int:
        return len(self._subscribers.get(trip_id, ()))

    def publish(self, trip_id: uuid.UUID, item: Item) -> None:
        for queue in self._subscribers.get(trip_id, ()):
            try:
                queue.put_nowait(item)
            except asyncio.QueueFull:
                # A slow reader misses the wake-up, not the points: it re-reads the database.
                continue

"""A trip's positions as a live feed: the stored ones, then new ones until the trip ends.

The feed subscribes to the hub before reading the database, so no point falls between the two;
points seen twice (hub and database) are sent once. Every `heartbeat` seconds without news it
yields a `Heartbeat`, re-reads the trip (another replica may have completed it) and catches up
on points the hub did not bring (a full queue, a consumer on another replica).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from fleet.common.auth import Principal
from fleet.common.runtime import ServiceRuntime
from fleet.trip.adapters.repository import SqlTrackingRepository, SqlTripRepository
from fleet.trip.domain.tracking import TrackingPoint
from fleet.trip.domain.trips import TripStatus
from fleet.trip.service.tracking import hub_of
from fleet.trip.service.tracking_hub import Ended
from fleet.trip.service.trips import get_trip

HEARTBEAT_KEY = "tracking_heartbeat_s"
DEFAULT_HEARTBEAT_S = 15.0
PAGE = 500
OVER = (TripStatus.COMPLETED, TripStatus.CANCELLED, TripStatus.REJECTED)


@dataclass(frozen=True, slots=True)
class Heartbeat:
    pass


Update = TrackingPoint | Heartbeat | Ended


class _Feed:
    def __init__(self, rt: ServiceRuntime, trip_id: uuid.UUID) -> None:
        self.rt = rt
        self.trip_id = trip_id
        self.sent: set[uuid.UUID] = set()
        self.newest: dt.datetime | None = None

    def fresh(self, points: list[TrackingPoint]) -> list[TrackingPoint]:
        new = [p for p in points if p.id not in self.sent]
        for p in new:
            self.sent.add(p.id)
            if self.newest is None or p.recorded_at > self.newest:
                self.newest = p.recorded_at
        return new

    async def stored(self) -> list[TrackingPoint]:
        """Points from the newest one sent onward (all of them at first), oldest first."""
        since = self.newest or dt.datetime.min.replace(tzinfo=dt.UTC)
        found: list[TrackingPoint] = []
        while True:
            async with self.rt.db.session() as session:
                chunk = await SqlTrackingRepository(session).since(self.trip_id, since, PAGE)
            found += chunk
            if len(chunk) < PAGE:
                return self.fresh(found)
            since = chunk[-1].recorded_at
            if chunk[0].recorded_at == since:  # a page of one instant: cannot advance
                return self.fresh(found)

    async def status(self) -> TripStatus | None:
        async with self.rt.db.session() as session:
            trip = await SqlTripRepository(session).get(self.trip_id)
        return trip.status if trip else None


async def follow(rt: ServiceRuntime, who: Principal, trip_id: uuid.UUID) -> AsyncIterator[Update]:
    """The trip's feed for `who`; raises 404 at once if they may not see the trip."""
    await get_trip(rt.db, who, trip_id)
    heartbeat = float(rt.extras.get(HEARTBEAT_KEY, DEFAULT_HEARTBEAT_S))
    return _updates(_Feed(rt, trip_id), heartbeat)


async def _updates(feed: _Feed, heartbeat: float) -> AsyncIterator[Update]:
    hub = hub_of(feed.rt)
    # Subscribed before the first read: a point committed in between comes by one or the other.
    queue = hub.subscribe(feed.trip_id)
    try:
        for point in await feed.stored():
            yield point
        while True:
            status = await feed.status()
            if status is None or status in OVER:
                for point in await feed.stored():
                    yield point
                yield Ended(status.value if status else "gone")
                return
            try:
                async with asyncio.timeout(heartbeat):
                    item = await queue.get()
            except TimeoutError:
                yield Heartbeat()
                for point in await feed.stored():
                    yield point
                continue
            while True:  # everything already queued, then one status check
                if not isinstance(item, Ended):
                    for point in feed.fresh(list(item)):
                        yield point
                if queue.empty():
                    break
                item = queue.get_nowait()
    finally:
        hub.unsubscribe(feed.trip_id, queue)

"""Live tracking: vehicle positions become tracking points of in-progress trips.

The vehicle service publishes one `vehicle.positions` event per stored telemetry batch with the
readings of vehicles held for a trip (and that trip as a hint). Here, inside the inbox
transaction, each position is kept if its vehicle is on an in-progress trip; a reading already
stored for that trip and instant (telemetry redelivered after a crash) is kept once. After the
commit the new points go to the live streams of this process, and a trip's end closes them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession

from fleet.common.db import after_commit
from fleet.common.messaging import Envelope, Handler, MalformedMessage, default_registry
from fleet.common.runtime import ServiceRuntime
from fleet.contracts.events import (
    TripCancelled,
    TripCompleted,
    TripPosition,
    VehiclePositionsReported,
)
from fleet.trip.adapters.repository import SqlTrackingRepository
from fleet.trip.domain.tracking import TrackingPoint
from fleet.trip.service.tracking_hub import Ended, TrackingHub

HUB_KEY = "tracking_hub"


def hub_of(rt: ServiceRuntime) -> TrackingHub:
    hub = rt.extras.get(HUB_KEY)
    if not isinstance(hub, TrackingHub):
        hub = rt.extras[HUB_KEY] = TrackingHub()
    return hub


async def record_positions(
    session: AsyncSession, positions: list[TripPosition]
) -> list[TrackingPoint]:
    """Store the positions of vehicles on in-progress trips; the points stored."""
    repo = SqlTrackingRepository(session)
    hinted = {p.trip_id for p in positions if p.trip_id is not None}
    unhinted = {p.vehicle_id for p in positions if p.trip_id is None}
    trip_of = await repo.in_progress(list(hinted), list(unhinted))
    points = [
        TrackingPoint(
            trip_id=trip_of[p.vehicle_id],
            vehicle_id=p.vehicle_id,
            lat=p.lat,
            lon=p.lon,
            speed_kph=p.speed_kph,
            recorded_at=p.recorded_at,
        )
        for p in positions
        if p.vehicle_id in trip_of and p.trip_id in (None, trip_of[p.vehicle_id])
    ]
    if not points:
        return []
    first = min(p.recorded_at for p in points)
    last = max(p.recorded_at for p in points)
    known = await repo.known_instants(list({p.trip_id for p in points}), first, last)
    fresh: dict[tuple[uuid.UUID, object], TrackingPoint] = {}
    for p in points:
        key = (p.trip_id, p.recorded_at)
        if key not in known and key not in fresh:
            fresh[key] = p
    await repo.add(list(fresh.values()))
    return list(fresh.values())


def tracking_consumer(rt: ServiceRuntime) -> Handler:
    """The `trip.tracking` queue's handler: inbox transaction, then the live streams."""
    hub = hub_of(rt)

    async def handle(session: AsyncSession, envelope: Envelope) -> None:
        if envelope.event_type == VehiclePositionsReported.event_type:
            event = default_registry.parse_as(envelope, VehiclePositionsReported)
            stored = await record_positions(session, event.positions)
            by_trip: dict[uuid.UUID, list[TrackingPoint]] = {}
            for point in sorted(stored, key=lambda p: (p.recorded_at, p.id)):
                by_trip.setdefault(point.trip_id, []).append(point)
            for trip_id, points in by_trip.items():
                after_commit(session, _publisher(hub, trip_id, points))
        elif envelope.event_type in (TripCompleted.event_type, TripCancelled.event_type):
            trip_id = _trip_id(envelope)
            status = "completed" if envelope.event_type == TripCompleted.event_type else "cancelled"
            after_commit(session, _publisher(hub, trip_id, Ended(status)))
        else:
            raise MalformedMessage(f"trip tracking does not handle {envelope.event_type}")

    return rt.consumer("tracking", handle)


def _trip_id(envelope: Envelope) -> uuid.UUID:
    if envelope.event_type == TripCompleted.event_type:
        return default_registry.parse_as(envelope, TripCompleted).trip_id
    return default_registry.parse_as(envelope, TripCancelled).trip_id


def _publisher(
    hub: TrackingHub, trip_id: uuid.UUID, item: list[TrackingPoint] | Ended
) -> Callable[[], None]:
    return lambda: hub.publish(trip_id, item)

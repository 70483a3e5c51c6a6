"""The trip life cycle choreography as the vehicle service follows it, through the live app's bus.

A handled event leaves its id in the vehicle service's inbox: tests wait for that row (not for a
fixed time) before asserting that an event changed nothing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from fleet.common.db import Database, utcnow
from fleet.common.messaging import Envelope, InMemoryBus, Message
from fleet.contracts.events import TripCancelled, TripCompleted, TripStarted
from fleet.vehicle.adapters.tables import inbox
from fleet.vehicle.domain.vehicles import TripClosedError
from fleet.vehicle.service import reservations

Headers = dict[str, str]
MakeVehicle = Callable[..., Awaitable[dict[str, Any]]]
Eventually = Callable[..., Awaitable[Any]]


def envelope(message: Message, trip_id: uuid.UUID) -> Envelope:
    return message.to_envelope(producer="trip", aggregate_type="trip", aggregate_id=trip_id)


def started(trip: uuid.UUID, vehicle_id: uuid.UUID) -> Envelope:
    return envelope(
        TripStarted(
            trip_id=trip, rider_id=uuid.uuid4(), vehicle_id=vehicle_id, started_at=utcnow()
        ),
        trip,
    )


def completed(trip: uuid.UUID, vehicle_id: uuid.UUID, distance_km: float) -> Envelope:
    event = TripCompleted(
        trip_id=trip,
        rider_id=uuid.uuid4(),
        vehicle_id=vehicle_id,
        vehicle_model="Robo-1",
        distance_km=distance_km,
        duration_min=12.5,
        quoted_fare_cents=1500,
        completed_at=utcnow() + dt.timedelta(minutes=12),
    )
    return envelope(event, trip)


def cancelled(trip: uuid.UUID, vehicle_id: uuid.UUID | None) -> Envelope:
    event = TripCancelled(
        trip_id=trip, rider_id=uuid.uuid4(), vehicle_id=vehicle_id, reason="rider cancelled"
    )
    return envelope(event, trip)


class Trips:
    """Publishes trip events as the trip service does and waits until the vehicles handled them."""

    def __init__(
        self,
        bus: InMemoryBus,
        db: Database,
        client: httpx.AsyncClient,
        op: Headers,
        eventually: Eventually,
    ) -> None:
        self.bus, self.db, self.client, self.op = bus, db, client, op
        self.eventually = eventually

    async def publish(self, *envelopes: Envelope) -> None:
        await asyncio.gather(*(self.bus.publish(e) for e in envelopes))

    async def handled(self, *envelopes: Envelope) -> None:
        wanted = {e.event_id for e in envelopes}

        async def all_in_inbox() -> bool:
            async with self.db.session() as session:
                rows = await session.execute(
                    select(inbox.c.event_id).where(inbox.c.event_id.in_(wanted))
                )
                return {r[0] for r in rows} == wanted

        await self.eventually(all_in_inbox)

    async def deliver(self, *envelopes: Envelope) -> None:
        await self.publish(*envelopes)
        await self.handled(*envelopes)

    async def vehicle(self, vehicle_id: uuid.UUID) -> dict[str, Any]:
        r = await self.client.get(f"/vehicles/{vehicle_id}", headers=self.op)
        assert r.status_code == 200, r.text
        return dict(r.json())


@pytest.fixture
async def trips(
    bus: InMemoryBus,
    vehicle_db: Database,
    client: httpx.AsyncClient,
    op: Headers,
    eventually: Eventually,
) -> Trips:
    return Trips(bus, vehicle_db, client, op, eventually)


async def reserved(make_vehicle: MakeVehicle, db: Database) -> tuple[uuid.UUID, uuid.UUID]:
    """A vehicle reserved for a new trip, as the booking saga leaves it: (vehicle id, trip id)."""
    vehicle_id, trip = uuid.UUID((await make_vehicle())["id"]), uuid.uuid4()
    await reservations.reserve_vehicle(db, vehicle_id, trip)
    return vehicle_id, trip


async def test_trip_started_puts_the_vehicle_in_trip(
    trips: Trips, make_vehicle: MakeVehicle, vehicle_db: Database
) -> None:
    vid, trip = await reserved(make_vehicle, vehicle_db)
    await trips.deliver(started(trip, vid))
    assert (await trips.vehicle(vid))["status"] == "in_trip"


async def test_trip_completed_adds_the_distance_and_frees_the_vehicle(
    trips: Trips, make_vehicle: MakeVehicle, vehicle_db: Database
) -> None:
    vid, trip = await reserved(make_vehicle, vehicle_db)
    await trips.deliver(started(trip, vid))
    await trips.deliver(completed(trip, vid, 12.4))
    got = await trips.vehicle(vid)
    assert (got["status"], got["odometer_km"]) == ("available", 12.4)


async def test_the_same_completion_twice_adds_the_distance_once(
    trips: Trips, make_vehicle: MakeVehicle, vehicle_db: Database
) -> None:
    vid, trip = await reserved(make_vehicle, vehicle_db)
    await trips.deliver(started(trip, vid))
    event = completed(trip, vid, 7.5)
    # The same message redelivered, and the same fact published again under a new id.
    republished = event.model_copy(update={"event_id": uuid.uuid4()})

    await trips.publish(event, event, republished)
    await trips.handled(event, republished)

    got = await trips.vehicle(vid)
    assert (got["status"], got["odometer_km"]) == ("available", 7.5)


async def test_trip_cancelled_frees_the_reserved_vehicle(
    trips: Trips, make_vehicle: MakeVehicle, vehicle_db: Database
) -> None:
    vid, trip = await reserved(make_vehicle, vehicle_db)
    await trips.deliver(cancelled(trip, None))
    got = await trips.vehicle(vid)
    assert (got["status"], got["odometer_km"]) == ("available", 0.0)


async def test_trip_cancelled_during_the_ride_frees_the_vehicle_without_mileage(
    trips: Trips, make_vehicle: MakeVehicle, vehicle_db: Database
) -> None:
    vid, trip = await reserved(make_vehicle, vehicle_db)
    await trips.deliver(started(trip, vid))
    await trips.deliver(cancelled(trip, vid))
    got = await trips.vehicle(vid)
    assert (got["status"], got["odometer_km"]) == ("available", 0.0)


async def test_a_completion_overtaking_the_start_leaves_the_vehicle_available(
    trips: Trips, make_vehicle: MakeVehicle, vehicle_db: Database
) -> None:
    vid, trip = await reserved(make_vehicle, vehicle_db)
    await trips.deliver(completed(trip, vid, 3.0))
    await trips.deliver(started(trip, vid))
    got = await trips.vehicle(vid)
    assert (got["status"], got["odometer_km"]) == ("available", 3.0)


async def test_late_events_of_a_finished_trip_leave_the_next_trip_alone(
    trips: Trips, make_vehicle: MakeVehicle, vehicle_db: Database, bus: InMemoryBus
) -> None:
    vid, first = await reserved(make_vehicle, vehicle_db)
    await trips.deliver(started(first, vid), completed(first, vid, 5.0))
    second = uuid.uuid4()
    await reservations.reserve_vehicle(vehicle_db, vid, second)

    await trips.deliver(started(first, vid), completed(first, vid, 5.0), cancelled(first, vid))

    got = await trips.vehicle(vid)
    assert (got["status"], got["odometer_km"]) == ("reserved", 5.0)
    assert await bus.dead_letters("vehicle.events") == []


async def test_a_cancelled_trip_cannot_reserve_a_vehicle_afterwards(
    trips: Trips, make_vehicle: MakeVehicle, vehicle_db: Database
) -> None:
    vid = uuid.UUID((await make_vehicle())["id"])
    trip = uuid.uuid4()
    await trips.deliver(cancelled(trip, None))
    with pytest.raises(TripClosedError):
        await reservations.reserve_vehicle(vehicle_db, vid, trip)
    assert (await trips.vehicle(vid))["status"] == "available"


async def test_events_about_an_unknown_vehicle_are_ignored(trips: Trips, bus: InMemoryBus) -> None:
    ghost, trip = uuid.uuid4(), uuid.uuid4()
    await trips.deliver(started(trip, ghost), completed(trip, ghost, 1.0), cancelled(trip, ghost))
    assert await bus.dead_letters("vehicle.events") == []

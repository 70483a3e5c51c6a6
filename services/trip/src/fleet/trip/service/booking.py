"""Booking a trip: `POST /trips` creates a pending trip and starts the trip-booking saga.

The saga (fleet.contracts.booking) quotes the fare (local step: trip's replica of billing's
tariffs, no broker round trip), holds the rider's credits (user), reserves a vehicle (vehicle),
assigns both to the trip (local step) and notifies the rider (user). Its outcome hooks confirm or
reject the trip in the transaction that ends the saga, and publish `trip.confirmed` /
`trip.rejected` through the outbox.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter, Gauge
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from fleet.common.auth import Principal
from fleet.common.db import utcnow
from fleet.common.errors import ConflictError, OverloadedError
from fleet.common.geo import Point
from fleet.common.logging import get_logger
from fleet.common.messaging import Envelope
from fleet.common.runtime import ServiceRuntime
from fleet.common.saga import (
    PrometheusSagaObserver,
    SagaCommand,
    SagaDefinition,
    SagaEngine,
    SagaInstance,
    no_savepoint,
)
from fleet.common.shedding import QueueDelayShedder
from fleet.contracts import booking
from fleet.contracts.events import TripConfirmed, TripRejected
from fleet.trip.adapters.repository import SqlTripRepository
from fleet.trip.adapters.tables import sagas
from fleet.trip.domain.trips import (
    InvalidTransition,
    Location,
    Move,
    Trip,
    assignment,
    confirmation,
)
from fleet.trip.service.fares import Tariffs

log = get_logger("fleet.trip.booking")
DEFINITION = SagaDefinition.from_dict(booking.DEFINITION)


@dataclass(frozen=True)
class BookingRequest:
    pickup: Location
    dropoff: Location
    vehicle_id: uuid.UUID | None = None

    def fingerprint(self) -> str:
        """Stable hash of the request body: same Idempotency-Key + other body → 409."""
        body = {
            "pickup": [self.pickup.lat, self.pickup.lon],
            "dropoff": [self.dropoff.lat, self.dropoff.lon],
            "vehicle_id": str(self.vehicle_id) if self.vehicle_id else None,
        }
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


class Booking:
    """The trip service's side of the booking saga (one per app)."""

    def __init__(self, rt: ServiceRuntime, tariffs: Tariffs) -> None:
        self.rt = rt
        self.tariffs = tariffs
        registry = rt.platform.registry
        self.started = Counter(
            "saga_started_total", "Sagas started, by saga.", ["saga"], registry=registry
        )
        self.shed = Counter(
            "saga_shed_total",
            "Sagas refused at the door (503) while a standing queue delayed their steps.",
            ["saga"],
            registry=registry,
        )
        self.shedder = QueueDelayShedder(rt.settings.shed_target_ms / 1000)
        Gauge(
            "saga_standing_delay_seconds",
            "Fastest remote step of the last full second while it exceeded the shedding target "
            "(new sagas are refused meanwhile); 0 when no queue stands.",
            ["saga"],
            registry=registry,
        ).labels(DEFINITION.name).set_function(lambda: self.shedder.standing_delay_s() or 0.0)
        self._shedding = False
        self.engine = SagaEngine(
            DEFINITION,
            self._send,
            # All three check before they write (quote-fare only reads): no savepoint needed.
            local_actions={
                "quote-fare": no_savepoint(self._quote_fare),
                "create-trip": no_savepoint(self._assign_trip),
            },
            local_compensations={"create-trip": no_savepoint(self._unassign_trip)},
            tables=sagas,
            reply_to=booking.REPLY_KEY,
            on_completed=self._confirm_trip,
            on_compensated=self._reject_trip,
            on_failed=self._reject_trip,
            observer=PrometheusSagaObserver(registry),
            shedder=self.shedder,
        )

    async def book(self, who: Principal, request: BookingRequest, key: str | None) -> Trip:
        """A new pending trip with its saga started, or the trip this Idempotency-Key made.

        A key is looked up only when it turns out to be taken (the insert's unique violation:
        a retry, or a concurrent request with the same key) — a new key costs no statement —
        and, while bookings are refused, before refusing: a retry of an accepted booking still
        gets its trip.
        """
        fingerprint = request.fingerprint()
        if not self._admit():
            if key is not None and (found := await self._existing(who, key, fingerprint)):
                return found
            self.shed.labels(DEFINITION.name).inc()
            raise OverloadedError(
                "too many bookings are in progress; retry in a second", retry_after_s=1
            )
        now, saga_id = utcnow(), uuid.uuid4()
        trip = Trip.request(
            rider_id=who.user_id,
            pickup=request.pickup,
            dropoff=request.dropoff,
            at=now,
            saga_id=saga_id,
            idempotency_key=key,
            request_hash=fingerprint if key else None,
        )
        try:
            # Inserts only (the trip, the saga, its first command): one statement, committing
            # by itself — no BEGIN or COMMIT round trip (fleet.common.inserts).
            async with self.rt.transaction(write_behind=True) as session:
                await SqlTripRepository(session).add(trip)
                await self.engine.start(session, saga_id, _saga_data(trip, request))
        except IntegrityError:
            # The Idempotency-Key is taken: a retry, or a concurrent request that won the insert.
            if key is not None and (found := await self._existing(who, key, fingerprint)):
                return found
            raise
        self.started.labels(DEFINITION.name).inc()
        return trip

    def _admit(self) -> bool:
        """False while the sagas in flight queue up: a new booking is then refused (503,
        Retry-After), as accepting more would only make their steps time out
        (fleet.common.shedding)."""
        admitted = self.engine.admit()
        if admitted == self._shedding:  # refusing starts or ends: say so once
            self._shedding = not admitted
            event = "accepting bookings again" if admitted else "refusing new bookings"
            log.warning(event, saga=DEFINITION.name, standing_s=self.shedder.standing_delay_s())
        return admitted

    async def _existing(self, who: Principal, key: str, fingerprint: str) -> Trip | None:
        async with self.rt.db.session() as session:
            trip = await SqlTripRepository(session).get_by_idempotency_key(who.user_id, key)
        if trip is not None and trip.request_hash != fingerprint:
            raise ConflictError(
                "this Idempotency-Key was used with another request body", field="Idempotency-Key"
            )
        return trip

    async def _send(self, session: AsyncSession, command: SagaCommand) -> None:
        envelope = Envelope.new(
            command.command_type,
            command.to_dict(),
            producer=self.rt.name,
            aggregate_type="saga",
            aggregate_id=command.saga_id,
            correlation_id=str(command.saga_id),
            kind="command",
            reply_to=command.reply_to,
        )
        await self.rt.publish(session, envelope, exchange="commands")

    async def _trip(self, session: AsyncSession, saga: SagaInstance) -> Trip:
        trip = await SqlTripRepository(session).get(uuid.UUID(saga.data["trip_id"]), lock=True)
        if trip is None:
            raise LookupError(f"saga {saga.id} refers to a missing trip")
        return trip

    async def _move(self, session: AsyncSession, saga: SagaInstance, move: Move) -> Trip:
        """Write the saga's move of its trip in one statement: the saga's hooks run once per
        booking message, and its pending trip is only ever changed by them (under the saga's
        row lock). A trip in another status is refused as `Trip.apply` would."""
        trip_id = uuid.UUID(saga.data["trip_id"])
        written = await SqlTripRepository(session).apply(trip_id, move)
        if written is None:
            trip = await self._trip(session, saga)
            raise InvalidTransition(trip.id, trip.status, move.target)
        return written

    async def _quote_fare(self, _session: AsyncSession, saga: SagaInstance) -> dict[str, Any]:
        """Price the ride with the replicated default tariff (the vehicle is not chosen yet).

        A ride longer than a trip may cover is refused: the step fails and the trip is rejected.
        """
        pickup = Point.model_validate(saga.data["pickup"])
        dropoff = Point.model_validate(saga.data["dropoff"])
        quote = await self.tariffs.quote(pickup, dropoff)
        return {
            "fare_cents": quote.fare_cents,
            "distance_km": quote.distance_km,
            "duration_min": quote.duration_min,
        }

    async def _assign_trip(self, session: AsyncSession, saga: SagaInstance) -> dict[str, Any]:
        data = saga.data
        vehicle_id, fare = uuid.UUID(data["vehicle_id"]), int(data["fare_cents"])
        move = assignment(vehicle_id, data.get("vehicle_model"), fare, utcnow())
        await self._move(session, saga, move)
        return {}

    async def _unassign_trip(self, session: AsyncSession, saga: SagaInstance) -> None:
        trip = await self._trip(session, saga)
        trip.unassign(utcnow())
        await SqlTripRepository(session).save(trip)

    async def _confirm_trip(self, session: AsyncSession, saga: SagaInstance) -> None:
        vehicle_id = uuid.UUID(saga.data["vehicle_id"])
        trip = await self._move(session, saga, confirmation(vehicle_id, utcnow()))
        event = TripConfirmed(
            trip_id=trip.id,
            rider_id=trip.rider_id,
            vehicle_id=vehicle_id,
            quoted_fare_cents=trip.quoted_fare_cents or 0,
        )
        await self.rt.publish(
            session, event, aggregate_type="trip", aggregate_id=trip.id, version=trip.version
        )

    async def _reject_trip(self, session: AsyncSession, saga: SagaInstance, reason: str) -> None:
        trip = await self._trip(session, saga)
        trip.reject(reason or "booking failed", utcnow())
        await SqlTripRepository(session).save(trip)
        event = TripRejected(trip_id=trip.id, rider_id=trip.rider_id, reason=trip.rejection_reason)
        await self.rt.publish(
            session, event, aggregate_type="trip", aggregate_id=trip.id, version=trip.version
        )
        log.info("trip rejected", trip_id=str(trip.id), reason=trip.rejection_reason)


def _saga_data(trip: Trip, request: BookingRequest) -> dict[str, Any]:
    return {
        "trip_id": str(trip.id),
        "rider_id": str(trip.rider_id),
        "pickup": {"lat": trip.pickup.lat, "lon": trip.pickup.lon},
        "dropoff": {"lat": trip.dropoff.lat, "lon": trip.dropoff.lon},
        "requested_vehicle_id": str(request.vehicle_id) if request.vehicle_id else None,
    }

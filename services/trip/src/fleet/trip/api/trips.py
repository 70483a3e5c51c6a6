"""Trip routes: booking (202 + saga), lifecycle, reads (riders: their own; operators: all)."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Header, Query, Request

from fleet.common.auth import CurrentPrincipal, OperatorPrincipal, RiderPrincipal
from fleet.common.openapi import Responses
from fleet.common.pagination import Page, PageDep, page_of
from fleet.common.text import ONE_LINE_PATTERN
from fleet.trip.api.deps import BookingDep, DbDep, RuntimeDep, VehiclesDep
from fleet.trip.api.schemas import (
    BookTripIn,
    CancelTripIn,
    CompleteTripIn,
    TrackingPointOut,
    TripOut,
    TripWithVehicleOut,
)
from fleet.trip.domain.trips import TripStatus
from fleet.trip.service import lifecycle
from fleet.trip.service import trips as uc
from fleet.trip.service.booking import BookingRequest

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=128,
        pattern=ONE_LINE_PATTERN,
        description="Retries with the same key and body return the same trip.",
    ),
]

router = APIRouter(prefix="/trips", tags=["trip"])

UNKNOWN: Responses = {404: {"description": "No such trip, or another rider's"}}
REFUSED: Responses = {**UNKNOWN, 409: {"description": "The trip's status does not allow it"}}


@router.get("", summary="Trips, newest first (riders: their own)")
async def list_trips(
    db: DbDep, who: CurrentPrincipal, page: PageDep, status: TripStatus | None = None
) -> Page[TripOut]:
    trips = await uc.list_trips(db, who, page, status)
    return page_of(trips, page, TripOut.of, key=lambda t: (t.created_at, t.id))


Expand = Annotated[
    Literal["vehicle"] | None,
    Query(description="`vehicle`: add the vehicle's live details (degrades, never fails)"),
]


@router.get(
    "/{trip_id}",
    summary="One trip (404 if it is someone else's)",
    response_model=TripWithVehicleOut,
    responses=UNKNOWN,
    response_model_exclude_unset=True,
)
async def get_trip(
    trip_id: uuid.UUID,
    db: DbDep,
    who: CurrentPrincipal,
    request: Request,
    vehicles: VehiclesDep,
    expand: Expand = None,
) -> TripOut:
    if expand is None:
        return TripOut.of(await uc.get_trip(db, who, trip_id))
    auth = request.headers.get("authorization")
    trip, lookup = await uc.get_trip_with_vehicle(db, who, trip_id, vehicles, auth)
    return TripWithVehicleOut.expanded(trip, lookup)


@router.get(
    "/{trip_id}/tracking",
    summary="The vehicle's positions during the trip, oldest first",
    responses=UNKNOWN,
)
async def get_tracking(
    trip_id: uuid.UUID, db: DbDep, who: CurrentPrincipal, page: PageDep
) -> Page[TrackingPointOut]:
    points = await uc.trip_tracking(db, who, trip_id, page)
    return page_of(points, page, TrackingPointOut.of, key=lambda p: (p.recorded_at, p.id))


@router.post(
    "",
    status_code=202,
    summary="Book a trip: answers at once with the pending trip and its saga id",
    responses={
        409: {"description": "Idempotency-Key reused with another body"},
        503: {"description": "Overloaded: nothing was booked; retry after `Retry-After` seconds"},
    },
)
async def book_trip(
    body: BookTripIn, who: RiderPrincipal, booking: BookingDep, key: IdempotencyKey = None
) -> TripOut:
    request = BookingRequest(body.pickup.location(), body.dropoff.location(), body.vehicle_id)
    return TripOut.of(await booking.book(who, request, key))


@router.post("/{trip_id}/start", summary="The rider is aboard (operator)", responses=REFUSED)
async def start_trip(trip_id: uuid.UUID, rt: RuntimeDep, _op: OperatorPrincipal) -> TripOut:
    return TripOut.of(await lifecycle.start_trip(rt, trip_id))


@router.post(
    "/{trip_id}/complete",
    summary="The ride ended (operator); billing follows",
    responses=REFUSED,
)
async def complete_trip(
    trip_id: uuid.UUID, body: CompleteTripIn, rt: RuntimeDep, _op: OperatorPrincipal
) -> TripOut:
    trip = await lifecycle.complete_trip(rt, trip_id, body.distance_km, body.duration_min)
    return TripOut.of(trip)


@router.post(
    "/{trip_id}/cancel", summary="Cancel before start (owner or operator)", responses=REFUSED
)
async def cancel_trip(
    trip_id: uuid.UUID,
    rt: RuntimeDep,
    who: CurrentPrincipal,
    body: Annotated[CancelTripIn | None, Body()] = None,
) -> TripOut:
    trip = await lifecycle.cancel_trip(rt, who, trip_id, body.reason if body else None)
    return TripOut.of(trip)

"""POST /trips on the whole platform in one process: validation, roles, the requested vehicle and
Idempotency-Key. Every booking runs the real saga over the in-memory bus against PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select

from fleet.common.db import Database
from fleet.common.testing import assert_problem, recorded_statements
from fleet.platform.client import SEOUL, Platform, User, eventually
from fleet.trip.adapters.tables import sagas
from fleet.trip.service.booking import Booking

DROPOFF = {"lat": 37.5796, "lon": 126.9770}
BODY: dict[str, Any] = {"pickup": SEOUL, "dropoff": DROPOFF}


async def post_trip(
    api: Platform, who: User | None, body: Any = BODY, key: str | None = None
) -> httpx.Response:
    headers = dict(who.headers) if who else {}
    if key is not None:
        headers["Idempotency-Key"] = key
    return await api.http.post("/trips", json=body, headers=headers)


async def trip_ids(api: Platform, who: User) -> list[str]:
    return [t["id"] for t in (await api.get(who, "/trips"))["items"]]


async def saga_count(db: Database) -> int:
    async with db.session() as session:
        return int(
            (await session.execute(select(func.count()).select_from(sagas.sagas))).scalar_one()
        )


async def test_a_booking_answers_202_pending_with_its_saga_then_confirms(api: Platform) -> None:
    op = await api.operator()
    vehicle_id = await api.vehicle(op, 1)
    rider = await api.rider(credits_cents=10_000)

    r = await post_trip(api, rider)

    assert r.status_code == 202, r.text
    pending = r.json()
    assert pending["status"] == "pending"
    assert pending["rider_id"] == rider.id
    assert (pending["pickup"], pending["dropoff"]) == (SEOUL, DROPOFF)
    assert uuid.UUID(pending["saga_id"])
    assert (pending["vehicle_id"], pending["rejection_reason"]) == (None, None)
    trip = await api.settled(rider, pending["id"], within=5)
    assert trip["status"] == "confirmed", trip
    assert trip["vehicle_id"] == vehicle_id
    assert trip["saga_id"] == pending["saga_id"]
    assert trip["quoted_fare_cents"] > 0
    assert trip["confirmed_at"] is not None
    wallet = await api.wallet(rider)
    assert wallet["held_cents"] == trip["quoted_fare_cents"]
    assert (await api.get(op, f"/vehicles/{vehicle_id}"))["status"] == "reserved"


BAD_BOOKINGS: list[tuple[dict[str, Any], list[str]]] = [
    ({"dropoff": DROPOFF}, ["body", "pickup"]),
    ({"pickup": SEOUL}, ["body", "dropoff"]),
    ({"pickup": {"lat": 91, "lon": 0}, "dropoff": DROPOFF}, ["body", "pickup", "lat"]),
    ({"pickup": {"lat": 0, "lon": -180.5}, "dropoff": DROPOFF}, ["body", "pickup", "lon"]),
    ({"pickup": SEOUL, "dropoff": {"lat": "37.5", "lon": 126.9}}, ["body", "dropoff", "lat"]),
    ({"pickup": SEOUL, "dropoff": {"lat": True, "lon": 126.9}}, ["body", "dropoff", "lat"]),
    ({"pickup": SEOUL, "dropoff": {"lat": 37.5}}, ["body", "dropoff", "lon"]),
    ({"pickup": SEOUL, "dropoff": "Gangnam station"}, ["body", "dropoff"]),
    ({**BODY, "fare_cents": 1}, ["body", "fare_cents"]),
    ({"pickup": {**SEOUL, "alt": 30}, "dropoff": DROPOFF}, ["body", "pickup", "alt"]),
    ({**BODY, "vehicle_id": "not-a-uuid"}, ["body", "vehicle_id"]),
    ({**BODY, "vehicle_id": "'; DROP TABLE trip.trips; --"}, ["body", "vehicle_id"]),
    ({**BODY, "vehicle_id": 42}, ["body", "vehicle_id"]),
]


async def test_a_bad_booking_is_422_naming_the_field_and_books_nothing(api: Platform) -> None:
    rider = await api.rider(credits_cents=10_000)
    for body, loc in BAD_BOOKINGS:
        assert_problem(await post_trip(api, rider, body), 422, loc)
    assert await trip_ids(api, rider) == []
    assert await api.wallet(rider) == {
        "balance_cents": 10_000,
        "held_cents": 0,
        "available_cents": 10_000,
    }


async def test_malformed_json_is_422_and_books_nothing(api: Platform) -> None:
    rider = await api.rider()
    headers = {**rider.headers, "Content-Type": "application/json"}
    r = await api.http.post("/trips", content=b'{"pickup": {"lat": 1,', headers=headers)
    assert_problem(r, 422)
    assert await trip_ids(api, rider) == []


async def test_an_idempotency_key_over_128_chars_or_empty_is_422_naming_the_header(
    api: Platform,
) -> None:
    rider = await api.rider(credits_cents=10_000)
    # control characters: a NUL in the stored key was a 500 on PostgreSQL
    for key in ("k" * 129, "", "k\x00", "k\x1f"):
        assert_problem(await post_trip(api, rider, key=key), 422, ["header", "Idempotency-Key"])
    assert await trip_ids(api, rider) == []


async def test_an_idempotency_key_of_exactly_128_chars_is_accepted(api: Platform) -> None:
    rider = await api.rider()
    r = await post_trip(api, rider, key="k" * 128)
    assert r.status_code == 202, r.text


async def test_booking_without_a_token_is_401(api: Platform) -> None:
    assert_problem(await post_trip(api, None), 401)
    op = await api.operator()
    assert (await api.get(op, "/trips"))["items"] == []


async def test_an_operator_cannot_book_a_trip(api: Platform) -> None:
    op = await api.operator()
    assert_problem(await post_trip(api, op), 403)
    assert (await api.get(op, "/trips"))["items"] == []


async def test_the_requested_vehicle_is_booked_even_if_another_is_nearer(api: Platform) -> None:
    op = await api.operator()
    await api.vehicle(op, 1)  # right at the pickup
    farther = await api.vehicle(op, 2, lat=SEOUL["lat"] + 0.01)
    rider = await api.rider(credits_cents=10_000)

    booked = (await post_trip(api, rider, {**BODY, "vehicle_id": farther})).json()

    trip = await api.settled(rider, booked["id"], within=5)
    assert (trip["status"], trip["vehicle_id"]) == ("confirmed", farther)
    assert (await api.get(op, f"/vehicles/{farther}"))["reserved_trip_id"] == trip["id"]


async def test_an_unavailable_requested_vehicle_rejects_the_booking_with_the_reason(
    api: Platform,
) -> None:
    op = await api.operator()
    other = await api.vehicle(op, 1)
    wanted = await api.vehicle(op, 2)
    r = await api.http.patch(
        f"/vehicles/{wanted}", json={"status": "maintenance"}, headers=op.headers
    )
    assert r.status_code == 200, r.text
    rider = await api.rider(credits_cents=10_000)

    booked = (await post_trip(api, rider, {**BODY, "vehicle_id": wanted})).json()

    trip = await api.settled(rider, booked["id"], within=5)
    assert trip["status"] == "rejected"
    assert "reserve-vehicle" in trip["rejection_reason"]
    assert "maintenance" in trip["rejection_reason"]
    assert trip["vehicle_id"] is None
    # not silently swapped for the available one, and the credits held for it are given back
    assert (await api.get(op, f"/vehicles/{other}"))["status"] == "available"
    assert (await api.get(op, f"/vehicles/{wanted}"))["status"] == "maintenance"
    await wait_for_wallet(api, rider, held_cents=0)


async def test_an_unknown_requested_vehicle_rejects_the_booking(api: Platform) -> None:
    op = await api.operator()
    await api.vehicle(op, 1)
    rider = await api.rider(credits_cents=10_000)
    ghost = str(uuid.uuid4())

    booked = (await post_trip(api, rider, {**BODY, "vehicle_id": ghost})).json()

    trip = await api.settled(rider, booked["id"], within=5)
    assert trip["status"] == "rejected"
    assert ghost in trip["rejection_reason"]
    await wait_for_wallet(api, rider, held_cents=0)


async def test_the_same_key_and_body_twice_give_the_same_trip_and_one_saga(
    api: Platform, trip_db: Database
) -> None:
    op = await api.operator()
    await api.vehicle(op, 1)
    rider = await api.rider(credits_cents=10_000)

    first = await post_trip(api, rider, key="ride-home-1")
    await api.settled(rider, first.json()["id"], within=5)
    again = await post_trip(api, rider, key="ride-home-1")

    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["saga_id"] == first.json()["saga_id"]
    assert again.json()["status"] == "confirmed"  # the trip as it is now, not a new pending one
    assert await trip_ids(api, rider) == [first.json()["id"]]
    assert await saga_count(trip_db) == 1
    assert (await api.wallet(rider))["held_cents"] == again.json()["quoted_fare_cents"]


async def test_a_new_idempotency_key_costs_no_lookup_only_a_retry_does(
    app: FastAPI, api: Platform
) -> None:
    op = await api.operator()
    await api.vehicle(op, 1)
    rider = await api.rider(credits_cents=10_000)
    trip_db: Database = app.state.fleet.services["trip"].db  # the app's own engine

    with recorded_statements(trip_db) as first:
        made = await post_trip(api, rider, key="only-once")
    with recorded_statements(trip_db) as again:
        retried = await post_trip(api, rider, key="only-once")

    assert (made.status_code, retried.status_code) == (202, 202)
    assert retried.json()["id"] == made.json()["id"]
    assert not [q for q in first if q.startswith("SELECT") and "IDEMPOTENCY_KEY =" in q]
    assert [q for q in again if q.startswith("SELECT") and "IDEMPOTENCY_KEY =" in q]


async def test_a_booking_writes_its_trip_saga_and_first_command_with_one_statement(
    api: Platform, app: FastAPI
) -> None:
    op = await api.operator()
    await api.vehicle(op, 1)
    rider = await api.rider(credits_cents=10_000)
    trip_db: Database = app.state.fleet.services["trip"].db

    with recorded_statements(trip_db) as seen:
        r = await post_trip(api, rider)

    assert r.status_code == 202
    # The relay and the saga's replies run meanwhile: pick the statements that insert a trip.
    written = [q for q in seen if "INSERT INTO TRIP.TRIPS " in q]
    assert len(written) == 1, written
    for table in ("TRIP.SAGAS ", "TRIP.SAGA_STEPS ", "TRIP.OUTBOX "):
        assert f"INSERT INTO {table}" in written[0]
    assert not [
        q for q in seen if q.startswith(("INSERT INTO TRIP.SAGAS", "INSERT INTO TRIP.OUTBOX"))
    ]
    assert (await api.settled(rider, r.json()["id"], within=5))["status"] == "confirmed"


async def test_the_same_key_with_another_body_is_409_and_changes_nothing(
    api: Platform, trip_db: Database
) -> None:
    rider = await api.rider(credits_cents=10_000)
    first = (await post_trip(api, rider, key="k-1")).json()

    other = {"pickup": SEOUL, "dropoff": {"lat": 37.50, "lon": 127.02}}
    r = await post_trip(api, rider, other, key="k-1")

    assert_problem(r, 409)
    assert "Idempotency-Key" in r.json()["detail"]
    r = await post_trip(api, rider, {**BODY, "vehicle_id": str(uuid.uuid4())}, key="k-1")
    assert_problem(r, 409)
    assert await trip_ids(api, rider) == [first["id"]]
    assert await saga_count(trip_db) == 1


async def test_the_same_key_sent_concurrently_makes_one_trip(
    api: Platform, trip_db: Database
) -> None:
    op = await api.operator()
    await api.vehicle(op, 1)
    await api.vehicle(op, 2)
    rider = await api.rider(credits_cents=10_000)

    answers = await asyncio.gather(*(post_trip(api, rider, key="tap-tap-tap") for _ in range(6)))

    assert {r.status_code for r in answers} == {202}, [r.text for r in answers]
    assert len({r.json()["id"] for r in answers}) == 1
    assert len({r.json()["saga_id"] for r in answers}) == 1
    assert await trip_ids(api, rider) == [answers[0].json()["id"]]
    assert await saga_count(trip_db) == 1
    trip = await api.settled(rider, answers[0].json()["id"], within=5)
    assert trip["status"] == "confirmed"
    assert (await api.wallet(rider))["held_cents"] == trip["quoted_fare_cents"]


async def test_two_bodies_under_one_key_at_once_make_one_trip_and_one_409(
    api: Platform, trip_db: Database
) -> None:
    rider = await api.rider(credits_cents=10_000)
    other = {"pickup": SEOUL, "dropoff": {"lat": 37.50, "lon": 127.02}}

    answers = await asyncio.gather(
        post_trip(api, rider, BODY, key="race"), post_trip(api, rider, other, key="race")
    )

    assert sorted(r.status_code for r in answers) == [202, 409], [r.text for r in answers]
    winner = next(r.json() for r in answers if r.status_code == 202)
    assert await trip_ids(api, rider) == [winner["id"]]
    assert await saga_count(trip_db) == 1


async def test_another_rider_may_use_the_same_key_for_their_own_trip(api: Platform) -> None:
    op = await api.operator()
    await api.vehicle(op, 1)
    await api.vehicle(op, 2)
    ada, bob = await api.rider(credits_cents=10_000), await api.rider(credits_cents=10_000)

    ada_trip = (await post_trip(api, ada, key="shared-key")).json()
    bob_trip = (await post_trip(api, bob, key="shared-key")).json()

    assert ada_trip["id"] != bob_trip["id"]
    assert (ada_trip["rider_id"], bob_trip["rider_id"]) == (ada.id, bob.id)
    for who, trip in ((ada, ada_trip), (bob, bob_trip)):
        assert (await api.settled(who, trip["id"], within=5))["status"] == "confirmed"
        assert await trip_ids(api, who) == [trip["id"]]
    # and a different body under the same key string is no conflict across riders
    other = {"pickup": SEOUL, "dropoff": {"lat": 37.50, "lon": 127.02}}
    carol = await api.rider()
    assert (await post_trip(api, carol, other, key="shared-key")).status_code == 202


async def wait_for_wallet(api: Platform, rider: User, *, held_cents: int) -> dict[str, int]:
    return await eventually(
        lambda: api.wallet(rider), lambda w: w["held_cents"] == held_cents, within=5
    )


async def test_while_the_sagas_queue_up_a_new_booking_is_503_with_retry_after_and_books_nothing(
    app: FastAPI, api: Platform
) -> None:
    op = await api.operator()
    await api.vehicle(op, 1)
    rider = await api.rider(credits_cents=10_000)
    first = await post_trip(api, rider, key="before-the-queue")
    assert (await api.settled(rider, first.json()["id"]))["status"] == "confirmed"
    booking: Booking = app.state.fleet.services["trip"].extras["booking"]
    for _ in range(2):  # a whole interval in which every remote step took 5 s and no saga
        await asyncio.sleep(booking.shedder.interval_s + 0.05)  # ended (the first may hold
        booking.shedder.observe(5.0)  # that booking's)

    refused = await post_trip(api, rider)
    replayed = await post_trip(api, rider, key="before-the-queue")

    assert_problem(refused, 503)
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["type"].endswith("/overloaded")
    assert refused.json()["retry_after_s"] == 1
    assert replayed.status_code == 202, replayed.text  # an accepted booking's retry still answers
    assert replayed.json()["id"] == first.json()["id"]
    assert await trip_ids(api, rider) == [first.json()["id"]]
    metrics = (await api.http.get("/metrics")).text
    assert 'saga_shed_total{saga="trip-booking"} 1.0' in metrics
    assert 'saga_standing_delay_seconds{saga="trip-booking"} 5.0' in metrics

    # the interval under way holds that 5 s sample; the next holds none: no queue stands
    await asyncio.sleep(2 * booking.shedder.interval_s + 0.05)
    accepted = await post_trip(api, rider)
    assert accepted.status_code == 202, accepted.text

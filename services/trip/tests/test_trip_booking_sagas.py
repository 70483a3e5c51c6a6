"""The booking saga's failure paths in one process, and GET /sagas/{id}.

Each failure is real: a rider without enough credits, a map without vehicles, and a notification
step that fails because the user service's confirmation use case raises (fault injection on the
real component, see `notifications_down`).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest

from fleet.common.errors import ServiceUnavailableError
from fleet.common.testing import assert_problem
from fleet.platform.client import Platform, User, eventually
from fleet.user.service import bookings

ACTIONS = ["quote-fare", "reserve-credits", "reserve-vehicle", "create-trip", "send-confirmation"]
FULL_WALLET = {"balance_cents": 10_000, "held_cents": 0, "available_cents": 10_000}


class SmsGatewayDown(ServiceUnavailableError):
    """What the injected fault raises: a refusal (FleetError), so the participant replies
    `success=False` and the saga compensates, rather than the bus retrying the command."""


@pytest.fixture
def notifications_down(monkeypatch: pytest.MonkeyPatch) -> None:
    """`user.send-confirmation` fails: the handler in fleet.user.consumers.commands calls
    `bookings.send_confirmation` through the module, so patching the module attribute is seen."""

    async def broken(*_args: object, **_kwargs: object) -> uuid.UUID:
        raise SmsGatewayDown("the notification gateway is down")

    monkeypatch.setattr(bookings, "send_confirmation", broken)


async def book_and_settle(api: Platform, rider: User) -> dict[str, Any]:
    return await api.settled(rider, (await api.book(rider))["id"], within=5)


def when(value: str | None) -> dt.datetime:
    assert value is not None
    return dt.datetime.fromisoformat(value)


def phase(saga: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [s for s in saga["steps"] if s["phase"] == name]


async def test_not_enough_credits_rejects_and_holds_nothing(api: Platform) -> None:
    op = await api.operator()
    vehicle_id = await api.vehicle(op, 1)
    rider = await api.rider(credits_cents=100)

    trip = await book_and_settle(api, rider)

    assert trip["status"] == "rejected"
    assert "reserve-credits" in trip["rejection_reason"]
    assert "credit" in trip["rejection_reason"]
    assert trip["vehicle_id"] is None
    assert await api.wallet(rider) == {
        "balance_cents": 100,
        "held_cents": 0,
        "available_cents": 100,
    }
    vehicle = await api.get(op, f"/vehicles/{vehicle_id}")
    assert (vehicle["status"], vehicle["reserved_trip_id"]) == ("available", None)
    saga = await api.get(rider, f"/sagas/{trip['saga_id']}")
    assert saga["status"] == "compensated"
    assert {s["name"]: s["status"] for s in phase(saga, "action")} == {
        "quote-fare": "succeeded",
        "reserve-credits": "failed",
        "reserve-vehicle": "skipped",
        "create-trip": "skipped",
        "send-confirmation": "skipped",
    }
    assert phase(saga, "compensation") == []  # nothing was held, so nothing to give back


async def test_no_vehicle_rejects_and_releases_the_credits(api: Platform) -> None:
    rider = await api.rider(credits_cents=10_000)

    trip = await book_and_settle(api, rider)

    assert trip["status"] == "rejected"
    assert "vehicle" in trip["rejection_reason"]
    await eventually(lambda: api.wallet(rider), lambda w: w == FULL_WALLET, within=5)
    saga = await api.get(rider, f"/sagas/{trip['saga_id']}")
    assert saga["status"] == "compensated"
    assert [(s["name"], s["status"]) for s in phase(saga, "compensation")] == [
        ("reserve-credits", "compensated")
    ]


@pytest.mark.usefixtures("notifications_down")
async def test_a_failed_confirmation_compensates_everything_in_reverse_order(
    api: Platform,
) -> None:
    op = await api.operator()
    vehicle_id = await api.vehicle(op, 1)
    rider = await api.rider(credits_cents=10_000)

    trip = await book_and_settle(api, rider)

    assert trip["status"] == "rejected"
    assert "send-confirmation" in trip["rejection_reason"]
    assert "notification gateway is down" in trip["rejection_reason"]
    assert trip["vehicle_id"] is None
    await eventually(lambda: api.wallet(rider), lambda w: w == FULL_WALLET, within=5)
    vehicle = await eventually(
        lambda: api.get(op, f"/vehicles/{vehicle_id}"),
        lambda v: v["status"] == "available",
        within=5,
    )
    assert vehicle["reserved_trip_id"] is None
    saga = await api.get(op, f"/sagas/{trip['saga_id']}")
    assert saga["status"] == "compensated"
    assert saga["current_step"] is None
    assert "send-confirmation" in saga["error"]
    actions = {s["name"]: s for s in phase(saga, "action")}
    assert [s["status"] for s in actions.values()] == ["succeeded"] * 4 + ["failed"]
    assert "notification gateway is down" in actions["send-confirmation"]["error"]
    compensations = phase(saga, "compensation")
    # quote-fare has no compensation; the failed step's own one is not needed
    assert [s["name"] for s in compensations] == [
        "create-trip",
        "reserve-vehicle",
        "reserve-credits",
    ]
    assert {s["status"] for s in compensations} == {"compensated"}
    assert [s["attempts"] for s in compensations] == [1, 1, 1]
    starts = [when(s["started_at"]) for s in compensations]
    assert starts == sorted(starts)  # one after another, in the order listed
    assert when(compensations[0]["started_at"]) >= when(actions["send-confirmation"]["finished_at"])
    # nobody is told the trip is confirmed
    notes = (await api.get(rider, "/notifications"))["items"]
    assert not any("confirmed" in n["title"].lower() for n in notes)


async def test_the_rider_reads_every_step_of_their_saga(api: Platform) -> None:
    op = await api.operator()
    await api.vehicle(op, 1)
    rider = await api.rider(credits_cents=10_000)
    trip = await book_and_settle(api, rider)

    r = await api.http.get(f"/sagas/{trip['saga_id']}", headers=rider.headers)

    assert r.status_code == 200, r.text
    saga = r.json()
    assert (saga["id"], saga["trip_id"]) == (trip["saga_id"], trip["id"])
    assert (saga["name"], saga["status"]) == ("trip-booking", "completed")
    assert (saga["current_step"], saga["error"]) == (None, None)
    assert [s["name"] for s in saga["steps"]] == ACTIONS
    previous_end = when(saga["created_at"])
    for step in saga["steps"]:
        assert (step["phase"], step["status"], step["attempts"]) == ("action", "succeeded", 1)
        assert step["error"] is None
        start, end = when(step["started_at"]), when(step["finished_at"])
        assert previous_end <= start <= end, step
        previous_end = end
    assert when(saga["updated_at"]) >= previous_end


async def test_an_operator_reads_any_saga(api: Platform) -> None:
    rider = await api.rider(credits_cents=10_000)
    trip = await book_and_settle(api, rider)
    op = await api.operator()
    saga = await api.get(op, f"/sagas/{trip['saga_id']}")
    assert (saga["id"], saga["status"]) == (trip["saga_id"], "compensated")


async def test_another_riders_saga_is_not_found(api: Platform) -> None:
    owner, other = await api.rider(credits_cents=10_000), await api.rider()
    trip = await api.book(owner)
    r = await api.http.get(f"/sagas/{trip['saga_id']}", headers=other.headers)
    assert_problem(r, 404)
    assert owner.id not in r.text


async def test_an_unknown_saga_is_not_found(api: Platform) -> None:
    op = await api.operator()
    assert_problem(await api.http.get(f"/sagas/{uuid.uuid4()}", headers=op.headers), 404)


async def test_a_saga_id_that_is_no_uuid_is_422(api: Platform) -> None:
    op = await api.operator()
    for bad in ("42", "not-a-uuid", "'; select 1; --"):
        r = await api.http.get(f"/sagas/{bad}", headers=op.headers)
        assert_problem(r, 422, ["path", "saga_id"])


async def test_a_saga_without_a_token_is_401(api: Platform) -> None:
    rider = await api.rider()
    trip = await api.book(rider)
    assert_problem(await api.http.get(f"/sagas/{trip['saga_id']}"), 401)


async def test_a_rejected_booking_tells_the_rider_why(api: Platform) -> None:
    rider = await api.rider(credits_cents=100)

    trip = await book_and_settle(api, rider)

    assert trip["status"] == "rejected"
    notes = await eventually(
        lambda: api.get(rider, "/notifications"),
        lambda page: any(n["title"] == "Booking cancelled" for n in page["items"]),
    )
    note = next(n for n in notes["items"] if n["title"] == "Booking cancelled")
    assert trip["id"] in note["body"]
    assert "credit" in note["body"]

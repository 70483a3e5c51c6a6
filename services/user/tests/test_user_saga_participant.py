"""The user service as a participant of the trip-booking saga, driven through the live app's bus.

Commands are published on `fleet.commands` exactly as trip's orchestrator sends them; replies are
captured from `trip.saga-reply`; outcomes are read through the REST API.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from sqlalchemy import func, select

from fleet.common.db import Database
from fleet.common.messaging import Envelope, InMemoryBus
from fleet.common.saga import Phase
from fleet.common.testing import Account, RiderFactory
from fleet.contracts.booking import (
    REPLY_KEY,
    ReleaseCredits,
    ReserveCredits,
    SendCancellation,
    SendConfirmation,
)
from fleet.contracts.queues import USER_COMMANDS
from fleet.user.adapters.tables import credit_holds, outbox

Captured = Any  # conftest.Captured: messages received on a test queue
SendCommand = Callable[..., Awaitable[Any]]
WalletOf = Callable[[Account], Awaitable[dict[str, Any]]]
WaitUntil = Callable[..., Awaitable[None]]

RESERVE = ReserveCredits.event_type
RELEASE = ReleaseCredits.event_type
CONFIRM = SendConfirmation.event_type
CANCEL = SendCancellation.event_type


def _reserve(rider: Account, trip_id: uuid.UUID, fare_cents: int) -> dict[str, Any]:
    return {"trip_id": trip_id, "rider_id": rider.id, "fare_cents": fare_cents}


async def _notifications(client: httpx.AsyncClient, who: Account, kind: str) -> list[Any]:
    r = await client.get("/notifications", headers=who.headers)
    assert r.status_code == 200, r.text
    return [n for n in r.json()["items"] if n["kind"] == kind]


async def test_reserve_with_enough_credits_replies_success_and_holds_the_fare(
    funded_rider: RiderFactory,
    send_command: SendCommand,
    saga_replies: Captured,
    wallet_of: WalletOf,
) -> None:
    rider = await funded_rider(2000)
    command = await send_command(RESERVE, _reserve(rider, uuid.uuid4(), 1250))

    [reply] = await saga_replies.wait_for(saga_id=command.saga_id)
    assert reply.event_type == REPLY_KEY
    assert reply.kind == "reply"
    assert reply.data["success"] is True
    assert reply.data["result"] == {"held_cents": 1250}
    assert (reply.data["step"], reply.data["phase"], reply.data["attempt"]) == (
        command.step,
        "action",
        1,
    )
    assert await wallet_of(rider) == {
        "balance_cents": 2000,
        "held_cents": 1250,
        "available_cents": 750,
    }


async def test_reserve_beyond_the_available_credits_replies_failure_and_holds_nothing(
    funded_rider: RiderFactory,
    send_command: SendCommand,
    saga_replies: Captured,
    wallet_of: WalletOf,
) -> None:
    rider = await funded_rider(300)
    command = await send_command(RESERVE, _reserve(rider, uuid.uuid4(), 1250))

    [reply] = await saga_replies.wait_for(saga_id=command.saga_id)
    assert reply.data["success"] is False
    assert reply.data["error"] == "insufficient credits: available 300, needed 1250"
    assert await wallet_of(rider) == {"balance_cents": 300, "held_cents": 0, "available_cents": 300}


async def test_reserve_for_a_rider_without_a_wallet_replies_failure(
    send_command: SendCommand, saga_replies: Captured
) -> None:
    stranger = uuid.uuid4()
    payload = {"trip_id": uuid.uuid4(), "rider_id": stranger, "fare_cents": 100}
    command = await send_command(RESERVE, payload)

    [reply] = await saga_replies.wait_for(saga_id=command.saga_id)
    assert reply.data["success"] is False
    assert str(stranger) in reply.data["error"]


async def test_reserve_resent_with_a_higher_attempt_holds_once_and_answers_the_same(
    funded_rider: RiderFactory,
    send_command: SendCommand,
    saga_replies: Captured,
    wallet_of: WalletOf,
    user_db: Database,
) -> None:
    rider = await funded_rider(2000)
    trip_id, saga_id = uuid.uuid4(), uuid.uuid4()
    await send_command(RESERVE, _reserve(rider, trip_id, 500), saga_id=saga_id)
    await send_command(RESERVE, _reserve(rider, trip_id, 500), saga_id=saga_id, attempt=2)

    replies = await saga_replies.wait_for(2, saga_id=saga_id)
    assert sorted(r.data["attempt"] for r in replies) == [1, 2]
    assert {(r.data["success"], r.data["result"]["held_cents"]) for r in replies} == {(True, 500)}
    assert (await wallet_of(rider))["held_cents"] == 500
    async with user_db.session() as s:
        holds = await s.scalar(select(func.count()).where(credit_holds.c.reference == trip_id))
    assert holds == 1


async def test_release_after_reserve_frees_the_credits(
    funded_rider: RiderFactory,
    send_command: SendCommand,
    saga_replies: Captured,
    wallet_of: WalletOf,
) -> None:
    rider = await funded_rider(2000)
    trip_id, saga_id = uuid.uuid4(), uuid.uuid4()
    await send_command(RESERVE, _reserve(rider, trip_id, 800), saga_id=saga_id)
    await saga_replies.wait_for(saga_id=saga_id)
    release = {"trip_id": trip_id, "rider_id": rider.id}
    await send_command(RELEASE, release, saga_id=saga_id, phase=Phase.COMPENSATION)

    [reply] = await saga_replies.wait_for(saga_id=saga_id, phase="compensation")
    assert reply.data["success"] is True
    assert reply.data["result"] == {"released_cents": 800}
    assert await wallet_of(rider) == {
        "balance_cents": 2000,
        "held_cents": 0,
        "available_cents": 2000,
    }


async def test_release_of_an_unknown_trip_succeeds_and_changes_nothing(
    funded_rider: RiderFactory,
    send_command: SendCommand,
    saga_replies: Captured,
    wallet_of: WalletOf,
) -> None:
    rider = await funded_rider(700)
    release = {"trip_id": uuid.uuid4(), "rider_id": rider.id}
    command = await send_command(RELEASE, release, phase=Phase.COMPENSATION)

    [reply] = await saga_replies.wait_for(saga_id=command.saga_id)
    assert reply.data["success"] is True
    assert reply.data["result"] == {"released_cents": 0}
    assert await wallet_of(rider) == {"balance_cents": 700, "held_cents": 0, "available_cents": 700}


async def test_a_reserve_overtaken_by_its_release_holds_nothing(
    funded_rider: RiderFactory,
    send_command: SendCommand,
    saga_replies: Captured,
    wallet_of: WalletOf,
) -> None:
    # Both were queued while the orchestrator was down and the release was handled first: the
    # late reserve must not hold credits that no compensation will ever release.
    rider = await funded_rider(2000)
    trip_id, saga_id = uuid.uuid4(), uuid.uuid4()
    release = {"trip_id": trip_id, "rider_id": rider.id}
    await send_command(RELEASE, release, saga_id=saga_id, phase=Phase.COMPENSATION)
    [released] = await saga_replies.wait_for(saga_id=saga_id, phase="compensation")
    assert released.data["result"] == {"released_cents": 0}

    await send_command(RESERVE, _reserve(rider, trip_id, 800), saga_id=saga_id)
    [late] = await saga_replies.wait_for(saga_id=saga_id, phase="action")
    assert late.data["success"] is True
    assert late.data["result"] == {"held_cents": 0}
    assert await wallet_of(rider) == {
        "balance_cents": 2000,
        "held_cents": 0,
        "available_cents": 2000,
    }


async def test_send_confirmation_twice_notifies_the_rider_once(
    client: httpx.AsyncClient,
    rider: Account,
    send_command: SendCommand,
    saga_replies: Captured,
) -> None:
    trip_id, vehicle_id, saga_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    payload = {
        "trip_id": trip_id,
        "rider_id": rider.id,
        "vehicle_id": vehicle_id,
        "fare_cents": 1250,
    }
    await send_command(CONFIRM, payload, saga_id=saga_id)
    await send_command(CONFIRM, payload, saga_id=saga_id, attempt=2)

    replies = await saga_replies.wait_for(2, saga_id=saga_id)
    assert all(r.data["success"] for r in replies)
    assert len({r.data["result"]["notification_id"] for r in replies}) == 1
    [note] = await _notifications(client, rider, "trip_confirmed")
    assert note["title"] == "Trip confirmed"
    assert str(vehicle_id) in note["body"]
    assert "12.50" in note["body"]


async def test_send_confirmation_to_an_unknown_rider_replies_failure(
    send_command: SendCommand, saga_replies: Captured
) -> None:
    payload = {"trip_id": uuid.uuid4(), "rider_id": uuid.uuid4(), "vehicle_id": uuid.uuid4()}
    command = await send_command(CONFIRM, {**payload, "fare_cents": 100})

    [reply] = await saga_replies.wait_for(saga_id=command.saga_id)
    assert reply.data["success"] is False


async def test_send_cancellation_notifies_once_and_succeeds_even_for_an_unknown_rider(
    client: httpx.AsyncClient,
    rider: Account,
    send_command: SendCommand,
    saga_replies: Captured,
) -> None:
    trip_id, saga_id = uuid.uuid4(), uuid.uuid4()
    payload = {"trip_id": trip_id, "rider_id": rider.id}
    comp = Phase.COMPENSATION
    await send_command(CANCEL, payload, saga_id=saga_id, phase=comp)
    await send_command(CANCEL, payload, saga_id=saga_id, phase=comp, attempt=2)
    nobody = await send_command(CANCEL, {"trip_id": trip_id, "rider_id": uuid.uuid4()}, phase=comp)

    replies = await saga_replies.wait_for(2, saga_id=saga_id)
    [orphan] = await saga_replies.wait_for(saga_id=nobody.saga_id)
    assert all(r.data["success"] for r in [*replies, orphan])
    [note] = await _notifications(client, rider, "booking_cancelled")
    assert note["title"] == "Booking cancelled"
    assert str(trip_id) in note["body"]


async def test_malformed_commands_are_dead_lettered_and_change_nothing(
    funded_rider: RiderFactory,
    bus: InMemoryBus,
    saga_replies: Captured,
    wallet_of: WalletOf,
    wait_until: WaitUntil,
    user_db: Database,
) -> None:
    rider = await funded_rider(1000)
    garbage_payload = {
        "saga_id": str(uuid.uuid4()),
        "saga_name": "trip-booking",
        "step": "reserve-credits",
        "phase": "action",
        "attempt": 1,
        "command_type": RESERVE,
        "payload": {"trip_id": "'; DROP TABLE wallets; --", "rider_id": str(rider.id)},
        "reply_to": REPLY_KEY,
    }
    not_a_command = {"hello": "world", "fare_cents": -1}
    for data in (garbage_payload, not_a_command):
        envelope = Envelope.new(
            RESERVE,
            data,
            producer="trip",
            aggregate_type="saga",
            aggregate_id=uuid.uuid4(),
            kind="command",
            reply_to=REPLY_KEY,
        )
        await bus.publish(envelope, exchange="commands")

    async def both_dead() -> bool:
        return len(await bus.dead_letters(USER_COMMANDS.name)) == 2

    await wait_until(both_dead, what="two dead letters")
    dead = await bus.dead_letters(USER_COMMANDS.name)
    assert all("MalformedMessage" in d.error for d in dead)
    assert saga_replies.messages == []
    assert await wallet_of(rider) == {
        "balance_cents": 1000,
        "held_cents": 0,
        "available_cents": 1000,
    }
    async with user_db.session() as s:
        assert await s.scalar(select(func.count()).select_from(credit_holds)) == 0
        assert await s.scalar(select(func.count()).select_from(outbox)) == 0

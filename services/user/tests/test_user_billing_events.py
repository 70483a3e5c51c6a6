"""The user service in trip/billing choreography: `trip.cancelled` and `invoice.issued`.

Events are published on `fleet.events` as trip and billing would; billing's side is a test queue
bound to `credits.*`; wallets are read through the REST API and the ledger.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from fleet.common.db import Database
from fleet.common.messaging import Envelope, InMemoryBus, Message
from fleet.common.testing import Account, RiderFactory
from fleet.contracts.events import (
    CreditsCaptured,
    CreditsCaptureFailed,
    InvoiceIssued,
    TripCancelled,
)
from fleet.user.adapters.wallets import SqlWalletRepository
from fleet.user.service.wallets import reserve_credits

Captured = Any  # conftest.Captured: messages received on a test queue
WalletOf = Callable[[Account], Awaitable[dict[str, Any]]]
WaitUntil = Callable[..., Awaitable[None]]


def _wallet(balance: int, held: int) -> dict[str, int]:
    return {"balance_cents": balance, "held_cents": held, "available_cents": balance - held}


async def _publish(bus: InMemoryBus, event: Message, producer: str = "billing") -> Envelope:
    envelope = event.to_envelope(producer=producer, aggregate_type="test", aggregate_id="1")
    await bus.publish(envelope)
    return envelope


def _invoice(rider: Account, trip_id: uuid.UUID, amount_cents: int) -> InvoiceIssued:
    return InvoiceIssued(
        invoice_id=uuid.uuid4(), trip_id=trip_id, rider_id=rider.id, amount_cents=amount_cents
    )


async def _held_trip(user_db: Database, rider: Account, amount_cents: int) -> uuid.UUID:
    trip_id = uuid.uuid4()
    await reserve_credits(user_db, rider.id, trip_id, amount_cents)
    return trip_id


async def _captures(user_db: Database, rider: Account) -> list[tuple[int, str | None]]:
    async with user_db.session() as s:
        entries = await SqlWalletRepository(s).entries(rider.id)
    return [(e.amount_cents, e.reference) for e in entries if e.kind == "capture"]


async def test_trip_cancelled_releases_the_hold_and_tells_the_rider(
    client: httpx.AsyncClient,
    funded_rider: RiderFactory,
    bus: InMemoryBus,
    wallet_of: WalletOf,
    wait_until: WaitUntil,
    user_db: Database,
) -> None:
    rider = await funded_rider(2000)
    trip_id = await _held_trip(user_db, rider, 800)
    assert await wallet_of(rider) == _wallet(2000, 800)
    event = TripCancelled(trip_id=trip_id, rider_id=rider.id, reason="rider changed plans")
    await _publish(bus, event, producer="trip")

    async def released() -> bool:
        return await wallet_of(rider) == _wallet(2000, 0)

    await wait_until(released, what="the hold released")
    r = await client.get("/notifications", headers=rider.headers)
    [note] = [n for n in r.json()["items"] if n["kind"] == "trip_cancelled"]
    assert note["title"] == "Trip cancelled"
    assert "rider changed plans" in note["body"]


async def test_invoice_below_the_hold_captures_it_and_releases_the_rest(
    funded_rider: RiderFactory,
    bus: InMemoryBus,
    credit_events: Captured,
    wallet_of: WalletOf,
    user_db: Database,
) -> None:
    rider = await funded_rider(3000)
    trip_id = await _held_trip(user_db, rider, 1500)
    invoice = _invoice(rider, trip_id, 1200)
    sent = await _publish(bus, invoice)

    [captured] = await credit_events.wait_for(invoice_id=invoice.invoice_id)
    assert captured.event_type == CreditsCaptured.event_type
    assert captured.data["amount_cents"] == 1200
    assert captured.data["trip_id"] == str(trip_id)
    assert captured.causation_id == str(sent.event_id)
    assert captured.correlation_id == sent.correlation_id
    assert await wallet_of(rider) == _wallet(1800, 0)
    assert await _captures(user_db, rider) == [(-1200, str(trip_id))]


async def test_invoice_above_the_hold_takes_the_excess_from_the_available_credits(
    funded_rider: RiderFactory,
    bus: InMemoryBus,
    credit_events: Captured,
    wallet_of: WalletOf,
    user_db: Database,
) -> None:
    rider = await funded_rider(3000)
    trip_id = await _held_trip(user_db, rider, 1000)
    invoice = _invoice(rider, trip_id, 1300)
    await _publish(bus, invoice)

    [captured] = await credit_events.wait_for(invoice_id=invoice.invoice_id)
    assert captured.event_type == CreditsCaptured.event_type
    assert captured.data["amount_cents"] == 1300
    assert await wallet_of(rider) == _wallet(1700, 0)
    assert await _captures(user_db, rider) == [(-1300, str(trip_id))]


async def test_invoice_beyond_the_riders_credits_fails_debits_nothing_and_releases_the_hold(
    funded_rider: RiderFactory,
    bus: InMemoryBus,
    credit_events: Captured,
    wallet_of: WalletOf,
    user_db: Database,
) -> None:
    rider = await funded_rider(1200)
    trip_id = await _held_trip(user_db, rider, 1000)
    invoice = _invoice(rider, trip_id, 1500)
    await _publish(bus, invoice)

    [failed] = await credit_events.wait_for(invoice_id=invoice.invoice_id)
    assert failed.event_type == CreditsCaptureFailed.event_type
    assert failed.data["amount_cents"] == 1500
    assert failed.data["reason"] == "insufficient credits: available 1200, needed 1500"
    assert await wallet_of(rider) == _wallet(1200, 0)
    assert await _captures(user_db, rider) == []


async def test_invoice_for_a_trip_without_held_credits_fails_and_debits_nothing(
    funded_rider: RiderFactory,
    bus: InMemoryBus,
    credit_events: Captured,
    wallet_of: WalletOf,
) -> None:
    rider = await funded_rider(5000)
    invoice = _invoice(rider, uuid.uuid4(), 100)
    await _publish(bus, invoice)

    [failed] = await credit_events.wait_for(invoice_id=invoice.invoice_id)
    assert failed.event_type == CreditsCaptureFailed.event_type
    assert "no credits are held" in failed.data["reason"]
    assert await wallet_of(rider) == _wallet(5000, 0)


async def test_the_same_invoice_delivered_twice_debits_once(
    funded_rider: RiderFactory,
    bus: InMemoryBus,
    credit_events: Captured,
    wallet_of: WalletOf,
    user_db: Database,
) -> None:
    rider = await funded_rider(3000)
    trip_id = await _held_trip(user_db, rider, 1000)
    invoice = _invoice(rider, trip_id, 900)
    envelope = await _publish(bus, invoice)
    await bus.publish(envelope)  # a redelivery: the same message id
    await credit_events.wait_for(invoice_id=invoice.invoice_id)
    # A later invoice through the same queue: once it is answered, the duplicate was handled too.
    marker = _invoice(rider, await _held_trip(user_db, rider, 100), 100)
    await _publish(bus, marker)
    await credit_events.wait_for(invoice_id=marker.invoice_id)

    assert len(credit_events.matching(invoice_id=invoice.invoice_id)) == 1
    assert await wallet_of(rider) == _wallet(2000, 0)
    assert [amount for amount, _ in await _captures(user_db, rider)] == [-900, -100]


async def test_an_invoice_issued_again_for_a_settled_trip_debits_once_and_confirms_again(
    funded_rider: RiderFactory,
    bus: InMemoryBus,
    credit_events: Captured,
    wallet_of: WalletOf,
    user_db: Database,
) -> None:
    rider = await funded_rider(3000)
    trip_id = await _held_trip(user_db, rider, 1000)
    invoice = _invoice(rider, trip_id, 1100)
    await _publish(bus, invoice)
    await credit_events.wait_for(invoice_id=invoice.invoice_id)
    await _publish(bus, invoice)  # a new message about the same invoice

    answers = await credit_events.wait_for(2, invoice_id=invoice.invoice_id)
    assert {(a.event_type, a.data["amount_cents"]) for a in answers} == {
        (CreditsCaptured.event_type, 1100)
    }
    assert await wallet_of(rider) == _wallet(1900, 0)
    assert await _captures(user_db, rider) == [(-1100, str(trip_id))]

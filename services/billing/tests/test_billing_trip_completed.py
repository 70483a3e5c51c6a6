"""trip.completed through billing: one invoice per trip, priced with the vehicle's tariff."""

from __future__ import annotations

import math
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import Table

from fleet.billing.adapters.tables import invoices, outbox, payments
from fleet.common.messaging import DeadLetter, Envelope, InMemoryBus
from fleet.common.testing import Account
from fleet.contracts.events import InvoiceIssued, TripCompleted
from fleet.contracts.queues import BILLING_EVENTS, QueueSpec

# The conftest fixtures' types (a conftest cannot be imported under --import-mode=importlib).
Deliver = Callable[[QueueSpec, Envelope], Awaitable[None]]
SentByBilling = Callable[[str], Awaitable[list[Envelope]]]
RowsIn = Callable[[Table], Awaitable[int]]
Platform = Any

ISSUED = InvoiceIssued.event_type


async def test_trip_completed_issues_an_invoice_priced_with_the_vehicle_models_tariff(
    client: httpx.AsyncClient, operator: Account, rider: Account, platform: Platform
) -> None:
    body = {"base_cents": 300, "per_km_cents": 150, "per_min_cents": 25}
    await client.put("/tariffs/Ioniq5", json=body, headers=operator.headers)
    trip = platform.trip_completed(
        rider.id, vehicle_model="Ioniq5", distance_km=12.345, duration_min=21.5
    )

    issued = await platform.complete(trip)

    amount = math.ceil(300 + 150 * 12.345 + 25 * 21.5)  # 2689.25 rounds up to the cent
    assert issued.data == {
        "invoice_id": issued.aggregate_id,
        "trip_id": trip.aggregate_id,
        "rider_id": str(rider.id),
        "amount_cents": amount,
    }
    assert (issued.aggregate_type, issued.version, issued.producer) == ("invoice", 1, "billing")
    assert issued.causation_id == str(trip.event_id)
    assert issued.correlation_id == trip.correlation_id
    r = await client.get(f"/invoices/{issued.aggregate_id}", headers=rider.headers)
    assert r.status_code == 200, r.text
    invoice = r.json()
    assert (invoice["trip_id"], invoice["rider_id"]) == (trip.aggregate_id, str(rider.id))
    assert invoice["amount_cents"] == amount
    assert (invoice["distance_km"], invoice["duration_min"]) == (12.345, 21.5)


@pytest.mark.parametrize("model", [None, "NoSuchModel"])
async def test_a_model_without_tariff_is_priced_with_the_default_tariff(
    model: str | None, client: httpx.AsyncClient, rider: Account, platform: Platform
) -> None:
    trip = platform.trip_completed(rider.id, vehicle_model=model, distance_km=10)

    issued = await platform.complete(trip)

    assert issued.data["amount_cents"] == math.ceil(250 + 120 * 10 + 30 * 21.5)
    listed = (await client.get("/invoices", headers=rider.headers)).json()
    assert [i["id"] for i in listed["items"]] == [issued.aggregate_id]


async def test_the_same_trip_completed_twice_makes_one_invoice_and_one_event(
    rider: Account,
    platform: Platform,
    deliver: Deliver,
    sent_by_billing: SentByBilling,
    rows_in: RowsIn,
) -> None:
    trip = platform.trip_completed(rider.id)
    announced_again = platform.trip_completed(rider.id, trip_id=uuid.UUID(trip.aggregate_id))

    await deliver(BILLING_EVENTS, trip)
    await deliver(BILLING_EVENTS, trip)  # redelivery of the same message
    await deliver(BILLING_EVENTS, announced_again)  # the same fact under a new event id

    assert await rows_in(invoices) == 1
    [issued] = await sent_by_billing(ISSUED)
    assert issued.causation_id == str(trip.event_id)


async def test_garbage_events_are_dead_lettered_and_change_nothing(
    rider: Account, platform: Platform, bus: InMemoryBus, rows_in: RowsIn, eventually: Any
) -> None:
    nonsense = Envelope.new(
        TripCompleted.event_type,
        {"trip_id": "'; DROP TABLE billing.invoices; --", "distance_km": "far"},
        producer="trip",
        aggregate_type="trip",
        aggregate_id="x",
    )
    impossible = platform.trip_completed(rider.id, distance_km=-3.0)
    endless = platform.trip_completed(rider.id, duration_min=1e9)
    never_issued = InvoiceIssued(
        invoice_id=uuid.uuid4(), trip_id=uuid.uuid4(), rider_id=rider.id, amount_cents=100
    ).to_envelope(producer="billing", aggregate_type="invoice", aggregate_id="x")
    unknown_invoice = platform.capture_outcome(never_issued)
    for envelope in (nonsense, impossible, endless, unknown_invoice):
        await bus.publish(envelope)
    dead: list[DeadLetter] = []

    async def all_dead() -> bool:
        dead[:] = await bus.dead_letters(BILLING_EVENTS.name)
        return len(dead) == 4

    # The bus retries each one (after 0.2 s, 1 s and 5 s) before it gives up on it.
    await eventually(all_dead, within=12)

    errors = {d.envelope.event_id: d.error for d in dead if d.envelope}
    assert errors.keys() == {e.event_id for e in (nonsense, impossible, endless, unknown_invoice)}
    assert "MalformedMessage" in errors[nonsense.event_id]
    assert "distance_km" in errors[impossible.event_id]
    assert "duration_min" in errors[endless.event_id]
    assert "UnknownInvoice" in errors[unknown_invoice.event_id]
    for table in (invoices, payments, outbox):
        assert await rows_in(table) == 0
    assert await platform.metric("payment_attempts_total") is None
    assert await platform.metric("payment_failure_total") is None

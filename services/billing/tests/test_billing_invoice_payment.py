"""An issued invoice meets user's capture: paid or failed, once, and counted in the metrics."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from sqlalchemy import Table, select

from fleet.billing.adapters.tables import payments
from fleet.common.messaging import Envelope
from fleet.common.runtime import ServiceRuntime
from fleet.common.testing import Account, RiderFactory
from fleet.contracts.events import InvoiceFailed, InvoicePaid
from fleet.contracts.queues import BILLING_EVENTS, QueueSpec

# The conftest fixtures' types (a conftest cannot be imported under --import-mode=importlib).
Deliver = Callable[[QueueSpec, Envelope], Awaitable[None]]
SentByBilling = Callable[[str], Awaitable[list[Envelope]]]
RowsIn = Callable[[Table], Awaitable[int]]
Platform = Any

PAID, FAILED = InvoicePaid.event_type, InvoiceFailed.event_type


async def invoice_of(client: httpx.AsyncClient, issued: Envelope, rider: Account) -> Any:
    r = await client.get(f"/invoices/{issued.aggregate_id}", headers=rider.headers)
    assert r.status_code == 200, r.text
    return r.json()


async def test_credits_captured_by_user_pay_the_invoice(
    client: httpx.AsyncClient, rider: Account, make_rider: RiderFactory, platform: Platform
) -> None:
    trip = platform.trip_completed(rider.id)
    await platform.hold_credits(rider, trip, 5_000)

    issued = await platform.complete(trip)
    paid = await platform.next(PAID, trip)

    assert paid.data == issued.data
    assert (paid.aggregate_id, paid.version) == (issued.aggregate_id, 2)
    invoice = await invoice_of(client, issued, rider)
    assert (invoice["status"], invoice["failure_reason"]) == ("paid", None)
    assert invoice["updated_at"] > invoice["created_at"]
    wallet = (await client.get("/wallet", headers=rider.headers)).json()
    assert wallet["balance_cents"] == 5_000 - issued.data["amount_cents"]
    stranger = await make_rider()
    r = await client.get(f"/invoices/{issued.aggregate_id}", headers=stranger.headers)
    assert r.status_code == 404


async def test_a_capture_user_refuses_fails_the_invoice_with_the_reason(
    client: httpx.AsyncClient, rider: Account, platform: Platform
) -> None:
    trip = platform.trip_completed(rider.id)  # no credits were ever held for it

    issued = await platform.complete(trip)
    failed = await platform.next(FAILED, trip)

    reason = failed.data.pop("reason")
    assert "no credits are held" in reason
    assert failed.data == issued.data
    assert failed.version == 2
    invoice = await invoice_of(client, issued, rider)
    assert (invoice["status"], invoice["failure_reason"]) == ("failed", reason)


async def test_a_paid_invoice_stays_paid_whatever_arrives_later(
    client: httpx.AsyncClient,
    rider: Account,
    platform: Platform,
    deliver: Deliver,
    sent_by_billing: SentByBilling,
    rows_in: RowsIn,
) -> None:
    trip = platform.trip_completed(rider.id)
    await platform.hold_credits(rider, trip, 5_000)
    issued = await platform.complete(trip)
    await platform.next(PAID, trip)

    await deliver(BILLING_EVENTS, platform.capture_outcome(issued))  # user answering again
    late_failure = platform.capture_outcome(issued, reason="insufficient credits")
    await deliver(BILLING_EVENTS, late_failure)

    invoice = await invoice_of(client, issued, rider)
    assert (invoice["status"], invoice["failure_reason"]) == ("paid", None)
    assert len(await sent_by_billing(PAID)) == 1
    assert await sent_by_billing(FAILED) == []
    assert await rows_in(payments) == 1


async def test_a_capture_after_a_failure_pays_the_invoice(
    client: httpx.AsyncClient,
    rider: Account,
    billing: ServiceRuntime,
    platform: Platform,
    deliver: Deliver,
    sent_by_billing: SentByBilling,
) -> None:
    trip = platform.trip_completed(rider.id)
    issued = await platform.complete(trip)
    failed = await platform.next(FAILED, trip)
    await deliver(BILLING_EVENTS, platform.capture_outcome(issued, reason="'; DROP TABLE x; --"))
    invoice = await invoice_of(client, issued, rider)
    assert (invoice["status"], invoice["failure_reason"]) == ("failed", failed.data["reason"])

    await deliver(
        BILLING_EVENTS, platform.capture_outcome(issued)
    )  # a retried capture went through

    invoice = await invoice_of(client, issued, rider)
    assert (invoice["status"], invoice["failure_reason"]) == ("paid", None)
    assert len(await sent_by_billing(FAILED)) == 1
    [paid] = await sent_by_billing(PAID)
    assert paid.version == 3
    async with billing.db.session() as session:
        rows = await session.execute(
            select(payments.c.attempt, payments.c.status, payments.c.error).order_by("attempt")
        )
        assert [tuple(r) for r in rows] == [
            (1, "failed", failed.data["reason"]),
            (2, "captured", None),
        ]


async def test_payment_metrics_count_a_success_and_a_failure(
    rider: Account, make_rider: RiderFactory, platform: Platform, deliver: Deliver
) -> None:
    cheap = platform.trip_completed(rider.id, distance_km=1, duration_min=2)
    await platform.hold_credits(rider, cheap, 1_000)
    poor = await make_rider()
    dear = platform.trip_completed(poor.id, distance_km=90)
    await platform.hold_credits(poor, dear, 100)  # far less than the ride will cost

    cheap_issued = await platform.complete(cheap)
    await platform.complete(dear)
    await platform.next(PAID, cheap)
    await platform.next(FAILED, dear)
    repeat = platform.capture_outcome(cheap_issued)
    await deliver(BILLING_EVENTS, repeat)  # changes nothing, so counts nothing

    attempts = "payment_attempts_total"
    assert await platform.metric(attempts, method="credits", amount_range="0-10") == 1
    assert await platform.metric(attempts, method="credits", amount_range="100+") == 1
    assert await platform.metric("payment_success_total") == 1
    failures = await platform.metric("payment_failure_total", error_type="insufficient_credits")
    assert failures == 1
    assert await platform.metric("payment_processing_duration_seconds_count") == 2
    duration = await platform.metric("payment_processing_duration_seconds_sum")
    assert duration is not None
    assert 0 < duration < 10

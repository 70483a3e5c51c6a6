"""Billing's messaging test kit: the live app's in-memory bus, listeners, polling, and a driver
that plays trip's part (holding credits, completing trips) against the real user service."""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Table, func, select

from fleet.billing.adapters.tables import outbox
from fleet.common.messaging import Envelope, ExchangeName, InMemoryBus, Message
from fleet.common.runtime import ServiceRuntime
from fleet.common.saga import Phase, SagaCommand
from fleet.common.testing import Account
from fleet.contracts.booking import SAGA_NAME, ReserveCredits
from fleet.contracts.events import (
    CreditsCaptured,
    CreditsCaptureFailed,
    InvoiceIssued,
    TripCompleted,
)
from fleet.contracts.queues import QueueSpec

Check = Callable[[], bool | Awaitable[bool]]
Eventually = Callable[..., Awaitable[None]]
# Where user's replies to the tests' reserve-credits commands go (trip's saga is not involved).
TEST_REPLIES = "test.billing-saga-reply"


async def _eventually(check: Check, within: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await _holds(check):
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def _holds(check: Check) -> bool:
    result = check()
    return await result if inspect.isawaitable(result) else result


@dataclass
class Listener:
    """Everything published on the keys a test queue is bound to, in arrival order."""

    messages: list[Envelope] = field(default_factory=list)

    async def __call__(self, envelope: Envelope) -> None:
        self.messages.append(envelope)

    def of(self, event_type: str) -> list[Envelope]:
        return [m for m in self.messages if m.event_type == event_type]


Listen = Callable[..., Awaitable[Listener]]


@pytest.fixture
def eventually() -> Eventually:
    """`await eventually(check, within=5.0)`: poll `check()` (sync or async) until it is true."""
    return _eventually


@pytest.fixture
def bus(app: FastAPI, client: httpx.AsyncClient) -> InMemoryBus:
    """The bus of the running platform app (the `client` fixture started it)."""
    del client  # requested only so that the app's lifespan has run
    live = app.state.fleet.bus
    assert isinstance(live, InMemoryBus)
    return live


@pytest.fixture
def listen(bus: InMemoryBus) -> Listen:
    """`await listen("events", "invoice.*")`: a test queue recording what it receives."""
    count = 0

    async def make(exchange: ExchangeName, *bindings: str) -> Listener:
        nonlocal count
        count += 1
        listener = Listener()
        await bus.subscribe(f"test.listener{count}", bindings, listener, exchange=exchange)
        return listener

    return make


@pytest.fixture
def billing(app: FastAPI, client: httpx.AsyncClient) -> ServiceRuntime:
    """The billing service inside the running app."""
    del client
    rt: ServiceRuntime = app.state.fleet.services["billing"]
    return rt


Deliver = Callable[[QueueSpec, Envelope], Awaitable[None]]


@pytest.fixture
def deliver(billing: ServiceRuntime) -> Deliver:
    """`await deliver(BILLING_EVENTS, envelope)`: run billing's handler of that queue as the bus
    does on a (re)delivery, and return once its transaction committed — for exact counts."""
    assert billing.module.subscriptions is not None
    handlers = {s.queue: s.handler for s in billing.module.subscriptions(billing)}

    async def run(queue: QueueSpec, envelope: Envelope) -> None:
        await handlers[queue.name](envelope)

    return run


SentByBilling = Callable[[str], Awaitable[list[Envelope]]]
RowsIn = Callable[[Table], Awaitable[int]]


@pytest.fixture
def sent_by_billing(billing: ServiceRuntime) -> SentByBilling:
    """`await sent_by_billing("invoice.issued")`: every such message billing committed to send."""

    async def read(routing_key: str) -> list[Envelope]:
        async with billing.db.session() as session:
            rows = await session.execute(
                select(outbox.c.body)
                .where(outbox.c.routing_key == routing_key)
                .order_by(outbox.c.created_at)
            )
            return [Envelope.decode(body) for (body,) in rows]

    return read


def trip_completed(
    rider_id: uuid.UUID,
    *,
    trip_id: uuid.UUID | None = None,
    vehicle_model: str | None = None,
    distance_km: float = 12.345,
    duration_min: float = 21.5,
) -> Envelope:
    """trip's announcement that a ride ended."""
    trip_id = trip_id or uuid.uuid4()
    event = TripCompleted(
        trip_id=trip_id,
        rider_id=rider_id,
        vehicle_id=uuid.uuid4(),
        vehicle_model=vehicle_model,
        distance_km=distance_km,
        duration_min=duration_min,
        quoted_fare_cents=2000,
        completed_at=dt.datetime.now(dt.UTC),
    )
    return event.to_envelope(producer="trip", aggregate_type="trip", aggregate_id=trip_id)


def capture_outcome(issued: Envelope, *, reason: str | None = None) -> Envelope:
    """An answer to an invoice.issued as user gives it: captured, or (with a reason) refused."""
    data = InvoiceIssued.model_validate(issued.data)
    ids = data.model_dump()
    message: Message = (
        CreditsCaptured(**ids) if reason is None else CreditsCaptureFailed(**ids, reason=reason)
    )
    return message.to_envelope(
        producer="user", aggregate_type="wallet", aggregate_id=data.rider_id, causation=issued
    )


class Platform:
    """Drives the live app the way trip does: holds credits, completes trips, waits for billing."""

    trip_completed = staticmethod(trip_completed)
    capture_outcome = staticmethod(capture_outcome)

    def __init__(self, client: httpx.AsyncClient, bus: InMemoryBus, invoices: Listener) -> None:
        self.client, self.bus, self.invoices = client, bus, invoices
        self.replies = Listener()

    async def hold_credits(self, rider: Account, trip: Envelope, cents: int) -> None:
        """Top up `rider`'s wallet and hold `cents` for `trip`, as the booking saga does."""
        r = await self.client.post(
            "/wallet/top-up", json={"amount_cents": cents}, headers=rider.headers
        )
        assert r.status_code == 200, r.text
        command = SagaCommand(
            saga_id=uuid.uuid4(),
            saga_name=SAGA_NAME,
            step="reserve-credits",
            phase=Phase.ACTION,
            attempt=1,
            command_type=ReserveCredits.event_type,
            payload={"trip_id": trip.aggregate_id, "rider_id": str(rider.id), "fare_cents": cents},
            reply_to=TEST_REPLIES,
        )
        await self.bus.publish(
            Envelope.new(
                command.command_type,
                command.to_dict(),
                producer="trip",
                aggregate_type="saga",
                aggregate_id=command.saga_id,
                kind="command",
                reply_to=TEST_REPLIES,
            ),
            exchange="commands",
        )

        def answers() -> list[Envelope]:
            return [m for m in self.replies.messages if m.aggregate_id == str(command.saga_id)]

        await _eventually(lambda: len(answers()) == 1)
        assert answers()[0].data["success"] is True, answers()[0].data

    async def complete(self, trip: Envelope) -> Envelope:
        """Publish `trip`'s completion; billing's invoice.issued for it."""
        await self.bus.publish(trip)
        return await self.next(InvoiceIssued.event_type, trip)

    async def next(self, event_type: str, trip: Envelope) -> Envelope:
        """The one `event_type` billing published about `trip`, once it arrived."""

        def found() -> list[Envelope]:
            return [
                m for m in self.invoices.of(event_type) if m.data["trip_id"] == trip.aggregate_id
            ]

        await _eventually(lambda: len(found()) == 1)
        return found()[0]

    async def metric(self, name: str, **labels: str) -> float | None:
        """The value of the first sample `name` with `labels` on GET /metrics, if any."""
        text = (await self.client.get("/metrics")).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    return float(sample.value)
        return None


@pytest.fixture
async def platform(client: httpx.AsyncClient, bus: InMemoryBus, listen: Listen) -> Platform:
    driver = Platform(client, bus, await listen("events", "invoice.*"))
    await bus.subscribe("test.saga-replies", [TEST_REPLIES], driver.replies, exchange="commands")
    return driver


async def count(rt: ServiceRuntime, table: Table) -> int:
    async with rt.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(table)) or 0)


@pytest.fixture
def rows_in(billing: ServiceRuntime) -> RowsIn:
    """`await rows_in(invoices)`: how many rows a billing table holds."""
    return lambda table: count(billing, table)

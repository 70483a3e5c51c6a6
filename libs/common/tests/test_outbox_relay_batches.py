"""The outbox relay publishes a batch at once: one confirm wait per batch, order kept, failures
backed off one by one."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from fleet.common.db import Database, service_metadata, utcnow
from fleet.common.messaging import Envelope, ExchangeName, InMemoryBus, PublishError
from fleet.common.outbox import OutboxRelay, enqueue, outbox_table
from fleet.common.testing import tables_database

SCHEMA = "outbox_batch_test"
metadata = service_metadata(SCHEMA)
outbox = outbox_table(metadata)
CONFIRM_S = 0.2


class SlowBus(InMemoryBus):
    """A broker whose confirms take `CONFIRM_S`; it refuses the envelopes listed in `refuse`."""

    def __init__(self) -> None:
        super().__init__()
        self.started: list[int] = []
        self.refuse: set[int] = set()

    async def publish(self, envelope: Envelope, *, exchange: ExchangeName = "events") -> None:
        n = int(envelope.data["n"])
        self.started.append(n)
        await asyncio.sleep(CONFIRM_S)
        if n in self.refuse:
            raise PublishError("nacked")
        await super().publish(envelope, exchange=exchange)


@pytest.fixture
async def db(backend_url: str) -> AsyncIterator[Database]:
    async with tables_database(backend_url, SCHEMA, metadata) as database:
        yield database


@pytest.fixture
async def bus() -> AsyncIterator[SlowBus]:
    b = SlowBus()
    await b.start()
    yield b
    await b.close()


async def _enqueue(db: Database, count: int) -> list[Envelope]:
    sent = [
        Envelope.new(
            "trip.completed", {"n": n}, producer="trip", aggregate_type="trip", aggregate_id="t1"
        )
        for n in range(count)
    ]
    async with db.transaction() as session:
        for envelope in sent:
            await enqueue(session, envelope, table=outbox)
    return sent


async def test_a_batch_waits_for_its_confirms_together_and_keeps_the_order(
    db: Database, bus: SlowBus
) -> None:
    await _enqueue(db, 10)
    relay = OutboxRelay(db, bus, outbox)

    start = time.perf_counter()
    published = await relay.run_once()
    took = time.perf_counter() - start

    assert published == 10
    assert bus.started == list(range(10))
    assert took < 10 * CONFIRM_S / 2  # one at a time would take 10 confirm waits
    async with db.session() as session:
        unpublished = await session.execute(
            select(outbox.c.id).where(outbox.c.published_at.is_(None))
        )
        assert unpublished.all() == []


async def test_every_refused_row_of_a_batch_is_kept_and_backed_off(
    db: Database, bus: SlowBus
) -> None:
    sent = await _enqueue(db, 6)
    bus.refuse = {1, 4}
    relay = OutboxRelay(db, bus, outbox, backoff_base=30.0)

    assert await relay.run_once() == 4

    async with db.session() as session:
        rows = {r.id: r for r in await session.execute(select(outbox))}
    refused = [rows[sent[n].event_id] for n in (1, 4)]
    assert all(r.published_at is None and r.attempts == 1 for r in refused)
    assert all(r.next_attempt_at > utcnow() and "nacked" in r.last_error for r in refused)
    kept = [rows[sent[n].event_id] for n in (0, 2, 3, 5)]
    assert all(r.published_at is not None and r.attempts == 0 for r in kept)
    bus.started.clear()
    assert await relay.run_once() == 0  # refused rows wait for their back-off
    assert bus.started == []

"""billing announces its tariffs (`billing.tariff-changed`) for trip's replica: with every change,
in the same commit, and all of them again at start-up and periodically."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from fleet.billing.adapters.repository import SqlTariffRepository
from fleet.billing.adapters.tables import outbox
from fleet.billing.service.tariffs import announce_tariffs
from fleet.common.db import Database
from fleet.common.messaging import Envelope
from fleet.common.runtime import ServiceRuntime
from fleet.common.testing import Account, app_client
from fleet.contracts.events import TariffChanged
from fleet.contracts.fares import Tariff
from fleet.platform.client import eventually

# The conftest fixture's type (a conftest cannot be imported under --import-mode=importlib).
SentByBilling = Callable[[str], Awaitable[list[Envelope]]]
CHANGED = TariffChanged.event_type


async def put(client: httpx.AsyncClient, op: Account, model: str, base_cents: int) -> None:
    body = {"base_cents": base_cents, "per_km_cents": 110, "per_min_cents": 25}
    r = await client.put(f"/tariffs/{model}", json=body, headers=op.headers)
    assert r.status_code == 200, r.text


async def test_every_put_announces_the_models_next_version(
    client: httpx.AsyncClient, operator: Account, sent_by_billing: SentByBilling
) -> None:
    await put(client, operator, "Ioniq5", 400)
    await put(client, operator, "Ioniq5", 450)
    await put(client, operator, "default", 300)

    # (A start-up re-announcement racing the first put may repeat a version: allowed by design.)
    sent = list({(e.aggregate_id, e.version): e for e in await sent_by_billing(CHANGED)}.values())

    events = [TariffChanged.model_validate(e.data) for e in sent]
    assert [(e.vehicle_model, e.version, e.base_cents) for e in events] == [
        ("Ioniq5", 1, 400),
        ("Ioniq5", 2, 450),
        ("default", 1, 300),
    ]
    assert {(e.per_km_cents, e.per_min_cents) for e in events} == {(110, 25)}
    assert [(e.aggregate_type, e.aggregate_id, e.version) for e in sent] == [
        ("tariff", "Ioniq5", 1),
        ("tariff", "Ioniq5", 2),
        ("tariff", "default", 1),
    ]
    assert events[0].updated_at <= events[1].updated_at


async def test_a_refused_put_announces_nothing(
    client: httpx.AsyncClient, operator: Account, sent_by_billing: SentByBilling
) -> None:
    r = await client.put(
        "/tariffs/Ioniq5",
        json={"base_cents": -1, "per_km_cents": 1, "per_min_cents": 1},
        headers=operator.headers,
    )
    assert r.status_code == 422
    assert await sent_by_billing(CHANGED) == []


async def test_announcing_again_repeats_the_current_versions(
    client: httpx.AsyncClient,
    operator: Account,
    billing: ServiceRuntime,
    sent_by_billing: SentByBilling,
) -> None:
    await put(client, operator, "Ioniq5", 400)
    await put(client, operator, "Ioniq5", 450)
    await put(client, operator, "default", 300)

    assert await announce_tariffs(billing) == 2

    again = [TariffChanged.model_validate(e.data) for e in (await sent_by_billing(CHANGED))[-2:]]
    assert [(e.vehicle_model, e.version, e.base_cents) for e in again] == [
        ("Ioniq5", 2, 450),
        ("default", 1, 300),
    ]


async def test_billing_announces_its_stored_tariffs_when_it_starts(
    app: FastAPI, pg_url: str
) -> None:
    db = Database(pg_url, "billing")
    try:
        for base in (100, 200):  # stored before the app starts: versions 1 and 2
            async with db.transaction() as session:
                await SqlTariffRepository(session).put(Tariff("Ioniq5", base, 10, 1))
        async with app_client(app):
            announced = await eventually(lambda: _announced(db), lambda found: bool(found), 5)
    finally:
        await db.dispose()

    assert [(e.vehicle_model, e.version, e.base_cents) for e in announced] == [("Ioniq5", 2, 200)]


async def _announced(db: Database) -> list[TariffChanged]:
    async with db.session() as session:
        rows = await session.execute(select(outbox.c.body).where(outbox.c.routing_key == CHANGED))
        return [TariffChanged.model_validate(Envelope.decode(body).data) for (body,) in rows]

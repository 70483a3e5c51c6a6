"""The tariff replica's upsert on both backends: the newest version per model wins."""

from __future__ import annotations

import datetime as dt

from fleet.common.testing import MakeDb
from fleet.contracts.events import TariffChanged
from fleet.contracts.fares import Tariff
from fleet.trip.adapters.tariffs import SqlTariffReplica
from fleet.trip.app import module

T0 = dt.datetime(2026, 3, 1, 8, 0, tzinfo=dt.UTC)


def changed(version: int, base_cents: int, model: str = "default") -> TariffChanged:
    return TariffChanged(
        vehicle_model=model,
        base_cents=base_cents,
        per_km_cents=100,
        per_min_cents=10,
        version=version,
        updated_at=T0 + dt.timedelta(minutes=version),
    )


async def test_the_newest_version_of_each_model_is_kept(make_db: MakeDb) -> None:
    db = await make_db(module())
    outcomes = []
    for event in (changed(1, 100), changed(3, 300), changed(2, 200), changed(3, 999)):
        async with db.transaction() as session:
            outcomes.append(await SqlTariffReplica(session).apply(event))
    async with db.transaction() as session:
        outcomes.append(await SqlTariffReplica(session).apply(changed(1, 50, model="Ioniq5")))

    async with db.session() as session:
        replica = SqlTariffReplica(session)
        assert await replica.get("default") == Tariff("default", 300, 100, 10)
        assert await replica.get("Ioniq5") == Tariff("Ioniq5", 50, 100, 10)
        assert await replica.get("Model 3") is None
    # kept v1, kept v3, ignored the late v2, ignored a second v3, kept another model's v1
    assert outcomes == [True, True, False, False, True]

from __future__ import annotations

from fleet.billing.adapters.repository import SqlTariffRepository
from fleet.billing.app import module
from fleet.billing.domain.fares import Tariff
from fleet.common.testing import MakeDb


async def test_put_tariff_replaces_the_previous_one(make_db: MakeDb) -> None:
    db = await make_db(module())
    async with db.transaction() as s:
        await SqlTariffRepository(s).put(Tariff("Ioniq5", 100, 10, 1))
    async with db.transaction() as s:
        await SqlTariffRepository(s).put(Tariff("Ioniq5", 200, 20, 2))
    async with db.session() as s:
        assert await SqlTariffRepository(s).get("Ioniq5") == Tariff("Ioniq5", 200, 20, 2)
        assert [t.vehicle_model for t in await SqlTariffRepository(s).list()] == ["Ioniq5"]

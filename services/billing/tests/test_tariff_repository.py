from __future__ import annotations

from fleet.billing.adapters.repository import SqlTariffRepository
from fleet.billing.app import module
from fleet.common.testing import MakeDb
from fleet.contracts.fares import Tariff


async def test_put_tariff_replaces_the_previous_one(make_db: MakeDb) -> None:
    db = await make_db(module())
    async with db.transaction() as s:
        await SqlTariffRepository(s).put(Tariff("Ioniq5", 100, 10, 1))
    async with db.transaction() as s:
        await SqlTariffRepository(s).put(Tariff("Ioniq5", 200, 20, 2))
    async with db.session() as s:
        assert await SqlTariffRepository(s).get("Ioniq5") == Tariff("Ioniq5", 200, 20, 2)
        assert [t.vehicle_model for t in await SqlTariffRepository(s).list()] == ["Ioniq5"]


async def test_every_put_of_a_model_is_its_next_version(make_db: MakeDb) -> None:
    db = await make_db(module())
    versions = []
    for base in (100, 200, 300):
        async with db.transaction() as s:
            stored = await SqlTariffRepository(s).put(Tariff("Ioniq5", base, 10, 1))
            versions.append(stored.version)
    async with db.transaction() as s:
        other = await SqlTariffRepository(s).put(Tariff("default", 1, 1, 1))
    async with db.session() as s:
        listed = {t.tariff.vehicle_model: t for t in await SqlTariffRepository(s).list_stored()}

    assert versions == [1, 2, 3]
    assert other.version == 1
    assert (listed["Ioniq5"].version, listed["Ioniq5"].tariff.base_cents) == (3, 300)
    assert listed["Ioniq5"].updated_at.tzinfo is not None

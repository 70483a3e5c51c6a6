"""The migrations build exactly the tables the code declares, and rolls back cleanly."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection

from fleet.common import migrations
from fleet.common.testing import MakeDb
from fleet.user.adapters.tables import metadata
from fleet.user.app import module


def _diff(conn: Connection) -> list[Any]:
    opts = {"include_schemas": True, "version_table_schema": metadata.schema}
    ctx = MigrationContext.configure(conn, opts=opts)
    return list(compare_metadata(ctx, metadata))


# SQLite runs the same DDL with the schema translated away, which the comparison cannot follow.
@pytest.mark.parametrize("backend_url", ["postgres"], indirect=True)
async def test_migrated_schema_matches_the_tables(make_db: MakeDb) -> None:
    db = await make_db(module())
    async with db.engine.connect() as conn:
        assert await conn.run_sync(_diff) == []


async def test_migration_downgrades_and_upgrades_again(make_db: MakeDb) -> None:
    m = module()
    db = await make_db(m)
    await migrations.downgrade(db, m.migrations)
    assert await migrations.current_revision(db) is None
    await migrations.upgrade(db, m.migrations)
    assert await migrations.current_revision(db) == "0002"

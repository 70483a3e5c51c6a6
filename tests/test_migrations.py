"""Every service's migration history applies to head and rolls back to base, on both backends."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest
from sqlalchemy import inspect

from fleet.common import migrations
from fleet.common.db import Database
from fleet.common.testing import create_database, drop_database
from fleet.platform.services import SERVICE_NAMES, module_named


async def _tables(db: Database) -> set[str]:
    async with db.engine.connect() as conn:
        schema = None if db.is_sqlite else db.schema
        names = await conn.run_sync(lambda c: inspect(c).get_table_names(schema=schema))
    return set(names) - {"alembic_version"}


@pytest.mark.parametrize("service", SERVICE_NAMES)
async def test_migrations_upgrade_to_head_and_downgrade_to_base(
    service: str, backend_url: str
) -> None:
    module = module_named(service)
    db = Database(backend_url, module.schema)
    try:
        await migrations.upgrade(db, module.migrations)
        expected = {t.name for t in module.metadata.sorted_tables}
        assert await _tables(db) == expected
        assert await migrations.current_revision(db) is not None

        await migrations.downgrade(db, module.migrations)
        assert await _tables(db) == set()
        assert await migrations.current_revision(db) is None

        await migrations.upgrade(db, module.migrations)
        assert await _tables(db) == expected
    finally:
        await db.dispose()


@pytest.mark.parametrize("service", SERVICE_NAMES)
async def test_migrations_match_the_table_definitions(service: str, pg_url: str) -> None:
    """Autogenerate finds nothing to do: the tables and the migration history agree."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    module = module_named(service)
    db = Database(pg_url, module.schema)
    try:
        async with db.engine.connect() as conn:

            def diff(sync_conn: object) -> list[object]:
                ctx = MigrationContext.configure(
                    sync_conn,  # type: ignore[arg-type]
                    opts={
                        "include_schemas": True,
                        "version_table_schema": module.schema,
                        "include_name": lambda name, type_, _parent: (
                            type_ != "schema" or name == module.schema
                        ),
                    },
                )
                return list(compare_metadata(ctx, module.metadata))

            assert await conn.run_sync(diff) == []
    finally:
        await db.dispose()


def test_fleet_migrate_brings_every_schema_to_head_and_down_again() -> None:
    """The operator's command (a process of its own, as in a deployment's migration job)."""
    url = create_database()
    env = {**os.environ, "DATABASE_URL": url}

    def fleet(*args: str) -> str:
        command = [sys.executable, "-m", "fleet.platform", "migrate", *args]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout + done.stderr

    async def revisions() -> dict[str, str | None]:
        found: dict[str, str | None] = {}
        for name in SERVICE_NAMES:
            db = Database(url, module_named(name).schema)
            try:
                found[name] = await migrations.current_revision(db)
            finally:
                await db.dispose()
        return found

    try:
        printed = fleet()
        stored = asyncio.run(revisions())
        assert None not in stored.values()
        for name, revision in stored.items():  # what it says is what the database holds
            assert f"{name:8} -> {revision}" in printed
        assert "trip     -> base" in fleet("trip", "--down")
        assert asyncio.run(revisions()) == {**stored, "trip": None}
        fleet("trip")
        assert asyncio.run(revisions()) == stored
    finally:
        drop_database(url)

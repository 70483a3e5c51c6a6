"""Alembic, one history per service, run programmatically.

Each service keeps its scripts in `fleet/<svc>/migrations/` with a two-line `env.py` that calls
`run_env(...)`. The version table lives in the service's own schema, so histories never mix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection

from fleet.common.db import Database


def _config(script_location: Path, connection: Connection, schema: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    cfg.attributes["connection"] = connection
    cfg.attributes["schema"] = schema
    return cfg


def _render_item(type_: str, obj: Any, _autogen_context: Any) -> str | Literal[False]:
    """Render our column types as their plain SQLAlchemy equivalents in migration scripts."""
    from fleet.common.db import UTCDateTime

    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run_env(metadata: MetaData) -> None:
    """Body of a service's `migrations/env.py`: migrate over the connection handed in."""
    cfg = context.config
    connection: Connection = cfg.attributes["connection"]
    schema: str = cfg.attributes["schema"]
    sqlite = connection.dialect.name == "sqlite"
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table="alembic_version",
        version_table_schema=None if sqlite else schema,
        render_as_batch=sqlite,
        include_schemas=not sqlite,
        render_item=_render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run(db: Database, script_location: Path, action: str, revision: str) -> None:
    def do(sync_conn: Connection) -> None:
        if not db.is_sqlite:
            sync_conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{db.schema}"'))
        cfg = _config(script_location, sync_conn, db.schema)
        fn: Any = getattr(command, action)
        fn(cfg, revision)

    async with db.engine.begin() as conn:
        await conn.run_sync(do)


async def upgrade(db: Database, script_location: Path, revision: str = "head") -> None:
    """Apply the service's migrations up to `revision`."""
    await _run(db, script_location, "upgrade", revision)


async def downgrade(db: Database, script_location: Path, revision: str = "base") -> None:
    """Roll the service's migrations back down to `revision`."""
    await _run(db, script_location, "downgrade", revision)


async def current_revision(db: Database) -> str | None:
    """The revision the service's schema is at, or None if never migrated."""
    table = "alembic_version" if db.is_sqlite else f'"{db.schema}".alembic_version'
    async with db.engine.connect() as conn:
        try:
            row = (await conn.execute(text(f"SELECT version_num FROM {table}"))).first()  # noqa: S608
        except Exception:
            return None
        return row[0] if row else None


async def autogenerate(db: Database, script_location: Path, message: str) -> None:
    """Write a new revision from the difference between the tables and the database."""

    def do(sync_conn: Connection) -> None:
        if not db.is_sqlite:
            sync_conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{db.schema}"'))
        cfg = _config(script_location, sync_conn, db.schema)
        command.revision(cfg, message=message, autogenerate=True)

    async with db.engine.begin() as conn:
        await conn.run_sync(do)

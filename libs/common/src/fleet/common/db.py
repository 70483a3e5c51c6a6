"""One async SQLAlchemy engine per service, bound to the service's own schema.

On PostgreSQL every service has its own schema in the shared database (asyncpg driver). In
embedded mode every service has its own SQLite file (aiosqlite); schema names are translated
away, so the same tables, queries and migrations serve both.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
from sqlalchemy import DateTime, MetaData, event, text
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    AsyncSessionTransaction,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.pool import NullPool
from sqlalchemy.types import TypeDecorator

from fleet.common.logging import get_logger

log = get_logger("fleet.db")

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def service_metadata(schema: str) -> MetaData:
    """MetaData for a service's tables, in its schema, with stable constraint names."""
    return MetaData(schema=schema, naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(
        self, value: dt.datetime | None, _dialect: Dialect
    ) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def _drop_if_closed(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Pessimistic disconnect handling without a round trip.

    asyncpg notices when the server closes a connection (restart, failover, idle timeout): the
    pool then discards it and checks out another. SQLAlchemy's `pool_pre_ping` would ask the
    server instead, with BEGIN, a query and ROLLBACK on every checkout: a third of the
    statements of a booking.
    """
    raw = getattr(dbapi_connection, "_connection", None)
    if raw is not None and raw.is_closed():
        raise DisconnectionError("the server closed this connection")


def json_text(value: Any) -> str:
    """A JSON column's value as text: the value `json.dumps` would give (non-string keys become
    strings, as there), written compact and in UTF-8 by orjson, several times faster."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


class Database:
    """The engine and session factory of one service, created in the app's lifespan."""

    def __init__(self, url: str, schema: str, *, echo: bool = False, pool_size: int = 20) -> None:
        self.url = url
        self.schema = schema
        self.dialect = make_url(url).get_backend_name()
        # JSON columns through orjson: the saga's data and step results, the outbox's headers
        # are written on every booking message (stdlib json was ≈ 3 % of trip's CPU).
        kwargs: dict[str, Any] = {
            "echo": echo,
            "json_serializer": json_text,
            "json_deserializer": orjson.loads,
        }
        if self.dialect == "sqlite":
            path = make_url(url).database
            if path and path != ":memory:":
                from pathlib import Path

                Path(path).parent.mkdir(parents=True, exist_ok=True)
            kwargs["poolclass"] = NullPool
        else:
            # No overflow: connections beyond the pool's size are closed as soon as they are
            # returned, and reconnecting (TLS probe, authentication, codec set-up) costs more
            # than a whole saga step's queries. No `pool_pre_ping` either: see `_drop_if_closed`.
            kwargs.update(pool_size=pool_size, max_overflow=0)
            # Name the connections after the service: pg_stat_activity, the server's log and
            # lock reports then say whose a session is.
            kwargs["connect_args"] = {"server_settings": {"application_name": f"fleet-{schema}"}}
        engine = create_async_engine(url, **kwargs)
        if self.dialect == "sqlite":
            event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
            engine = engine.execution_options(schema_translate_map={schema: None})
        else:
            event.listen(engine.sync_engine, "checkout", _drop_if_closed)
        self.engine: AsyncEngine = engine
        self.sessionmaker = async_sessionmaker(
            engine,
            class_=FleetAsyncSession,
            expire_on_commit=False,
            sync_session_class=FleetSession,
        )

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction: committed on success, rolled back on error."""
        async with self.sessionmaker() as session, session.begin():
            yield session

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session for reads (no explicit transaction management)."""
        async with self.sessionmaker() as session:
            yield session

    async def ping(self) -> None:
        """Raise if the database cannot answer a trivial query."""
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


def insert_for(session_or_dialect: AsyncSession | str, table: Any) -> Any:
    """A dialect-specific INSERT (PostgreSQL or SQLite) offering `on_conflict_do_*`."""
    name = (
        session_or_dialect
        if isinstance(session_or_dialect, str)
        else session_or_dialect.get_bind().dialect.name
    )
    if name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table)
    from sqlalchemy.dialects.postgresql import insert as pg_insert

    return pg_insert(table)


async def ensure_database(url: str) -> bool:
    """Create the PostgreSQL database named in `url` if it does not exist (True if created)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql" or not parsed.database:
        return False
    admin = create_async_engine(
        parsed.set(database="postgres").render_as_string(hide_password=False),
        isolation_level="AUTOCOMMIT",
    )
    try:
        async with admin.connect() as conn:
            exists = await conn.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": parsed.database}
            )
            if not exists:
                quoted = parsed.database.replace('"', '""')
                await conn.execute(text(f'CREATE DATABASE "{quoted}"'))
            return not exists
    finally:
        await admin.dispose()


_AFTER_COMMIT = "fleet.after_commit"
# `session.info` key of the inserts a `fleet.common.inserts.write_behind` block holds back.
PENDING_INSERTS = "fleet.inserts.pending"


async def write_pending(session: AsyncSession) -> None:
    """Write the inserts a `write_behind` block holds back, before anything else runs."""
    pending = session.sync_session.info.get(PENDING_INSERTS)
    if pending is not None and pending.groups:
        await pending.write(session)


class FleetAsyncSession(AsyncSession):
    """A `Database`'s sessions: whatever may reach the database (every method that runs a
    statement, `connection`, `flush`, `begin_nested`, `run_sync`; `native` too) first writes
    the inserts a `write_behind` block holds back, so the block reads its own writes and a
    savepoint that rolls back never takes them along."""

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        await write_pending(self)
        return await super().execute(*args, **kwargs)

    async def scalar(self, *args: Any, **kwargs: Any) -> Any:
        await write_pending(self)
        return await super().scalar(*args, **kwargs)

    async def get(self, *args: Any, **kwargs: Any) -> Any:
        await write_pending(self)
        return await super().get(*args, **kwargs)

    async def get_one(self, *args: Any, **kwargs: Any) -> Any:
        await write_pending(self)
        return await super().get_one(*args, **kwargs)

    async def stream(self, *args: Any, **kwargs: Any) -> Any:
        await write_pending(self)
        return await super().stream(*args, **kwargs)

    async def refresh(self, *args: Any, **kwargs: Any) -> None:
        await write_pending(self)
        await super().refresh(*args, **kwargs)

    async def merge(self, *args: Any, **kwargs: Any) -> Any:
        await write_pending(self)
        return await super().merge(*args, **kwargs)

    async def run_sync(self, *args: Any, **kwargs: Any) -> Any:
        await write_pending(self)
        return await super().run_sync(*args, **kwargs)

    async def flush(self, *args: Any, **kwargs: Any) -> None:
        await write_pending(self)
        await super().flush(*args, **kwargs)

    async def connection(self, *args: Any, **kwargs: Any) -> Any:
        await write_pending(self)
        return await super().connection(*args, **kwargs)

    def begin_nested(self) -> AsyncSessionTransaction:
        return _SavepointAfterPending(self, nested=True)


class _SavepointAfterPending(AsyncSessionTransaction):
    async def start(self, is_ctxmanager: bool = False) -> AsyncSessionTransaction:
        await write_pending(self.session)
        return await super().start(is_ctxmanager)


class FleetSession(Session):
    """The sessions of a `Database`: `after_commit` callbacks are run by listeners registered
    once on this class, not by two listeners added to every session (adding them cost more
    than a transaction's BEGIN and COMMIT)."""


def after_commit(session: AsyncSession, callback: Callable[[], None]) -> None:
    """Run `callback` once the session's current outermost transaction commits.

    For what must not happen unless the effect is durable (metrics, live streams): a rollback
    drops it. A failing callback is logged, never raised: the transaction already committed.
    """
    sync = session.sync_session
    pending: list[Callable[[], None]] | None = sync.info.get(_AFTER_COMMIT)
    if pending is None:
        pending = sync.info[_AFTER_COMMIT] = []
        if not isinstance(sync, FleetSession):  # a session of another factory
            event.listen(sync, "after_commit", _run_after_commit)
            event.listen(sync, "after_transaction_end", _drop_after_commit)
    pending.append(callback)


def _run_after_commit(session: Session) -> None:
    # SQLAlchemy signals a savepoint's release as a commit too: wait for the outermost one.
    pending: list[Callable[[], None]] | None = session.info.get(_AFTER_COMMIT)
    if not pending or session.in_nested_transaction():
        return
    callbacks = list(pending)
    pending.clear()
    for callback in callbacks:
        try:
            callback()
        except Exception:
            log.exception("after-commit callback failed")


def _drop_after_commit(session: Session, transaction: SessionTransaction, *_: Any) -> None:
    # Savepoints end too (a failed local step); only the outermost end drops what is left.
    pending: list[Callable[[], None]] | None = session.info.get(_AFTER_COMMIT)
    if pending and transaction.parent is None:
        pending.clear()


event.listen(FleetSession, "after_commit", _run_after_commit)
event.listen(FleetSession, "after_transaction_end", _drop_after_commit)

"""Test support shared by every service's suite: throwaway PostgreSQL databases and ASGI clients.

Tests run against the real servers. When `FLEET_TEST_PG_URL` is unset and a Docker engine answers,
a PostgreSQL container is started (testcontainers); otherwise the local server is used.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from fastapi import APIRouter, FastAPI
from sqlalchemy import JSON, Column, Integer, MetaData, String, Table, event, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from fleet.common import native
from fleet.common.app import ServiceModule
from fleet.common.config import Settings
from fleet.common.db import Database, service_metadata
from fleet.common.messaging import Envelope, ExchangeName, InMemoryBus, MessageBus, PublishError
from fleet.common.outbox import OutboxRelay
from fleet.common.saga import SagaCommand

LOCAL_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"


def docker_available() -> bool:
    """True if a Docker engine answers (then testcontainers may be used)."""
    try:
        import docker  # type: ignore[import-not-found,import-untyped,unused-ignore]

        docker.from_env(timeout=2).ping()
        return True
    except Exception:
        return False


def admin_pg_url() -> str:
    """A superuser URL of the PostgreSQL server tests may create databases on."""
    return os.environ.get("FLEET_TEST_PG_URL", LOCAL_PG)


async def _admin_exec(admin_url: str, sql: str) -> None:
    engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(sql))
    finally:
        await engine.dispose()


def create_database(admin_url: str | None = None, prefix: str = "fleet_test") -> str:
    """Create a uniquely named database and return its URL."""
    admin_url = admin_url or admin_pg_url()
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin_exec(admin_url, f'CREATE DATABASE "{name}"'))
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_database(url: str, admin_url: str | None = None) -> None:
    """Drop a database made by `create_database`, even if connections linger."""
    admin_url = admin_url or admin_pg_url()
    name = make_url(url).database
    asyncio.run(_admin_exec(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def truncate_schemas(url: str, schemas: Iterable[str]) -> None:
    """Empty every table of `schemas` except Alembic's version tables."""
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            rows = await conn.execute(
                text(
                    "SELECT schemaname, tablename FROM pg_tables "
                    "WHERE schemaname = ANY(:schemas) AND tablename <> 'alembic_version'"
                ),
                {"schemas": list(schemas)},
            )
            tables = [f'"{s}"."{t}"' for s, t in rows]
            if tables:
                await conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    finally:
        await engine.dispose()


@asynccontextmanager
async def app_client(
    app: FastAPI, base_url: str = "http://fleet.test"
) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client talking to `app` in-process, with its lifespan run around it."""
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            yield client


@dataclass(frozen=True)
class Account:
    id: uuid.UUID
    email: str
    password: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


RiderFactory = Callable[..., Awaitable[Account]]
MakeDb = Callable[[ServiceModule], Awaitable[Database]]


LOCAL_AMQP = "amqp://guest:guest@127.0.0.1:5672/"


def _rabbitmqctl(*args: str) -> None:
    import subprocess

    subprocess.run(  # noqa: S603 - fixed command, our own arguments
        ["rabbitmqctl", "-q", *args],  # noqa: S607 - the server's own CLI, from PATH
        check=True,
        capture_output=True,
        timeout=60,
    )


def create_vhost(prefix: str = "fleet_test") -> str:
    """A new RabbitMQ vhost for guest; its AMQP URL (`FLEET_TEST_AMQP_URL` names the server)."""
    vhost = f"{prefix}_{uuid.uuid4().hex[:10]}"
    _rabbitmqctl("add_vhost", vhost)
    _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    return os.environ.get("FLEET_TEST_AMQP_URL", LOCAL_AMQP).rstrip("/") + "/" + vhost


def delete_vhost(url: str) -> None:
    """Delete a vhost made by `create_vhost`, with every queue in it."""
    _rabbitmqctl("delete_vhost", url.rsplit("/", 1)[1])


def free_ports(count: int) -> list[int]:
    """Free TCP ports on 127.0.0.1 (held open together so they differ) for local test servers."""
    import socket

    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


@asynccontextmanager
async def tables_database(url: str, schema: str, metadata: MetaData) -> AsyncIterator[Database]:
    """A `Database` on `url` with `metadata`'s tables created in `schema` (no migrations)."""
    database = Database(url, schema)
    async with database.engine.begin() as conn:
        if not database.is_sqlite:
            await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        await conn.run_sync(metadata.create_all)
    try:
        yield database
    finally:
        await database.dispose()


class CommandOutbox:
    """A saga engine's transport as a test double that keeps transactions honest: `send` writes
    each command as a row of an `outbox` table (in `metadata`) in the caller's transaction, so a
    command counts as sent only if that transaction commits."""

    def __init__(self, metadata: MetaData) -> None:
        self.table = Table(
            "outbox",
            metadata,
            Column("seq", Integer, primary_key=True, autoincrement=True),
            Column("message_id", String(200), nullable=False, unique=True),
            Column("body", JSON, nullable=False),
        )

    async def send(self, session: AsyncSession, command: SagaCommand) -> None:
        """Write `command` in `session`'s transaction (the engine's `send`)."""
        row = {"message_id": command.message_id, "body": command.to_dict()}
        await session.execute(insert(self.table).values(row))

    async def sent(self, db: Database) -> list[SagaCommand]:
        """The commands committed so far, in the order they were sent."""
        async with db.session() as s:
            query = select(self.table.c.body).order_by(self.table.c.seq)
            rows = (await s.execute(query)).scalars().all()
        return [SagaCommand.from_dict(r) for r in rows]


@contextmanager
def recorded_statements(db: Database) -> Iterator[list[str]]:
    """The SQL statements `db` sends while the block runs, whitespace-normalised and upper-cased
    (BEGIN and COMMIT are not included): SQLAlchemy's and, on PostgreSQL, those sent through
    asyncpg directly (`fleet.common.native`)."""
    seen: list[str] = []

    def record(statement: str) -> None:
        seen.append(" ".join(statement.split()).upper())

    def record_cursor(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        record(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", record_cursor)
    try:
        with native.watching(db.engine, record):
            yield seen
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record_cursor)


async def eventually(check: Callable[[], Awaitable[bool] | bool], within: float = 5.0) -> None:
    """Wait until `check()` (plain or async) is true; AssertionError after `within` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = check()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(0.01)


def assert_problem(r: httpx.Response, status: int, loc: list[str] | None = None) -> None:
    """`r` is an RFC 9457 problem with `status` (and, if given, an error at `loc`)."""
    if r.status_code != status:
        raise AssertionError(f"expected {status}, got {r.status_code}: {r.text}")
    if not r.headers["content-type"].startswith("application/problem+json"):
        raise AssertionError(f"not a problem document: {r.headers['content-type']}")
    body = r.json()
    if body["status"] != status:
        raise AssertionError(f"the body's status is not {status}: {body}")
    if loc is not None and loc not in [e["loc"] for e in body["errors"]]:
        raise AssertionError(f"no error at {loc}: {body}")


def local_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Settings of the embedded platform in a test: SQLite files in `data_dir`, the in-memory
    bus, no Redis, quiet logs (whatever DATABASE_URL & co. the environment has)."""
    values: dict[str, Any] = {
        "env": "test",
        "data_dir": data_dir,
        "database_url": None,
        "amqp_url": None,
        "redis_url": None,
        "log_level": "WARNING",
    }
    return Settings(**(values | overrides))


@asynccontextmanager
async def serving(app: Any, *, lifespan: str = "off") -> AsyncIterator[str]:
    """`app` on a real uvicorn server on a free port for the block's duration; its base URL.

    `lifespan="off"` for an app already started (e.g. under `LifespanManager`); "on" to let
    uvicorn run its start-up and shutdown."""
    import uvicorn

    port = free_ports(1)[0]
    config = uvicorn.Config(app, port=port, log_level="warning", lifespan=lifespan)  # type: ignore[arg-type]
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # the server failed to start: raise its error
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def demo_module(*routers: APIRouter, migrations: Path, name: str = "demo") -> ServiceModule:
    """A service module of only `routers` (no tables, no messages), for tests of the kit itself."""
    return ServiceModule(
        name=name,
        schema=name,
        metadata=service_metadata(name),
        routers=list(routers),
        migrations=migrations,
    )


class RecordingBus(InMemoryBus):
    """An in-memory bus for outbox tests: remembers what it published, can be switched off
    (`down`: every publish fails) or held (`gate`: publishes wait until it is set)."""

    def __init__(self) -> None:
        super().__init__()
        self.published: list[Envelope] = []
        self.down = False
        self.arrived = asyncio.Event()  # something was published
        self.publishing = asyncio.Event()  # a publish has begun
        self.gate: asyncio.Event | None = None

    @property
    def published_ids(self) -> list[uuid.UUID]:
        return [e.event_id for e in self.published]

    async def publish(self, envelope: Envelope, *, exchange: ExchangeName = "events") -> None:
        self.publishing.set()
        if self.gate is not None:
            await self.gate.wait()
        await asyncio.sleep(0)  # let concurrent relays interleave
        if self.down:
            raise PublishError("broker unreachable")
        await super().publish(envelope, exchange=exchange)
        self.published.append(envelope)
        self.arrived.set()


@asynccontextmanager
async def relay_factory(
    db: Database, bus: MessageBus, table: Table
) -> AsyncIterator[Callable[..., OutboxRelay]]:
    """`make(**options)` builds an `OutboxRelay` on `table`; every relay made is stopped at the
    end of the block."""
    made: list[OutboxRelay] = []

    def make(**options: Any) -> OutboxRelay:
        relay = OutboxRelay(db, bus, table, **options)
        made.append(relay)
        return relay

    try:
        yield make
    finally:
        for relay in made:
            await relay.stop()

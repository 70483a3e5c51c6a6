"""The statements every message runs, sent through asyncpg directly inside a session's transaction.

A statement through an `AsyncSession` costs the client about twice what the same prepared
statement costs through asyncpg (≈ 93 against ≈ 45 µs of CPU per round trip on the benchmark
machine, docs/performance.md): the greenlet bridge, the ORM session, the compiled-cache lookup,
the DBAPI cursor emulation and result processing run for every call. For the handful of
statements the messaging machinery runs on every message — the inbox claim, the outbox insert,
the saga's load and save, the relay's mark — `native(session)` hands out the session's own
asyncpg connection, its transaction begun, so they skip those layers and still commit or roll
back with everything else the session did. Domain code keeps using the session. With tracing
on, each such statement gets the CLIENT span SQLAlchemy's instrumentation gives the others.

It is a PostgreSQL (asyncpg) matter only: elsewhere `native` answers None and callers use their
SQLAlchemy statement. Errors are translated as SQLAlchemy translates them (an `IntegrityError`
stays an `IntegrityError`), so callers cannot tell the paths apart. The statement must not run
while another statement of the same session does (nothing in a session runs two at once).

This leans on three members of SQLAlchemy's asyncpg adapter that are not public API (the
adapter's pending transaction, how it starts one, how it translates asyncpg's errors); the tests
in `libs/common/tests/test_common_native.py` pin what is relied on, so an upgrade that changes
them fails there, not in production.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from opentelemetry.trace import SpanKind
from sqlalchemy import exc
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.pool import Pool, PoolProxiedConnection
from sqlalchemy.sql import ClauseElement, Executable
from sqlalchemy.sql.compiler import SQLCompiler

from fleet.common import tracing
from fleet.common.db import write_pending

_NATIVE = "fleet.native"
_WATCHERS: list[tuple[Pool, Callable[[str], None]]] = []
# id(statement) → (statement, SQL, parameter names, values of its literal parameters); the
# statement is kept so that its id stays its own.
_COMPILED: dict[tuple[int, str], tuple[ClauseElement, str, tuple[str, ...], dict[str, Any]]] = {}


class Native:
    """An asyncpg connection inside a session's transaction (or an autocommit connection)."""

    __slots__ = ("_adapted", "_database", "_dialect", "_pool", "driver")

    def __init__(self, raw: PoolProxiedConnection, engine: AsyncEngine) -> None:
        self._adapted: Any = raw.dbapi_connection  # SQLAlchemy's adapter around the driver
        self._pool = engine.sync_engine.pool  # shared by the engine's option copies
        self._dialect = engine.dialect
        self._database = engine.url.database
        self.driver: Any = raw.driver_connection  # the asyncpg.Connection

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        """The rows of `sql` (asyncpg `Record`s: by name or position)."""
        rows: list[Any] = await self._call(self.driver.fetch, sql, args)
        return rows

    async def execute(self, sql: str, *args: Any) -> str:
        """Run `sql`; PostgreSQL's status line (`UPDATE 3`)."""
        status: str = await self._call(self.driver.execute, sql, args)
        return status

    async def fetch_compiled(self, statement: ClauseElement, params: dict[str, Any]) -> list[Any]:
        """Run a SQLAlchemy statement built once (a cached module- or instance-level object):
        compiled to asyncpg's `$n` form the first time, its parameters given by name. No type
        processing runs on the way in or out: give values asyncpg takes as they are (UUIDs,
        aware datetimes, lists for arrays, JSON as text)."""
        sql, args = bound(statement, self._dialect, params)
        return await self.fetch(sql, *args)

    async def execute_compiled(self, statement: ClauseElement, params: dict[str, Any]) -> str:
        """`fetch_compiled` for a statement without rows: PostgreSQL's status line."""
        sql, args = bound(statement, self._dialect, params)
        return await self.execute(sql, *args)

    async def _call(
        self, method: Callable[..., Awaitable[Any]], sql: str, args: tuple[Any, ...]
    ) -> Any:
        for pool, callback in _WATCHERS:
            if pool is self._pool:
                callback(sql)
        with self._span(sql):
            try:
                return await method(sql, *args)
            except Exception as error:
                raise self._translated(sql, args, error) from error

    def _span(self, sql: str) -> AbstractContextManager[object]:
        """With tracing on, the CLIENT span SQLAlchemy's instrumentation gives its statements."""
        if not tracing.is_active():
            return nullcontext()
        attributes = {"db.system": "postgresql", "db.statement": sql}
        if self._database:
            attributes["db.name"] = self._database
        name = f"{sql.split(None, 1)[0].upper()} {self._database or 'postgresql'}"
        return tracing.tracer().start_as_current_span(
            name, kind=SpanKind.CLIENT, attributes=attributes
        )

    def _translated(self, sql: str, args: Sequence[Any], error: Exception) -> BaseException:
        if not isinstance(error, self._dialect.loaded_dbapi.Error):
            try:  # asyncpg's error as the DBAPI error SQLAlchemy's adapter would raise
                self._adapted._handle_exception(error)
            except Exception as translated:
                error = translated
        if isinstance(error, self._dialect.loaded_dbapi.Error):
            return exc.DBAPIError.instance(
                sql, list(args), error, self._dialect.loaded_dbapi.Error, dialect=self._dialect
            )
        return error


async def native(session: AsyncSession) -> Native | None:
    """The session's asyncpg connection with its transaction begun (and its savepoint, inside
    one); None unless PostgreSQL through asyncpg. The same object for the rest of the session's
    transaction. Inserts a `write_behind` block holds back are written first."""
    await write_pending(session)
    sync = session.sync_session
    cached: tuple[Any, Native] | None = sync.info.get(_NATIVE)
    nested = sync.in_nested_transaction()
    if cached is not None and not nested and cached[0] is sync.get_transaction():
        return cached[1]
    dialect = session.get_bind().dialect
    if dialect.driver != "asyncpg":
        return None
    # Asking for the connection makes SQLAlchemy send what it defers: in a savepoint, the
    # SAVEPOINT itself (a statement sent before it would not roll back with it).
    connection = await session.connection()
    transaction = sync.get_transaction()
    if cached is not None and cached[0] is transaction:
        return cached[1]
    found = Native(await connection.get_raw_connection(), connection.engine)
    # SQLAlchemy's adapter sends BEGIN lazily, with the session's first statement: do it now,
    # as that statement would, so this one runs inside the session's transaction.
    if found._adapted._transaction is None:
        await found._adapted._start_transaction()
    sync.info[_NATIVE] = (transaction, found)
    return found


async def fetch_rows(
    session: AsyncSession, statement: Executable, params: dict[str, Any]
) -> Sequence[Any]:
    """The rows of `statement` (a statement built once) by column name: on PostgreSQL asyncpg
    `Record`s through the session's own connection (`Native.fetch_compiled`: no type processing,
    so only for statements whose parameters and columns need none — UUIDs, numbers, text, aware
    timestamps, JSON), elsewhere SQLAlchemy's `RowMapping`s. For a domain's hottest statements:
    a repository keeps its one statement for both backends."""
    if (pg := await native(session)) is not None and isinstance(statement, ClauseElement):
        return await pg.fetch_compiled(statement, params)
    rows: Sequence[Any] = (await session.execute(statement, params)).mappings().all()
    return rows


async def rows_changed(session: AsyncSession, statement: Executable, params: dict[str, Any]) -> int:
    """How many rows `statement` (an UPDATE or DELETE built once) changed: through asyncpg on
    PostgreSQL, with `fetch_rows`' rule for its parameters; elsewhere the session's rowcount."""
    if (pg := await native(session)) is not None and isinstance(statement, ClauseElement):
        return int((await pg.execute_compiled(statement, params)).rsplit(" ", 1)[-1])
    result: Any = await session.execute(statement, params)
    return int(result.rowcount)


async def native_unbegun(session: AsyncSession) -> Native | None:
    """The session's asyncpg connection if its transaction has sent nothing yet (no BEGIN: the
    adapter sends it with the first statement), else None. A statement sent on it commits by
    itself, and the session's COMMIT then has nothing to send: only for a transaction's one
    and last statement."""
    if session.get_bind().dialect.driver != "asyncpg":
        return None
    cached: tuple[Any, Native] | None = session.sync_session.info.get(_NATIVE)
    if cached is not None and cached[0] is session.sync_session.get_transaction():
        return None
    connection = await session.connection()
    found = Native(await connection.get_raw_connection(), connection.engine)
    return found if found._adapted._transaction is None else None


async def native_autocommit(connection: AsyncConnection) -> Native | None:
    """An AUTOCOMMIT connection's asyncpg connection (each statement commits by itself)."""
    dialect = connection.dialect
    if dialect.driver != "asyncpg":
        return None
    return Native(await connection.get_raw_connection(), connection.engine)


@contextmanager
def watching(engine: AsyncEngine, callback: Callable[[str], None]) -> Iterator[None]:
    """Call `callback(sql)` before each statement sent natively on `engine` (or a copy of it
    with other execution options) while the block runs: what SQLAlchemy's
    `before_cursor_execute` event is for its own statements."""
    watcher = (engine.sync_engine.pool, callback)
    _WATCHERS.append(watcher)
    try:
        yield
    finally:
        _WATCHERS.remove(watcher)


def bound(
    statement: ClauseElement, dialect: Dialect, params: dict[str, Any]
) -> tuple[str, list[Any]]:
    """`statement`'s SQL for asyncpg (`compiled`) and its arguments in `$n` order: `params` by
    name, the statement's own literals where `params` has none."""
    sql, names, literals = compiled(statement, dialect)
    return sql, [params[name] if name in params else literals[name] for name in names]


def compiled(
    statement: ClauseElement, dialect: Dialect
) -> tuple[str, tuple[str, ...], dict[str, Any]]:
    """`statement`'s SQL for asyncpg, the names of its parameters in `$n` order and the values
    of those the statement carries itself (literals such as `func.set_config('a', 'b')`'s)."""
    key = (id(statement), dialect.name)
    found = _COMPILED.get(key)
    if found is None or found[0] is not statement:
        done = statement.compile(dialect=dialect)
        if not isinstance(done, SQLCompiler):  # DDL has no parameters to run natively
            raise TypeError(f"not a SQL statement: {statement!r}")
        literals = {k: v for k, v in done.params.items() if v is not None}
        found = (statement, str(done), tuple(done.positiontup or ()), literals)
        _COMPILED[key] = found
    return found[1], found[2], found[3]

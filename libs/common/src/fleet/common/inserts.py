"""Whole-row inserts: the rows of several tables in one PostgreSQL statement, now or at the end.

`insert_rows(session, (table, rows), …)` inserts rows of one or more tables in the session's
transaction. On PostgreSQL through asyncpg that is one statement whatever the tables and the
number of rows: each table's rows travel as one array per column (`unnest`), and every table but
the last is a data-modifying CTE of the last one's INSERT — one statement text per tables and
columns, prepared once per connection. Elsewhere it is SQLAlchemy's INSERT, one per table.

Values go as asyncpg takes them (UUIDs, aware datetimes, bytes); a JSON column's value is
encoded here, Python `None` becoming SQL NULL.

`write_behind(session)` holds the inserts of a block back and writes them all with one statement
when the block ends. Read-your-writes still holds: anything else the session runs meanwhile (a
statement, a flush, a savepoint, a native statement) writes the held rows first. When the held
rows are all the transaction does — a booking inserts its trip, its saga and its first command,
nothing else — that statement runs before any BEGIN and commits by itself, and the transaction
costs one round trip instead of BEGIN, three inserts and COMMIT.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import JSON, Table, insert
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession

from fleet.common.db import PENDING_INSERTS, json_text
from fleet.common.native import native, native_unbegun

Rows = Sequence[Mapping[str, Any]]
Group = tuple[Table, Rows]
# A statement's shape: its tables, each with the columns it writes.
_Shape = tuple[tuple[Table, tuple[str, ...]], ...]
# A shape's INSERTs, and per column (in `$n` order) how a value is made an argument.
_Built = tuple[tuple[str, ...], tuple[Callable[[Any], Any] | None, ...]]

_STATEMENTS: dict[tuple[str, _Shape, int], _Built] = {}


async def insert_rows(session: AsyncSession, *groups: Group) -> None:
    """Insert each group's rows in the session's transaction: one statement on PostgreSQL, or
    held back inside `write_behind` (outside savepoints) to be written with the block's other
    inserts. Every row of a table names the same columns, also across groups and held inserts."""
    groups = tuple((table, rows) for table, rows in groups if rows)
    if not groups:
        return
    pending: _Pending | None = session.sync_session.info.get(PENDING_INSERTS)
    if pending is not None and not session.in_nested_transaction():
        pending.groups.extend(groups)
        return
    await _insert_now(session, groups, last=False)


@asynccontextmanager
async def write_behind(session: AsyncSession) -> AsyncIterator[None]:
    """Hold the block's inserts back and write them with one statement as it ends (see the
    module's docstring); a block that raises writes nothing it held. PostgreSQL through asyncpg
    only: elsewhere the block runs as it would without it."""
    if session.get_bind().dialect.driver != "asyncpg":
        yield
        return
    info = session.sync_session.info
    if PENDING_INSERTS in info:  # nested: the outer block writes them
        yield
        return
    pending = info[PENDING_INSERTS] = _Pending()
    try:
        yield
    finally:
        info.pop(PENDING_INSERTS, None)
    await pending.write(session, last=True)


@dataclass
class _Pending:
    """The groups a `write_behind` block holds back, in the order they were inserted."""

    groups: list[Group] = field(default_factory=list)

    async def write(self, session: AsyncSession, *, last: bool = False) -> None:
        """Write the held rows now (before another statement of the session, or as the block
        ends: `last`)."""
        groups, self.groups = tuple(self.groups), []
        if groups:
            await _insert_now(session, groups, last=last)


async def fetch_after_inserts(
    session: AsyncSession, groups: Sequence[Group], query: str, *args: Any
) -> list[Any] | None:
    """Run `query` (PostgreSQL SQL with parameters `$1…$n` given as `args`; not itself a
    `WITH`) with the groups' rows inserted by the same statement, as CTEs before it; its rows
    (asyncpg `Record`s). None, and nothing done, where that is not possible (not asyncpg):
    the caller then inserts with `insert_rows` and runs its own statement."""
    pg = await native(session)
    if pg is None:
        return None
    groups = tuple((table, rows) for table, rows in groups if rows)
    if not groups:
        return await pg.fetch(query, *args)
    ctes, values = _prepared(session.get_bind().dialect, groups, first=len(args) + 1)
    return await pg.fetch(f"WITH {ctes} {query}", *args, *values)


async def _insert_now(session: AsyncSession, groups: tuple[Group, ...], *, last: bool) -> None:
    # The transaction's last work and nothing sent before it: the statement commits by itself.
    pg = await native_unbegun(session) if last else None
    if pg is None:
        pg = await native(session)
    if pg is None:
        for table, rows in groups:
            await session.execute(insert(table), list(rows))
        return
    sql, values = _prepared(session.get_bind().dialect, groups, first=1, last_is_main=True)
    await pg.execute(sql, *values)


def _prepared(
    dialect: Dialect, groups: tuple[Group, ...], *, first: int, last_is_main: bool = False
) -> tuple[str, list[Any]]:
    """The groups' INSERTs — as CTEs `iN AS (…)`, joined by commas, or with `last_is_main` a
    whole statement whose last INSERT is the main one — and their arguments, numbered from
    `$first`."""
    merged = _merged(groups)
    shape: _Shape = tuple((table, tuple(rows[0])) for table, rows in merged)
    parts, converters = _statement(dialect, shape, first)
    values = [
        [row[name] for row in rows]
        for (_, rows), (_, names) in zip(merged, shape, strict=True)
        for name in names
    ]
    for i, convert in enumerate(converters):
        if convert is not None:
            values[i] = [None if v is None else convert(v) for v in values[i]]
    ctes = parts[:-1] if last_is_main else parts
    named = ", ".join(f"i{i} AS ({cte})" for i, cte in enumerate(ctes))
    if not last_is_main:
        return named, values
    return (f"WITH {named} {parts[-1]}" if ctes else parts[-1]), values


def _merged(groups: tuple[Group, ...]) -> list[tuple[Table, list[Mapping[str, Any]]]]:
    """One group per table, in the order each table came first (a table's rows keep theirs)."""
    by_table: dict[Table, list[Mapping[str, Any]]] = {}
    for table, rows in groups:
        by_table.setdefault(table, []).extend(rows)
    return list(by_table.items())


def _statement(dialect: Dialect, shape: _Shape, first: int) -> _Built:
    key = (dialect.name, shape, first)
    built = _STATEMENTS.get(key)
    if built is None:
        built = _STATEMENTS[key] = _build(dialect, shape, first)
    return built


def _build(dialect: Dialect, shape: _Shape, first: int) -> _Built:
    quote = dialect.identifier_preparer.quote
    parts: list[str] = []
    converters: list[Callable[[Any], Any] | None] = []
    for table, columns in shape:
        arrays, selected = [], []
        for name in columns:
            column, quoted = table.c[name], quote(name)
            is_json = isinstance(column.type, JSON)
            sql_type = column.type.compile(dialect=dialect)
            # JSON travels as text (one array type for any JSON value) and is cast back.
            arrays.append(f"${first + len(converters)}::{'TEXT' if is_json else sql_type}[]")
            selected.append(f"CAST(r.{quoted} AS {sql_type})" if is_json else f"r.{quoted}")
            converters.append(json_text if is_json else None)
        names = ", ".join(quote(name) for name in columns)
        into = dialect.identifier_preparer.format_table(table)
        # Only names quoted by the dialect and the columns' types are formatted in; every
        # value is bound.
        parts.append(
            f"INSERT INTO {into} ({names}) "  # noqa: S608
            f"SELECT {', '.join(selected)} FROM unnest({', '.join(arrays)}) AS r({names})"
        )
    return tuple(parts), tuple(converters)

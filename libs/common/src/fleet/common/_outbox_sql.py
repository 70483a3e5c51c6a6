"""The outbox's and inbox's hot statements, built once per table (and dialect).

Both run on every message; building a statement and its cache key on every call cost as much
CPU as its round trip. One message at a time (`enqueue`, `claim_inbox`) and a group commit
(`flush_outbox`, `claim_inbox_many`) execute the same statements, with one row or many; on
PostgreSQL the claim is `inbox_claim_array` for any number of ids, elsewhere `inbox_claim`, and
both the claim and the outbox insert go through asyncpg directly (`fleet.common.native`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import String, Table, Uuid, bindparam, func, insert, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import Insert

from fleet.common.db import UTCDateTime, insert_for, json_text
from fleet.common.native import native

# `session.info` key of the outbox rows a group commit collects, inserted before its commit.
OUTBOX_BUFFER = "fleet.outbox.buffer"
# `session.info` key of a watched transaction's hand-over to its relay (`OutboxRelay.watch`).
OUTBOX_HANDOFF = "fleet.outbox.handoff"

_OUTBOX_INSERTS: dict[Table, Insert] = {}
_INBOX_CLAIMS: dict[tuple[str, Table], Insert] = {}
_INBOX_ARRAY_CLAIMS: dict[Table, Insert] = {}
_NATIVE_OUTBOX_INSERTS: dict[Table, str] = {}

# Whole outbox rows from one array per column: one statement text for any number of rows.
_UNNEST_OUTBOX = """INSERT INTO {outbox} (id, exchange, routing_key, body, headers, created_at,
        attempts, next_attempt_at)
    SELECT r.id, r.exchange, r.routing_key, r.body, CAST(r.headers AS JSON), r.created_at,
        r.attempts, r.next_attempt_at
    FROM unnest($1::UUID[], $2::VARCHAR[], $3::VARCHAR[], $4::BYTEA[], $5::TEXT[],
        $6::TIMESTAMPTZ[], $7::INTEGER[], $8::TIMESTAMPTZ[])
        AS r(id, exchange, routing_key, body, headers, created_at, attempts, next_attempt_at)"""


def outbox_insert(table: Table) -> Insert:
    """`INSERT INTO <outbox>` of whole rows."""
    stmt = _OUTBOX_INSERTS.get(table)
    if stmt is None:
        stmt = _OUTBOX_INSERTS[table] = insert(table)
    return stmt


async def insert_outbox_rows(
    session: AsyncSession, table: Table, rows: Sequence[dict[str, Any]]
) -> None:
    """Insert whole outbox rows in the session's transaction: on PostgreSQL one statement
    through asyncpg (`fleet.common.native`), elsewhere SQLAlchemy's (multi-row) INSERT."""
    pg = await native(session)
    if pg is None:
        await session.execute(outbox_insert(table), list(rows))
        return
    sql = _NATIVE_OUTBOX_INSERTS.get(table)
    if sql is None:
        name = session.get_bind().dialect.identifier_preparer.format_table(table)
        sql = _NATIVE_OUTBOX_INSERTS[table] = _UNNEST_OUTBOX.format(outbox=name)
    await pg.execute(
        sql,
        [r["id"] for r in rows],
        [r["exchange"] for r in rows],
        [r["routing_key"] for r in rows],
        [r["body"] for r in rows],
        [json_text(r["headers"]) for r in rows],
        [r["created_at"] for r in rows],
        [r["attempts"] for r in rows],
        [r["next_attempt_at"] for r in rows],
    )


def inbox_claim(dialect: str, table: Table) -> Insert:
    """`INSERT INTO <inbox> … ON CONFLICT DO NOTHING RETURNING event_id`: the ids it returns are
    the ones claimed now (the others were handled before)."""
    stmt = _INBOX_CLAIMS.get((dialect, table))
    if stmt is None:
        stmt = (
            insert_for(dialect, table)
            .on_conflict_do_nothing(index_elements=["consumer", "event_id"])
            .returning(table.c.event_id)
        )
        _INBOX_CLAIMS[(dialect, table)] = stmt
    return stmt


def inbox_claim_array(table: Table) -> Insert:
    """PostgreSQL: the claim of many ids in one statement whose text does not depend on how
    many (`consumer`, `event_ids` as one array, `handled_at`), so one prepared statement serves
    every batch — multi-row VALUES would be parsed and planned anew for each batch size."""
    stmt = _INBOX_ARRAY_CLAIMS.get(table)
    if stmt is None:
        rows = select(
            bindparam("consumer", type_=String()),
            func.unnest(bindparam("event_ids", type_=ARRAY(Uuid()))),
            bindparam("handled_at", type_=UTCDateTime()),
        )
        stmt = (
            pg_insert(table)
            .from_select(["consumer", "event_id", "handled_at"], rows)
            .on_conflict_do_nothing(index_elements=["consumer", "event_id"])
            .returning(table.c.event_id)
        )
        _INBOX_ARRAY_CLAIMS[table] = stmt
    return stmt

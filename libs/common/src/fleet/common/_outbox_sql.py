"""The inbox's hot statements, built once per table (and dialect), and the outbox's keys.

A claim runs on every message; building a statement and its cache key on every call cost as much
CPU as its round trip. One message at a time (`claim_inbox`) and a group commit
(`claim_inbox_many`) execute the same statement, with one id or many: on PostgreSQL
`inbox_claim_array` for any number of ids, through asyncpg directly (`fleet.common.native`),
elsewhere `inbox_claim`. Outbox rows are whole-row inserts (`fleet.common.inserts`).
"""

from __future__ import annotations

from sqlalchemy import String, Table, Uuid, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.sql.dml import Insert

from fleet.common.db import UTCDateTime, insert_for

# `session.info` key of the outbox rows a consumer's transaction collects, inserted with its
# inbox claim (`claim_and_flush`).
OUTBOX_BUFFER = "fleet.outbox.buffer"
# `session.info` key of a watched transaction's hand-over to its relay (`OutboxRelay.watch`).
OUTBOX_HANDOFF = "fleet.outbox.handoff"

_INBOX_CLAIMS: dict[tuple[str, Table], Insert] = {}
_INBOX_ARRAY_CLAIMS: dict[Table, Insert] = {}


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

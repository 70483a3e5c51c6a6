"""The outbox's and inbox's hot statements, built once per table (and dialect).

Both run on every message; building a statement and its cache key on every call cost as much
CPU as its round trip. One message at a time (`enqueue`, `claim_inbox`) and a group commit
(`flush_outbox`, `claim_inbox_many`) execute the same statements, with one row or many.
"""

from __future__ import annotations

from sqlalchemy import Table, insert
from sqlalchemy.sql.dml import Insert

from fleet.common.db import insert_for

# `session.info` key of the outbox rows a group commit collects, inserted before its commit.
OUTBOX_BUFFER = "fleet.outbox.buffer"
# `session.info` key of a watched transaction's hand-over to its relay (`OutboxRelay.watch`).
OUTBOX_HANDOFF = "fleet.outbox.handoff"

_OUTBOX_INSERTS: dict[Table, Insert] = {}
_INBOX_CLAIMS: dict[tuple[str, Table], Insert] = {}


def outbox_insert(table: Table) -> Insert:
    """`INSERT INTO <outbox>` of whole rows."""
    stmt = _OUTBOX_INSERTS.get(table)
    if stmt is None:
        stmt = _OUTBOX_INSERTS[table] = insert(table)
    return stmt


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

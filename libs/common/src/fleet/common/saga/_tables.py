"""The saga tables, added to the owning service's metadata (and so to its schema and migrations)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    Uuid,
)

from fleet.common.db import UTCDateTime
from fleet.common.saga._model import Phase, SagaStatus, StepStatus

SAGAS = "sagas"
SAGA_STEPS = "saga_steps"


@dataclass(frozen=True)
class SagaTables:
    sagas: Table
    steps: Table


def _one_of(column: str, values: type[SagaStatus] | type[StepStatus] | type[Phase]) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


def saga_tables(metadata: MetaData) -> SagaTables:
    """Add `sagas` and `saga_steps` to `metadata` (idempotent) and return them."""
    prefix = f"{metadata.schema}." if metadata.schema else ""
    if f"{prefix}{SAGAS}" in metadata.tables:
        return SagaTables(
            metadata.tables[f"{prefix}{SAGAS}"], metadata.tables[f"{prefix}{SAGA_STEPS}"]
        )
    sagas = Table(
        SAGAS,
        metadata,
        Column("id", Uuid, primary_key=True),
        Column("name", String(100), nullable=False),
        Column("status", String(16), nullable=False),
        Column("current_step", Integer, nullable=False),
        Column("data", JSON, nullable=False),
        Column("error", Text),
        Column("version", Integer, nullable=False),
        Column("created_at", UTCDateTime, nullable=False),
        Column("updated_at", UTCDateTime, nullable=False),
        # When the sweeper must act on the current step; NULL once the saga is final.
        Column("deadline_at", UTCDateTime),
        CheckConstraint(_one_of("status", SagaStatus), name="status"),
    )
    Index(
        "ix_sagas_due",
        sagas.c.name,
        sagas.c.deadline_at,
        postgresql_where=sagas.c.deadline_at.isnot(None),
        sqlite_where=sagas.c.deadline_at.isnot(None),
    )
    Index("ix_sagas_status_updated", sagas.c.status, sagas.c.updated_at)
    steps = Table(
        SAGA_STEPS,
        metadata,
        Column("saga_id", Uuid, ForeignKey(sagas.c.id, ondelete="CASCADE"), nullable=False),
        Column("idx", Integer, nullable=False),
        Column("phase", String(16), nullable=False),
        Column("name", String(100), nullable=False),
        Column("status", String(16), nullable=False),
        Column("attempts", Integer, nullable=False),
        Column("started_at", UTCDateTime),
        Column("finished_at", UTCDateTime),
        Column("error", Text),
        Column("result", JSON),
        PrimaryKeyConstraint("saga_id", "idx", "phase"),
        CheckConstraint(_one_of("status", StepStatus), name="status"),
        CheckConstraint(_one_of("phase", Phase), name="phase"),
    )
    return SagaTables(sagas, steps)

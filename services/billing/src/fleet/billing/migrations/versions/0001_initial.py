"""initial billing schema

Revision ID: 0001
Revises:
Create Date: 2026-11-26 08:33:38.533725
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "invoices",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("trip_id", sa.Uuid(), nullable=False),
        sa.Column("rider_id", sa.Uuid(), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("failure_reason", sa.String(length=500), nullable=True),
        sa.Column("distance_km", sa.Float(), nullable=True),
        sa.Column("duration_min", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoices")),
        sa.UniqueConstraint("trip_id", name=op.f("uq_invoices_trip_id")),
        schema="billing",
    )
    op.create_index(
        "ix_invoices_rider_created",
        "invoices",
        ["rider_id", sa.literal_column("created_at DESC"), "id"],
        unique=False,
        schema="billing",
    )
    op.create_table(
        "tariffs",
        sa.Column("vehicle_model", sa.String(length=64), nullable=False),
        sa.Column("base_cents", sa.Integer(), nullable=False),
        sa.Column("per_km_cents", sa.Integer(), nullable=False),
        sa.Column("per_min_cents", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("vehicle_model", name=op.f("pk_tariffs")),
        schema="billing",
    )


def downgrade() -> None:

    op.drop_table("tariffs", schema="billing")
    op.drop_index("ix_invoices_rider_created", table_name="invoices", schema="billing")
    op.drop_table("invoices", schema="billing")

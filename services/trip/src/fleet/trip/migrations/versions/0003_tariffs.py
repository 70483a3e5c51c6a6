"""tariffs replicated from billing

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tariffs",
        sa.Column("vehicle_model", sa.String(length=64), nullable=False),
        sa.Column("base_cents", sa.Integer(), nullable=False),
        sa.Column("per_km_cents", sa.Integer(), nullable=False),
        sa.Column("per_min_cents", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("vehicle_model", name=op.f("pk_tariffs")),
        schema="trip",
    )


def downgrade() -> None:
    op.drop_table("tariffs", schema="trip")

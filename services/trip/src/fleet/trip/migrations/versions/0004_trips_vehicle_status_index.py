"""index: in-progress trip by vehicle

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 13:30:00.000000

Every telemetry batch looks up the in-progress trip of its vehicles (trip tracking); without this
index that lookup scanned the whole trips table.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_trips_vehicle_status", "trips", ["vehicle_id", "status"], unique=False, schema="trip"
    )


def downgrade() -> None:
    op.drop_index("ix_trips_vehicle_status", table_name="trips", schema="trip")

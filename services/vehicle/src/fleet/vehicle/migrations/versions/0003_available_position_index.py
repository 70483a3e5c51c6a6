"""the available vehicles' positions in a GiST index (PostgreSQL): nearest-vehicle search

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 04:50:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite ranks the vehicles of the box without it
    op.execute(
        "CREATE INDEX ix_vehicles_available_position ON vehicle.vehicles "
        "USING gist (point(lon, lat)) WHERE status = 'available'"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP INDEX vehicle.ix_vehicles_available_position")

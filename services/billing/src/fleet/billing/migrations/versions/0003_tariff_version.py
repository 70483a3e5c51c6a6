"""tariff version

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


def _altered_schema() -> str | None:
    """Alembic renders ALTER TABLE itself, past the engine's schema translation, so SQLite
    (one file per service, no schemas) must not be given the schema name there."""
    return None if op.get_bind().dialect.name == "sqlite" else "billing"


def upgrade() -> None:
    # Existing tariffs start at version 1: their first announcement.
    op.add_column(
        "tariffs",
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        schema=_altered_schema(),
    )


def downgrade() -> None:
    op.drop_column("tariffs", "version", schema=_altered_schema())

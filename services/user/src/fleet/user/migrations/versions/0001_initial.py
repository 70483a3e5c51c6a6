"""initial user schema

Revision ID: 0001
Revises:
Create Date: 2026-11-26 08:38:00.002567
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
        "users",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("role IN ('rider', 'operator')", name=op.f("ck_users_role_known")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
        schema="user_svc",
    )
    op.create_table(
        "credit_holds",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("reference", sa.Uuid(), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("captured_cents", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('held', 'released', 'captured')", name=op.f("ck_credit_holds_status_known")
        ),
        sa.CheckConstraint("amount_cents >= 0", name=op.f("ck_credit_holds_amount_not_negative")),
        sa.CheckConstraint(
            "captured_cents >= 0 AND captured_cents <= amount_cents",
            name=op.f("ck_credit_holds_captured_within_hold"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_svc.users.id"],
            name=op.f("fk_credit_holds_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_holds")),
        sa.UniqueConstraint("reference", name=op.f("uq_credit_holds_reference")),
        schema="user_svc",
    )
    op.create_index(
        "ix_credit_holds_user_status",
        "credit_holds",
        ["user_id", "status"],
        unique=False,
        schema="user_svc",
    )
    op.create_table(
        "feedback",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("rider_id", sa.Uuid(), nullable=False),
        sa.Column("trip_id", sa.Uuid(), nullable=False),
        sa.Column("rating", sa.SmallInteger(), nullable=False),
        sa.Column("comment", sa.String(length=1000), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("rating BETWEEN 1 AND 5", name=op.f("ck_feedback_rating_range")),
        sa.ForeignKeyConstraint(
            ["rider_id"],
            ["user_svc.users.id"],
            name=op.f("fk_feedback_rider_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback")),
        sa.UniqueConstraint("rider_id", "trip_id", name=op.f("uq_feedback_rider_id_trip_id")),
        schema="user_svc",
    )
    op.create_table(
        "notifications",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("body", sa.String(length=2000), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_svc.users.id"],
            name=op.f("fk_notifications_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        schema="user_svc",
    )
    op.create_index(
        "ix_notifications_user_created",
        "notifications",
        ["user_id", sa.literal_column("created_at DESC"), "id"],
        unique=False,
        schema="user_svc",
    )
    op.create_table(
        "wallet_ledger",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("reference", sa.String(length=128), nullable=True),
        sa.Column("balance_after_cents", sa.BigInteger(), nullable=False),
        sa.Column("held_after_cents", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_svc.users.id"],
            name=op.f("fk_wallet_ledger_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wallet_ledger")),
        sa.UniqueConstraint(
            "user_id", "kind", "reference", name=op.f("uq_wallet_ledger_user_id_kind_reference")
        ),
        schema="user_svc",
    )
    op.create_index(
        "ix_wallet_ledger_user_created",
        "wallet_ledger",
        ["user_id", sa.literal_column("created_at DESC"), "id"],
        unique=False,
        schema="user_svc",
    )
    op.create_table(
        "wallets",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("balance_cents", sa.BigInteger(), nullable=False),
        sa.Column("held_cents", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("balance_cents >= held_cents", name=op.f("ck_wallets_holds_covered")),
        sa.CheckConstraint("held_cents >= 0", name=op.f("ck_wallets_held_not_negative")),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_svc.users.id"],
            name=op.f("fk_wallets_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_wallets")),
        schema="user_svc",
    )


def downgrade() -> None:
    op.drop_table("wallets", schema="user_svc")
    op.drop_index("ix_wallet_ledger_user_created", table_name="wallet_ledger", schema="user_svc")
    op.drop_table("wallet_ledger", schema="user_svc")
    op.drop_index("ix_notifications_user_created", table_name="notifications", schema="user_svc")
    op.drop_table("notifications", schema="user_svc")
    op.drop_table("feedback", schema="user_svc")
    op.drop_index("ix_credit_holds_user_status", table_name="credit_holds", schema="user_svc")
    op.drop_table("credit_holds", schema="user_svc")
    op.drop_table("users", schema="user_svc")

"""The user schema's tables."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Table,
    UniqueConstraint,
    Uuid,
)

from fleet.common.db import UTCDateTime, service_metadata
from fleet.common.outbox import inbox_table, outbox_table

SCHEMA = "user_svc"
metadata = service_metadata(SCHEMA)


def _user_fk() -> ForeignKey:
    return ForeignKey(f"{SCHEMA}.users.id", ondelete="CASCADE")


users = Table(
    "users",
    metadata,
    Column("id", Uuid, primary_key=True),
    # Lower-cased by the service, so a plain unique index makes emails case-insensitively unique.
    Column("email", String(320), nullable=False, unique=True),
    Column("name", String(100), nullable=False),
    Column("role", String(16), nullable=False),
    Column("password_hash", String(255), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    CheckConstraint("role IN ('rider', 'operator')", name="role_known"),
)

wallets = Table(
    "wallets",
    metadata,
    Column("user_id", Uuid, _user_fk(), primary_key=True),
    Column("balance_cents", BigInteger, nullable=False),
    Column("held_cents", BigInteger, nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    CheckConstraint("held_cents >= 0", name="held_not_negative"),
    CheckConstraint("balance_cents >= held_cents", name="holds_covered"),
)

credit_holds = Table(
    "credit_holds",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("user_id", Uuid, _user_fk(), nullable=False),
    Column("reference", Uuid, nullable=False, unique=True),
    Column("amount_cents", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("captured_cents", BigInteger, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    CheckConstraint("amount_cents >= 0", name="amount_not_negative"),
    CheckConstraint("status IN ('held', 'released', 'captured')", name="status_known"),
    CheckConstraint(
        "captured_cents >= 0 AND captured_cents <= amount_cents", name="captured_within_hold"
    ),
)
Index("ix_credit_holds_user_status", credit_holds.c.user_id, credit_holds.c.status)

wallet_ledger = Table(
    "wallet_ledger",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("user_id", Uuid, _user_fk(), nullable=False),
    Column("kind", String(16), nullable=False),
    # Signed: credits are positive, debits negative.
    Column("amount_cents", BigInteger, nullable=False),
    # The Idempotency-Key of a top-up or the hold reference of a capture.
    Column("reference", String(128)),
    # The wallet right after this entry, so an idempotent replay answers what the first call did.
    Column("balance_after_cents", BigInteger, nullable=False),
    Column("held_after_cents", BigInteger, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("user_id", "kind", "reference"),
)
Index(
    "ix_wallet_ledger_user_created",
    wallet_ledger.c.user_id,
    wallet_ledger.c.created_at.desc(),
    wallet_ledger.c.id,
)

notifications = Table(
    "notifications",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("user_id", Uuid, _user_fk(), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("title", String(200), nullable=False),
    Column("body", String(2000), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("read_at", UTCDateTime),
    # What the notification is about (e.g. the trip); a message re-sent by the saga finds it here.
    Column("reference", Uuid),
)
Index(
    "ix_notifications_user_created",
    notifications.c.user_id,
    notifications.c.created_at.desc(),
    notifications.c.id,
)
# A unique index rather than a constraint: SQLite can add an index without rebuilding the table.
# NULL references never collide, so ad-hoc notifications are unaffected.
Index(
    "ix_notifications_user_kind_reference",
    notifications.c.user_id,
    notifications.c.kind,
    notifications.c.reference,
    unique=True,
)

feedback = Table(
    "feedback",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("rider_id", Uuid, _user_fk(), nullable=False),
    Column("trip_id", Uuid, nullable=False),
    Column("rating", SmallInteger, nullable=False),
    Column("comment", String(1000)),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("rider_id", "trip_id"),
    CheckConstraint("rating BETWEEN 1 AND 5", name="rating_range"),
)

outbox = outbox_table(metadata)
inbox = inbox_table(metadata)

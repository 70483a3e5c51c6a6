"""Cross-service invariants of a distributed deployment: no booking or cent lost or doubled.

Each service owns its schema and none may read another's; an auditor may. `audit()` reads all four
schemas (PostgreSQL) and the broker's queues, and lists every violation of what the platform
promises once it is quiet (no request or message in flight): every saga ended, every credit hold
and vehicle matches the state of its trip, every wallet agrees with its holds and its ledger,
every completed trip is invoiced once and charged once, every outbox is published and every
queue, dead-letter queues included, is empty.

Run it after a chaos run (`fleet chaos`) or against a quiet deployment; while traffic flows,
sagas in flight and events not yet applied show up as (transient) violations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from fleet.common.messaging.bus import DeadLetter
from fleet.common.messaging.rabbit import RabbitBus
from fleet.contracts.queues import QUEUES

SCHEMAS = ("user_svc", "vehicle", "trip", "billing")


@dataclass(frozen=True)
class Invariant:
    """A named rule and the query listing what breaks it (one row per offender)."""

    name: str
    rule: str
    sql: str


# Every query is fixed text: no value is formatted in, and the auditor only reads.
INVARIANTS: tuple[Invariant, ...] = (
    Invariant(
        "saga-ended",
        "every booking saga ended (completed or compensated)",
        "SELECT id, status FROM trip.sagas WHERE status NOT IN ('completed', 'compensated')",
    ),
    Invariant(
        "trip-settled",
        "no trip is still pending",
        "SELECT id FROM trip.trips WHERE status = 'pending'",
    ),
    Invariant(
        "hold-of-active-trip",
        "a confirmed or started trip holds exactly its quoted fare, from its rider",
        """SELECT t.id, t.status, h.status, h.amount_cents, t.quoted_fare_cents
        FROM trip.trips t LEFT JOIN user_svc.credit_holds h ON h.reference = t.id
        WHERE t.status IN ('confirmed', 'in_progress') AND (h.id IS NULL
            OR h.status <> 'held' OR h.amount_cents <> t.quoted_fare_cents
            OR h.user_id <> t.rider_id)""",
    ),
    Invariant(
        "no-hold-of-ended-trip",
        "a rejected or cancelled trip holds nothing",
        """SELECT t.id, t.status, h.status, h.amount_cents
        FROM trip.trips t JOIN user_svc.credit_holds h ON h.reference = t.id
        WHERE t.status IN ('rejected', 'cancelled') AND h.status <> 'released'""",
    ),
    Invariant(
        "no-orphan-hold",
        "every active hold belongs to a trip",
        """SELECT h.id, h.reference, h.amount_cents FROM user_svc.credit_holds h
        LEFT JOIN trip.trips t ON t.id = h.reference
        WHERE h.status = 'held' AND t.id IS NULL""",
    ),
    Invariant(
        "wallet-held",
        "a wallet's held credits are the sum of its active holds, within its balance",
        """SELECT w.user_id, w.balance_cents, w.held_cents, coalesce(h.total, 0)
        FROM user_svc.wallets w LEFT JOIN (
            SELECT user_id, sum(amount_cents) AS total FROM user_svc.credit_holds
            WHERE status = 'held' GROUP BY user_id) h ON h.user_id = w.user_id
        WHERE w.held_cents <> coalesce(h.total, 0) OR w.held_cents < 0
            OR w.held_cents > w.balance_cents""",
    ),
    Invariant(
        "wallet-ledger",
        "a wallet's balance is the sum of its ledger (top-ups less captures)",
        """SELECT w.user_id, w.balance_cents, coalesce(l.total, 0)
        FROM user_svc.wallets w LEFT JOIN (
            SELECT user_id, sum(amount_cents) AS total FROM user_svc.wallet_ledger
            GROUP BY user_id) l ON l.user_id = w.user_id
        WHERE w.balance_cents <> coalesce(l.total, 0) OR w.balance_cents < 0""",
    ),
    Invariant(
        "completed-trip-invoiced",
        "every completed trip has an invoice that was paid or failed (not left issued)",
        """SELECT t.id, i.status FROM trip.trips t
        LEFT JOIN billing.invoices i ON i.trip_id = t.id
        WHERE t.status = 'completed' AND (i.id IS NULL OR i.status NOT IN ('paid', 'failed'))""",
    ),
    Invariant(
        "invoice-of-completed-trip",
        "only completed trips are invoiced",
        """SELECT i.id, i.trip_id, t.status FROM billing.invoices i
        LEFT JOIN trip.trips t ON t.id = i.trip_id
        WHERE t.status IS DISTINCT FROM 'completed'""",
    ),
    Invariant(
        "paid-once",
        "a paid invoice was charged exactly once, its amount, and its hold captured",
        """SELECT i.trip_id, i.amount_cents, l.charges, l.total, h.status
        FROM billing.invoices i
        LEFT JOIN (SELECT reference, count(*) AS charges, sum(amount_cents) AS total
            FROM user_svc.wallet_ledger WHERE kind = 'capture' GROUP BY reference) l
            ON l.reference = CAST(i.trip_id AS VARCHAR)
        LEFT JOIN user_svc.credit_holds h ON h.reference = i.trip_id
        WHERE i.status = 'paid' AND (l.charges IS DISTINCT FROM 1
            OR l.total <> -i.amount_cents OR h.status IS DISTINCT FROM 'captured')""",
    ),
    Invariant(
        "charge-of-paid-invoice",
        "every charge in a ledger is a paid invoice's",
        """SELECT l.id, l.reference, l.amount_cents FROM user_svc.wallet_ledger l
        LEFT JOIN billing.invoices i ON CAST(i.trip_id AS VARCHAR) = l.reference
        WHERE l.kind = 'capture' AND i.status IS DISTINCT FROM 'paid'""",
    ),
    Invariant(
        "vehicle-of-active-trip",
        "a confirmed trip's vehicle is reserved for it; a started trip's vehicle is in_trip",
        """SELECT t.id, t.status, v.id, v.status, v.reserved_trip_id
        FROM trip.trips t LEFT JOIN vehicle.vehicles v ON v.id = t.vehicle_id
        WHERE (t.status = 'confirmed' AND (v.status IS DISTINCT FROM 'reserved'
                OR v.reserved_trip_id IS DISTINCT FROM t.id))
            OR (t.status = 'in_progress' AND v.status IS DISTINCT FROM 'in_trip')""",
    ),
    Invariant(
        "busy-vehicle-has-trip",
        "a reserved or in_trip vehicle serves a confirmed or started trip",
        """SELECT v.id, v.status, v.reserved_trip_id FROM vehicle.vehicles v
        WHERE (v.status = 'reserved' AND NOT EXISTS (SELECT 1 FROM trip.trips t
                WHERE t.id = v.reserved_trip_id AND t.vehicle_id = v.id
                AND t.status = 'confirmed'))
            OR (v.status = 'in_trip' AND NOT EXISTS (SELECT 1 FROM trip.trips t
                WHERE t.vehicle_id = v.id AND t.status = 'in_progress'))
            OR (v.status NOT IN ('reserved', 'in_trip') AND v.reserved_trip_id IS NOT NULL)""",
    ),
    Invariant(
        "one-trip-per-vehicle",
        "no vehicle serves two active trips",
        """SELECT vehicle_id, count(*) FROM trip.trips
        WHERE status IN ('confirmed', 'in_progress') GROUP BY vehicle_id HAVING count(*) > 1""",
    ),
    *(
        Invariant(
            f"outbox-published-{schema}",
            f"every message in {schema}'s outbox was published",
            f"SELECT id, routing_key, attempts, last_error FROM {schema}.outbox "  # noqa: S608
            "WHERE published_at IS NULL",
        )
        for schema in SCHEMAS
    ),
)


@dataclass(frozen=True)
class Violation:
    invariant: str
    rule: str
    offenders: int
    sample: tuple[str, ...]  # a few offending rows, as text

    def __str__(self) -> str:
        rows = "; ".join(self.sample)
        return f"{self.invariant}: {self.rule} — {self.offenders} offender(s): {rows}"


async def audit_database(database: str | AsyncEngine, sample: int = 3) -> list[Violation]:
    """Every database invariant that does not hold (empty: all hold). `database` is a URL (an
    engine is made for this audit alone) or an engine the caller keeps, e.g. across repeated
    audits."""
    engine = create_async_engine(database) if isinstance(database, str) else database
    try:
        async with engine.connect() as conn:
            return [v for inv in INVARIANTS if (v := await _check(conn, inv, sample))]
    finally:
        if engine is not database:  # made here
            await engine.dispose()


async def _check(conn: AsyncConnection, invariant: Invariant, sample: int) -> Violation | None:
    rows = (await conn.execute(text(invariant.sql))).all()
    if not rows:
        return None
    shown = tuple(", ".join(str(v) for v in row) for row in rows[:sample])
    return Violation(invariant.name, invariant.rule, len(rows), shown)


async def audit_queues(amqp: str | RabbitBus) -> list[Violation]:
    """Messages left in any service queue or dead-letter queue (empty: all drained).

    `amqp`: a broker URL (a connection for this audit) or a started bus, which is left open —
    for repeated audits, as while a chaos run settles."""
    if isinstance(amqp, RabbitBus):
        return await _audit_queues(amqp)
    bus = RabbitBus(amqp, "auditor")
    await bus.start()
    try:
        return await _audit_queues(bus)
    finally:
        await bus.close()


async def _audit_queues(bus: RabbitBus) -> list[Violation]:
    found: list[Violation] = []
    for spec in QUEUES:
        depth = await bus.queue_depth(spec.name)
        if depth.dead:
            letters = await bus.dead_letters(spec.name, limit=3)
            found.append(
                Violation(
                    f"dead-letters-{spec.name}",
                    f"no message of {spec.name} was dead-lettered",
                    depth.dead,
                    tuple(f"{_kind(d)}: {d.error}" for d in letters),
                )
            )
        if depth.ready:
            found.append(
                Violation(
                    f"queue-drained-{spec.name}",
                    f"{spec.name} is drained",
                    depth.ready,
                    (),
                )
            )
    return found


def _kind(letter: DeadLetter) -> str:
    return letter.envelope.event_type if letter.envelope else "undecodable message"


async def audit(
    database: str | AsyncEngine, amqp: str | RabbitBus | None = None
) -> list[Violation]:
    """Database invariants (`database`: a URL or an engine, as for `audit_database`), then (with
    `amqp`: a URL or a started bus, as for `audit_queues`) the queues."""
    found = await audit_database(database)
    if amqp:
        found += await audit_queues(amqp)
    return found


def report(violations: Sequence[Violation]) -> str:
    """Readable lines; one per violation, or that every invariant holds."""
    if not violations:
        return f"all {len(INVARIANTS)} invariants hold; every queue is drained"
    return "\n".join(f"VIOLATED {v}" for v in violations)

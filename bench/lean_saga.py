"""Lean saga probe: the booking saga's messaging discipline with nothing else, as a baseline.

What the cheapest correct version of the platform's booking saga costs on this machine, right
now. Five processes on a fresh PostgreSQL database and RabbitMQ vhost: an orchestrator and four
participants (user, vehicle, trip, billing), each with its own schema, asyncpg pool and aio-pika
robust connection (one channel, publisher confirms). A saga is four remote steps:

    reserve-credits → user, reserve-vehicle → vehicle, create-trip → trip,
    send-confirmation → billing

and every hop keeps the platform's discipline (transactional outbox and inbox):

* the sender commits its state change and an outbox row in ONE transaction, then publishes the
  message (persistent, publisher confirm awaited), then marks the row published;
* the receiver (manual ack, `--prefetch` messages in flight, each handled in its own task) runs
  ONE transaction per message: inbox insert (a duplicate is only acked), its one domain
  statement, the outbox row of its reply; then publishes the reply, marks it, and acks;
* the orchestrator applies a reply the same way: inbox insert, `SELECT … FOR UPDATE` of the
  saga, `UPDATE` of its step, outbox row of the next command (or status `completed`).

No framework, no ORM, no HTTP, no relay sweeping rows a crash left unpublished (it is a probe,
not a platform): what remains is close to the floor of what any implementation of this saga
pays. The machine's speed drifts from day to day, so the platform's figures (bench/saga.py) are
to be read against what this probe reaches at the same moment. (The issue's probe, on a faster
day: ~17 ms for one saga alone; ~110 sagas/s at p95 112 ms with both cores saturated; 80/s when
each consumer handled one message at a time, `--one-at-a-time` here.)

The saga time is the saga's own timestamps (`now()`, the start of the transaction that creates
it and of the one that completes it), read after the run, as bench/saga.py's primary figure;
the CPU time of each process per saga comes with it. The orchestrator also generates the load:
open loop (`--rate`, sagas started at that pace whatever is in flight; the default, 50/s) or
closed loop (`--concurrency`).

    uv run python bench/lean_saga.py                           # 1,000 sagas arriving at 50/s
    uv run python bench/lean_saga.py --rate 40 --sagas 800
    uv run python bench/lean_saga.py --concurrency 32 --sagas 1000
    uv run python bench/lean_saga.py --concurrency 1 --sagas 200  # one saga alone
    uv run python bench/lean_saga.py --rate 40 --one-at-a-time    # each consumer: 1 message
"""

from __future__ import annotations

import argparse
import asyncio
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import aio_pika
import asyncpg
import orjson
from aio_pika import DeliveryMode, ExchangeType, Message
from aio_pika.abc import (
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractRobustConnection,
)
from benchkit.cpu import CpuMeter, cpu_table
from benchkit.report import (
    LATENCY_HEADER,
    Latency,
    add_results_dir_option,
    pace,
    table,
    write_json,
)


@dataclass(frozen=True)
class Step:
    command: str
    participant: str


STEPS = (
    Step("reserve-credits", "user"),
    Step("reserve-vehicle", "vehicle"),
    Step("create-trip", "trip"),
    Step("send-confirmation", "billing"),
)
PARTICIPANTS = tuple(step.participant for step in STEPS)
ORCHESTRATOR = "orchestrator"
ROLES = (ORCHESTRATOR, *PARTICIPANTS)
EXCHANGE = "lean"  # direct: routing key = the queue (and schema) of the process it is for
WALLETS = 1_000  # riders, one wallet each: sagas spread over them (no hot row)
FARE_CENTS = 1_500
STARTUP_TIMEOUT_S = 60.0
SETTLE_TIMEOUT_S = 60.0  # after the last start, for the sagas in flight to complete
SILENCE_TIMEOUT_S = 30.0  # the orchestrator reports progress every 2 s: silence is a hang
HIDDEN = ("role", "database_url", "amqp_url")  # the children's options, not recorded

# Every process's schema: its inbox (one row per message handled) and outbox (one row per
# message sent). Statements are unqualified: a pool's search_path is its process's schema
# (quoted: `user` is a reserved word).
COMMON_DDL = """
CREATE SCHEMA "{schema}";
SET search_path TO "{schema}";
CREATE TABLE inbox (
    event_id uuid PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE outbox (
    id bigserial PRIMARY KEY,
    routing_key text NOT NULL,
    body bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
"""


@dataclass(frozen=True)
class Domain:
    """A participant's own table and the one statement a command runs on it (its real work:
    it must touch exactly one row)."""

    ddl: str
    statement: str
    params: tuple[str, ...]  # the command's fields, in the statement's order


DOMAINS = {
    "user": Domain(
        """CREATE TABLE wallets (
            rider_id int PRIMARY KEY,
            balance_cents bigint NOT NULL,
            held_cents bigint NOT NULL DEFAULT 0
        );
        INSERT INTO wallets (rider_id, balance_cents)
            SELECT g, 1000000000000 FROM generate_series(0, {wallets} - 1) g;""",
        """UPDATE wallets SET held_cents = held_cents + $2
            WHERE rider_id = $1 AND balance_cents - held_cents >= $2""",
        ("rider", "fare"),
    ),
    "vehicle": Domain(
        """CREATE TABLE vehicles (
            vehicle_id int PRIMARY KEY,
            status text NOT NULL DEFAULT 'available',
            saga_id uuid
        );
        INSERT INTO vehicles (vehicle_id) SELECT generate_series(0, {sagas} - 1);""",
        """UPDATE vehicles SET status = 'reserved', saga_id = $2
            WHERE vehicle_id = $1 AND status = 'available'""",
        ("vehicle", "saga"),
    ),
    "trip": Domain(
        """CREATE TABLE trips (
            saga_id uuid PRIMARY KEY,
            rider_id int NOT NULL,
            vehicle_id int NOT NULL,
            fare_cents int NOT NULL,
            status text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now()
        );""",
        """INSERT INTO trips (saga_id, rider_id, vehicle_id, fare_cents, status)
            VALUES ($1, $2, $3, $4, 'confirmed')""",
        ("saga", "rider", "vehicle", "fare"),
    ),
    "billing": Domain(
        """CREATE TABLE receipts (
            saga_id uuid PRIMARY KEY,
            rider_id int NOT NULL,
            fare_cents int NOT NULL,
            sent_at timestamptz NOT NULL DEFAULT now()
        );""",
        "INSERT INTO receipts (saga_id, rider_id, fare_cents) VALUES ($1, $2, $3)",
        ("saga", "rider", "fare"),
    ),
}
ORCHESTRATOR_DDL = """CREATE TABLE sagas (
    id uuid PRIMARY KEY,
    step int NOT NULL,
    status text NOT NULL,
    rider_id int NOT NULL,
    vehicle_id int NOT NULL,
    fare_cents int NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    pace = p.add_mutually_exclusive_group()
    pace.add_argument(
        "--rate", type=float, help="open loop: sagas started per second (the default, 50)"
    )
    pace.add_argument("--concurrency", type=int, help="closed loop: sagas in flight at once")
    p.add_argument(
        "--sagas", type=int, help="sagas to run (default: 20 s worth at --rate, else 1,000)"
    )
    p.add_argument(
        "--prefetch", type=int, default=32, help="messages each consumer handles at once (32)"
    )
    p.add_argument(
        "--one-at-a-time",
        action="store_true",
        help="each consumer handles one message at a time (--prefetch 1)",
    )
    p.add_argument("--pool", type=int, default=4, help="PostgreSQL connections per process (4)")
    add_results_dir_option(p)
    # How the parent starts its children (this same file): not for the command line.
    p.add_argument("--role", choices=ROLES, help=argparse.SUPPRESS)
    p.add_argument("--database-url", help=argparse.SUPPRESS)
    p.add_argument("--amqp-url", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.rate is None and args.concurrency is None:
        args.rate = 50.0
    if args.rate is not None and args.rate <= 0:
        p.error("--rate must be positive")
    if args.concurrency is not None and args.concurrency < 1:
        p.error("--concurrency must be at least 1")
    if args.sagas is None:
        args.sagas = round(args.rate * 20) if args.rate is not None else 1000
    if args.sagas < 1 or args.prefetch < 1 or args.pool < 1:
        p.error("--sagas, --prefetch and --pool must be at least 1")
    if args.one_at_a_time:
        args.prefetch = 1  # and as a message is acked after its handling: one at a time
    return args


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- the five processes ----------------------------------------------------------------------
#
# A child talks to the parent through lines on its stdout: `ready`, `error <text>`, and from the
# orchestrator `progress <started> <completed>` and `done <wall s>`. The parent writes `go` on
# the orchestrator's stdin to start the load, and closes every stdin to stop them.


def say(*words: object) -> None:
    print(*words, flush=True)


async def keep_session(_conn: Any) -> None:
    """A released connection is not reset: asyncpg's default sends `RESET ALL`, `CLOSE ALL`,
    `UNLISTEN *` and an advisory unlock every time (a round trip), for session state these
    processes never create. An open transaction is still rolled back."""


@dataclass(frozen=True)
class Outgoing:
    """A message committed to the outbox, to publish now."""

    outbox_id: int
    routing_key: str
    body: bytes


class Node:
    """What every process does: its schema, pool, channel and queue; the outbox hand-over."""

    def __init__(self, name: str, args: argparse.Namespace) -> None:
        self.name = name
        self.args = args
        self.pool: Any = None  # asyncpg.Pool (asyncpg has no type hints)
        self.connection: AbstractRobustConnection | None = None
        self.exchange: AbstractExchange  # set by start()

    def ddl(self) -> str:
        raise NotImplementedError

    async def handle(self, body: dict[str, Any]) -> None:
        """One message, in one transaction; returns once its outgoing message is published."""
        raise NotImplementedError

    async def start(self) -> None:
        dsn = self.args.database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
        self.pool = await asyncpg.create_pool(
            dsn,
            min_size=self.args.pool,
            max_size=self.args.pool,
            server_settings={"search_path": f'"{self.name}"'},
            reset=keep_session,
        )
        await self.pool.execute(COMMON_DDL.format(schema=self.name) + self.ddl())
        self.connection = await aio_pika.connect_robust(
            self.args.amqp_url, client_properties={"connection_name": f"lean-{self.name}"}
        )
        channel = await self.connection.channel(publisher_confirms=True, on_return_raises=True)
        await channel.set_qos(prefetch_count=self.args.prefetch)
        self.exchange = await channel.declare_exchange(EXCHANGE, ExchangeType.DIRECT, durable=True)
        inbound = await channel.declare_queue(self.name, durable=True)
        await inbound.bind(self.exchange, routing_key=self.name)
        # aio-pika runs the callback in a task of its own per message: up to --prefetch at once.
        await inbound.consume(self.on_message)

    async def close(self) -> None:
        if self.connection is not None:
            await self.connection.close()
        if self.pool is not None:
            try:
                async with asyncio.timeout(5):
                    await self.pool.close()
            except TimeoutError:
                self.pool.terminate()

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        try:
            await self.handle(orjson.loads(message.body))
        except Exception as exc:
            # No retries in a probe: the saga stays unfinished and the run reports it.
            say("error", f"{self.name}: {exc!r}")
            await message.reject()
            return
        await message.ack()

    @staticmethod
    async def claim(conn: Any, event_id: str) -> bool:
        """Insert the message's id in the inbox: False if it was handled already."""
        claimed = await conn.fetchval(
            "INSERT INTO inbox (event_id) VALUES ($1) ON CONFLICT DO NOTHING RETURNING event_id",
            event_id,
        )
        return claimed is not None

    @staticmethod
    async def enqueue(conn: Any, routing_key: str, message: dict[str, Any]) -> Outgoing:
        """Add a message to the outbox, in the caller's transaction."""
        body = orjson.dumps(message)
        outbox_id = await conn.fetchval(
            "INSERT INTO outbox (routing_key, body) VALUES ($1, $2) RETURNING id",
            routing_key,
            body,
        )
        return Outgoing(outbox_id, routing_key, body)

    async def send(self, out: Outgoing) -> None:
        """After the commit: publish (persistent, confirmed by the broker), then mark the row."""
        message = Message(
            out.body, delivery_mode=DeliveryMode.PERSISTENT, content_type="application/json"
        )
        await self.exchange.publish(message, routing_key=out.routing_key)
        await self.pool.execute(
            "UPDATE outbox SET published_at = now() WHERE id = $1", out.outbox_id
        )


class Participant(Node):
    """Runs a command: its domain statement, and a reply to the orchestrator."""

    def __init__(self, name: str, args: argparse.Namespace) -> None:
        super().__init__(name, args)
        self.domain = DOMAINS[name]

    def ddl(self) -> str:
        return self.domain.ddl.format(wallets=WALLETS, sagas=self.args.sagas)

    async def handle(self, command: dict[str, Any]) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            if not await self.claim(conn, command["id"]):
                return  # a redelivery: handled before
            done = await conn.execute(
                self.domain.statement, *(command[f] for f in self.domain.params)
            )
            if not done.endswith(" 1"):  # "UPDATE 1", "INSERT 0 1"
                raise RuntimeError(f"{command['command']} changed no row ({done})")
            reply = {"id": str(uuid.uuid4()), "saga": command["saga"], "step": command["step"]}
            out = await self.enqueue(conn, ORCHESTRATOR, reply)
        await self.send(out)


class Orchestrator(Node):
    """Starts sagas (the load generator) and moves each one on at every reply."""

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(ORCHESTRATOR, args)
        self.started = self.completed = self.failed = 0
        self.all_done = asyncio.Event()
        self.slots: asyncio.Semaphore | None = None  # closed loop: the sagas in flight
        self.tasks: set[asyncio.Task[None]] = set()

    def ddl(self) -> str:
        return ORCHESTRATOR_DDL

    @staticmethod
    def command(saga: dict[str, Any], step: int) -> dict[str, Any]:
        return {
            "id": str(uuid.uuid4()),
            "saga": str(saga["id"]),
            "step": step,
            "command": STEPS[step].command,
            "rider": saga["rider_id"],
            "vehicle": saga["vehicle_id"],
            "fare": saga["fare_cents"],
        }

    async def start_saga(self, number: int) -> None:
        saga = {
            "id": str(uuid.uuid4()),
            "rider_id": number % WALLETS,
            "vehicle_id": number,  # one vehicle per saga
            "fare_cents": FARE_CENTS,
        }
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                await conn.execute(
                    "INSERT INTO sagas (id, step, status, rider_id, vehicle_id, fare_cents) "
                    "VALUES ($1, 0, 'running', $2, $3, $4)",
                    saga["id"],
                    saga["rider_id"],
                    saga["vehicle_id"],
                    saga["fare_cents"],
                )
                out = await self.enqueue(conn, STEPS[0].participant, self.command(saga, 0))
            await self.send(out)
        except Exception as exc:
            say("error", f"starting saga {number}: {exc!r}")
            self.finished(failed=True)

    async def handle(self, reply: dict[str, Any]) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            if not await self.claim(conn, reply["id"]):
                return
            saga = await conn.fetchrow(
                "SELECT id, step, rider_id, vehicle_id, fare_cents FROM sagas "
                "WHERE id = $1 FOR UPDATE",
                reply["saga"],
            )
            if saga is None or saga["step"] != reply["step"]:
                raise RuntimeError(f"unexpected reply {reply}")
            step = reply["step"] + 1
            if step == len(STEPS):
                await conn.execute(
                    "UPDATE sagas SET step = $2, status = 'completed', updated_at = now() "
                    "WHERE id = $1",
                    saga["id"],
                    step,
                )
                out = None
            else:
                await conn.execute(
                    "UPDATE sagas SET step = $2, updated_at = now() WHERE id = $1",
                    saga["id"],
                    step,
                )
                out = await self.enqueue(conn, STEPS[step].participant, self.command(saga, step))
        if out is None:
            self.finished()
        else:
            await self.send(out)

    # -- the load ----------------------------------------------------------------------------

    def go(self) -> None:
        self.spawn(self.drive())

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def finished(self, failed: bool = False) -> None:
        if failed:
            self.failed += 1
        else:
            self.completed += 1
        if self.slots is not None:
            self.slots.release()
        if self.completed + self.failed == self.args.sagas:
            self.all_done.set()

    async def drive(self) -> None:
        """Start every saga, wait for them, and tell the parent the wall time."""
        total, rate = self.args.sagas, self.args.rate
        began = time.perf_counter()
        ticker = asyncio.create_task(self.progress())
        if rate is None:
            self.slots = asyncio.Semaphore(self.args.concurrency)
        try:
            for number in range(total):
                if self.slots is not None:  # closed loop: one completes, the next starts
                    async with asyncio.timeout(SETTLE_TIMEOUT_S):
                        await self.slots.acquire()
                else:  # open loop: on schedule, whatever is in flight
                    delay = began + number / rate - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                self.started += 1
                self.spawn(self.start_saga(number))
            async with asyncio.timeout(SETTLE_TIMEOUT_S):
                await self.all_done.wait()
        except TimeoutError:
            stuck = self.started - self.completed - self.failed
            say("error", f"{stuck} sagas did not complete in {SETTLE_TIMEOUT_S:.0f} s")
        wall = time.perf_counter() - began
        ticker.cancel()
        say("done", f"{wall:.3f}")

    async def progress(self) -> None:
        while True:
            await asyncio.sleep(2.0)
            say("progress", self.started, self.completed)


async def serve(args: argparse.Namespace) -> None:
    """A child: set up, say `ready`, and serve until the parent closes our stdin."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    parent = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(parent), sys.stdin)
    node = Orchestrator(args) if args.role == ORCHESTRATOR else Participant(args.role, args)

    async def obey() -> None:
        while line := await parent.readline():
            if line.strip() == b"go" and isinstance(node, Orchestrator):
                node.go()
        stop.set()  # end of file: the parent is stopping us (or is gone)

    try:
        await node.start()
        say("ready")
        listening = asyncio.create_task(obey())
        await stop.wait()
        listening.cancel()
    finally:
        await node.close()


def run_child(args: argparse.Namespace) -> int:
    try:
        import uvloop  # the services' event loop (uvicorn's default when installed)
    except ImportError:
        asyncio.run(serve(args))
    else:
        uvloop.run(serve(args))
    return 0


# -- the parent: database, vhost, children, load, report -------------------------------------


class Children:
    """The five processes, their stdout lines gathered in one queue by a thread each."""

    def __init__(self, args: argparse.Namespace, database: str, amqp: str) -> None:
        self.args, self.database, self.amqp = args, database, amqp
        self.procs: dict[str, subprocess.Popen[str]] = {}
        self.lines: queue.Queue[tuple[str, str | None]] = queue.Queue()
        self.errors: list[str] = []

    def command(self, role: str) -> list[str]:
        a = self.args
        cmd = [sys.executable, str(Path(__file__).resolve()), "--role", role]
        cmd += ["--database-url", self.database, "--amqp-url", self.amqp]
        cmd += ["--sagas", str(a.sagas), "--prefetch", str(a.prefetch), "--pool", str(a.pool)]
        if a.rate is not None:
            return [*cmd, "--rate", str(a.rate)]
        return [*cmd, "--concurrency", str(a.concurrency)]

    def start(self) -> None:
        for role in ROLES:
            # A session of its own: Ctrl-C reaches the parent only, which stops them in order.
            proc = subprocess.Popen(
                self.command(role),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
            self.procs[role] = proc
            threading.Thread(target=self.read, args=(role, proc.stdout), daemon=True).start()

    def read(self, role: str, stream: IO[str] | None) -> None:
        for line in stream or ():
            self.lines.put((role, line.rstrip("\n")))
        self.lines.put((role, None))

    def next(self, timeout: float) -> tuple[str, str, str]:
        """The next line of any child but an error (kept): (child, first word, the rest)."""
        while True:
            try:
                role, line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise TimeoutError(f"no word from the processes in {timeout:.0f} s") from None
            if line is None:
                code = self.procs[role].wait()
                raise RuntimeError(f"the {role} process ended (exit code {code})")
            word, _, rest = line.partition(" ")
            if word != "error":
                return role, word, rest
            self.errors.append(rest)
            if len(self.errors) <= 5:
                log(f"error: {rest}")

    def tell(self, role: str, line: str) -> None:
        stdin = self.procs[role].stdin
        if stdin is None:
            raise RuntimeError(f"no pipe to the {role} process")
        stdin.write(line + "\n")
        stdin.flush()

    def stop(self) -> None:
        """Close every stdin (each child stops), then wait; terminate whatever lingers."""
        for proc in self.procs.values():
            if proc.stdin is not None:
                with suppress(OSError):  # a child already gone
                    proc.stdin.close()
        for proc in self.procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


@contextmanager
def children(args: argparse.Namespace, database: str, amqp: str) -> Iterator[Children]:
    kids = Children(args, database, amqp)
    try:
        kids.start()
        yield kids
    finally:
        kids.stop()


def run_load(args: argparse.Namespace, kids: Children) -> tuple[float, dict[str, float]]:
    """Wait for the five to be ready, run the sagas: (wall time, CPU seconds by process)."""
    started = time.perf_counter()
    ready: set[str] = set()
    while len(ready) < len(ROLES):
        role, word, _ = kids.next(STARTUP_TIMEOUT_S)
        if word == "ready":
            ready.add(role)
    log(f"{len(ROLES)} processes ready in {time.perf_counter() - started:.1f}s")
    log(f"running {args.sagas} sagas {pace(args)}, prefetch {args.prefetch}")
    meter = CpuMeter({role: proc.pid for role, proc in kids.procs.items()})
    meter.start()
    kids.tell(ORCHESTRATOR, "go")
    began = time.perf_counter()
    while True:
        _, word, rest = kids.next(SILENCE_TIMEOUT_S)
        if word == "progress":
            count, done = map(int, rest.split())
            rate = done / (time.perf_counter() - began)
            log(f"  {done}/{args.sagas} completed ({count} started), {rate:.1f}/s")
        elif word == "done":
            cpu = meter.stop()
            return float(rest), cpu


@dataclass
class Outcome:
    """Read from the database after the run."""

    by_status: dict[str, list[float]]  # saga status → created_at to updated_at, in seconds
    unpublished: int  # outbox rows never marked published (0 unless something failed)


async def read_outcome(database: str) -> Outcome:
    conn = await asyncpg.connect(database.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        rows = await conn.fetch(
            "SELECT status, extract(epoch FROM updated_at - created_at)::float8 AS seconds "
            "FROM orchestrator.sagas"
        )
        unpublished = 0
        for schema in ROLES:
            unpublished += await conn.fetchval(
                f'SELECT count(*) FROM "{schema}".outbox WHERE published_at IS NULL'  # noqa: S608
            )
    finally:
        await conn.close()
    by_status: dict[str, list[float]] = {}
    for row in rows:
        by_status.setdefault(row["status"], []).append(row["seconds"])
    return Outcome(by_status, unpublished)


def summary(
    args: argparse.Namespace, wall: float, cpu: dict[str, float], out: Outcome, errors: list[str]
) -> dict[str, Any]:
    completed = out.by_status.get("completed", [])
    return {
        "sagas": args.sagas,
        "completed": len(completed),
        "unfinished": args.sagas - len(completed),
        "errors": len(errors),
        "unpublished": out.unpublished,
        "wall_s": round(wall, 2),
        "completed_per_s": round(len(completed) / wall, 1),
        "saga_completed": Latency.of(completed),
        "cpu_s": cpu,
    }


def render(args: argparse.Namespace, s: dict[str, Any]) -> str:
    head = (
        f"sagas {s['sagas']}  completed {s['completed']}  unfinished {s['unfinished']}  "
        f"errors {s['errors']}  wall {s['wall_s']} s  completed/s {s['completed_per_s']}"
    )
    handling = "one message at a time" if args.one_at_a_time else f"prefetch {args.prefetch}"
    title = f"Lean saga probe: {args.sagas} sagas {pace(args)}, {handling}\n{head}"
    rows = [["saga created → completed (saga timestamps)", *s["saga_completed"].cells()]]
    return table(title, ["", *LATENCY_HEADER], rows)


def measure(args: argparse.Namespace) -> int:
    load_before = os.getloadavg()  # other work on the machine skews every figure
    log("fresh database and RabbitMQ vhost, five processes…")
    # Imported here: the children need none of it, and it takes seconds to load.
    from benchkit.stack import fresh_database_and_vhost

    fresh = fresh_database_and_vhost("fleet_lean")
    with fresh as (database, amqp), children(args, database, amqp) as kids:
        wall, cpu = run_load(args, kids)
        log(f"done in {wall:.1f}s; reading the sagas")
        outcome = asyncio.run(read_outcome(database))
        errors = kids.errors
    if outcome.unpublished:
        errors.append(f"{outcome.unpublished} outbox rows were never published")
    s = summary(args, wall, cpu, outcome, errors)
    print("\n" + render(args, s) + "\n")
    per_saga = cpu_table(cpu, max(s["completed"], 1), "saga", own="the five probe processes")
    print(per_saga + "\n")  # per completed saga
    recorded = {k: v for k, v in vars(args).items() if k not in HIDDEN}
    result: dict[str, Any] = {"args": recorded, "load_average_before": load_before, "summary": s}
    result |= {"baselines": {}, "errors": errors[:50]}
    log(f"results written to {write_json('lean_saga', result, args.results_dir)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.role:
        return run_child(args)
    from benchkit.stack import exit_on_sigterm  # (imports the platform: the parent's only)

    exit_on_sigterm()
    try:
        return measure(args)
    except (RuntimeError, TimeoutError) as exc:
        log(f"failed: {exc}")
        return 1
    except KeyboardInterrupt:  # after the `finally` blocks: children stopped, database dropped
        log("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())

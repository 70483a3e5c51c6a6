"""Booking benchmark: time from `POST /trips` to a confirmed trip, and bookings per second.

Registers riders (topped up) and vehicles spread around the pickup, then drives `--bookings`
bookings from `--concurrency` workers (each books, waits for the outcome, books again) through
the gateway. Two figures per booking:

* saga time (primary): the saga's own timestamps, `created_at` (in the POST's transaction) to
  `updated_at` when it completed, read after the run through `GET /sagas/{id}`: no load while
  the run lasts, no client or gateway time;
* client time (secondary): from sending `POST /trips` to seeing the outcome, by default the trip
  service's own `trip.confirmed`/`trip.rejected` event on a private queue (`--observe events`),
  or by polling `GET /trips/{id}` (`--observe poll`, which loads the machine).

For comparison the same run measures bare requests: `GET /health` of the gateway (which answers
it itself), of the trip service and of a hello-world FastAPI app under the same uvicorn settings,
and the cheapest proxied request, one rider's `GET /trips/{id}`, through the gateway and direct.
On a stack it started, the benchmark also breaks each saga step into hops (outbox and inbox
timestamps) and reports the CPU time each process used per booking.

    uv run python bench/saga.py                      # own stack, 500 bookings at 32
    uv run python bench/saga.py --bookings 300 --concurrency 16
    uv run python bench/saga.py --bookings 400 --rate 20   # open loop: 20 arrivals per second
    uv run python bench/saga.py --bookings 800 --rate 40 --lean  # … then the lean probe, same load
    uv run python bench/saga.py --url http://127.0.0.1:8000 --amqp-url amqp://…/vhost
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from benchkit import hops
from benchkit.booker import Booker, Shed
from benchkit.cpu import CpuMeter, cpu_table, own_seconds
from benchkit.observe import EventObserver, Observer, PollObserver
from benchkit.probes import hello_app, probe
from benchkit.report import (
    LATENCY_HEADER,
    Latency,
    add_results_dir_option,
    pace,
    table,
    write_json,
)
from benchkit.stack import Target, exit_on_sigterm, own_stack

from fleet.platform.client import SEOUL, ApiError, Platform, User

SETTLE_TIMEOUT_S = 60.0
TOP_UP_CENTS = 1_000_000  # the API's maximum top-up: ~1,500 bookings of the default trip
SPREAD_KM = 2.0
# Where the timed bookings enter (`--post-to`): the gateway, or the trip service directly.
POST_TO = ("gateway", "trip")
POST_TO_HELP = (
    "where the timed POST /trips go: the gateway (default; the way local runs enter) or the "
    "trip service directly, as an ingress routes them in Kubernetes (setup and reads still use "
    "the gateway)"
)


@dataclass
class Booking:
    trip_id: str
    saga_id: str
    rider: User
    sent: float  # perf_counter() before POST /trips
    accepted: float  # … when the 202 arrived
    settled: float | None = None
    status: str = "pending"  # confirmed | rejected | pending (not settled in time)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--bookings", type=int, default=500, help="bookings to make (default 500)")
    p.add_argument("--concurrency", type=int, default=32, help="bookings in flight (default 32)")
    p.add_argument(
        "--rate",
        type=float,
        help="open loop: start a booking every 1/RATE s whatever is in flight (instead of "
        "--concurrency clients); the figure to compare with the target's 100/s at p95 150 ms",
    )
    p.add_argument("--vehicles", type=int, help="vehicles to register (default: --bookings)")
    p.add_argument("--riders", type=int, help="riders to register (default: --concurrency)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--stack", action="store_true", help="start an own stack (the default)")
    where.add_argument("--url", help="use the running platform at this gateway URL")
    p.add_argument("--trip-url", help="with --url: the trip service, for the direct baseline")
    p.add_argument("--amqp-url", help="with --url: its broker (vhost), to observe events")
    p.add_argument("--database-url", help="with --url: its database, for the hop breakdown")
    p.add_argument(
        "--pid",
        action="append",
        default=[],
        metavar="NAME=PID",
        help="with --url: a process "
        "to measure the CPU time of (repeatable; an own stack measures its own)",
    )
    p.add_argument("--post-to", choices=POST_TO, default="gateway", help=POST_TO_HELP)
    p.add_argument("--observe", choices=["events", "poll"], help="default: events if possible")
    p.add_argument("--poll-ms", type=float, default=20.0, help="poll interval (default 20 ms)")
    p.add_argument("--log-level", default="INFO", help="own stack's FLEET_LOG_LEVEL (INFO)")
    p.add_argument("--keep-logs", action="store_true", help="keep the own stack's service logs")
    p.add_argument("--probe-requests", type=int, default=500, help="requests per baseline")
    p.add_argument("--no-baseline", action="store_true", help="skip the /health baselines")
    p.add_argument(
        "--lean",
        action="store_true",
        help="then run the lean probe (bench/lean_saga.py) at the same load and set its figures "
        "beside the platform's: what the machine could do at the same moment",
    )
    add_results_dir_option(p)
    args = p.parse_args(argv)
    if args.bookings < 1 or args.concurrency < 1:
        p.error("--bookings and --concurrency must be at least 1")
    if args.rate is not None and args.rate <= 0:
        p.error("--rate must be positive")
    if args.post_to == "trip" and args.url and not args.trip_url:
        p.error("--post-to trip with --url needs --trip-url (the trip service's own URL)")
    args.vehicles = args.bookings if args.vehicles is None else args.vehicles
    args.riders = min(args.concurrency, args.bookings) if args.riders is None else args.riders
    return args


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- setup ------------------------------------------------------------------------------------


async def gather_limited(limit: int, coros: list[Any]) -> list[Any]:
    gate = asyncio.Semaphore(limit)

    async def one(coro: Any) -> Any:
        async with gate:
            return await coro

    return await asyncio.gather(*(one(c) for c in coros))


def around(lat: float, lon: float, max_km: float) -> tuple[float, float]:
    """A random point within `max_km` of (lat, lon), uniform over the disc."""
    r, angle = max_km * math.sqrt(random.random()), random.uniform(0, 2 * math.pi)
    dlat = r * math.cos(angle) / 111.32
    dlon = r * math.sin(angle) / (111.32 * math.cos(math.radians(lat)))
    return lat + dlat, lon + dlon


async def setup(api: Platform, riders: int, vehicles: int) -> list[User]:
    start = time.perf_counter()
    op = await api.operator()
    base = random.randrange(0, 900_000_000 - vehicles)  # fresh VINs on a long-lived stack too
    spots = [around(SEOUL["lat"], SEOUL["lon"], SPREAD_KM) for _ in range(vehicles)]
    await gather_limited(
        16, [api.vehicle(op, base + i, lat, lon) for i, (lat, lon) in enumerate(spots)]
    )
    # Registration and login hash passwords (Argon2): few riders, few hashes.
    users = await gather_limited(4, [api.rider(TOP_UP_CENTS) for _ in range(riders)])
    log(f"setup: {vehicles} vehicles, {riders} riders in {time.perf_counter() - start:.1f}s")
    return users


# -- the run ----------------------------------------------------------------------------------


class Run:
    def __init__(self, booker: Booker, observer: Observer, riders: list[User]) -> None:
        self.booker, self.observer, self.riders = booker, observer, riders
        self.bookings: list[Booking] = []
        self.errors: list[str] = []
        self.shed = 0  # refused at the door: 503 + Retry-After (the platform was overloaded)

    async def one(self, rider: User, wait_if_shed: bool = False) -> None:
        """Book, then wait for the outcome (or, refused and `wait_if_shed`, for Retry-After)."""
        sent = time.perf_counter()
        try:
            trip = await self.booker.book(rider)
        except Shed as exc:
            self.shed += 1
            if wait_if_shed:
                await asyncio.sleep(exc.retry_after_s)
            return
        except (ApiError, aiohttp.ClientError, TimeoutError) as exc:
            self.errors.append(f"POST /trips: {exc}")
            return
        booking = Booking(str(trip["id"]), str(trip["saga_id"]), rider, sent, time.perf_counter())
        self.bookings.append(booking)
        try:
            booking.status, booking.settled = await self.observer.settled(
                rider, booking.trip_id, SETTLE_TIMEOUT_S
            )
        except (TimeoutError, ApiError, httpx.HTTPError) as exc:
            self.errors.append(f"trip {booking.trip_id}: {exc}")

    async def worker(self, number: int, todo: Any) -> None:
        rider = self.riders[number % len(self.riders)]
        for _ in todo:
            await self.one(rider, wait_if_shed=True)

    async def progress(self, total: int, started: float) -> None:
        while True:
            await asyncio.sleep(2.0)
            done = [b for b in self.bookings if b.settled is not None]
            ok = sum(b.status == "confirmed" for b in done)
            rate = len(done) / (time.perf_counter() - started)
            log(f"  {len(done)}/{total} settled ({ok} confirmed), {rate:.1f}/s")

    async def drive(self, total: int, concurrency: int, rate: float | None = None) -> float:
        """Run every booking; the wall time from the first POST to the last outcome.

        Closed loop by default (`concurrency` clients, each books again once its booking
        settled); with `rate`, open loop: a new booking every 1/rate seconds, however many are
        in flight, as riders arrive in the real world."""
        started = time.perf_counter()
        ticker = asyncio.create_task(self.progress(total, started))
        try:
            if rate is None:
                todo = iter(range(total))
                await asyncio.gather(*(self.worker(i, todo) for i in range(concurrency)))
            else:
                await self.arrivals(total, rate, started)
        finally:
            ticker.cancel()
        return time.perf_counter() - started

    async def arrivals(self, total: int, rate: float, started: float) -> None:
        tasks: list[asyncio.Task[None]] = []
        for i in range(total):
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            rider = self.riders[i % len(self.riders)]
            tasks.append(asyncio.create_task(self.one(rider)))
        await asyncio.gather(*tasks)


@dataclass
class SagaTimes:
    """From the sagas' own timestamps: whole sagas by final status, and each action step."""

    by_status: dict[str, list[float]]
    by_step: dict[str, list[float]]


async def saga_times(api: Platform, op: User, bookings: list[Booking]) -> SagaTimes:
    async def one(b: Booking) -> dict[str, Any]:
        saga: dict[str, Any] = await api.get(op, f"/sagas/{b.saga_id}")
        return saga

    out = SagaTimes({}, {})
    for saga in await gather_limited(8, [one(b) for b in bookings]):
        seconds = _between(saga["created_at"], saga["updated_at"])
        out.by_status.setdefault(str(saga["status"]), []).append(seconds)
        if saga["status"] != "completed":
            continue
        for step in saga["steps"]:
            if step["phase"] == "action" and step["started_at"] and step["finished_at"]:
                took = _between(step["started_at"], step["finished_at"])
                out.by_step.setdefault(step["name"], []).append(took)
    return out


def _between(start: str, end: str) -> float:
    return (dt.datetime.fromisoformat(end) - dt.datetime.fromisoformat(start)).total_seconds()


# -- baselines --------------------------------------------------------------------------------


async def baselines(
    target: Target, read: tuple[str, dict[str, str]] | None, concurrency: int, requests: int
) -> dict[str, dict[str, Latency]]:
    """Bare requests for comparison. The gateway answers its own /health (it does not proxy
    it), so a proxied request is measured with the cheapest authenticated read: one trip."""
    urls: dict[str, tuple[str, dict[str, str]]] = {
        "gateway /health": (target.gateway + "/health", {})
    }
    if target.trip:
        urls["trip /health (direct)"] = (target.trip + "/health", {})
    if read is not None:
        path, headers = read
        urls["GET /trips/{id} via gateway"] = (target.gateway + path, headers)
        if target.trip:
            urls["GET /trips/{id} (direct)"] = (target.trip + path, headers)
    out: dict[str, dict[str, Latency]] = {}
    with hello_app() as hello:
        urls["hello-world FastAPI /health"] = (hello + "/health", {})
        for name, (url, headers) in urls.items():
            out[name] = {
                "1 at a time": await probe(url, requests, 1, headers),
                f"{concurrency} at a time": await probe(url, requests, concurrency, headers),
            }
            log(f"baseline {name}: p50 {out[name]['1 at a time'].p50_ms} ms")
    return out


# -- report -----------------------------------------------------------------------------------


def summary(run: Run, wall: float, sagas: SagaTimes) -> dict[str, Any]:
    confirmed = [b for b in run.bookings if b.status == "confirmed" and b.settled]
    rejected = [b for b in run.bookings if b.status == "rejected" and b.settled]
    return {
        "bookings": len(run.bookings),
        "confirmed": len(confirmed),
        "rejected": len(rejected),
        "unsettled": sum(b.settled is None for b in run.bookings),
        "shed": run.shed,
        "errors": len(run.errors),
        "wall_s": round(wall, 2),
        "confirmed_per_s": round(len(confirmed) / wall, 1),
        "saga_completed": Latency.of(sagas.by_status.get("completed", [])),
        "saga_compensated": Latency.of(sagas.by_status.get("compensated", [])),
        "client_confirmed": Latency.of([b.settled - b.sent for b in confirmed if b.settled]),
        "client_rejected": Latency.of([b.settled - b.sent for b in rejected if b.settled]),
        "post_trips_202": Latency.of([b.accepted - b.sent for b in run.bookings]),
        "steps": {name: Latency.of(v) for name, v in sagas.by_step.items()},
    }


def render(args: argparse.Namespace, s: dict[str, Any], base: dict[str, Any]) -> str:
    head = (
        f"bookings {s['bookings']}  confirmed {s['confirmed']}  rejected {s['rejected']}  "
        f"unsettled {s['unsettled']}  shed {s['shed']}  errors {s['errors']}  "
        f"wall {s['wall_s']} s  confirmed/s {s['confirmed_per_s']}"
    )
    rows = [
        ["saga created → completed (saga timestamps)", *s["saga_completed"].cells()],
        [f"POST → confirmed seen (client, {args.observe})", *s["client_confirmed"].cells()],
        [f"POST /trips → 202 (client, to the {args.post_to})", *s["post_trips_202"].cells()],
    ]
    if s["rejected"]:
        rows.append(["saga created → compensated", *s["saga_compensated"].cells()])
    rows += [[f"  step {name} (saga timestamps)", *lat.cells()] for name, lat in s["steps"].items()]
    rows += [[f"    {name}", *lat.cells()] for name, lat in s["hops"].items()]
    for name, modes in base.items():
        rows += [[f"{name}, {mode}", *lat.cells()] for mode, lat in modes.items()]
    title = f"Booking saga: {args.bookings} bookings {pace(args)}\n{head}"
    return table(title, ["", *LATENCY_HEADER], rows)


def booking_url(args: argparse.Namespace, target: Target) -> str:
    """Where the timed `POST /trips` go (`--post-to`)."""
    if args.post_to == "gateway":
        return target.gateway
    if target.trip is None:
        raise ValueError("--post-to trip needs the trip service's URL (--trip-url with --url)")
    return target.trip


def connections(args: argparse.Namespace) -> int:
    """HTTP connections for the bookings in flight at once (and a few for the rest)."""
    concurrency: int = args.concurrency
    in_flight = concurrency if args.rate is None else max(concurrency, int(args.rate))
    return in_flight + 8


def make_observer(args: argparse.Namespace, target: Target, api: Platform) -> Observer:
    if args.observe == "events" and target.amqp_url:
        return EventObserver(target.amqp_url)
    args.observe = "poll"
    return PollObserver(api, args.poll_ms / 1000)


async def drive(
    args: argparse.Namespace, target: Target, api: Platform, riders: list[User]
) -> tuple[Run, float, dict[str, float], Observer]:
    """The bookings themselves: (run, wall time, CPU seconds by process, observer)."""
    observer = make_observer(args, target, api)
    await observer.start()
    async with Booker(booking_url(args, target), connections=connections(args)) as booker:
        run = Run(booker, observer, riders)
        log(f"booking {args.bookings} {pace(args)} to the {args.post_to}, seen by {args.observe}")
        meter = CpuMeter(target.pids, itself=True)
        meter.start()
        try:
            wall = await run.drive(args.bookings, args.concurrency, args.rate)
        finally:
            cpu = meter.stop()
            await observer.close()
    log(f"done: {len(run.bookings)} bookings in {wall:.1f}s; reading the sagas")
    for error in run.errors[:5]:
        log(f"error: {error}")
    return run, wall, cpu, observer


async def measure(args: argparse.Namespace, target: Target) -> dict[str, Any]:
    load_before = os.getloadavg()  # other work on the machine skews every figure
    limits = httpx.Limits(max_connections=connections(args))
    async with httpx.AsyncClient(base_url=target.gateway, timeout=30, limits=limits) as http:
        api = Platform(http)
        riders = await setup(api, args.riders, args.vehicles)
        run, wall, cpu, observer = await drive(args, target, api, riders)
        sagas = await saga_times(api, await api.operator(), run.bookings)
        hop_times = await hops.breakdown(target.database_url) if target.database_url else {}
        first = run.bookings[0] if run.bookings else None
        read = (f"/trips/{first.trip_id}", first.rider.headers) if first else None
        base = {}
        if not args.no_baseline:
            base = await baselines(target, read, args.concurrency, args.probe_requests)
    s = summary(run, wall, sagas) | {"hops": hop_times, "cpu_s": cpu}
    print("\n" + render(args, s, base) + "\n")
    print(cpu_table(cpu, max(len(run.bookings), 1), "booking") + "\n")
    extra = {"polls": observer.polls} if isinstance(observer, PollObserver) else {}
    result: dict[str, Any] = {"args": vars(args), "load_average_before": load_before, "summary": s}
    result |= {"baselines": base, "errors": run.errors[:50], **extra}
    return result


def lean_probe(args: argparse.Namespace) -> dict[str, Any]:
    """The lean probe's summary at this run's load (`--sagas` = `--bookings`, same pace)."""
    load = ["--rate", f"{args.rate:g}"] if args.rate else ["--concurrency", str(args.concurrency)]
    with tempfile.TemporaryDirectory(prefix="fleet-lean-") as out:
        script = Path(__file__).with_name("lean_saga.py")
        cmd = [sys.executable, str(script), "--sagas", str(args.bookings), *load]
        log("the lean probe at the same load (bench/lean_saga.py)…")
        done = subprocess.run([*cmd, "--results-dir", out], check=False)
        found = sorted(Path(out).glob("lean_saga-*.json"))
        if done.returncode != 0 or not found:
            raise RuntimeError(f"the lean probe failed (exit {done.returncode})")
        summary: dict[str, Any] = json.loads(found[0].read_text())["summary"]
    return summary


def per_unit_cpu(cpu: dict[str, float], units: int) -> str:
    """CPU ms per unit: own processes / PostgreSQL / RabbitMQ."""
    own = own_seconds(cpu)
    pg = sum(v for k, v in cpu.items() if k.startswith("postgres"))
    mq = sum(v for k, v in cpu.items() if k.startswith("rabbitmq"))
    return " / ".join(f"{v / max(units, 1) * 1000:.1f}" for v in (own, pg, mq))


def against_lean(s: dict[str, Any], lean: dict[str, Any]) -> str:
    """The platform's headline figures beside the probe's."""
    mine: Latency = s["saga_completed"]
    theirs = lean["saga_completed"]
    rows = [
        [
            "platform (confirmed)",
            f"{s['confirmed_per_s']:.1f}",
            *(f"{v:.1f}" for v in mine.figures()[:3]),
            per_unit_cpu(s["cpu_s"], s["bookings"]),
        ],
        [
            "lean probe (completed)",
            f"{lean['completed_per_s']:.1f}",
            *(f"{theirs[k]:.1f}" for k in ("p50_ms", "p95_ms", "p99_ms")),
            per_unit_cpu(lean["cpu_s"], lean["completed"]),
        ],
    ]
    header = ["", "per s", "p50 ms", "p95 ms", "p99 ms", "CPU ms each: own / PG / RabbitMQ"]
    return table(
        "The platform against the lean probe, same load, one after the other", header, rows
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    exit_on_sigterm()
    args.observe = args.observe or "events"
    where: AbstractContextManager[Target] = (
        nullcontext(
            Target(
                args.url.rstrip("/"),
                args.trip_url,
                args.amqp_url,
                args.database_url,
                pids={n: int(p) for n, p in (item.split("=", 1) for item in args.pid)},
            )
        )
        if args.url
        else own_stack(args.log_level, args.keep_logs)
    )
    if not args.url:
        log("starting an own stack (fresh database and RabbitMQ vhost)…")
    with where as target:
        result = asyncio.run(measure(args, target))
    if args.lean:  # once the platform's stack is gone: the probe has the machine to itself
        result["lean_probe"] = lean_probe(args)
        print("\n" + against_lean(result["summary"], result["lean_probe"]) + "\n")
    log(f"results written to {write_json('saga', result, args.results_dir)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

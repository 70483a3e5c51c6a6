"""Telemetry ingestion benchmark: position updates per second accepted and stored.

Starts its own distributed stack (fresh database and RabbitMQ vhost), registers `--vehicles`
vehicles, then for `--seconds` drives position updates through one or both paths:

* http: `--http-workers` clients each POST batches of `--batch` readings of one vehicle with its
  device token (`POST /vehicles/{id}/telemetry` through the gateway);
* amqp: `--publishers` connections each publish `vehicle.telemetry` messages of
  `--per-message` readings on `fleet.events` (persistent, as devices would).

Every second it prints the readings accepted (HTTP 202s + messages published) and stored
(`telemetry_stored_total` from the vehicle service's /metrics); at the end it waits for the
backlog to drain and counts the rows in PostgreSQL. Target: 16,700/s (1 M per minute).

    uv run python bench/telemetry.py                          # both paths, 20 s
    uv run python bench/telemetry.py --mode http --seconds 30
    uv run python bench/telemetry.py --mode amqp --publishers 8 --per-message 20
    uv run python bench/telemetry.py --seconds 1 --vehicles 4 --http-workers 1 --batch 5 \
        --publishers 1 --per-message 2                         # a smoke run (seconds)
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import random
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import asyncpg
import httpx
import orjson
from benchkit.cpu import CpuMeter
from benchkit.report import add_results_dir_option, table, write_json
from benchkit.stack import Target, exit_on_sigterm, own_stack

from fleet.common.messaging import Envelope
from fleet.platform.client import Platform

REGISTER_CONCURRENCY = 16
KEPT_ERRORS = 50  # error messages kept for the JSON result


@dataclass
class Counters:
    http: int = 0
    amqp: int = 0
    refused: int = 0
    errors: int = 0
    samples: list[tuple[float, int, int]] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)  # the first errors, for the JSON result

    @property
    def accepted(self) -> int:
        return self.http + self.amqp


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--mode", choices=["http", "amqp", "both"], default="both")
    p.add_argument("--seconds", type=float, default=20.0, help="load duration (default 20)")
    p.add_argument("--vehicles", type=int, default=2000, help="vehicles (default 2000)")
    p.add_argument("--http-workers", type=int, default=4, help="HTTP clients (default 4)")
    p.add_argument("--batch", type=int, default=500, help="readings per request (default 500)")
    p.add_argument("--publishers", type=int, default=4, help="AMQP publishers (default 4)")
    p.add_argument("--per-message", type=int, default=10, help="readings per message (10)")
    p.add_argument("--rate", type=float, default=0, help="cap updates/s overall (0: flat out)")
    add_results_dir_option(p)
    return p.parse_args(argv)


def readings(count: int, start: dt.datetime) -> list[dict[str, Any]]:
    lat, lon = 37.5 + random.random() / 10, 127.0 + random.random() / 10
    return [
        {
            "lat": round(lat + i * 1e-5, 6),
            "lon": round(lon + i * 1e-5, 6),
            "speed_kph": 40.0,
            "battery_pct": 80.0,
            "recorded_at": (start + dt.timedelta(milliseconds=10 * i)).isoformat(),
        }
        for i in range(count)
    ]


class Pacer:
    """Spreads `rate` updates per second over the workers (no cap when rate is 0)."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.start = time.perf_counter()
        self.sent = 0

    async def take(self, n: int) -> None:
        self.sent += n
        if self.rate > 0:
            ahead = self.sent / self.rate - (time.perf_counter() - self.start)
            if ahead > 0:
                await asyncio.sleep(ahead)


async def register(api: Platform, count: int) -> list[tuple[str, str]]:
    op = await api.operator()
    sem = asyncio.Semaphore(REGISTER_CONCURRENCY)

    async def one() -> tuple[str, str]:
        async with sem:
            vin = "".join(random.choices("ABCDEFGHJKLMNPRSTUVWXYZ0123456789", k=17))
            body = {"vin": vin, "model": "Bench", "seats": 4, "lat": 37.5, "lon": 127.0}
            r = await api.http.post("/vehicles", json=body, headers=op.headers)
            r.raise_for_status()
            return r.json()["id"], r.json()["device_token"]

    return await asyncio.gather(*(one() for _ in range(count)))


def http_bodies(fleet: list[tuple[str, str]], batch: int, count: int = 64) -> list[Any]:
    """Request bodies built before the clock starts: the load generator shares the 2 cores."""
    start = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=120)
    out = []
    for n in range(count):
        vid, token = random.choice(fleet)
        body = orjson.dumps(readings(batch, start + dt.timedelta(milliseconds=n)))
        out.append((vid, token, body))
    return out


async def http_worker(
    url: str,
    bodies: list[Any],
    args: argparse.Namespace,
    until: float,
    c: Counters,
    pacer: Pacer,
) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        while time.perf_counter() < until:
            vid, token, body = random.choice(bodies)
            await pacer.take(args.batch)
            r = await http.post(
                f"/vehicles/{vid}/telemetry",
                content=body,
                headers={"X-Device-Token": token, "Content-Type": "application/json"},
            )
            if r.status_code == 202:
                c.http += args.batch
            elif r.status_code in (429, 503):
                c.refused += args.batch
                await asyncio.sleep(0.2)
            else:
                c.errors += 1
                if len(c.messages) < KEPT_ERRORS:
                    c.messages.append(
                        f"POST /vehicles/{vid}/telemetry: {r.status_code} {r.text[:200]}"
                    )


def amqp_bodies(fleet: list[tuple[str, str]], per_message: int, count: int = 2000) -> list[Any]:
    """Encoded device messages built before the clock starts (each with its own event id)."""
    start = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=120)
    out = []
    for n in range(count):
        vid, _ = random.choice(fleet)
        envelope = Envelope.new(
            "vehicle.telemetry",
            {
                "vehicle_id": vid,
                "readings": readings(per_message, start + dt.timedelta(milliseconds=n)),
            },
            producer="device",
            aggregate_type="vehicle",
            aggregate_id=vid,
        )
        out.append((f"vehicle.telemetry.{vid}", envelope.encode()))
    return out


async def amqp_publisher(
    amqp_url: str,
    bodies: list[Any],
    args: argparse.Namespace,
    until: float,
    c: Counters,
    pacer: Pacer,
) -> None:
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange("fleet.events")
        window: list[asyncio.Future[Any]] = []
        while time.perf_counter() < until:
            key, body = random.choice(bodies)
            message = aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
            await pacer.take(args.per_message)
            # Confirms in windows of 200: a device gateway would not wait for each one.
            window.append(asyncio.ensure_future(exchange.publish(message, routing_key=key)))
            if len(window) >= 200:
                await asyncio.gather(*window)
                c.amqp += args.per_message * len(window)
                window.clear()
        await asyncio.gather(*window)
        c.amqp += args.per_message * len(window)
    finally:
        await connection.close()


async def stored_total(http: httpx.AsyncClient) -> int:
    """`telemetry_stored_total` from the vehicle service's metrics (via the gateway)."""
    try:
        text = (await http.get("/metrics")).text
    except httpx.HTTPError:
        return -1
    for line in text.splitlines():
        if line.startswith("telemetry_stored_total "):
            return int(float(line.split()[1]))
    return -1


async def count_rows(database_url: str) -> int:
    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return int(await conn.fetchval("SELECT count(*) FROM vehicle.telemetry"))
    finally:
        await conn.close()


async def progress(vehicle_url: str, until: float, c: Counters, t0: float) -> None:
    async with httpx.AsyncClient(base_url=vehicle_url, timeout=5) as http:
        while time.perf_counter() < until:
            await asyncio.sleep(1.0)
            now = time.perf_counter() - t0
            stored = await stored_total(http)
            c.samples.append((now, c.accepted, stored))
            print(
                f"  t={now:5.1f}s accepted={c.accepted:>9,} ({c.accepted / now:>8,.0f}/s) "
                f"stored={stored:>9,} ({stored / now:>8,.0f}/s) refused={c.refused:,}",
                flush=True,
            )


async def run(args: argparse.Namespace, target: Target) -> tuple[dict[str, Any], list[str]]:
    """The figures, and the first error messages."""
    vehicle_url, database_url, amqp_url = target.vehicle, target.database_url, target.amqp_url
    if not (vehicle_url and database_url and amqp_url):
        raise ValueError("telemetry needs the vehicle service, database and broker of its stack")
    async with httpx.AsyncClient(base_url=target.gateway, timeout=30) as http:
        api = Platform(http)
        print(f"registering {args.vehicles} vehicles…", flush=True)
        fleet = await register(api, args.vehicles)
    bodies = http_bodies(fleet, args.batch)
    messages = amqp_bodies(fleet, args.per_message)
    c = Counters()
    pacer = Pacer(args.rate)
    meter = CpuMeter(target.pids)
    t0 = time.perf_counter()
    until = t0 + args.seconds
    meter.start()
    tasks = [asyncio.create_task(progress(vehicle_url, until, c, t0))]
    if args.mode in ("http", "both"):
        tasks += [
            asyncio.create_task(http_worker(vehicle_url, bodies, args, until, c, pacer))
            for _ in range(args.http_workers)
        ]
    if args.mode in ("amqp", "both"):
        tasks += [
            asyncio.create_task(amqp_publisher(amqp_url, messages, args, until, c, pacer))
            for _ in range(args.publishers)
        ]
    await asyncio.gather(*tasks)
    load_s = time.perf_counter() - t0
    accepted_rate = c.accepted / load_s
    # Drain: everything accepted must reach PostgreSQL.
    async with httpx.AsyncClient(base_url=vehicle_url, timeout=5) as http:
        deadline = time.perf_counter() + 60
        while (await stored_total(http)) < c.accepted and time.perf_counter() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.2)
    drained_s = time.perf_counter() - t0
    cpu = meter.stop()
    rows = await count_rows(database_url)
    return {
        "mode": args.mode,
        "seconds": round(load_s, 1),
        "vehicles": args.vehicles,
        "accepted": c.accepted,
        "accepted_http": c.http,
        "accepted_amqp": c.amqp,
        "refused": c.refused,
        "errors": c.errors,
        "rows_in_postgres": rows,
        "accepted_per_s": round(accepted_rate),
        "stored_per_s": round(rows / drained_s),
        "drain_s": round(drained_s - load_s, 1),
        "cpu_s": cpu,
    }, c.messages


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    exit_on_sigterm()
    load_before = os.getloadavg()  # other work on the machine skews every figure
    with own_stack(log_level="WARNING") as target:
        result, errors = asyncio.run(run(args, target))
    rows = [[k, f"{v:,}" if isinstance(v, int) else str(v)] for k, v in result.items()]
    print(table("Telemetry ingestion", ["figure", "value"], rows))
    for error in errors[:5]:
        print(f"error: {error}")
    data = {"args": vars(args), "load_average_before": load_before, "summary": result}
    path = write_json("telemetry", data | {"baselines": {}, "errors": errors}, args.results_dir)
    print(f"results: {path}")
    ok = result["rows_in_postgres"] >= result["accepted"] and result["errors"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

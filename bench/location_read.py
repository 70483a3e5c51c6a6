"""Location read benchmark: `GET /vehicles/{id}/location` against a bare FastAPI hello-world.

Starts the vehicle service as its own process in distributed mode (`fleet serve vehicle` on a
fresh PostgreSQL database and Redis, every middleware on: request context and access log, RED
metrics, JWT verification, tracing without an exporter) and a bare FastAPI app under the same
uvicorn settings (`benchkit.probes.hello_app`). Registers `--vehicles` vehicles, then drives
both with the same load — wrk (`apt-get install wrk`) or, without it, an asyncio httpx driver —
in alternating rounds, and prints requests/s, latency percentiles, server CPU per request and
the ratio service / bare. Target: ≥ 0.7x the bare app's requests/s.

    uv run python bench/location_read.py                       # wrk, 64 connections, 2 x 10 s
    uv run python bench/location_read.py --driver httpx --seconds 5
    uv run python bench/location_read.py --log-level WARNING   # without the access log
    uv run python bench/location_read.py --driver httpx --vehicles 2 --rounds 1 \
        --seconds 0.5 --warmup 0.2 --connections 4                 # a smoke run (seconds)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from benchkit.cpu import CpuMeter
from benchkit.probes import hello_app
from benchkit.report import add_results_dir_option, percentile, table, write_json
from benchkit.stack import DEFAULT_REDIS, exit_on_sigterm, free_ports

from fleet.common.auth import TokenIssuer, generate_keypair
from fleet.common.testing import create_database, drop_database

TARGET_RATIO = 0.7


@dataclass(frozen=True)
class Run:
    target: str
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    requests: int
    failed: int
    cpu_us_per_request: float


@dataclass(frozen=True)
class Server:
    url: str
    pid: int
    paths: list[str]


# -- the vehicle service, on its own ----------------------------------------------------------


def _service_env(
    database_url: str, redis_url: str, data_dir: Path, log_level: str
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLEET_JWT_", "AMQP_URL"))}
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        FLEET_DATA_DIR=str(data_dir),
        FLEET_JWT_PUBLIC_KEY_FILE=str(data_dir / "jwt.pub"),
        FLEET_REDIS_PREFIX=f"bench-{uuid.uuid4().hex[:8]}",  # not the keys of a running stack
        FLEET_LOG_LEVEL=log_level,
    )
    return env


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"vehicle service exited with {proc.returncode}; see {log}")
        try:
            if httpx.get(url + "/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"vehicle service not ready; see {log}")


@contextmanager
def vehicle_service(redis_url: str, log_level: str) -> Iterator[tuple[str, int, TokenIssuer]]:
    """The vehicle service on a fresh database: its URL, its pid and a token issuer it trusts."""
    database = create_database(prefix="fleet_bench")
    data_dir = Path(tempfile.mkdtemp(prefix="fleet-bench-location-"))
    keys = generate_keypair()
    (data_dir / "jwt.pub").write_text(keys.public_pem)
    issuer = TokenIssuer(keys.private_pem or "", issuer="fleet", ttl_seconds=3600)
    env = _service_env(database, redis_url, data_dir, log_level)
    port = free_ports(1)[0]
    log = data_dir / "vehicle.log"
    proc: subprocess.Popen[bytes] | None = None
    try:
        cli = [sys.executable, "-m", "fleet.platform"]
        subprocess.run([*cli, "migrate", "vehicle"], env=env, check=True, capture_output=True)
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [*cli, "serve", "vehicle", "--host", "127.0.0.1", "--port", str(port)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url, proc, log)
        yield url, proc.pid, issuer
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(20)
        drop_database(database)
        shutil.rmtree(data_dir, ignore_errors=True)


def register_vehicles(url: str, token: str, count: int) -> list[str]:
    ids = []
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as http:
        for i in range(count):
            vin = f"BENCH{uuid.uuid4().hex[:12].upper()}".replace("O", "0").replace("I", "1")
            body = {"vin": vin, "model": "Robo-1", "seats": 4, "lat": 52.5 + i / 1e4, "lon": 13.4}
            r = http.post("/vehicles", json=body)
            r.raise_for_status()
            ids.append(str(r.json()["id"]))
    return ids


# -- drivers ----------------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(value) * _UNITS[unit]


def run_wrk(server: Server, token: str, seconds: float, connections: int) -> dict[str, float]:
    lua = "paths = {" + ",".join(f'"{p}"' for p in server.paths) + "}\n"
    lua += "i = 0\nrequest = function()\n  i = i + 1\n"
    lua += '  return wrk.format("GET", paths[(i % #paths) + 1])\nend\n'
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(lua)
    try:
        out = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{seconds:g}s",
                "--latency",
                "-H",
                f"Authorization: Bearer {token}",
                "-s",
                script.name,
                server.url,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        os.unlink(script.name)
    pct = dict(re.findall(r"^\s+(50|90|99)%\s+(\S+)\s*$", out, re.M))
    if len(pct) < 3:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    failed = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    failed += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),  # type: ignore[union-attr]
        "p50_ms": _ms(pct["50"]),
        "p90_ms": _ms(pct["90"]),
        "p99_ms": _ms(pct["99"]),
        "failed": failed,
    }


async def _httpx_load(
    server: Server, token: str, seconds: float, connections: int
) -> dict[str, float]:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    headers = {"Authorization": f"Bearer {token}"}
    samples: list[float] = []
    failed = 0
    async with httpx.AsyncClient(base_url=server.url, limits=limits, headers=headers) as http:
        deadline = time.perf_counter() + seconds

        async def worker(offset: int) -> None:
            nonlocal failed
            i = offset
            while time.perf_counter() < deadline:
                i += 1
                start = time.perf_counter()
                r = await http.get(server.paths[i % len(server.paths)])
                samples.append(time.perf_counter() - start)
                failed += r.status_code != 200

        started = time.perf_counter()
        await asyncio.gather(*(worker(n) for n in range(connections)))
        wall = time.perf_counter() - started
    return {
        "rps": len(samples) / wall,
        "requests": len(samples),
        "p50_ms": percentile(samples, 50) * 1000,
        "p90_ms": percentile(samples, 90) * 1000,
        "p99_ms": percentile(samples, 99) * 1000,
        "failed": failed,
    }


def measure(name: str, server: Server, token: str, args: argparse.Namespace) -> Run:
    meter = CpuMeter({name: server.pid})
    meter.start()
    if args.driver == "wrk":
        figures = run_wrk(server, token, args.seconds, args.connections)
    else:
        figures = asyncio.run(_httpx_load(server, token, args.seconds, args.connections))
    cpu = meter.stop()[name]
    requests = int(figures["requests"])
    return Run(
        target=name,
        rps=round(figures["rps"], 1),
        p50_ms=round(figures["p50_ms"], 2),
        p90_ms=round(figures["p90_ms"], 2),
        p99_ms=round(figures["p99_ms"], 2),
        requests=requests,
        failed=int(figures["failed"]),
        cpu_us_per_request=round(cpu / max(requests, 1) * 1e6, 1),
    )


# -- report -----------------------------------------------------------------------------------


def cache_counts(url: str) -> dict[str, float]:
    text = httpx.get(url + "/metrics", timeout=5).text
    pattern = (
        r'^cache_requests_total\{cache="vehicle-location",result="(\w+)",tier="(\w+)"\} (\S+)$'
    )
    return {f"{tier} {result}": float(n) for result, tier, n in re.findall(pattern, text, re.M)}


def summary(runs: list[Run], target: str) -> Run:
    mine = [r for r in runs if r.target == target]

    def med(field: str) -> float:
        values: list[float] = [getattr(r, field) for r in mine]
        return round(statistics.median(values), 2)

    return Run(
        target,
        med("rps"),
        med("p50_ms"),
        med("p90_ms"),
        med("p99_ms"),
        sum(r.requests for r in mine),
        sum(r.failed for r in mine),
        med("cpu_us_per_request"),
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="per round and target")
    parser.add_argument("--rounds", type=int, default=2, help="alternating service/bare rounds")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per target")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--vehicles", type=int, default=100, help="distinct ids read in turn")
    default_driver = "wrk" if shutil.which("wrk") else "httpx"
    parser.add_argument(
        "--driver",
        choices=["wrk", "httpx"],
        default=default_driver,
        help=f"load generator (default here: {default_driver}; httpx when wrk is missing)",
    )
    parser.add_argument("--log-level", default="INFO", help="INFO keeps the access log on")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", DEFAULT_REDIS))
    add_results_dir_option(parser)
    args = parser.parse_args(argv)
    if args.driver == "wrk" and shutil.which("wrk") is None:
        parser.error("--driver wrk: wrk is not installed (apt-get install wrk); or --driver httpx")
    if min(args.rounds, args.connections, args.vehicles) < 1 or args.seconds <= 0:
        parser.error("--rounds, --connections and --vehicles must be ≥ 1, --seconds > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    exit_on_sigterm()
    load_before = os.getloadavg()  # other work on the machine skews every figure
    with vehicle_service(args.redis_url, args.log_level) as (url, pid, issuer), hello_app() as bare:
        operator = issuer.issue(uuid.uuid4(), "operator", "bench-operator@example.com")
        rider = issuer.issue(uuid.uuid4(), "rider", "bench-rider@example.com")
        ids = register_vehicles(url, operator, args.vehicles)
        service = Server(url, pid, [f"/vehicles/{v}/location" for v in ids])
        bare_pid = _pid_listening(bare)
        hello = Server(bare, bare_pid, ["/health"])
        if args.warmup > 0:
            warm = argparse.Namespace(**{**vars(args), "seconds": args.warmup})
            measure("location", service, rider, warm)
            measure("bare", hello, rider, warm)
        runs = []
        for _ in range(args.rounds):
            runs.append(measure("location", service, rider, args))
            runs.append(measure("bare", hello, rider, args))
        counts = cache_counts(url)

    loc, base = summary(runs, "location"), summary(runs, "bare")
    ratio = round(loc.rps / base.rps, 3)
    header = ["target", "req/s", "p50 ms", "p90 ms", "p99 ms", "requests", "failed", "CPU µs/req"]
    rows = [
        [
            r.target,
            f"{r.rps:.0f}",
            f"{r.p50_ms:.2f}",
            f"{r.p90_ms:.2f}",
            f"{r.p99_ms:.2f}",
            str(r.requests),
            str(r.failed),
            f"{r.cpu_us_per_request:.0f}",
        ]
        for r in [*runs, loc, base]
    ]
    rows[-2][0], rows[-1][0] = "location (median)", "bare (median)"
    title = (
        f"GET /vehicles/{{id}}/location vs bare FastAPI — {args.driver}, {args.connections} "
        f"connections, {args.rounds} x {args.seconds:g} s, {args.vehicles} vehicles"
    )
    print(table(title, header, rows))
    print(f"ratio location / bare: {ratio:.2f}x requests/s (target ≥ {TARGET_RATIO}x)")
    print("cache lookups during the run:", ", ".join(f"{k}={v:.0f}" for k, v in counts.items()))
    errors = [f"{r.target}: {r.failed} of {r.requests} requests failed" for r in runs if r.failed]
    path = write_json(
        "location_read",
        {
            "args": vars(args),
            "load_average_before": load_before,
            # Medians over the rounds; `runs` holds each round.
            "summary": {"location": vars(loc), "ratio": ratio, "cache": counts},
            "baselines": {"bare": vars(base)},
            "errors": errors,
            "runs": [vars(r) for r in runs],
        },
        args.results_dir,
    )
    print(f"results: {path}")
    failed = loc.requests and (loc.failed or base.failed)
    return 1 if failed else 0


def _pid_listening(url: str) -> int:
    """The pid of the process serving `url` (hello_app does not expose its Popen)."""
    port = url.rsplit(":", 1)[1]
    out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True)
    found = re.search(r"pid=(\d+)", out.stdout)
    if found is None:
        raise RuntimeError(f"no process listens on port {port}")
    return int(found.group(1))


if __name__ == "__main__":
    sys.exit(main())

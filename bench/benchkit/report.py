"""Percentiles, the printed table and the JSON file every benchmark leaves in bench/results/."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import subprocess
import sys
import time
import timeit
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent.parent / "results"
# Where results go instead of bench/results/ (a `--results-dir` option wins over it).
RESULTS_ENV = "FLEET_BENCH_RESULTS"


def results_dir(override: Path | None = None) -> Path:
    """The results directory: `override`, else $FLEET_BENCH_RESULTS, else bench/results/."""
    if override is not None:
        return override
    return Path(os.environ[RESULTS_ENV]) if os.environ.get(RESULTS_ENV) else RESULTS


def add_results_dir_option(parser: argparse.ArgumentParser) -> None:
    """`--results-dir DIR`, the same option in every benchmark."""
    parser.add_argument(
        "--results-dir",
        type=Path,
        metavar="DIR",
        help=f"write the JSON result here (default: ${RESULTS_ENV} or bench/results/)",
    )


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(math.ceil(p / 100 * len(ordered)), 1)
    return ordered[rank - 1]


@dataclass(frozen=True)
class Latency:
    """A latency distribution in milliseconds (and the throughput if the wall time is known)."""

    n: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    per_s: float | None = None

    @classmethod
    def of(cls, seconds: Sequence[float], wall_s: float | None = None) -> Latency:
        if not seconds:
            return cls(0, math.nan, math.nan, math.nan, math.nan, math.nan, None)

        def ms(v: float) -> float:
            return round(v * 1000, 2)

        rate = round(len(seconds) / wall_s, 1) if wall_s else None
        return cls(
            n=len(seconds),
            p50_ms=ms(percentile(seconds, 50)),
            p95_ms=ms(percentile(seconds, 95)),
            p99_ms=ms(percentile(seconds, 99)),
            max_ms=ms(max(seconds)),
            mean_ms=ms(sum(seconds) / len(seconds)),
            per_s=rate,
        )

    def cells(self) -> list[str]:
        rate = f"{self.per_s:.1f}" if self.per_s is not None else "-"
        return [str(self.n), *(f"{v:.1f}" for v in self.figures()), rate]

    def figures(self) -> tuple[float, float, float, float]:
        return (self.p50_ms, self.p95_ms, self.p99_ms, self.max_ms)


LATENCY_HEADER = ["n", "p50 ms", "p95 ms", "p99 ms", "max ms", "per s"]


def pace(args: argparse.Namespace) -> str:
    """How the load arrives: `--rate` (open loop) or `--concurrency` (closed loop)."""
    if args.rate is not None:
        return f"arriving at {args.rate:g}/s (open loop)"
    return f"at concurrency {args.concurrency}"


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table, first column left-aligned, the others right-aligned."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        pairs = enumerate(zip(row, widths, strict=True))
        return "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in pairs)

    rule = "-" * len(line(header))
    return "\n".join([title, rule, line(header), rule, *(line(r) for r in rows), rule])


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for text in cpuinfo.read_text().splitlines():
            if text.startswith("model name"):
                model = text.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "commit": _git_commit(),
        # Other work on the machine skews every figure: look at this before comparing runs.
        "load_average": os.getloadavg(),
        "python_speed_ns": python_speed_ns(),
        **wakeup(),
    }


def python_speed_ns() -> float:
    """How fast this machine runs CPython right now: ns per `sum((1, 2, 3))`, the best of five
    (as `python3 -m timeit 'sum((1,2,3))'` prints it). The VMs these benchmarks run on drift
    by 2x between sessions and within one: figures of runs whose speeds differ much do not
    compare (docs/performance.md, "The machine")."""
    loops = 200_000
    best = min(timeit.repeat("sum((1, 2, 3))", repeat=5, number=loops))
    return round(best / loops * 1e9, 1)


# A child that answers every byte it reads with one byte: the other end of `wakeup`'s ping-pong.
_ECHO = "import os\nwhile os.read(0, 1):\n    os.write(1, b'x')\n"
HALT_POLL = Path("/sys/module/haltpoll/parameters/guest_halt_poll_ns")


def wakeup(round_trips: int = 2_000) -> dict[str, Any]:
    """What waking another process costs here right now: a one-byte ping-pong over two pipes
    with a child process, µs of wall time per round trip and µs of this process's CPU per round
    trip. Every hop of a booking (a statement, a publish, a delivery) wakes a process; on a VM
    whose idle vCPUs halt, a wakeup that crosses to the other, idle vCPU costs several times one
    on a busy machine (docs/performance.md, "The machine"). Also the guest's halt-polling window
    (`guest_halt_poll_ns` of cpuidle-haltpoll) where the kernel exposes it: 0 means every idle
    vCPU halts at once. Measured once the benchmark's stack is gone: the idle machine."""
    to_child, out = os.pipe()
    back, from_child = os.pipe()
    child = subprocess.Popen([sys.executable, "-c", _ECHO], stdin=to_child, stdout=from_child)
    os.close(to_child)
    os.close(from_child)
    try:
        os.write(out, b"x")  # the child is up and answering before the clock starts
        os.read(back, 1)
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(round_trips):
            os.write(out, b"x")
            os.read(back, 1)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        os.close(out)  # the child reads end of file and ends
        child.wait(timeout=10)
        os.close(back)
    figures: dict[str, Any] = {
        "wakeup_round_trip_us": round(wall / round_trips * 1e6, 1),
        "wakeup_cpu_us": round(cpu / round_trips * 1e6, 1),
    }
    if HALT_POLL.exists():
        figures["guest_halt_poll_ns"] = int(HALT_POLL.read_text().strip())
    return figures


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def write_json(name: str, data: dict[str, Any], directory: Path | None = None) -> Path:
    """Save `data` (+ the machine) as <results dir>/<name>-<UTC timestamp>.json.

    Every benchmark writes the same keys, which bench/report.py reads: `args` (its options),
    `load_average_before`, `summary` (the figures), `baselines` and `errors`."""
    folder = results_dir(directory)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = folder / f"{name}-{stamp}.json"
    payload = {"benchmark": name, "at": stamp, "machine": machine(), **data}
    path.write_text(json.dumps(payload, indent=2, default=_jsonable) + "\n")
    return path


def _jsonable(value: object) -> object:
    if isinstance(value, Latency):
        return asdict(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")

"""A/B of the booking benchmark: this checkout against another revision, both stacks at once.

On a VM whose speed drifts (±30 % within an hour was seen here), two runs one after the other
compare the machine's moods, not the code. Run at the same time, the two stacks share whatever
the machine does, and each stack's own processes' CPU time per booking compares; the shared
PostgreSQL and RabbitMQ servers cannot be split between them and are left out.

`--against REV` checks REV out in a temporary git worktree, installs its environment there
(`uv sync --locked --all-packages`: the uv of `$UV`, which `uv run` sets, or of PATH) and
removes it afterwards; `--baseline-dir
DIR` uses a checkout that is already installed (its `.venv`, or this interpreter if DIR is this
checkout). Each pair runs `bench/saga.py --no-baseline` of both sides with the same options;
`--pairs N` alternates which side starts first. Options after `--` go to both `saga.py` runs.

    uv run python bench/compare.py --against HEAD~1
    uv run python bench/compare.py --against main --pairs 3 -- --bookings 800 --concurrency 32
    uv run python bench/compare.py --against v1.2 -- --bookings 600 --rate 20   # open loop
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from statistics import mean
from typing import IO, Any

from benchkit.cpu import counted
from benchkit.report import add_results_dir_option, table, write_json

ROOT = Path(__file__).resolve().parent.parent
SIDES = ("A", "B")  # A: the baseline (--against / --baseline-dir), B: this checkout
MIN_OVERLAP = 0.9  # of the longer booking phase, or the pair compares different conditions


@dataclass(frozen=True)
class Side:
    name: str  # A or B
    label: str  # what it is: a revision or a directory
    root: Path
    python: str


@dataclass
class Phase:
    """When a side's bookings began and ended (monotonic seconds, as its output said so)."""

    start: float | None = None
    end: float | None = None


@dataclass
class Run:
    """One side's benchmark in one pair: its summary, read from its JSON result."""

    side: str
    summary: dict[str, Any]
    phase: Phase

    def cpu_ms(self) -> dict[str, float]:
        """CPU ms per booking of the stack's own processes (the shared servers and the load
        generator left out)."""
        bookings = max(int(self.summary["bookings"]), 1)
        cpu: dict[str, float] = self.summary["cpu_s"]
        own = {k: v * 1000 / bookings for k, v in cpu.items() if counted(k)}
        own["services + gateway"] = sum(own.values())
        return own


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    base = p.add_mutually_exclusive_group(required=True)
    base.add_argument("--against", metavar="REV", help="the git revision to compare with")
    base.add_argument("--baseline-dir", type=Path, help="an installed checkout to compare with")
    p.add_argument("--pairs", type=int, default=1, help="pairs to run (default 1)")
    add_results_dir_option(p)
    p.add_argument("saga_args", nargs="*", help="options for bench/saga.py (after --)")
    args = p.parse_args(argv)
    if args.pairs < 1:
        p.error("--pairs must be at least 1")
    forbidden = {"--url", "--results-dir", "--no-baseline"} & set(args.saga_args)
    if forbidden:
        p.error(f"{', '.join(sorted(forbidden))}: set by compare.py itself")
    return args


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


@contextmanager
def baseline(args: argparse.Namespace) -> Iterator[Side]:
    """Side A: an installed directory, or a revision checked out and installed for the run."""
    if args.baseline_dir is not None:
        root = args.baseline_dir.resolve()
        yield Side("A", str(root), root, _python_of(root))
        return
    folder = Path(tempfile.mkdtemp(prefix="fleet-compare-"))
    tree = folder / "tree"
    _git("worktree", "add", "--detach", str(tree), args.against)
    try:
        uv = os.environ.get("UV") or shutil.which("uv")  # `uv run` sets UV to itself
        if uv is None:
            raise SystemExit("uv is not on PATH: it installs the revision's environment")
        log(f"installing {args.against} in {tree}")
        subprocess.run([uv, "sync", "--locked", "--all-packages", "--quiet"], cwd=tree, check=True)
        yield Side("A", args.against, tree, str(tree / ".venv" / "bin" / "python"))
    finally:
        _git("worktree", "remove", "--force", str(tree))
        shutil.rmtree(folder, ignore_errors=True)


def _python_of(root: Path) -> str:
    if root == ROOT:
        return sys.executable
    venv = root / ".venv" / "bin" / "python"
    if not venv.exists():
        raise SystemExit(f"{root} has no .venv: run `uv sync --all-packages` there first")
    return str(venv)


def _git(*args: str) -> None:
    subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True)


def _relay(prefix: str, stream: IO[bytes], phase: Phase) -> None:
    """Print a side's progress lines, prefixed, as they come; note when its bookings run."""
    for raw in stream:
        line = raw.decode(errors="replace").rstrip()
        if line.startswith("[") and "]" in line:  # saga.py's own log lines, not its tables
            print(f"  {prefix} {line}", flush=True)
            if "] booking " in line:
                phase.start = time.monotonic()
            elif "] done: " in line:
                phase.end = time.monotonic()


def overlap(a: Phase, b: Phase) -> float:
    """How much of the longer booking phase the two phases share (0..1; 0 if unknown)."""
    if a.start is None or a.end is None or b.start is None or b.end is None:
        return 0.0
    shared = min(a.end, b.end) - max(a.start, b.start)
    longest = max(a.end - a.start, b.end - b.start)
    return max(shared, 0.0) / longest if longest > 0 else 0.0


def run_pair(sides: tuple[Side, Side], first: str, saga_args: list[str], out: Path) -> list[Run]:
    """Both sides' benchmarks at the same time (`first` started first); their summaries."""
    order = sorted(sides, key=lambda s: s.name != first)
    procs: list[tuple[Side, subprocess.Popen[bytes], threading.Thread, Path, Phase]] = []
    for side in order:
        results = out / side.name
        cmd = [side.python, str(side.root / "bench" / "saga.py"), "--no-baseline"]
        cmd += ["--results-dir", str(results), *saga_args]
        proc = subprocess.Popen(
            cmd, cwd=side.root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        stdout = proc.stdout
        if stdout is None:  # cannot happen with stdout=PIPE; it narrows the type
            raise RuntimeError("no output pipe")
        phase = Phase()
        reader = threading.Thread(target=_relay, args=(side.name, stdout, phase), daemon=True)
        reader.start()
        procs.append((side, proc, reader, results, phase))
        time.sleep(0.3)  # the first really is first
    runs = []
    try:
        for side, proc, reader, results, phase in procs:
            if proc.wait() != 0:
                raise SystemExit(f"side {side.name} ({side.label}) failed with {proc.returncode}")
            reader.join()
            latest = sorted(results.glob("saga-*.json"))[-1]
            runs.append(Run(side.name, json.loads(latest.read_text())["summary"], phase))
    finally:
        # One side failed (or Ctrl-C): SIGTERM makes the other remove its stack, database and
        # vhost (saga.py's exit_on_sigterm) instead of being left running.
        for _, proc, *_rest in procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(60)
    return sorted(runs, key=lambda r: r.side)


def pair_rows(number: int, first: str, runs: list[Run]) -> list[list[str]]:
    a, b = runs
    shared = overlap(a.phase, b.phase)
    rows = [
        [f"pair {number} ({first} first): bookings ran together", "", "", f"{shared:.0%}"],
        ["  confirmed/s", *_cells(a, b, "confirmed_per_s")],
        ["  saga p50 ms", *_cells(a, b, "saga_completed", "p50_ms")],
        ["  saga p95 ms", *_cells(a, b, "saga_completed", "p95_ms")],
        ["  POST /trips → 202 p50 ms", *_cells(a, b, "post_trips_202", "p50_ms")],
    ]
    cpu_a, cpu_b = a.cpu_ms(), b.cpu_ms()
    for name in cpu_a:
        if name in cpu_b:
            rows.append([f"  CPU ms/booking: {name}", *_compare(cpu_a[name], cpu_b[name])])
    return rows


def _cells(a: Run, b: Run, key: str, field: str | None = None) -> list[str]:
    def value(run: Run) -> float:
        v = run.summary[key]
        return float(v[field] if field else v)

    return _compare(value(a), value(b))


def _compare(a: float, b: float) -> list[str]:
    change = f"{(b - a) / a * 100:+.1f} %" if a else "-"
    return [f"{a:.1f}", f"{b:.1f}", change]


def summary_rows(pairs: list[list[Run]]) -> list[list[str]]:
    """The mean change of each CPU figure over the pairs."""
    names = [n for n in pairs[0][0].cpu_ms() if n in pairs[0][1].cpu_ms()]
    rows = []
    for name in names:
        a = mean(p[0].cpu_ms()[name] for p in pairs)
        b = mean(p[1].cpu_ms()[name] for p in pairs)
        rows.append([f"mean CPU ms/booking: {name}", *_compare(a, b)])
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load_before = os.getloadavg()  # other work on the machine skews both sides
    here = Side("B", f"this checkout ({ROOT})", ROOT, sys.executable)
    out = Path(tempfile.mkdtemp(prefix="fleet-compare-results-"))
    pairs: list[list[Run]] = []
    rows: list[list[str]] = []
    try:
        with baseline(args) as there:
            log(f"A = {there.label}, B = {here.label}; {args.pairs} pair(s), at the same time")
            for number in range(1, args.pairs + 1):
                first = SIDES[(number - 1) % 2]
                log(f"pair {number}: both stacks at once, {first} started first")
                runs = run_pair((there, here), first, args.saga_args, out / f"pair{number}")
                pairs.append(runs)
                if overlap(*(r.phase for r in runs)) < MIN_OVERLAP:
                    log(
                        f"warning: pair {number}'s bookings ran together for less than "
                        f"{MIN_OVERLAP:.0%} of the time: not a fair comparison (more bookings?)"
                    )
                rows += pair_rows(number, first, runs)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    if len(pairs) > 1:
        rows += summary_rows(pairs)
    title = f"Booking saga, A = {there.label} vs B = {here.label}, both stacks at once"
    print("\n" + table(title, ["", "A", "B", "B vs A"], rows) + "\n")
    result: dict[str, Any] = {
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "load_average_before": load_before,
        "summary": {"pairs": [[r.summary for r in p] for p in pairs], "rows": rows},
        "baselines": {},
        "errors": [],
    }
    log(f"results written to {write_json('compare', result, args.results_dir)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

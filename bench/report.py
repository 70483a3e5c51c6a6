"""Benchmark report: the JSON results in bench/results/ as markdown, judged against the targets.

Picks the latest result of each benchmark (every result with `--all`, or the files given) and
prints per result when and on what it ran, the command line that produced it (rebuilt from its
recorded options), the load average before it, the headline figures and whether each issue
target (`TARGETS`, as stated in docs/performance.md) is met. Not a benchmark itself: `make bench`
skips it, `make bench-report` runs it.

    uv run python bench/report.py                          # latest result of each benchmark
    uv run python bench/report.py --all --output report.md
    uv run python bench/report.py bench/results/saga-20261126T141756Z.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import re
import shlex
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from benchkit.cpu import counted
from benchkit.report import RESULTS_ENV, results_dir

ROOT = Path(__file__).resolve().parent.parent
NOT_OPTIONS = {"results_dir"}  # recorded options that do not change what is measured
PASSWORD_IN_URL = re.compile(r"(\w+://[^/:@\s]*:)[^/@\s]+@")  # scheme://user:password@


@dataclass(frozen=True)
class Target:
    """One condition of an issue target: a headline figure compared with a bound."""

    benchmark: str
    figure: str  # the name of a headline figure (see FIGURES)
    op: Literal[">=", "<="]
    bound: float
    spec: str = ",.0f"  # how the measured figure is printed

    def describe(self) -> str:
        return f"{self.figure} {'≥' if self.op == '>=' else '≤'} {self.bound:,g}"

    def met(self, value: float | None) -> bool | None:
        if value is None:
            return None
        return value >= self.bound if self.op == ">=" else value <= self.bound


# The issue targets, from docs/performance.md: the only place this report keeps them. A benchmark
# meets its target when every one of its conditions holds.
TARGETS: tuple[Target, ...] = (
    # "p95 ≤ 150 ms from POST /trips to confirmed while sustaining ≥ 100 bookings/s"
    Target("saga", "confirmed/s", ">=", 100, ",.1f"),
    Target("saga", "saga p95 ms", "<=", 150, ",.1f"),
    # The same target as a sweep's answer: the highest rate meeting the latency (all confirmed).
    Target("saga_sweep", "highest rate at p95 ≤ 150 ms", ">=", 100, ",.0f"),
    # "≥ 0.7x the requests/s of a bare FastAPI hello-world under the same uvicorn settings"
    Target("location_read", "ratio location / bare", ">=", 0.7, ".2f"),
    # "1 M position updates per minute = 16.7 k updates/s": accepted, and stored
    Target("telemetry", "accepted/s", ">=", 16_700),
    Target("telemetry", "stored/s", ">=", 16_700),
)


@dataclass(frozen=True)
class Figure:
    name: str
    value: float | None
    spec: str = ",.1f"

    def cell(self) -> str:
        return "—" if self.value is None else format(self.value, self.spec)


@dataclass(frozen=True)
class Result:
    path: Path
    data: dict[str, Any]

    @property
    def benchmark(self) -> str:
        return str(self.data.get("benchmark") or self.path.stem.rsplit("-", 1)[0])

    @property
    def at(self) -> str:
        return str(self.data.get("at") or "")


class ReportError(Exception):
    """A result that cannot be read."""


# -- the figures of each benchmark ------------------------------------------------------------


def number(data: Any, *path: str) -> float | None:
    """The number at `path` in nested dicts (None when missing, not a number, or NaN)."""
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    if isinstance(data, bool) or not isinstance(data, int | float) or math.isnan(data):
        return None
    return float(data)


def summary_of(result: Result) -> dict[str, Any]:
    summary = result.data.get("summary")
    return summary if isinstance(summary, dict) else {}


PERCENTILES = ("p50", "p95", "p99")


def saga_figures(result: Result) -> list[Figure]:
    s = summary_of(result)
    bookings = number(s, "bookings")
    out = [
        Figure("confirmed/s", number(s, "confirmed_per_s")),
        Figure("bookings", bookings, ",.0f"),
        Figure("confirmed", number(s, "confirmed"), ",.0f"),
        Figure("rejected", number(s, "rejected"), ",.0f"),
        Figure("unsettled", number(s, "unsettled"), ",.0f"),
        Figure("shed (503)", number(s, "shed"), ",.0f"),
        *(Figure(f"saga {p} ms", number(s, "saga_completed", f"{p}_ms")) for p in PERCENTILES),
    ]
    if isinstance(lean := result.data.get("lean_probe"), dict):  # `--lean`: the same load
        out += [
            Figure("lean probe at the same load: completed/s", number(lean, "completed_per_s")),
            Figure("lean probe saga p95 ms", number(lean, "saga_completed", "p95_ms")),
        ]
    return out + cpu_figures(s, bookings, "booking", "services + gateway")


def cpu_figures(s: dict[str, Any], units: float | None, unit: str, own: str) -> list[Figure]:
    """CPU ms per unit of work of each measured process, and of `own` (the sum of those not
    shared with the rest of the machine), from the summary's `cpu_s` (CPU seconds)."""
    cpu = s.get("cpu_s")
    if not isinstance(cpu, dict) or not cpu:
        return []
    per = max(units or 0, 1) / 1000  # CPU seconds → ms per unit

    def ms(name: str) -> float | None:
        seconds = number(cpu, name)
        return None if seconds is None else seconds / per

    out = [Figure(f"CPU ms/{unit}: {name}", ms(name)) for name in cpu]
    mine = [v for k, v in cpu.items() if counted(k) and number(cpu, k) is not None]
    return [*out, Figure(f"CPU ms/{unit}: {own}", sum(mine) / per)]


def lean_saga_figures(result: Result) -> list[Figure]:
    """The lean probe (bench/lean_saga.py): a baseline for saga's figures, with no target."""
    s = summary_of(result)
    completed = number(s, "completed")
    return [
        Figure("completed/s", number(s, "completed_per_s")),
        Figure("sagas", number(s, "sagas"), ",.0f"),
        Figure("completed", completed, ",.0f"),
        Figure("unfinished", number(s, "unfinished"), ",.0f"),
        *(Figure(f"saga {p} ms", number(s, "saga_completed", f"{p}_ms")) for p in PERCENTILES),
        *cpu_figures(s, completed, "saga", "the five probe processes"),
    ]


def saga_sweep_figures(result: Result) -> list[Figure]:
    """bench/saga_sweep.py: the highest rate meeting the latency, then each rate's figures."""
    s = summary_of(result)
    out = [Figure("highest rate at p95 ≤ 150 ms", number(s, "highest_rate_meeting_p95"), ",.0f")]
    if number(s, "lean_probe_highest_rate_meeting_p95") is not None:
        probe = number(s, "lean_probe_highest_rate_meeting_p95")
        out.append(Figure("lean probe: highest rate at p95 ≤ 150 ms", probe, ",.0f"))
        ratio = number(s, "platform_to_probe")
        out.append(Figure("platform ÷ lean probe, highest rates", ratio, ".2f"))
    for step in s.get("steps") or []:
        if not isinstance(step, dict) or number(step, "rate") is None:
            continue
        rate, summary = f"{number(step, 'rate'):g}/s", step.get("summary") or {}
        out += [
            Figure(f"at {rate}: confirmed/s", number(summary, "confirmed_per_s")),
            Figure(f"at {rate}: saga p95 ms", number(summary, "saga_completed", "p95_ms")),
            Figure(f"at {rate}: shed (503)", number(summary, "shed"), ",.0f"),
        ]
        if isinstance(lean := step.get("lean_probe"), dict):
            probe_p95 = number(lean, "saga_completed", "p95_ms")
            out.append(Figure(f"at {rate}: lean probe saga p95 ms", probe_p95))
    return out


def location_parts(result: Result) -> tuple[dict[str, Any], dict[str, Any], float | None]:
    """The service's and the bare app's medians and their ratio (older results: from `runs`)."""
    s, base = summary_of(result), result.data.get("baselines") or {}
    if isinstance(s.get("location"), dict):
        return s["location"], base.get("bare") or {}, number(s, "ratio")
    runs = [r for r in result.data.get("runs") or [] if isinstance(r, dict)]

    def medians(target: str) -> dict[str, Any]:
        mine = [r for r in runs if r.get("target") == target]
        keys = ("rps", "p50_ms", "p90_ms", "p99_ms", "cpu_us_per_request")
        return {k: statistics.median(r[k] for r in mine) for k in keys} if mine else {}

    return medians("location"), medians("bare"), number(result.data, "ratio")


def location_figures(result: Result) -> list[Figure]:
    loc, bare, ratio = location_parts(result)
    return [
        Figure("location req/s", number(loc, "rps"), ",.0f"),
        Figure("bare FastAPI req/s", number(bare, "rps"), ",.0f"),
        Figure("ratio location / bare", ratio, ".2f"),
        Figure("location p50 ms", number(loc, "p50_ms"), ",.2f"),
        Figure("location p99 ms", number(loc, "p99_ms"), ",.2f"),
        Figure("CPU µs/req: location", number(loc, "cpu_us_per_request"), ",.0f"),
        Figure("CPU µs/req: bare", number(bare, "cpu_us_per_request"), ",.0f"),
    ]


def telemetry_figures(result: Result) -> list[Figure]:
    s = summary_of(result) or result.data  # older results kept the figures at the top level
    return [
        Figure("accepted/s", number(s, "accepted_per_s"), ",.0f"),
        Figure("stored/s", number(s, "stored_per_s"), ",.0f"),
        Figure("accepted", number(s, "accepted"), ",.0f"),
        Figure("rows in PostgreSQL", number(s, "rows_in_postgres"), ",.0f"),
        Figure("refused", number(s, "refused"), ",.0f"),
        Figure("drain s", number(s, "drain_s")),
    ]


def other_figures(result: Result) -> list[Figure]:
    """A benchmark this report does not know: the numbers at the top of its summary."""
    s = summary_of(result)
    return [Figure(k, number(s, k)) for k in s if number(s, k) is not None]


FIGURES: dict[str, Callable[[Result], list[Figure]]] = {
    "saga": saga_figures,
    "lean_saga": lean_saga_figures,
    "saga_sweep": saga_sweep_figures,
    "location_read": location_figures,
    "telemetry": telemetry_figures,
}


# -- reading and choosing results -------------------------------------------------------------


def read(path: Path) -> Result:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ReportError(f"{path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ReportError(f"{path}: not a benchmark result (a JSON object)")
    return Result(path, data)


def scan(folder: Path) -> list[Result]:
    """Every readable result in `folder`; unreadable files are reported and skipped."""
    out = []
    for path in sorted(folder.glob("*.json")):
        try:
            out.append(read(path))
        except ReportError as exc:
            print(f"skipped {exc}", file=sys.stderr)
    return out


def choose(results: Sequence[Result], every: bool) -> list[Result]:
    """Known benchmarks in TARGETS order, then the others; each one's latest result, or all
    of them oldest first."""
    order = list(dict.fromkeys(t.benchmark for t in TARGETS))
    by_name: dict[str, list[Result]] = {}
    for r in sorted(results, key=lambda r: (r.at, r.path.name)):
        by_name.setdefault(r.benchmark, []).append(r)
    names = sorted(by_name, key=lambda n: (order.index(n) if n in order else len(order), n))
    return [r for n in names for r in (by_name[n] if every else by_name[n][-1:])]


# -- rendering --------------------------------------------------------------------------------


def when(result: Result) -> str:
    try:
        stamp = dt.datetime.strptime(result.at, "%Y%m%dT%H%M%SZ")
    except ValueError:
        return result.at or "unknown time"
    return stamp.strftime("%Y-%m-%d %H:%M:%S UTC")


def command(result: Result) -> str:
    """The command line that produced the result, rebuilt from its recorded options."""
    parts = ["uv", "run", "python", f"bench/{result.benchmark}.py"]
    args = result.data.get("args")
    for key, value in (args if isinstance(args, dict) else {}).items():
        if key in NOT_OPTIONS or value is None or value is False or value == []:
            continue
        flag = "--" + key.replace("_", "-")
        for item in value if isinstance(value, list) else [value]:
            if item is True:
                parts.append(flag)
            elif isinstance(item, float):
                parts += [flag, str(int(item)) if item.is_integer() else repr(item)]
            else:
                parts += [flag, PASSWORD_IN_URL.sub(r"\1***@", str(item))]
    return shlex.join(parts)


def loads(value: Any) -> str:
    if isinstance(value, list) and value and all(isinstance(v, int | float) for v in value):
        return " / ".join(f"{v:.2f}" for v in value)
    return "not recorded"


def machine(result: Result) -> str:
    m = result.data.get("machine")
    if not isinstance(m, dict):
        return "not recorded"
    model = f" ({m['cpu_model']})" if m.get("cpu_model") else ""
    parts = [f"{m.get('cpus', '?')} CPUs{model}", f"Python {m.get('python', '?')}"]
    parts += [str(m[k]) for k in ("platform",) if m.get(k)]
    if m.get("commit"):
        parts.append(f"commit `{m['commit']}`")
    if m.get("python_speed_ns"):
        parts.append(f"`sum((1,2,3))` in {m['python_speed_ns']} ns when written")
    if m.get("wakeup_round_trip_us"):
        parts.append(
            f"a pipe round trip to another process in {m['wakeup_round_trip_us']} µs "
            f"({m.get('wakeup_cpu_us', '?')} µs of CPU)"
        )
    return ", ".join(parts)


def errors(result: Result) -> str:
    found = result.data.get("errors")
    if not isinstance(found, list):
        return "not recorded"
    if not found:
        return "none"
    first = " ".join(str(found[0]).split())[:200].replace("`", "'")
    return f"{len(found)} (first: `{first}`)"


def judged(result: Result, figures: Sequence[Figure]) -> list[tuple[Target, Figure, bool | None]]:
    values = {f.name: f for f in figures}
    out = []
    for target in (t for t in TARGETS if t.benchmark == result.benchmark):
        figure = values.get(target.figure, Figure(target.figure, None))
        out.append((target, figure, target.met(figure.value)))
    return out


def verdict(checks: Sequence[tuple[Target, Figure, bool | None]]) -> str:
    if not checks:
        return "no target"
    if any(met is False for _, _, met in checks):
        return "not met"
    return "met" if all(met for _, _, met in checks) else "unknown (figure missing)"


def yes_no(met: bool | None) -> str:
    return {True: "yes", False: "no", None: "unknown"}[met]


def shown(path: Path) -> str:
    resolved = path.resolve()
    return str(resolved.relative_to(ROOT)) if resolved.is_relative_to(ROOT) else str(path)


def section(result: Result) -> str:
    figures = FIGURES.get(result.benchmark, other_figures)(result)
    checks = judged(result, figures)
    recorded = result.data.get("machine")
    after = recorded.get("load_average") if isinstance(recorded, dict) else None
    lines = [
        f"## {result.benchmark} — {when(result)}",
        "",
        f"- command: `{command(result)}`",
        f"- machine: {machine(result)}",
        f"- load average before (1 / 5 / 15 min): {loads(result.data.get('load_average_before'))}"
        f"; when written: {loads(after)}",
        f"- errors: {errors(result)}",
        f"- result: `{shown(result.path)}`",
        "",
        "| figure | value |",
        "|---|---:|",
        *(f"| {f.name} | {f.cell()} |" for f in figures),
        "",
    ]
    if checks:
        lines += [
            "| target (docs/performance.md) | measured | met |",
            "|---|---:|---|",
            *(
                f"| {t.describe()} | {format(f.value, t.spec) if f.value is not None else '—'} "
                f"| {yes_no(met)} |"
                for t, f, met in checks
            ),
            "",
            f"Target {verdict(checks)}.",
        ]
    else:
        lines.append("No target for this benchmark in bench/report.py.")
    return "\n".join(lines)


def overview(results: Sequence[Result]) -> str:
    lines = [
        "| benchmark | run at | load before | target | measured | met |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        checks = judged(r, FIGURES.get(r.benchmark, other_figures)(r))
        target = "; ".join(t.describe() for t, _, _ in checks) or "—"
        measured = "; ".join(f"{f.name} {f.cell()}" for _, f, _ in checks) or "—"
        load = loads(r.data.get("load_average_before"))
        lines.append(
            f"| {r.benchmark} | {when(r)} | {load} | {target} | {measured} | {verdict(checks)} |"
        )
    return "\n".join(lines)


def render(results: Sequence[Result], source: str) -> str:
    generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    head = [
        "# Benchmark report",
        "",
        f"Generated {generated} from {source}. Figures of a shared machine move with its load:"
        " compare runs with similar load averages (docs/performance.md).",
        "",
        overview(results),
    ]
    return "\n\n".join(["\n".join(head), *(section(r) for r in results)]) + "\n"


# -- the command ------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("files", nargs="*", type=Path, help="result files (default: the directory's)")
    p.add_argument("--all", action="store_true", help="every result, not each benchmark's latest")
    p.add_argument(
        "--results-dir",
        type=Path,
        metavar="DIR",
        help=f"where the results are (default: ${RESULTS_ENV} or bench/results/)",
    )
    p.add_argument("--output", type=Path, metavar="FILE", help="write the report here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    folder = results_dir(args.results_dir)
    try:
        found = [read(path) for path in args.files] if args.files else scan(folder)
    except ReportError as exc:
        print(f"cannot read {exc}", file=sys.stderr)
        return 2
    if not found:
        print(
            f"no benchmark results in {shown(folder)}/: run a benchmark first "
            "(`make bench`, or `uv run python bench/saga.py` and the others)",
            file=sys.stderr,
        )
        return 1
    chosen = choose(found, every=args.all or bool(args.files))
    if args.files:
        source = "the given files"
    elif args.all:
        source = f"all {len(found)} results in {shown(folder)}/"
    else:
        source = f"the latest result of each benchmark in {shown(folder)}/ ({len(found)} there)"
    report = render(chosen, source)
    if args.output:
        args.output.write_text(report)
        print(f"report written to {args.output}")
    else:
        print(report, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())

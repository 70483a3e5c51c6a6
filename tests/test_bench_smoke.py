"""Smoke runs of the benchmarks in bench/: nothing else runs them, so without these an API change
would break them unnoticed.

Each script runs as `make bench` runs it (`python bench/<name>.py`, its own stack on a fresh
database and vhost) with the smallest arguments that still go through its whole path, writing
its JSON result to a temporary directory; then bench/report.py renders that result. They all
run at the same time: most of their time is the start-up of their service processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

import pytest

from fleet.platform.distributed import with_bytecode_cache

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
SCRIPT_TIMEOUT_S = 240
RESULT_KEYS = {"benchmark", "at", "machine", "args", "load_average_before", "summary"}
RESULT_KEYS |= {"baselines", "errors"}
# The smallest run of each benchmark that still takes every step of it.
SMOKE_ARGS = {
    "saga": ["--bookings", "6", "--concurrency", "2", "--probe-requests", "5", "--lean"],
    "lean_saga": ["--sagas", "6", "--concurrency", "2"],
    "saga_sweep": [
        *("--rates", "2,4", "--seconds", "1.5", "--pause", "0.5", "--riders", "2", "--lean"),
        *("--post-to", "trip"),  # the other entry than the saga run's (the gateway)
    ],
    "location_read": [
        *("--driver", "httpx"),  # the fallback without wrk, chosen whether wrk is there or not
        *("--vehicles", "2", "--rounds", "1", "--seconds", "0.5", "--warmup", "0.2"),
        *("--connections", "4"),
    ],
    "telemetry": [
        *("--mode", "both", "--seconds", "1", "--vehicles", "4"),
        *("--http-workers", "1", "--batch", "5", "--publishers", "1", "--per-message", "2"),
    ],
}
Test = TypeVar("Test", bound=Callable[..., None])


def needs_servers(test: Test) -> Test:
    """The marks of the distributed tests (the report's own tests need no server)."""
    marks = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.rabbitmq, pytest.mark.redis]
    for mark in [*marks, pytest.mark.timeout(SCRIPT_TIMEOUT_S + 60)]:
        test = mark(test)
    return test


def env(pycache: Path | None = None) -> dict[str, str]:
    """The scripts' environment. Where bytecode may not be written next to the sources
    (PYTHONDONTWRITEBYTECODE), each of the ~15 interpreters the runs start would compile every
    module again (~4 s of CPU each, most of the runs' time): `pycache` gives them a shared
    bytecode cache in the test's temporary directory instead."""
    return with_bytecode_cache({**os.environ, "PYTHONUTF8": "1", "PYTHONUNBUFFERED": "1"}, pycache)


@dataclass
class BenchRun:
    """One benchmark script running in the background, its output going to a file."""

    name: str
    proc: subprocess.Popen[bytes]
    log: IO[bytes]
    results: Path

    @classmethod
    def start(cls, name: str, folder: Path, pycache: Path) -> BenchRun:
        results = folder / "results"
        log = (folder / "output.log").open("wb")
        cmd = [sys.executable, str(BENCH / f"{name}.py"), *SMOKE_ARGS[name]]
        cmd += ["--results-dir", str(results)]
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env(pycache), stdout=log, stderr=subprocess.STDOUT
        )
        return cls(name, proc, log, results)

    def finish(self) -> tuple[int, str]:
        """Its exit code and output, once it has ended."""
        code = self.proc.wait(SCRIPT_TIMEOUT_S)
        self.log.close()
        return code, Path(self.log.name).read_text(errors="replace")

    def stop(self) -> None:
        """End it if still running: on SIGTERM it removes its stack, database and vhost."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def pycache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pycache")


@pytest.fixture(scope="module")
def bench_runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, pycache: Path
) -> Iterator[dict[str, BenchRun]]:
    """The benchmarks whose smoke test was selected, all started at once."""
    users = [
        i.name for i in request.session.items if "bench_runs" in getattr(i, "fixturenames", ())
    ]
    selected = [name for name in SMOKE_ARGS if any(u.startswith(f"test_{name}_") for u in users)]
    runs: dict[str, BenchRun] = {}
    try:
        for name in selected:
            runs[name] = BenchRun.start(name, tmp_path_factory.mktemp(name), pycache)
        yield runs
    finally:
        for run in runs.values():
            run.stop()


def result_of(run: BenchRun) -> dict[str, Any]:
    """The run's JSON result, after checking that it succeeded and wrote the usual keys."""
    code, output = run.finish()
    assert code == 0, f"bench/{run.name}.py exited with {code}:\n{output[-4000:]}"
    files = sorted(run.results.glob(f"{run.name}-*.json"))
    assert len(files) == 1, f"expected one result in {run.results}, got {files}\n{output[-2000:]}"
    data: dict[str, Any] = json.loads(files[0].read_text())
    assert data.keys() >= RESULT_KEYS, f"missing keys: {RESULT_KEYS - data.keys()}"
    assert data["benchmark"] == run.name
    assert data["errors"] == []
    assert len(data["load_average_before"]) == 3
    return data


def report(*args: str | Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, str(BENCH / "report.py"), *map(str, args)]
    return subprocess.run(
        cmd, cwd=ROOT, env=env(), capture_output=True, text=True, encoding="utf-8", timeout=60
    )


def assert_reported(run: BenchRun, *, judged: bool = True) -> str:
    """bench/report.py renders the result, with every target's figure found in it (`judged`;
    a baseline without a target is said to have none). Its markdown."""
    out = report("--results-dir", run.results)
    assert out.returncode == 0, out.stderr
    assert f"## {run.name} — " in out.stdout
    assert f"`uv run python bench/{run.name}.py " in out.stdout  # the command line, rebuilt
    if judged:
        assert "| target (docs/performance.md) |" in out.stdout
        assert "Target met." in out.stdout or "Target not met." in out.stdout, out.stdout
    else:
        assert "No target for this benchmark in bench/report.py." in out.stdout, out.stdout
    return out.stdout


@needs_servers
def test_saga_bench_confirms_every_booking_on_its_own_stack_and_its_result_renders(
    bench_runs: dict[str, BenchRun],
) -> None:
    data = result_of(bench_runs["saga"])
    s = data["summary"]
    assert (s["bookings"], s["confirmed"], s["unsettled"], s["errors"]) == (6, 6, 0, 0)
    assert s["confirmed_per_s"] > 0
    assert s["saga_completed"]["n"] == 6
    assert s["saga_completed"]["p95_ms"] > 0
    assert s["steps"]
    assert s["hops"]
    assert sum(v for k, v in s["cpu_s"].items() if "shared" not in k) > 0
    assert "load generator (this benchmark)" in s["cpu_s"]  # shown beside the platform's
    assert data["baselines"]["hello-world FastAPI /health"]["1 at a time"]["per_s"] > 0
    assert s["shed"] == 0
    lean = data["lean_probe"]  # --lean: the probe at the same load, after the platform
    assert (lean["sagas"], lean["completed"], lean["unfinished"]) == (6, 6, 0)
    assert lean["saga_completed"]["p95_ms"] > 0
    assert "The platform against the lean probe" in bench_runs["saga"].finish()[1]
    rendered = assert_reported(bench_runs["saga"])
    assert "| lean probe at the same load: completed/s |" in rendered
    # The machine's speed when the figures were taken, to tell which runs compare.
    assert data["machine"]["python_speed_ns"] > 0
    assert "`sum((1,2,3))` in " in rendered
    # … and what waking another process cost then (the VM's idle vCPUs make it vary by 5x).
    assert data["machine"]["wakeup_round_trip_us"] > 0
    assert data["machine"]["wakeup_cpu_us"] > 0
    assert "a pipe round trip to another process in " in rendered


@needs_servers
def test_lean_saga_bench_completes_every_saga_through_five_processes_and_its_result_renders(
    bench_runs: dict[str, BenchRun],
) -> None:
    data = result_of(bench_runs["lean_saga"])
    assert data["args"]["concurrency"] == 2
    assert "role" not in data["args"]  # the children's hidden options are not recorded
    s = data["summary"]
    assert (s["sagas"], s["completed"], s["unfinished"], s["errors"]) == (6, 6, 0, 0)
    assert s["unpublished"] == 0  # every outbox row was published and marked
    assert s["completed_per_s"] > 0
    assert s["saga_completed"]["n"] == 6
    assert s["saga_completed"]["p95_ms"] > 0
    assert {"orchestrator", "user", "vehicle", "trip", "billing"} <= s["cpu_s"].keys()
    assert sum(v for k, v in s["cpu_s"].items() if "shared" not in k) > 0
    markdown = assert_reported(bench_runs["lean_saga"], judged=False)
    assert "| saga p95 ms |" in markdown
    assert "| CPU ms/saga: the five probe processes |" in markdown


@needs_servers
def test_saga_sweep_bench_offers_each_rate_on_one_stack_and_its_answer_renders(
    bench_runs: dict[str, BenchRun],
) -> None:
    data = result_of(bench_runs["saga_sweep"])
    s = data["summary"]
    assert s["rates"] == [2, 4]
    assert [step["rate"] for step in s["steps"]] == [2, 4]
    for step, bookings in zip(s["steps"], (3, 6), strict=True):
        done = step["summary"]
        assert (done["bookings"], done["confirmed"], done["unsettled"]) == (bookings, bookings, 0)
        assert done["saga_completed"]["p95_ms"] > 0
        assert sum(v for k, v in done["cpu_s"].items() if "shared" not in k) > 0
        lean = step["lean_probe"]  # --lean: the probe at each rate, after the platform
        assert (lean["sagas"], lean["completed"]) == (bookings, bookings)
    assert s["highest_rate_meeting_p95"] in (0, 2, 4)
    assert s["lean_probe_highest_rate_meeting_p95"] in (0, 2, 4)
    if s["lean_probe_highest_rate_meeting_p95"]:  # the platform's rate against the probe's
        ratio = s["highest_rate_meeting_p95"] / s["lean_probe_highest_rate_meeting_p95"]
        assert s["platform_to_probe"] == round(ratio, 2)
    output = bench_runs["saga_sweep"].finish()[1]
    assert "Booking sweep: open loop, one stack, rate by rate (POST /trips to the trip)" in output
    assert "the target (100/s) is not met." in output
    markdown = assert_reported(bench_runs["saga_sweep"])
    assert "| at 4/s: saga p95 ms |" in markdown
    if s["lean_probe_highest_rate_meeting_p95"]:
        assert "of the probe's rate" in output
        assert "| platform ÷ lean probe, highest rates |" in markdown
    assert "--rates 2,4 " in markdown  # the command line, rebuilt as given
    assert "--post-to trip" in markdown


@pytest.fixture
def saga_script(monkeypatch: pytest.MonkeyPatch) -> Any:
    """bench/saga.py as a module (as the scripts import each other: bench/ on the path)."""
    monkeypatch.syspath_prepend(str(BENCH))
    import saga  # only importable with bench/ on the path

    return saga


def test_timed_bookings_go_through_the_gateway_unless_posted_to_the_trip_service(
    saga_script: Any,
) -> None:
    from benchkit.stack import Target  # bench/ is on the path now

    target = Target("http://gateway:8000", "http://trip:8003")
    assert saga_script.booking_url(saga_script.parse_args([]), target) == target.gateway
    to_trip = saga_script.parse_args(["--post-to", "trip"])
    assert saga_script.booking_url(to_trip, target) == target.trip
    with pytest.raises(ValueError, match="trip service's URL"):
        saga_script.booking_url(to_trip, Target("http://gateway:8000"))


def test_posting_to_the_trip_service_of_a_running_platform_needs_its_url(
    saga_script: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as refused:
        saga_script.parse_args(["--url", "http://gateway:8000", "--post-to", "trip"])
    assert refused.value.code == 2
    assert "--post-to trip with --url needs --trip-url" in capsys.readouterr().err
    args = saga_script.parse_args(
        ["--url", "http://gateway:8000", "--trip-url", "http://trip:8003", "--post-to", "trip"]
    )
    assert args.post_to == "trip"


@needs_servers
def test_location_read_bench_measures_the_service_against_bare_fastapi_and_its_result_renders(
    bench_runs: dict[str, BenchRun],
) -> None:
    data = result_of(bench_runs["location_read"])
    assert data["args"]["driver"] == "httpx"
    location, bare = data["summary"]["location"], data["baselines"]["bare"]
    for run in (location, bare):
        assert run["rps"] > 0
        assert run["requests"] > 0
        assert run["failed"] == 0
        assert run["cpu_us_per_request"] > 0
    assert data["summary"]["ratio"] > 0
    assert data["summary"]["cache"]  # the location cache was read through
    assert_reported(bench_runs["location_read"])


@needs_servers
def test_telemetry_bench_stores_what_http_and_amqp_delivered_and_its_result_renders(
    bench_runs: dict[str, BenchRun],
) -> None:
    data = result_of(bench_runs["telemetry"])
    s = data["summary"]
    assert s["accepted_http"] > 0
    assert s["accepted_amqp"] > 0
    assert s["rows_in_postgres"] == s["accepted"]
    assert s["errors"] == 0
    assert s["accepted_per_s"] > 0
    assert s["stored_per_s"] > 0
    assert_reported(bench_runs["telemetry"])


def test_location_read_bench_refuses_the_wrk_driver_clearly_when_wrk_is_missing(
    tmp_path: Path, pycache: Path
) -> None:
    cmd = [sys.executable, str(BENCH / "location_read.py"), "--driver", "wrk"]
    no_wrk = {**env(pycache), "PATH": str(tmp_path)}
    out = subprocess.run(cmd, cwd=ROOT, env=no_wrk, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "wrk is not installed" in out.stderr
    assert "--driver httpx" in out.stderr


def test_report_without_results_says_so_and_fails(tmp_path: Path) -> None:
    out = report("--results-dir", tmp_path / "empty")
    assert out.returncode == 1
    assert "no benchmark results in" in out.stderr
    assert "run a benchmark first" in out.stderr


def location_result(at: str, location_rps: float, bare_rps: float) -> dict[str, Any]:
    """A location_read result as bench/location_read.py writes it (figures made up)."""
    run = {"requests": 1000, "failed": 0, "p50_ms": 1.0, "p90_ms": 2.0, "p99_ms": 3.0}
    return {
        "benchmark": "location_read",
        "at": at,
        "machine": {"cpus": 2, "cpu_model": "Test CPU", "python": "3.11.7", "commit": "abc1234"},
        "args": {"seconds": 10.0, "rounds": 2, "driver": "wrk", "results_dir": "/elsewhere"},
        "load_average_before": [0.5, 0.25, 0.125],
        "summary": {
            "location": {"target": "location", "rps": location_rps, **run},
            "ratio": round(location_rps / bare_rps, 3),
            "cache": {},
        },
        "baselines": {"bare": {"target": "bare", "rps": bare_rps, **run}},
        "errors": [],
    }


def test_report_judges_the_latest_result_of_each_benchmark_against_its_target(
    tmp_path: Path,
) -> None:
    results = tmp_path / "results"
    results.mkdir()
    older, newer = "20261120T100000Z", "20261126T100000Z"
    for at, rps in ((older, 4000.0), (newer, 2000.0)):  # 0.8x then 0.4x the bare app's 5000/s
        (results / f"location_read-{at}.json").write_text(
            json.dumps(location_result(at, rps, 5000))
        )

    latest = report("--results-dir", results)
    assert latest.returncode == 0, latest.stderr
    assert "## location_read — 2026-11-26 10:00:00 UTC" in latest.stdout
    assert "2026-11-20" not in latest.stdout
    assert "| ratio location / bare ≥ 0.7 | 0.40 | no |" in latest.stdout
    assert "Target not met." in latest.stdout
    command = "`uv run python bench/location_read.py --seconds 10 --rounds 2 --driver wrk`"
    assert command in latest.stdout
    assert "0.50 / 0.25 / 0.12" in latest.stdout

    written = tmp_path / "report.md"
    every = report("--results-dir", results, "--all", "--output", written)
    assert every.returncode == 0, every.stderr
    text = written.read_text()
    assert text.index("2026-11-20 10:00:00") < text.index("2026-11-26 10:00:00")
    assert "| ratio location / bare ≥ 0.7 | 0.80 | yes |" in text
    assert "Target met." in text
    assert "Target not met." in text

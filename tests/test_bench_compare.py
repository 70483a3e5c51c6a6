"""bench/compare.py: the booking benchmark of two checkouts run at the same time, compared.

The smoke run compares this checkout with its own HEAD checked out in a temporary worktree
(`--against HEAD`): the whole path, worktree and `uv sync` included (uv is found through `$UV`,
which `uv run` — hence `make test` — sets).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMPARE = ROOT / "bench" / "compare.py"


def compare(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONUTF8": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, str(COMPARE), *map(str, args)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
    )


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.rabbitmq
@pytest.mark.redis
@pytest.mark.timeout(360)
def test_both_sides_run_at_once_and_each_process_cpu_is_printed_side_by_side(
    tmp_path: Path,
) -> None:
    worktrees_before = _worktrees()
    out = compare(
        *("--against", "HEAD", "--results-dir", tmp_path),
        *("--", "--bookings", "6", "--concurrency", "2"),
    )

    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "  A [" in out.stdout, "side A's progress is shown"
    assert "  B [" in out.stdout, "side B's progress is shown"
    table = out.stdout[out.stdout.index("Booking saga, A = ") :]
    rows = ("bookings ran together", "confirmed/s", "saga p95 ms", "CPU ms/booking: trip")
    for row in (*rows, "services + gateway"):
        assert row in table
    assert "B vs A" in table
    (result,) = tmp_path.glob("compare-*.json")
    data = json.loads(result.read_text())
    (pair,) = data["summary"]["pairs"]
    assert [side["confirmed"] for side in pair] == [6, 6]
    assert all(side["cpu_s"]["trip"] > 0 for side in pair)
    # the benchmark's own process is measured (in clock ticks: a 6-booking run may show 0), but
    # is not the platform's CPU
    assert all("load generator (this benchmark)" in side["cpu_s"] for side in pair)
    assert "load generator" not in table
    assert _worktrees() == worktrees_before, "the temporary worktree is removed"


def _worktrees() -> str:
    listed = subprocess.run(
        ["git", "worktree", "list", "--porcelain"], cwd=ROOT, capture_output=True, text=True
    )
    return listed.stdout


def test_options_the_comparison_sets_itself_are_refused() -> None:
    out = compare("--baseline-dir", ROOT, "--", "--url", "http://127.0.0.1:8000", timeout=60)
    assert out.returncode == 2
    assert "--url: set by compare.py itself" in out.stderr


def test_a_baseline_is_required() -> None:
    out = compare("--", "--bookings", "6", timeout=60)
    assert out.returncode == 2
    assert "--against" in out.stderr


def test_a_side_that_fails_stops_the_comparison_with_its_exit_code() -> None:
    out = compare("--baseline-dir", ROOT, "--", "--bookings", "0", timeout=120)
    assert out.returncode != 0
    assert "failed with 2" in out.stdout + out.stderr

"""CPU time the processes under test used: a figure other work on the machine barely skews.

Latencies on a shared 2-core machine move with whatever else runs; CPU seconds per booking do
not, and they bound the throughput: N cores can do at most N / (CPU s per booking) bookings/s.
"""

from __future__ import annotations

import os
from pathlib import Path

from benchkit.report import table

TICK = os.sysconf("SC_CLK_TCK")
# Shared servers: every process with this command name counts (other users' load included).
SERVERS = {"postgres": "postgres", "rabbitmq": "beam.smp"}
# The benchmark's own process: it shares the machine with what it measures (shown, not counted).
LOAD_GENERATOR = "load generator (this benchmark)"


def counted(name: str) -> bool:
    """Whether a measured process is one of the platform's own: not a shared server, not the
    load generator."""
    return "shared" not in name and name != LOAD_GENERATOR


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process so far (0 if it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def pids_named(command: str) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == command:
                    out.append(int(entry.name))
            except OSError:
                continue
    return out


class CpuMeter:
    """CPU seconds used between `start()` and `stop()` by named processes and shared servers
    (and, with `itself`, by this process as `LOAD_GENERATOR`)."""

    def __init__(self, pids: dict[str, int], *, itself: bool = False) -> None:
        self.pids = dict(pids)
        if itself:
            self.pids[LOAD_GENERATOR] = os.getpid()
        self._before: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        now = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        for name, command in SERVERS.items():
            now[f"{name} (all, shared)"] = sum(cpu_seconds(p) for p in pids_named(command))
        return now

    def start(self) -> None:
        self._before = self._now()

    def stop(self) -> dict[str, float]:
        after = self._now()
        return {k: round(after[k] - self._before.get(k, 0.0), 2) for k in after}


def own_seconds(cpu: dict[str, float]) -> float:
    """The CPU seconds of the platform's own processes (shared servers and load generator aside)."""
    return sum(v for k, v in cpu.items() if counted(k))


def cpu_table(cpu: dict[str, float], units: int, unit: str, own: str = "services + gateway") -> str:
    """CPU seconds by process and per unit of work; the sum over our own processes (the shared
    servers and the load generator aside) bounds the throughput: cores / (CPU s per unit)."""
    total = own_seconds(cpu)
    rows = [[name, f"{sec:.2f}", f"{sec / units * 1000:.1f}"] for name, sec in cpu.items()]
    rows.append([own, f"{total:.2f}", f"{total / units * 1000:.1f}"])
    return table("CPU used during the run", ["process", "CPU s", f"CPU ms/{unit}"], rows)

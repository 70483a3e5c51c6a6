"""The platform a benchmark drives: its own `DistributedStack` (the default) or a running one."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fleet.common.testing import create_database, create_vhost, delete_vhost, drop_database
from fleet.common.testing import free_ports as free_ports  # re-exported for the benchmarks
from fleet.platform.distributed import DistributedStack
from fleet.platform.services import SERVICE_NAMES

DEFAULT_REDIS = "redis://127.0.0.1:6379/0"


@dataclass(frozen=True)
class Target:
    """Where to send requests: the gateway, a service directly, and the broker (if known)."""

    gateway: str
    trip: str | None = None
    amqp_url: str | None = None
    database_url: str | None = None  # only for a stack the benchmark owns (hop breakdown)
    logs: Path | None = None
    pids: dict[str, int] = field(default_factory=dict)  # service → process id, if local
    vehicle: str | None = None  # the vehicle service directly (its /metrics, telemetry)


def exit_on_sigterm() -> None:
    """Make `kill` (SIGTERM) end a benchmark as Ctrl-C does: its `finally` blocks stop the
    services and remove the database and vhost. (Without it they would be left behind; and
    Ctrl-C cannot be relied on: a process started in the background may ignore SIGINT.)"""

    def leave(signum: int, _frame: object) -> None:
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, leave)


@contextmanager
def fresh_database_and_vhost(prefix: str) -> Iterator[tuple[str, str]]:
    """A new PostgreSQL database and RabbitMQ vhost (their URLs), removed afterwards."""
    database = create_database(prefix=prefix)
    try:
        amqp = create_vhost(prefix=prefix)
        try:
            yield database, amqp
        finally:
            delete_vhost(amqp)
    finally:
        drop_database(database)


@contextmanager
def own_stack(log_level: str = "INFO", keep_logs: bool = False) -> Iterator[Target]:
    """Four services + gateway on a fresh database and RabbitMQ vhost, removed afterwards."""
    with fresh_database_and_vhost("fleet_bench") as (database, amqp):
        data_dir = Path(tempfile.mkdtemp(prefix="fleet-bench-"))
        ports = free_ports(len(SERVICE_NAMES) + 1)
        stack = DistributedStack(
            database_url=database,
            amqp_url=amqp,
            redis_url=os.environ.get("REDIS_URL", DEFAULT_REDIS),
            data_dir=data_dir,
            ports=dict(zip(SERVICE_NAMES, ports, strict=False)),
            gateway_port=ports[-1],
            extra_env={"FLEET_LOG_LEVEL": log_level},
        )
        try:
            try:
                stack.start()
            except (RuntimeError, TimeoutError):
                _print_logs(data_dir / "logs")
                raise
            pids = {name: proc.pid for name, proc in stack.processes.items()}
            yield Target(
                stack.gateway_url,
                stack.url("trip"),
                amqp,
                database,
                data_dir / "logs",
                pids,
                vehicle=stack.url("vehicle"),
            )
        finally:
            stack.stop()
            if keep_logs:
                print(f"service logs kept in {data_dir / 'logs'}")
            else:
                shutil.rmtree(data_dir, ignore_errors=True)


def _print_logs(logs: Path, lines: int = 15) -> None:
    for log in sorted(logs.glob("*.log")):
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        print(f"--- {log.name} (last {len(tail)} lines)", *tail, sep="\n")

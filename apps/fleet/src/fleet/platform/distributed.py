"""Distributed mode on one machine: one process per service (+ a gateway), real servers.

Used by `fleet run --distributed`, the cross-process tests and the benchmarks. Each service gets
`DATABASE_URL` (its own schema in that database), `AMQP_URL` and `REDIS_URL`; the user service
holds the private signing key, the others only the public one.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from fleet.common.auth import generate_keypair
from fleet.platform.services import SERVICE_NAMES, migrate_all

PORTS = {"user": 8001, "vehicle": 8002, "trip": 8003, "billing": 8004}


def with_bytecode_cache(env: dict[str, str], folder: Path | None) -> dict[str, str]:
    """`env` for a child interpreter: where PYTHONDONTWRITEBYTECODE forbids bytecode next to
    the sources, a cache in `folder` instead (PYTHONPYCACHEPREFIX), so that children sharing the
    folder compile the platform once, not each again (seconds of CPU per process)."""
    if folder is None or not env.get("PYTHONDONTWRITEBYTECODE"):
        return env
    out = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
    out["PYTHONPYCACHEPREFIX"] = str(folder)
    return out


@dataclass
class DistributedStack:
    """Four service processes and a gateway; `start()`, `stop()`, `kill()`/`restart()` one."""

    database_url: str
    amqp_url: str
    data_dir: Path
    redis_url: str | None = None
    host: str = "127.0.0.1"
    ports: dict[str, int] = field(default_factory=lambda: dict(PORTS))
    gateway_port: int | None = 8000
    extra_env: dict[str, str] = field(default_factory=dict)
    # The processes' bytecode cache where none may be written next to the sources (see
    # `with_bytecode_cache`); share one folder between stacks to compile once.
    pycache: Path | None = None
    # Breaker state in a Redis shared with other stacks (parallel test runs) must stay apart.
    redis_prefix: str = field(default_factory=lambda: f"fleet-{uuid.uuid4().hex[:8]}")
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _logs: list[IO[bytes]] = field(default_factory=list)

    def url(self, service: str) -> str:
        port = self.gateway_port if service == "gateway" else self.ports[service]
        return f"http://{self.host}:{port}"

    @property
    def gateway_url(self) -> str:
        return self.url("gateway")

    def _env(self, service: str | None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLEET_JWT_")}
        env = with_bytecode_cache(env, self.pycache)
        env.update(
            DATABASE_URL=self.database_url,
            AMQP_URL=self.amqp_url,
            FLEET_DATA_DIR=str(self.data_dir),
            FLEET_JWT_PUBLIC_KEY_FILE=str(self.data_dir / "jwt.pub"),
        )
        if self.redis_url:
            env["REDIS_URL"] = self.redis_url
            env["FLEET_REDIS_PREFIX"] = self.redis_prefix
        # Synchronous reads between services (fleet.common.http) go straight to each service.
        env.update({f"FLEET_{name.upper()}_URL": self.url(name) for name in self.ports})
        if service == "user":
            env["FLEET_JWT_PRIVATE_KEY_FILE"] = str(self.data_dir / "jwt.pem")
        env.update(self.extra_env)
        return env

    def _keys(self) -> None:
        private, public = self.data_dir / "jwt.pem", self.data_dir / "jwt.pub"
        if private.exists() and public.exists():
            return
        pair = generate_keypair()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        private.touch(mode=0o600)
        private.write_text(pair.private_pem or "")
        public.write_text(pair.public_pem)

    def migrate(self) -> None:
        """Every service's schema to its head — in this process, what `fleet migrate` does
        (a process of its own would first spend seconds importing the platform)."""
        asyncio.run(migrate_all(self.database_url))

    def _spawn(self, name: str, args: list[str]) -> None:
        log_dir = self.data_dir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        log = (log_dir / f"{name}.log").open("ab")
        self._logs.append(log)
        self.processes[name] = subprocess.Popen(  # noqa: S603 - our own CLI
            [sys.executable, "-m", "fleet.platform", *args],
            env=self._env(name),
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def start_service(self, name: str, timeout: float = 60) -> None:
        self._spawn(name, ["serve", name, "--host", self.host, "--port", str(self.ports[name])])
        self.wait_ready(name, timeout)

    def start(self, timeout: float = 60) -> None:
        self._keys()
        self.migrate()
        for name in SERVICE_NAMES:
            self._spawn(name, ["serve", name, "--host", self.host, "--port", str(self.ports[name])])
        for name in SERVICE_NAMES:
            self.wait_ready(name, timeout)
        if self.gateway_port is not None:
            upstreams = [f"{n}={self.url(n)}" for n in SERVICE_NAMES]
            args = ["gateway", "--host", self.host, "--port", str(self.gateway_port)]
            self._spawn("gateway", args + [a for u in upstreams for a in ("--upstream", u)])
            self.wait_ready("gateway", timeout, path="/health")

    def wait_ready(self, name: str, timeout: float = 60, path: str = "/ready") -> None:
        deadline = time.monotonic() + timeout
        proc = self.processes[name]
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}; see {self.log(name)}")
            try:
                if httpx.get(self.url(name) + path, timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{name} not ready after {timeout}s; see {self.log(name)}")

    def log(self, name: str) -> Path:
        return self.data_dir / "logs" / f"{name}.log"

    def kill(self, name: str) -> None:
        """SIGKILL: the process dies mid-work, as in a crash."""
        proc = self.processes.pop(name)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def stop(self) -> None:
        for proc in self.processes.values():
            proc.terminate()
        for name, proc in self.processes.items():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
                print(f"{name} did not stop in time; killed", file=sys.stderr)
        self.processes.clear()
        for log in self._logs:
            log.close()
        self._logs.clear()

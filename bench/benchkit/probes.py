"""HTTP baselines: how long a bare request takes, to put the benchmarked figures in proportion."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from benchkit.report import Latency
from benchkit.stack import free_ports

# The same server settings as `fleet serve` (fleet.platform.cli._serve): uvicorn with its
# defaults (uvloop and httptools when installed), no access log, no logging config.
HELLO_APP = """
import sys

import uvicorn
from fastapi import FastAPI

app = FastAPI()


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_config=None, access_log=False)
"""


@contextmanager
def hello_app(timeout: float = 30.0) -> Iterator[str]:
    """A bare FastAPI hello-world app served by uvicorn in its own process; its base URL."""
    port = free_ports(1)[0]
    proc = subprocess.Popen(
        [sys.executable, "-c", HELLO_APP, str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"hello-world app did not start (exit {proc.poll()})")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


async def probe(
    url: str, requests: int, concurrency: int, headers: dict[str, str] | None = None
) -> Latency:
    """`requests` GETs of `url` from `concurrency` workers, after a warm-up that opens (and
    keeps) their connections."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=10, limits=limits, headers=headers) as http:
        for _ in range(5):
            await asyncio.gather(*(http.get(url) for _ in range(concurrency)))
        samples: list[float] = []
        remaining = iter(range(requests))

        async def worker() -> None:
            for _ in remaining:
                start = time.perf_counter()
                (await http.get(url)).raise_for_status()
                samples.append(time.perf_counter() - start)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return Latency.of(samples, wall_s=time.perf_counter() - start)

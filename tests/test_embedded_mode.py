"""`make run` as a newcomer meets it: one process, SQLite files, the README's walkthrough."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from fleet.common.testing import free_ports

pytestmark = pytest.mark.slow


@contextmanager
def embedded_platform(data_dir: Path) -> Iterator[tuple[str, list[str]]]:
    """Start `fleet run` like `make run` does; yield its base URL and (later) its output lines."""
    port = free_ports(1)[0]
    env = {
        k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "AMQP_URL", "REDIS_URL")
    }
    env["FLEET_DATA_DIR"] = str(data_dir)
    proc = subprocess.Popen(
        [sys.executable, "-m", "fleet.platform", "run", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    output: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"fleet run exited early:\n{proc.stdout.read() if proc.stdout else ''}")
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            pytest.fail("fleet run did not answer /health within 60 s")
        yield base, output
    finally:
        proc.terminate()
        try:
            out, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        output.extend(out.splitlines())


def test_readme_walkthrough_works_and_data_survives_a_restart(tmp_path: Path) -> None:
    with embedded_platform(tmp_path) as (base, output), httpx.Client(base_url=base) as http:
        assert http.get("/docs").status_code == 200
        assert http.get("/ready").json()["status"] == "ready"
        r = http.post(
            "/auth/register",
            json={"email": "ada@example.com", "password": "s3cret-pass", "name": "Ada"},
        )
        assert r.status_code == 201, r.text
        token = http.post(
            "/auth/token", data={"username": "ada@example.com", "password": "s3cret-pass"}
        ).json()["access_token"]
        rider = {"Authorization": f"Bearer {token}"}
        r = http.post("/wallet/top-up", json={"amount_cents": 5000}, headers=rider)
        assert r.json()["available_cents"] == 5000
        assert http.get("/vehicles", headers=rider).json() == {"items": [], "next_cursor": None}

        admin = http.post(
            "/auth/token", data={"username": "admin@fleet.example", "password": "admin-password"}
        ).json()["access_token"]
        op = {"Authorization": f"Bearer {admin}"}
        r = http.post(
            "/vehicles",
            json={
                "vin": "5YJ3E1EA7KF317000",
                "model": "Model 3",
                "seats": 4,
                "lat": 37.5665,
                "lon": 126.978,
            },
            headers=op,
        )
        assert r.status_code == 201, r.text

        # a booking runs the whole saga on the in-memory bus, over the SQLite files
        r = http.post(
            "/trips",
            json={
                "pickup": {"lat": 37.5665, "lon": 126.978},
                "dropoff": {"lat": 37.58, "lon": 126.98},
            },
            headers=rider,
        )
        assert r.status_code == 202, r.text
        trip_id = r.json()["id"]
        deadline = time.monotonic() + 20
        while (trip := http.get(f"/trips/{trip_id}", headers=rider).json())["status"] == "pending":
            assert time.monotonic() < deadline, trip
            time.sleep(0.05)
        assert trip["status"] == "confirmed", trip
        assert http.get("/wallet", headers=rider).json()["held_cents"] == trip["quoted_fare_cents"]
    assert any("admin@fleet.example" in line for line in output)
    assert any("/docs" in line for line in output)
    assert sorted(p.name for p in tmp_path.glob("*.db")) == [
        "billing.db",
        "trip.db",
        "user.db",
        "vehicle.db",
    ]

    with embedded_platform(tmp_path) as (base, _), httpx.Client(base_url=base) as http:
        # the same token still verifies (the dev key pair is kept) and the data is there
        assert http.get("/wallet", headers=rider).json()["balance_cents"] == 5000
        assert http.get(f"/trips/{trip_id}", headers=rider).json()["status"] == "confirmed"
        vehicles = http.get("/vehicles", headers=rider).json()["items"]
        assert [v["vin"] for v in vehicles] == ["5YJ3E1EA7KF317000"]

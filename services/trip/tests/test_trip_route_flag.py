"""The `route_estimator_v2` flag switches POST /routes to the road-aware estimator per user."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.common.app import create_app
from fleet.common.config import Settings
from fleet.common.testing import RiderFactory, app_client, truncate_schemas
from fleet.platform.services import all_modules

BODY = {"pickup": {"lat": 37.5665, "lon": 126.978}, "dropoff": {"lat": 37.4979, "lon": 127.0276}}


async def test_the_flag_switches_the_estimator_only_for_riders_it_covers(
    make_rider: RiderFactory,
    client: object,
    pg_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ada, bob = await make_rider(), await make_rider()
    monkeypatch.setenv("FLEET_FLAGS", f'{{"route_estimator_v2": {{"allow": ["{ada.id}"]}}}}')
    await truncate_schemas(pg_url, ["trip"])
    settings = Settings(env="test", data_dir=tmp_path, database_url=pg_url, log_level="WARNING")
    async with app_client(create_app(all_modules(), settings, access_log=False)) as http:
        on = (await http.post("/routes", json=BODY, headers=ada.headers)).json()
        off = (await http.post("/routes", json=BODY, headers=bob.headers)).json()
    assert on["estimator"] == "road-aware"
    assert off["estimator"] == "straight-line"
    assert on["distance_km"] == pytest.approx(off["distance_km"] * 1.3, abs=0.002)
    assert on["duration_min"] > off["duration_min"] * 1.3

"""The service defaults every app gets: problem+json errors, body limit, metrics, request ids."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter
from pydantic import BaseModel, Field

from fleet.common.app import create_app
from fleet.common.auth import OperatorPrincipal
from fleet.common.config import Settings
from fleet.common.errors import ConflictError
from fleet.common.testing import app_client, demo_module

router = APIRouter()


class Thing(BaseModel):
    name: str = Field(max_length=10)
    count: int = Field(ge=0)


@router.post("/things", status_code=201)
async def create_thing(thing: Thing) -> Thing:
    return thing


@router.get("/conflict")
async def conflict() -> None:
    raise ConflictError("already there")


@router.get("/boom")
async def boom() -> None:
    raise RuntimeError("secret internals")


@router.get("/ops-only")
async def ops_only(_op: OperatorPrincipal) -> dict[str, str]:
    return {"ok": "yes"}


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    module = demo_module(router, migrations=tmp_path)
    settings = Settings(env="test", data_dir=tmp_path, max_body_bytes=2048, log_level="WARNING")
    async with app_client(create_app([module], settings, access_log=False)) as c:
        yield c


def _is_problem(r: httpx.Response, status: int) -> dict[str, object]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = r.json()
    assert body["status"] == status
    assert {"type", "title"} <= body.keys()
    return body


async def test_validation_errors_name_the_field(client: httpx.AsyncClient) -> None:
    body = _is_problem(await client.post("/things", json={"name": "x", "count": -1}), 422)
    assert body["errors"] == [{"loc": ["body", "count"], "msg": body["errors"][0]["msg"]}]  # type: ignore[index]
    assert "count" in str(body["detail"])


async def test_malformed_json_is_a_422_problem(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/things", content=b'{"name": "x", "count": ', headers={"content-type": "application/json"}
    )
    _is_problem(r, 422)


async def test_oversized_bodies_are_refused_before_parsing(client: httpx.AsyncClient) -> None:
    r = await client.post("/things", content=b"x" * 4096, headers={"x-request-id": "req-413"})
    body = _is_problem(r, 413)
    assert "2048" in str(body["detail"])
    # answered before the app, yet like the app's problems: the path and the request id
    assert body["instance"] == "/things"
    assert r.headers["x-request-id"] == "req-413"


async def test_oversized_streamed_bodies_are_413_too(client: httpx.AsyncClient) -> None:
    # Without a Content-Length the limit trips while FastAPI reads the body: it was a 400.
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b"x" * 1024

    r = await client.post("/things", content=chunks(), headers={"content-type": "application/json"})
    body = _is_problem(r, 413)
    assert "2048" in str(body["detail"])


async def test_unreadable_bodies_are_400_problems(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/things", content=b"\xff\xfe{", headers={"content-type": "application/json"}
    )
    assert _is_problem(r, 400)["detail"]


async def test_domain_errors_keep_their_status(client: httpx.AsyncClient) -> None:
    body = _is_problem(await client.get("/conflict"), 409)
    assert body["detail"] == "already there"


async def test_unexpected_errors_hide_internals(client: httpx.AsyncClient) -> None:
    r = await client.get("/boom")
    body = _is_problem(r, 500)
    assert "secret" not in r.text
    assert "Traceback" not in r.text
    assert body["title"] == "Internal Server Error"


async def test_unknown_routes_are_404_problems(client: httpx.AsyncClient) -> None:
    _is_problem(await client.get("/nowhere"), 404)


async def test_missing_and_bad_tokens_are_401_problems(client: httpx.AsyncClient) -> None:
    r = await client.get("/ops-only")
    _is_problem(r, 401)
    assert r.headers["www-authenticate"] == "Bearer"
    _is_problem(await client.get("/ops-only", headers={"Authorization": "Bearer nope"}), 401)


async def test_request_id_is_echoed_or_made(client: httpx.AsyncClient) -> None:
    r = await client.get("/health", headers={"X-Request-ID": "abc123"})
    assert r.headers["x-request-id"] == "abc123"
    assert len((await client.get("/health")).headers["x-request-id"]) == 32


async def test_metrics_count_requests_by_route_template(client: httpx.AsyncClient) -> None:
    await client.post("/things", json={"name": "a", "count": 1})
    await client.get("/conflict")
    text = (await client.get("/metrics")).text
    assert 'http_requests_total{method="POST",route="/things",status="201"} 1.0' in text
    assert 'http_requests_total{method="GET",route="/conflict",status="409"} 1.0' in text
    assert 'http_request_duration_seconds_bucket{le="0.15",method="POST",route="/things"}' in text


async def test_ready_is_503_when_a_dependency_is_down(tmp_path: Path) -> None:
    module = demo_module(migrations=tmp_path)
    settings = Settings(
        env="test",
        data_dir=tmp_path,
        database_url="postgresql+asyncpg://postgres@127.0.0.1:1/nothing",
        log_level="WARNING",
    )
    async with app_client(create_app([module], settings, access_log=False)) as c:
        r = await c.get("/ready")
        assert r.status_code == 503
        assert r.json()["checks"]["demo.db"].startswith("down")
        assert (await c.get("/health")).status_code == 200


async def test_a_server_process_freezes_its_startup_heap(tmp_path: Path) -> None:
    import gc

    module = demo_module(router, migrations=tmp_path)
    settings = Settings(env="test", data_dir=tmp_path, log_level="WARNING", gc_freeze=True)
    assert gc.get_freeze_count() == 0
    try:
        async with app_client(create_app([module], settings)) as c:
            assert (await c.get("/health")).status_code == 200
            assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()

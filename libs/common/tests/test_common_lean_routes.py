"""Lean routes (fleet.common.lean) answer exactly what the equivalent typed route answers: same
auth problems, same 422 for a bad path parameter, same JSON, same OpenAPI, same metrics."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request, Response
from opentelemetry.trace import SpanKind
from pydantic import BaseModel

from fleet.common import tracing
from fleet.common.app import create_app
from fleet.common.auth import CurrentPrincipal
from fleet.common.config import Settings
from fleet.common.lean import bearer, json_response, lean_get, path_uuid
from fleet.common.testing import app_client, demo_module

WHEN = dt.datetime(2026, 11, 26, 12, 30, 5, 123456, tzinfo=dt.UTC)


class SpotOut(BaseModel):
    spot_id: uuid.UUID
    lat: float
    seen_at: dt.datetime | None


router = APIRouter()


@router.get("/typed/{spot_id}", response_model=SpotOut)
async def typed(spot_id: uuid.UUID, _who: CurrentPrincipal) -> SpotOut:
    return SpotOut(spot_id=spot_id, lat=52.5, seen_at=WHEN)


@lean_get(router, "/lean/{spot_id}", params={"spot_id": "uuid"}, response_model=SpotOut)
async def lean(request: Request) -> Response:
    bearer(request)
    spot_id = path_uuid(request, "spot_id")
    return json_response({"spot_id": str(spot_id), "lat": 52.5, "seen_at": WHEN})


@lean_get(router, "/lean-ops/{spot_id}", params={"spot_id": "uuid"})
async def lean_ops(request: Request) -> Response:
    bearer(request, "operator")
    return json_response({"spot_id": str(path_uuid(request, "spot_id"))})


@pytest.fixture
def app(tmp_path: Path) -> FastAPI:
    module = demo_module(router, migrations=tmp_path)
    settings = Settings(env="test", data_dir=tmp_path, log_level="WARNING")
    return create_app([module], settings, access_log=False)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(app) as c:
        yield c


def _token(app: FastAPI, role: Any) -> dict[str, str]:
    token = app.state.fleet.issuer.issue(uuid.uuid4(), role, "someone@example.com")
    return {"Authorization": f"Bearer {token}"}


async def test_lean_and_typed_routes_return_the_same_json(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    spot = str(uuid.uuid4())
    headers = _token(app, "rider")
    typed_r = await client.get(f"/typed/{spot}", headers=headers)
    lean_r = await client.get(f"/lean/{spot}", headers=headers)
    assert lean_r.status_code == typed_r.status_code == 200
    assert lean_r.headers["content-type"] == typed_r.headers["content-type"]
    assert lean_r.json() == typed_r.json()
    assert lean_r.json()["seen_at"] == "2026-11-26T12:30:05.123456Z"


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer not-a-jwt"}, {"Authorization": "Basic dXNlcjpwYXNz"}],
)
async def test_lean_routes_refuse_missing_or_bad_tokens_like_typed_ones(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    spot = uuid.uuid4()
    typed_r = await client.get(f"/typed/{spot}", headers=headers)
    lean_r = await client.get(f"/lean/{spot}", headers=headers)
    assert lean_r.status_code == typed_r.status_code == 401
    assert lean_r.headers["www-authenticate"] == "Bearer"
    assert lean_r.headers["content-type"] == "application/problem+json"
    assert lean_r.json()["detail"] == typed_r.json()["detail"]


async def test_lean_routes_check_the_role(app: FastAPI, client: httpx.AsyncClient) -> None:
    spot = uuid.uuid4()
    assert (await client.get(f"/lean-ops/{spot}", headers=_token(app, "rider"))).status_code == 403
    assert (await client.get(f"/lean-ops/{spot}", headers=_token(app, "operator"))).is_success


async def test_a_bad_path_parameter_is_the_same_422_problem(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    headers = _token(app, "rider")
    typed_r = await client.get("/typed/nope", headers=headers)
    lean_r = await client.get("/lean/nope", headers=headers)
    assert lean_r.status_code == typed_r.status_code == 422
    assert lean_r.headers["content-type"] == "application/problem+json"
    lean_body, typed_body = lean_r.json(), typed_r.json()
    assert lean_body["errors"] == typed_body["errors"]
    assert lean_body["detail"] == typed_body["detail"] == "invalid request: spot_id"


async def test_lean_routes_are_documented_like_typed_ones(app: FastAPI) -> None:
    paths = app.openapi()["paths"]
    typed_op, lean_op = paths["/typed/{spot_id}"]["get"], paths["/lean/{spot_id}"]["get"]
    assert lean_op["security"] == typed_op["security"]
    [typed_param], [lean_param] = typed_op["parameters"], lean_op["parameters"]
    assert (lean_param["name"], lean_param["in"], lean_param["required"]) == (
        "spot_id",
        "path",
        True,
    )
    assert lean_param["schema"]["format"] == typed_param["schema"]["format"] == "uuid"
    lean_ok = lean_op["responses"]["200"]["content"]["application/json"]["schema"]
    assert lean_ok == typed_op["responses"]["200"]["content"]["application/json"]["schema"]


async def test_lean_routes_are_counted_by_route_template(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await client.get(f"/lean/{uuid.uuid4()}", headers=_token(app, "rider"))
    await client.get(f"/lean/{uuid.uuid4()}")
    text = (await client.get("/metrics")).text
    assert 'http_requests_total{method="GET",route="/lean/{spot_id}",status="200"} 1.0' in text
    assert 'http_requests_total{method="GET",route="/lean/{spot_id}",status="401"} 1.0' in text


@lean_get(router, "/lean-boom/{spot_id}", params={"spot_id": "uuid"})
async def lean_boom(request: Request) -> Response:
    raise RuntimeError("secret internals")


async def test_unexpected_errors_in_lean_routes_hide_internals(client: httpx.AsyncClient) -> None:
    r = await client.get(f"/lean-boom/{uuid.uuid4()}")
    assert r.status_code == 500
    assert r.headers["content-type"] == "application/problem+json"
    assert "secret" not in r.text


async def test_other_methods_on_a_lean_path_are_405_problems(client: httpx.AsyncClient) -> None:
    r = await client.post(f"/lean/{uuid.uuid4()}")
    assert r.status_code == 405
    assert r.headers["content-type"] == "application/problem+json"


async def test_lean_routes_are_traced_like_typed_ones(tmp_path: Path) -> None:
    with tracing.capture_spans() as spans:
        module = demo_module(router, migrations=tmp_path)
        traced_app = create_app([module], Settings(env="test", data_dir=tmp_path), access_log=False)
        caller_trace = "0af7651916cd43dd8448eb211c80319c"
        async with app_client(traced_app) as c:
            headers = {
                **_token(traced_app, "rider"),
                "traceparent": f"00-{caller_trace}-b7ad6b7169203331-01",
            }
            spot = uuid.uuid4()
            assert (await c.get(f"/lean/{spot}", headers=headers)).status_code == 200
            assert (await c.get(f"/typed/{spot}", headers=headers)).status_code == 200
    servers = {s.name: s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER}
    lean_span, typed_span = servers["GET /lean/{spot_id}"], servers["GET /typed/{spot_id}"]
    assert f"{lean_span.context.trace_id:032x}" == caller_trace
    assert lean_span.attributes is not None
    assert typed_span.attributes is not None
    typed_route = typed_span.attributes["http.route"]
    assert isinstance(typed_route, str)
    assert lean_span.attributes["http.route"] == typed_route.replace("typed", "lean")
    assert lean_span.attributes["http.response.status_code"] == 200

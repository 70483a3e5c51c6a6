"""The OpenAPI document states every problem an operation answers, as problem+json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter
from pydantic import BaseModel

from fleet.common.app import create_app
from fleet.common.auth import CurrentPrincipal, OperatorPrincipal
from fleet.common.config import Settings
from fleet.common.testing import demo_module

router = APIRouter()
PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}


class Thing(BaseModel):
    name: str


@router.post("/things", status_code=201, responses={409: {"description": "Taken"}})
async def create_thing(thing: Thing, _op: OperatorPrincipal) -> Thing:
    return thing


@router.get("/things/{name}", responses={404: {"description": "No such thing"}})
async def get_thing(name: str, _who: CurrentPrincipal) -> Thing:
    return Thing(name=name)


@router.get("/open")
async def open_to_all() -> dict[str, str]:
    return {}


@pytest.fixture
def document(tmp_path: Path) -> dict[str, Any]:
    module = demo_module(router, migrations=tmp_path)
    app = create_app([module], Settings(env="test", data_dir=tmp_path), access_log=False)
    schema: dict[str, Any] = app.openapi()
    return schema


def _responses(document: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    responses: dict[str, Any] = document["paths"][path][method]["responses"]
    return responses


def test_the_problem_schemas_are_components(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert schemas["Problem"]["required"] == ["type", "title", "status", "detail"]
    assert {"$ref": "#/components/schemas/Problem"} in schemas["ValidationProblem"]["allOf"]


def test_a_secured_operation_documents_401_with_its_challenge(document: dict[str, Any]) -> None:
    unauthorized = _responses(document, "get", "/things/{name}")["401"]
    assert unauthorized["content"] == PROBLEM
    assert unauthorized["headers"]["WWW-Authenticate"]["required"] is True
    assert "401" not in _responses(document, "get", "/open")


def test_a_role_bound_operation_documents_403(document: dict[str, Any]) -> None:
    assert _responses(document, "post", "/things")["403"] == {
        "description": "The caller is not an operator",
        "content": PROBLEM,
    }
    assert "403" not in _responses(document, "get", "/things/{name}")


def test_an_operation_with_a_body_documents_400_and_413(document: dict[str, Any]) -> None:
    responses = _responses(document, "post", "/things")
    assert responses["400"]["content"] == responses["413"]["content"] == PROBLEM
    assert "413" not in _responses(document, "get", "/things/{name}")


def test_declared_problems_get_the_problem_schema(document: dict[str, Any]) -> None:
    assert _responses(document, "post", "/things")["409"] == {
        "description": "Taken",
        "content": PROBLEM,
    }
    assert _responses(document, "get", "/things/{name}")["404"]["content"] == PROBLEM


def test_validation_errors_are_documented_as_validation_problems(
    document: dict[str, Any],
) -> None:
    invalid = _responses(document, "post", "/things")["422"]
    assert invalid["content"] == {
        "application/problem+json": {"schema": {"$ref": "#/components/schemas/ValidationProblem"}}
    }


def test_responses_are_listed_by_status(document: dict[str, Any]) -> None:
    assert list(_responses(document, "post", "/things")) == [
        "201",
        "400",
        "401",
        "403",
        "409",
        "413",
        "422",
    ]


def test_ready_documents_its_503_as_the_same_json(document: dict[str, Any]) -> None:
    unavailable = _responses(document, "get", "/ready")["503"]
    assert unavailable["content"] == {
        "application/json": {"schema": {"$ref": "#/components/schemas/ReadyOut"}}
    }

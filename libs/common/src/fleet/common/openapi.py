"""The failure half of the OpenAPI document: every problem an operation can answer.

FastAPI documents what a route returns when it succeeds. Its failures come from elsewhere: the
bearer dependencies (401, and 403 when a role is required), reading the request (400, 413, 422)
and the use cases (404, 409, 503: declared on the route, `responses={404: {"description": …}}`).
`document_problems(app)` makes `app.openapi()` state all of them, each as
`application/problem+json` with the `Problem` schema, so that clients and the API fuzz suite
(tests/fuzz) can hold every operation to its document.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from fleet.common.auth import BearerPrincipal
from fleet.common.errors import PROBLEM_MEDIA_TYPE

# What FastAPI takes as a route's `responses=`.
Responses = dict[int | str, dict[str, Any]]

PROBLEM_REF = "#/components/schemas/Problem"
VALIDATION_PROBLEM_REF = "#/components/schemas/ValidationProblem"

PROBLEM_SCHEMAS: dict[str, Any] = {
    "ProblemError": {
        "title": "ProblemError",
        "type": "object",
        "description": 'One invalid input: where it is (`loc`, e.g. `["body", "email"]`) and why.',
        "required": ["loc", "msg"],
        "properties": {
            "loc": {
                "type": "array",
                "minItems": 1,
                "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            },
            "msg": {"type": "string", "minLength": 1},
        },
    },
    "Problem": {
        "title": "Problem",
        "type": "object",
        "description": "An error, as RFC 9457 problem details.",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string", "minLength": 1, "description": "URI of the problem type"},
            "title": {"type": "string", "minLength": 1},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": {"type": "string", "minLength": 1, "description": "what is wrong"},
            "instance": {"type": "string", "description": "the request's path"},
            "errors": {"type": "array", "items": {"$ref": "#/components/schemas/ProblemError"}},
        },
    },
    "ValidationProblem": {
        "title": "ValidationProblem",
        "description": "A request that breaks the operation's schema or rules: `errors` names each "
        "invalid input.",
        "allOf": [
            {"$ref": PROBLEM_REF},
            {
                "type": "object",
                "required": ["errors"],
                "properties": {"status": {"const": 422}, "errors": {"minItems": 1}},
            },
        ],
    },
}

UNAUTHORIZED = {
    "description": "Missing, invalid or expired credentials",
    "headers": {
        "WWW-Authenticate": {
            "description": "`Bearer`",
            "required": True,
            "schema": {"type": "string"},
        }
    },
}
BODY_PROBLEMS = {
    "400": "The body cannot be read (e.g. it is not UTF-8)",
    "413": "The body is larger than the service accepts",
}


def document_problems(app: FastAPI, routers: Iterable[APIRouter]) -> None:
    """Make `app.openapi()` document the problem answers of every operation (see module doc).

    `routers` are those `app` includes, without a prefix (as `create_app` does)."""
    routes = [r for router in routers for r in router.routes if isinstance(r, APIRoute)]
    build = app.openapi
    completed: list[dict[str, Any]] = []

    def openapi() -> dict[str, Any]:
        schema = build()  # cached by FastAPI: completed once, then served as is
        if not completed or completed[0] is not schema:
            complete(schema, routes)
            completed[:] = [schema]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented extension point


def complete(schema: dict[str, Any], routes: Iterable[APIRoute]) -> None:
    """Add the problem schemas and answers to `schema`, the OpenAPI document of `routes`."""
    schema.setdefault("components", {}).setdefault("schemas", {}).update(PROBLEM_SCHEMAS)
    roles = {
        (route.path_format, method.lower()): role
        for route in routes
        for method in route.methods or ()
        if (role := _required_role(route.dependant))
    }
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            _complete_operation(operation, roles.get((path, method)))


def _complete_operation(operation: dict[str, Any], role: str | None) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    if "requestBody" in operation:
        for status, description in BODY_PROBLEMS.items():
            responses.setdefault(status, {"description": description})
    if operation.get("security"):
        responses.setdefault("401", dict(UNAUTHORIZED))
    if role:
        responses.setdefault("403", {"description": f"The caller is not {_article(role)}"})
    for status, response in responses.items():
        if status[0] in "45" and not response.get("content"):
            ref = VALIDATION_PROBLEM_REF if status == "422" else PROBLEM_REF
            response["content"] = {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": ref}}}
    operation["responses"] = dict(sorted(responses.items()))


def _required_role(dependant: Dependant) -> str | None:
    for dep in _walk(dependant):
        if isinstance(dep.call, BearerPrincipal) and dep.call.role:
            return dep.call.role
    return None


def _walk(dependant: Dependant) -> Iterator[Dependant]:
    for dep in dependant.dependencies:
        yield dep
        yield from _walk(dep)


def _article(role: str) -> str:
    return f"an {role}" if role[0] in "aeiou" else f"a {role}"

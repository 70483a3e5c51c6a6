"""Lean routes: what FastAPI does per request, done by hand for a platform's hottest reads.

A FastAPI route with a typed path parameter, a security dependency and a response model costs
~3 times a bare route: the dependency solver, parameter validation and response-model
serialisation run on every call (see docs/performance.md, "Location read"). For the few reads
that dominate traffic, a route can take only the `Request` and use these helpers instead; it
still runs inside every middleware (request id, RED metrics, access log, tracing, problem
handlers) and answers exactly what the typed route would — same 401/403/422 problems, same JSON.

    @lean_get(router, "/{vehicle_id}/location", params={"vehicle_id": "uuid"},
              response_model=LocationOut)
    async def get_location(request: Request) -> Response:
        bearer(request)
        vehicle_id = path_uuid(request, "vehicle_id")
        ...
        return json_response({...})

Use it only where a profile says so: typed routes are the default everywhere else.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, Literal

import orjson
from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic import TypeAdapter, ValidationError

from fleet.common.auth import Principal, Role, principal_from, require_operator, require_rider

PathFormat = Literal["uuid", "string"]
LeanEndpoint = Callable[[Request], Coroutine[Any, Any, Response]]
_UUID = TypeAdapter(uuid.UUID)

# The scheme name `BearerPrincipal` registers in OpenAPI (fleet.common.auth).
BEARER_SCHEME = "OAuth2PasswordBearer"


def bearer(request: Request, role: Role | None = None) -> Principal:
    """The verified caller (401 without a valid bearer token; 403 if `role` does not match)."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    principal = principal_from(request, token.strip() if scheme.lower() == "bearer" else None)
    if role == "operator":
        return require_operator(principal)
    if role == "rider":
        return require_rider(principal)
    return principal


def path_uuid(request: Request, name: str) -> uuid.UUID:
    """Path parameter `name` as a UUID, or the same 422 problem FastAPI's validation gives."""
    raw = request.path_params[name]
    try:
        return uuid.UUID(raw)
    except ValueError:
        pass
    try:  # the slow path only for bad input: pydantic's own wording of the error
        return _UUID.validate_python(raw)
    except ValidationError as exc:
        errors = [{**e, "loc": ("path", name, *e["loc"])} for e in exc.errors()]
        raise RequestValidationError(errors) from None


def json_response(data: Mapping[str, Any], status_code: int = 200) -> Response:
    """`data` as JSON, encoded as pydantic would (UTC datetimes with `Z`, UUIDs as strings)."""
    body = orjson.dumps(data, option=orjson.OPT_UTC_Z)
    return Response(body, status_code=status_code, media_type="application/json")


def documented(*, path: Mapping[str, PathFormat], secured: bool = True) -> dict[str, Any]:
    """`openapi_extra` for a lean route: its path parameters and its bearer security, as the
    typed route would have declared them."""
    parameters = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string", "format": fmt} if fmt == "uuid" else {"type": "string"},
        }
        for name, fmt in path.items()
    ]
    extra: dict[str, Any] = {"parameters": parameters}
    if secured:
        extra["security"] = [{BEARER_SCHEME: []}]
    return extra


class LeanRoute(APIRoute):
    """An `APIRoute` whose endpoint takes the `Request` and returns a `Response` itself: FastAPI
    still documents it (summary, response model, `openapi_extra`), but no longer solves
    dependencies or serialises a response model on each call."""

    def get_route_handler(self) -> LeanEndpoint:
        endpoint: LeanEndpoint = self.endpoint
        return endpoint


def lean_get(
    router: APIRouter,
    path: str,
    *,
    params: Mapping[str, PathFormat],
    secured: bool = True,
    **kwargs: Any,
) -> Callable[[LeanEndpoint], LeanEndpoint]:
    """Register `async def endpoint(request) -> Response` as a documented lean GET route."""

    def register(endpoint: LeanEndpoint) -> LeanEndpoint:
        router.add_api_route(
            path,
            endpoint,
            methods=["GET"],
            route_class_override=LeanRoute,
            openapi_extra=documented(path=params, secured=secured),
            **kwargs,
        )
        return endpoint

    return register

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

`LeanDispatch` (installed by `create_app`, inside the request-context middleware) serves the
services' lean routes before FastAPI's router and its per-request exception/exit-stack layers; the
FastAPI route stays registered for the OpenAPI document and as the fallback. Errors go through
the app's own exception handlers, and when tracing is on the request gets the same SERVER span
as any other route. Router-level dependencies do not apply to lean routes: the endpoint does
its own checks.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from typing import Any, Literal

import orjson
from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.routing import APIRoute
from fastapi.security.utils import get_authorization_scheme_param
from pydantic import TypeAdapter, ValidationError
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from fleet.common.auth import Principal, Role, principal_from, require_role
from fleet.common.tracing import TracingMiddleware

PathFormat = Literal["uuid", "string"]
LeanEndpoint = Callable[[Request], Coroutine[Any, Any, Response]]
_UUID = TypeAdapter(uuid.UUID)

# The scheme name `BearerPrincipal` registers in OpenAPI (fleet.common.auth).
BEARER_SCHEME = "OAuth2PasswordBearer"


def bearer(request: Request, role: Role | None = None) -> Principal:
    """The verified caller (401 without a valid bearer token; 403 if `role` does not match)."""
    # The header parsing OAuth2PasswordBearer does, without the dependency machinery.
    scheme, token = get_authorization_scheme_param(request.headers.get("authorization"))
    principal = principal_from(request, token if scheme.lower() == "bearer" else None)
    return require_role(principal, role)


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


def lean_routes(routers: Iterable[APIRouter]) -> list[LeanRoute]:
    """The lean routes of `routers` (as included without a prefix, as `create_app` does)."""
    return [route for router in routers for route in router.routes if isinstance(route, LeanRoute)]


class LeanDispatch:
    """ASGI middleware: the app's `LeanRoute`s served directly, everything else passed on."""

    def __init__(
        self, app: ASGIApp, routes: Sequence[LeanRoute] = (), *, traced: bool = False
    ) -> None:
        self.app = app
        self.routes = list(routes)
        # Traced like FastAPI traces its routes: a SERVER span per request, if the app is.
        self._handle: ASGIApp = TracingMiddleware(self._serve) if traced else self._serve

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for route in self.routes:
                match, child = route.matches(scope)
                if match is Match.FULL:
                    scope.update(child)
                    scope["route"] = route  # the route template of metrics, logs and spans
                    await self._handle(scope, receive, send)
                    return
        await self.app(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        try:
            response = await scope["route"].endpoint(request)
        except Exception as exc:
            handler = _handler_for(scope["app"].exception_handlers, exc)
            if handler is None:
                raise  # the request-context middleware answers a bare 500
            response = await handler(request, exc)
        await response(scope, receive, send)


def _handler_for(handlers: Mapping[Any, Any], exc: Exception) -> Any:
    for cls in type(exc).__mro__:
        if cls in handlers:
            return handlers[cls]
    return None

"""Exception handlers that render every error as RFC 9457 problem+json."""

from __future__ import annotations

import math
from typing import Any, cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from fleet.common.errors import PROBLEM_BASE, PROBLEM_MEDIA_TYPE, FleetError, problem


def _response(body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        body, status_code=body["status"], media_type=PROBLEM_MEDIA_TYPE, headers=headers
    )


def _loc(loc: tuple[Any, ...] | list[Any]) -> list[str | int]:
    return [part if isinstance(part, int) else str(part) for part in loc]


async def _fleet_error(request: Request, exc: Exception) -> JSONResponse:
    exc = cast(FleetError, exc)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    if isinstance(retry := exc.extra.get("retry_after_s"), int | float):
        headers = {"Retry-After": str(max(1, math.ceil(retry)))}
    body = problem(
        exc.status, exc.title, exc.detail, type_=exc.type, instance=request.url.path, **exc.extra
    )
    return _response(body, headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    errs = cast(RequestValidationError, exc).errors()
    errors = [{"loc": _loc(e.get("loc", ())), "msg": str(e.get("msg", ""))} for e in errs]
    names = ", ".join(".".join(str(p) for p in e["loc"][1:]) or str(e["loc"][0]) for e in errors)
    body = problem(
        422,
        "Unprocessable Content",
        f"invalid request: {names}" if names else "invalid request",
        type_=PROBLEM_BASE + "validation",
        instance=request.url.path,
        errors=errors,
    )
    return _response(body)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    exc = cast(StarletteHTTPException, exc)
    if isinstance(exc.__cause__, FleetError):
        # FastAPI answers 400 for whatever fails while it reads the body, such as the body limit
        # of a streamed request (413): the platform's own error keeps its status.
        return await _fleet_error(request, exc.__cause__)
    from http import HTTPStatus

    try:
        title = HTTPStatus(exc.status_code).phrase
    except ValueError:
        title = "Error"
    body = problem(exc.status_code, title, str(exc.detail), instance=request.url.path)
    return _response(body, dict(exc.headers) if exc.headers else None)


def install_problem_handlers(app: FastAPI) -> None:
    """Make every 4xx/5xx answer of `app` a problem document."""
    app.add_exception_handler(FleetError, _fleet_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)

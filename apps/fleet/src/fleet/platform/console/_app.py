"""The console's ASGI app: its state, rendering, redirects and how API errors become pages."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import jinja2
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from fleet.platform.console._api import ApiError, PlatformApi
from fleet.platform.console._security import (
    FLASH_COOKIE,
    SESSION_COOKIE,
    Guard,
    SecurityHeaders,
    base_path,
    clear_cookie,
    set_cookie,
)

HERE = Path(__file__).parent


class SignInRequired(Exception):
    """The request carries no session: the answer is the login page."""


@dataclass
class Console:
    """What every handler needs; lives on the console app's `state.console`."""

    http: httpx.AsyncClient
    guard: Guard
    env: jinja2.Environment


class LocalTransport(httpx.ASGITransport):
    """In-process calls of an ASGI app, each in a task of its own: the request-scoped context an
    API call binds (log fields, the current span) stays out of the console request's context."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await asyncio.create_task(super().handle_async_request(request))


@dataclass(frozen=True)
class _RouteLabel:
    path: str


class MountedRouteLabel:
    """ASGI middleware: the matched route named with the mount's path (`/console/trips/{trip_id}`),
    so the host app's metrics and access log tell console pages from the API routes they mirror."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        mount = str(scope.get("root_path", ""))  # routing below extends it (static files)
        try:
            await self.app(scope, receive, send)
        finally:
            path = getattr(scope.get("route"), "path", None)
            if isinstance(path, str):
                scope["route"] = _RouteLabel(mount + path)


def _money(cents: Any) -> str:
    if not isinstance(cents, int):
        return "—"
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100:,}.{abs(cents) % 100:02d}"


def _when(value: Any) -> str:
    if not isinstance(value, str):
        return "—"
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return value
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _number(value: Any, digits: int = 1) -> str:
    return f"{value:.{digits}f}" if isinstance(value, int | float) else "—"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,  # every template, whatever its name: values come from the API
        undefined=jinja2.ChainableUndefined,  # a field the API dropped renders empty
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(money=_money, when=_when, number=_number)
    return env


def console(request: Request) -> Console:
    state: Console = request.app.state.console
    return state


def session(request: Request) -> str:
    """The operator's token from the session cookie, or `SignInRequired`."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise SignInRequired
    return token


def api(request: Request) -> PlatformApi:
    """The platform API as the signed-in operator."""
    return PlatformApi(console(request).http, session(request))


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
    """`template` as an HTML answer; takes (and clears) a pending flash message."""
    c = console(request)
    token = request.cookies.get(SESSION_COOKIE)
    flash = c.guard.read_flash(request.cookies.get(FLASH_COOKIE))
    html = c.env.get_template(template).render(
        base=base_path(request),
        csrf=c.guard.csrf_token(token) if token else "",
        signed_in=bool(token),
        flash=flash,
        **context,
    )
    response = HTMLResponse(html, status_code)
    if FLASH_COOKIE in request.cookies:
        clear_cookie(response, request, FLASH_COOKIE)
    return response


def redirect(
    request: Request, path: str, flash: tuple[str, str] | None = None, **query: str
) -> Response:
    """A 303 to `path` under the console (redirect-after-post), with an optional flash."""
    clean = {k: v for k, v in query.items() if v}
    url = base_path(request) + path + (f"?{urlencode(clean)}" if clean else "")
    response = RedirectResponse(url, status_code=303)
    if flash:
        set_cookie(response, request, FLASH_COOKIE, console(request).guard.flash(*flash), 60)
    return response


def to_login(request: Request, flash: tuple[str, str] | None = None) -> Response:
    """The login page, coming back here afterwards (GETs only: a form is not replayed)."""
    back = request.url.path if request.method == "GET" else ""
    if back and request.url.query:
        back += "?" + request.url.query
    response = redirect(request, "/login", flash, next=back)
    clear_cookie(response, request, SESSION_COOKIE)
    return response


async def _sign_in_required(request: Request, _exc: Exception) -> Response:
    return to_login(request)


async def _api_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, ApiError):
        raise exc
    if exc.status == 401:
        return to_login(request, ("error", "Your session has expired or is not valid any more."))
    if exc.status == 403:
        return render(request, "forbidden.html", 403, message=exc.message)
    return render(request, "error.html", exc.status, message=exc.message, status=exc.status)


async def _not_found(request: Request, _exc: Exception) -> Response:
    return render(request, "error.html", 404, message="No such page.", status=404)


def console_app(
    platform: httpx.AsyncBaseTransport | str,
    *,
    secret: bytes | None = None,
    timeout: float = 10.0,
) -> Starlette:
    """The operations console, talking to the platform API through `platform`: a transport
    (`LocalTransport(app)` for an app in this process) or a base URL.

    `secret` keys the CSRF tokens and flash messages; by default a random one per process (a
    restart then only costs operators a reloaded form, never their session).
    """
    from fleet.platform.console import _actions, _pages

    if isinstance(platform, str):
        http = httpx.AsyncClient(base_url=platform, timeout=timeout)
    else:
        http = httpx.AsyncClient(transport=platform, base_url="http://platform", timeout=timeout)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        # Runs only when the console is served on its own; mounted, the client lives on.
        async with http:
            yield

    app = Starlette(
        routes=[*_pages.routes(), *_actions.routes()],
        middleware=[Middleware(MountedRouteLabel), Middleware(SecurityHeaders)],
        exception_handlers={
            ApiError: _api_error,
            _actions.CsrfRefused: _actions.csrf_refused,
            SignInRequired: _sign_in_required,
            404: _not_found,
        },
        lifespan=lifespan,
    )
    app.state.console = Console(http, Guard(secret), _environment())
    return app

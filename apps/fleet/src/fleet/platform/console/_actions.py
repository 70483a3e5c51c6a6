"""The console's forms: sign in and out, start/complete/cancel a trip, set a vehicle's status,
replay dead letters.

Every form is a POST carrying a CSRF token and answers with a redirect (303) and a flash message,
so a reload never repeats an action.
"""

from __future__ import annotations

import math
import secrets
from urllib.parse import quote, urlsplit

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from fleet.platform.console._api import ApiError, PlatformApi
from fleet.platform.console._app import api, console, redirect, render
from fleet.platform.console._pages import SETTABLE_STATUSES, not_found, queue_path, valid_id
from fleet.platform.console._security import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    base_path,
    clear_cookie,
    double_submit_ok,
    set_cookie,
)

TRIP_ACTIONS = {"start": "started", "complete": "completed", "cancel": "cancelled"}
REFUSED_FORM = "This form expired or did not come from this console: reload the page and retry."


class CsrfRefused(Exception):
    """A form without the right CSRF token: answered with a 403 page, nothing done."""


def field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def safe_next(request: Request, target: str) -> str:
    """`target` if it is a page of this console, else the dashboard (no open redirect)."""
    base = base_path(request)
    parts = urlsplit(target)
    inside = target.startswith(base + "/") and not target.startswith("//")
    if inside and not parts.scheme and not parts.netloc and "\\" not in target:
        return target
    return base + "/"


def _login_page(request: Request, status_code: int = 200, **context: str) -> Response:
    token = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(32)
    context = {"email": "", "error": "", "next": "", **context}
    response = render(request, "login.html", status_code, login_csrf=token, **context)
    set_cookie(response, request, LOGIN_COOKIE, token, max_age=3600)
    return response


async def login_form(request: Request) -> Response:
    return _login_page(request, next=request.query_params.get("next", ""))


async def login(request: Request) -> Response:
    form = await request.form()
    if not double_submit_ok(request, field(form, "login_csrf")):
        raise CsrfRefused
    email, target = field(form, "email").strip(), field(form, "next")
    http = console(request).http
    try:
        credentials = {"username": email, "password": field(form, "password")}
        answer = await PlatformApi(http).call("POST", "/auth/token", data=credentials)
        token = str(answer.get("access_token") or "") if isinstance(answer, dict) else ""
        if not token:
            raise ApiError(502, "the platform API issued no token")
        me = await PlatformApi(http, token).get("/users/me")
    except ApiError as exc:
        error = "Wrong email or password." if exc.status == 401 else exc.message
        return _login_page(request, exc.status, email=email, error=error, next=target)
    if not isinstance(me, dict) or me.get("role") != "operator":
        message = f"{email} is not an operator account: the console is for operators only."
        return render(request, "forbidden.html", 403, message=message)
    response = RedirectResponse(safe_next(request, target), status_code=303)
    expires_in = answer.get("expires_in")
    max_age = expires_in if isinstance(expires_in, int) and expires_in > 0 else 3600
    set_cookie(response, request, SESSION_COOKIE, token, max_age)
    clear_cookie(response, request, LOGIN_COOKIE)
    return response


async def logout(request: Request) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    form = await request.form()
    if token and not console(request).guard.csrf_ok(token, field(form, "csrf")):
        raise CsrfRefused
    response = redirect(request, "/login", ("ok", "Signed out."))
    clear_cookie(response, request, SESSION_COOKIE)
    return response


async def guarded(request: Request) -> tuple[PlatformApi, FormData]:
    """The operator's API and the posted form, if it carries this session's CSRF token."""
    platform = api(request)
    form = await request.form()
    if not console(request).guard.csrf_ok(platform.token or "", field(form, "csrf")):
        raise CsrfRefused
    return platform, form


def _complete_body(form: FormData) -> dict[str, object] | str:
    """The body of `complete` from the form, or why it cannot be sent."""
    body: dict[str, object] = {}
    for name in ("distance_km", "duration_min"):
        text = field(form, name).strip()
        if not text and name == "duration_min":
            continue  # optional: the API derives it from the tracking
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):  # NaN cannot even be sent as JSON
            return "Distance (km) and duration (min) must be numbers."
        body[name] = value
    return body


async def trip_action(request: Request) -> Response:
    trip_id, action = valid_id(request.path_params["trip_id"]), request.path_params["action"]
    if trip_id is None or action not in TRIP_ACTIONS:
        return not_found(request, "trip action")
    platform, form = await guarded(request)
    back = f"/trips/{trip_id}"
    body: dict[str, object] | None = None
    if action == "complete":
        built = _complete_body(form)
        if isinstance(built, str):
            return redirect(request, back, ("error", built))
        body = built
    elif action == "cancel" and (reason := field(form, "reason").strip()):
        body = {"reason": reason}
    try:
        await platform.post(f"/trips/{trip_id}/{action}", body)
    except ApiError as exc:
        if exc.status in (401, 403):
            raise
        message = f"The trip was not {TRIP_ACTIONS[action]}: {exc.message}"
        return redirect(request, back, ("error", message))
    return redirect(request, back, ("ok", f"Trip {TRIP_ACTIONS[action]}."))


async def vehicle_status(request: Request) -> Response:
    vehicle_id = valid_id(request.path_params["vehicle_id"])
    if vehicle_id is None:
        return not_found(request, "vehicle")
    platform, form = await guarded(request)
    back = f"/vehicles/{vehicle_id}"
    status = field(form, "status")
    if status not in SETTABLE_STATUSES:
        return redirect(request, back, ("error", f"Choose one of {', '.join(SETTABLE_STATUSES)}."))
    try:
        answer = await platform.patch(f"/vehicles/{vehicle_id}", {"status": status})
    except ApiError as exc:
        if exc.status in (401, 403):
            raise
        return redirect(request, back, ("error", f"The status was not changed: {exc.message}"))
    now = answer.get("status") if isinstance(answer, dict) else None
    return redirect(request, back, ("ok", f"Vehicle status set to {now or status}."))


async def replay(request: Request) -> Response:
    queue = request.path_params["queue"]
    path = queue_path(queue)
    if path is None:
        return not_found(request, "queue")
    platform, form = await guarded(request)
    ident = field(form, "id")
    back = f"/dead-letters/{quote(queue, safe='')}"
    try:
        answer = await platform.post(f"{path}/replay", {"ids": [ident]} if ident else None)
    except ApiError as exc:
        if exc.status in (401, 403):
            raise
        return redirect(request, back, ("error", f"Nothing was replayed: {exc.message}"))
    count = answer.get("replayed", 0) if isinstance(answer, dict) else 0
    return redirect(request, back, ("ok", f"Replayed {count} dead letter(s) of {queue}."))


async def csrf_refused(request: Request, _exc: Exception) -> Response:
    return render(request, "forbidden.html", 403, message=REFUSED_FORM)


def routes() -> list[BaseRoute]:
    return [
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/trips/{trip_id}/{action}", trip_action, methods=["POST"]),
        Route("/vehicles/{vehicle_id}/status", vehicle_status, methods=["POST"]),
        Route("/dead-letters/{queue}/replay", replay, methods=["POST"]),
    ]

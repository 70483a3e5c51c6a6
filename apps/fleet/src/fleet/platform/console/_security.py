"""The console's session, CSRF and flash cookies, and the headers every answer carries.

The session is the platform's own JWT in an HttpOnly, SameSite=Strict cookie scoped to the
console's path: scripts cannot read it and other sites cannot make the browser send it. Forms of a
signed-in operator carry a CSRF token bound to that session (an HMAC of the JWT under a key only
this process knows); the login form, before any session exists, uses a double-submit cookie.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SESSION_COOKIE = "fleet_console_session"
LOGIN_COOKIE = "fleet_console_login"
FLASH_COOKIE = "fleet_console_flash"

HEADERS = [
    # No script at all, styles only from the console itself, forms post only back to it.
    (
        b"content-security-policy",
        b"default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        b"frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]


def base_path(request: Request) -> str:
    """Where the console is mounted (`/console`), or "" when it is an app of its own."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def set_cookie(
    response: Response, request: Request, name: str, value: str, max_age: int | None = None
) -> None:
    """An HttpOnly, SameSite=Strict cookie for the console's path; Secure over https."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=base_path(request) or "/",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )


def clear_cookie(response: Response, request: Request, name: str) -> None:
    response.delete_cookie(
        name,
        path=base_path(request) or "/",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )


class Guard:
    """CSRF tokens bound to a session and signed flash messages, under one per-process key."""

    def __init__(self, secret: bytes | None = None) -> None:
        self._key = secret or secrets.token_bytes(32)

    def _mac(self, purpose: str, value: str) -> str:
        msg = purpose.encode() + b"\0" + value.encode()
        return hmac.new(self._key, msg, hashlib.sha256).hexdigest()

    def csrf_token(self, session: str) -> str:
        return self._mac("csrf", session)

    def csrf_ok(self, session: str, submitted: str) -> bool:
        return hmac.compare_digest(self.csrf_token(session), submitted)

    def flash(self, kind: str, message: str) -> str:
        """A cookie value carrying one message; `read_flash` takes it back if untampered."""
        data = base64.urlsafe_b64encode(json.dumps([kind, message]).encode()).decode()
        return f"{data}.{self._mac('flash', data)}"

    def read_flash(self, value: str | None) -> tuple[str, str] | None:
        if not value or "." not in value:
            return None
        data, mac = value.rsplit(".", 1)
        if not hmac.compare_digest(self._mac("flash", data), mac):
            return None
        try:
            kind, message = json.loads(base64.urlsafe_b64decode(data))
        except (ValueError, TypeError):
            return None
        return str(kind), str(message)


def double_submit_ok(request: Request, submitted: str) -> bool:
    """The login form's token equals its cookie (a cross-site form can set neither)."""
    cookie = request.cookies.get(LOGIN_COOKIE, "")
    return bool(cookie) and hmac.compare_digest(cookie, submitted)


class SecurityHeaders:
    """ASGI middleware: CSP and friends on every answer; pages are never cached."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = "/static/" in scope["path"]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", [])) + HEADERS
                cache = b"public, max-age=3600" if static else b"no-store"
                headers.append((b"cache-control", cache))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


CONSOLE_SECRET_ENV = "FLEET_CONSOLE_SECRET"  # noqa: S105 - the variable's name
CONSOLE_SECRET_MIN_LENGTH = 32


def console_secret(environ: Mapping[str, str], *, required: bool = True) -> bytes | None:
    """The key of the console's CSRF tokens and flash messages, from FLEET_CONSOLE_SECRET: every
    replica behind one address needs the same. Unset, a random key per process (None), which only
    dev and test accept; anything else (FLEET_ENV=prod, the image's default) refuses to start.
    `required=False` (the gateway's and the embedded app's console, one process each): unset is a
    random key whatever the environment; set, it is used and checked all the same."""
    value = environ.get(CONSOLE_SECRET_ENV, "")
    if not value:
        if not required or environ.get("FLEET_ENV", "dev") in ("dev", "test"):
            return None
        raise ValueError(
            f"{CONSOLE_SECRET_ENV} must be set outside dev: the key every console replica shares"
        )
    if len(value) < CONSOLE_SECRET_MIN_LENGTH:
        raise ValueError(
            f"{CONSOLE_SECRET_ENV} must have at least {CONSOLE_SECRET_MIN_LENGTH} characters"
        )
    return value.encode()

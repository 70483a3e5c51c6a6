"""Pure-ASGI middleware (no BaseHTTPMiddleware cost): request context, RED metrics, body limit."""

from __future__ import annotations

import os
import time
from typing import Any

import orjson
import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fleet.common.errors import PROBLEM_BASE, PROBLEM_MEDIA_TYPE, PayloadTooLargeError, problem
from fleet.common.metrics import HttpMetrics

log = structlog.get_logger("fleet.http")
UNMATCHED = "<unmatched>"


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


async def _send_problem(
    send: Send, scope: Scope, request_id: str, status: int, title: str, detail: str, slug: str
) -> None:
    """A problem answered here, before the app: the same fields and request id as the app's."""
    body = orjson.dumps(
        problem(status, title, detail, type_=PROBLEM_BASE + slug, instance=scope["path"])
    )
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"x-request-id", request_id.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RequestContextMiddleware:
    """Request id in and out, structured access log, RED metrics, request body size limit."""

    def __init__(
        self, app: ASGIApp, *, metrics: HttpMetrics, max_body_bytes: int, access_log: bool = True
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw_id = _header(scope, b"x-request-id")
        request_id = raw_id.decode("latin-1")[:64] if raw_id else os.urandom(16).hex()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        start = time.perf_counter()
        status = 500

        length = _header(scope, b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
            try:
                await _send_problem(
                    send,
                    scope,
                    request_id,
                    413,
                    "Payload Too Large",
                    f"request body exceeds {self.max_body_bytes} bytes",
                    "payload-too-large",
                )
            finally:
                self._finish(scope, 413, start)
                structlog.contextvars.unbind_contextvars("request_id")
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise PayloadTooLargeError(f"request body exceeds {self.max_body_bytes} bytes")
            return message

        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, limited_receive, send_wrapper)
        except Exception as exc:
            # Last line of defence: log it, answer a bare 500 problem, never leak internals, and
            # do not re-raise (the server would log the same stack trace twice).
            log.exception("unhandled error", path=scope["path"], error_type=type(exc).__name__)
            status = 500
            if not started:
                await _send_problem(
                    send,
                    scope,
                    request_id,
                    500,
                    "Internal Server Error",
                    "an unexpected error occurred; it has been logged",
                    "internal",
                )
        finally:
            self._finish(scope, status, start)
            structlog.contextvars.unbind_contextvars("request_id")

    def _finish(self, scope: Scope, status: int, start: float) -> None:
        elapsed = time.perf_counter() - start
        route: Any = scope.get("route")
        template = getattr(route, "path", None) or UNMATCHED
        self.metrics.observe(scope["method"], template, status, elapsed)
        if self.access_log:
            log.info(
                "request",
                method=scope["method"],
                path=scope["path"],
                route=template,
                status=status,
                duration_ms=round(elapsed * 1000, 2),
            )

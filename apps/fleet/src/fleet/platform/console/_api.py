"""The console's only way into the platform: its public REST API, with the operator's token."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import httpx


class ApiError(Exception):
    """The API refused or failed a call; `message` is fit to show an operator.

    `status` is the API's answer, or 502 when the API could not be reached or failed itself.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def problem_message(r: httpx.Response) -> str:
    """A one-line message from a problem+json answer (RFC 9457), or from whatever came back."""
    try:
        body = r.json()
    except ValueError:
        return f"{r.status_code} {r.reason_phrase}"
    if not isinstance(body, dict):
        return f"{r.status_code} {r.reason_phrase}"
    text = str(body.get("detail") or body.get("title") or r.reason_phrase)
    errors = body.get("errors")
    if isinstance(errors, list) and errors:
        parts = []
        for e in errors[:5]:
            if isinstance(e, dict):
                loc = ".".join(str(x) for x in e.get("loc", []) if x not in ("body", "query"))
                parts.append(f"{loc}: {e.get('msg', '')}" if loc else str(e.get("msg", "")))
        text = "; ".join(parts) or text
    return text


class PlatformApi:
    """Calls of the public API as one operator: JSON in, JSON out, `ApiError` otherwise."""

    def __init__(self, http: httpx.AsyncClient, token: str | None = None) -> None:
        self.http = http
        self.token = token

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        data: dict[str, str] | None = None,
    ) -> Any:
        """The decoded answer of `method path`; `ApiError` for a 4xx, a 5xx or no answer."""
        try:
            r = await self.http.request(
                method, path, params=params, json=json, data=data, headers=self._headers()
            )
        except httpx.HTTPError as exc:
            raise ApiError(502, f"the platform API did not answer ({type(exc).__name__})") from exc
        if r.status_code >= 500:
            raise ApiError(502, f"the platform API failed: {problem_message(r)}")
        if r.status_code >= 400:
            raise ApiError(r.status_code, problem_message(r))
        try:
            return r.json()
        except ValueError:
            raise ApiError(502, "the platform API answered something other than JSON") from None

    async def get(self, path: str, **params: Any) -> Any:
        clean = {k: v for k, v in params.items() if v not in (None, "")}
        return await self.call("GET", path, params=clean)

    async def post(self, path: str, json: Any = None) -> Any:
        return await self.call("POST", path, json=json)

    async def patch(self, path: str, json: Any) -> Any:
        return await self.call("PATCH", path, json=json)


async def attempt_all(*calls: Awaitable[Any]) -> list[tuple[Any, str | None]]:
    """`(answer, None)` or `(None, message)` per call, run at once: one section of a page may
    fail alone. A 401 or 403 still propagates: the whole page is then the login or the refusal.
    """
    out: list[tuple[Any, str | None]] = []
    for result in await asyncio.gather(*calls, return_exceptions=True):
        if isinstance(result, ApiError):
            if result.status in (401, 403):
                raise result
            out.append((None, result.message))
        elif isinstance(result, BaseException):
            raise result
        else:
            out.append((result, None))
    return out

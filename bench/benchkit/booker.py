"""The benchmark's bookings, posted with aiohttp.

The load generator runs on the machine it measures, so its own CPU is taken from the platform:
at 16 to 32 requests in flight httpx's client costs ≈ 1 to 1.4 ms of CPU per request, aiohttp's
≈ 70 µs (docs/performance.md). Setup, checks and reads keep the platform's own client
(`fleet.platform.client.Platform`, httpx); only the timed `POST /trips` goes through here.
Each booking carries an Idempotency-Key of its own, as a client that may retry sends it.
"""

from __future__ import annotations

import uuid
from types import TracebackType
from typing import Any

import aiohttp
import orjson

from fleet.platform.client import ApiError, User, booking_body, retry_after


class Shed(ApiError):
    """The platform refused the booking for now (503 with Retry-After: overloaded)."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Booker:
    """`POST /trips` for a rider, through one aiohttp session (`async with`)."""

    def __init__(self, base_url: str, connections: int, timeout: float = 30.0) -> None:
        self._url = base_url.rstrip("/") + "/trips"
        self._connections = connections
        self._timeout = timeout
        self._body = orjson.dumps(booking_body())
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Booker:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._connections),
            timeout=aiohttp.ClientTimeout(total=self._timeout),
        )
        return self

    async def __aexit__(
        self,
        _type: type[BaseException] | None,
        _error: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()

    async def book(self, rider: User) -> dict[str, Any]:
        """The new pending trip (202), or ApiError naming what the platform answered."""
        if self._session is None:
            raise RuntimeError("use Booker in `async with`")
        headers = {**rider.headers, "Content-Type": "application/json"}
        headers["Idempotency-Key"] = uuid.uuid4().hex
        async with self._session.post(self._url, data=self._body, headers=headers) as r:
            body = await r.read()
            if r.status != 202:
                text = body.decode(errors="replace")
                if (delay := retry_after(r.status, r.headers)) is not None:
                    raise Shed(f"POST /trips → 503: {text}", delay)
                raise ApiError(f"POST /trips → {r.status}: {text}")
        trip: dict[str, Any] = orjson.loads(body)
        return trip

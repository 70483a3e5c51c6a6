"""A thin async client of the platform's public API (cross-service tests, benchmarks, demos)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

ADMIN = ("admin@fleet.example", "admin-password")
SEOUL = {"lat": 37.5665, "lon": 126.9780}
T = TypeVar("T")


def booking_body(**extra: Any) -> dict[str, Any]:
    """A `POST /trips` body: a ride across central Seoul (and whatever `extra` adds)."""
    return {"pickup": SEOUL, "dropoff": {"lat": 37.5796, "lon": 126.9770}, **extra}


class ApiError(RuntimeError):
    """The platform answered something other than what the call expects."""


def _expect(r: httpx.Response, status: int) -> None:
    if r.status_code != status:
        raise ApiError(f"{r.request.method} {r.request.url.path} → {r.status_code}: {r.text}")


def retry_after(status: int, headers: Mapping[str, str]) -> float | None:
    """The seconds a 503 asks to wait before the request is sent again, from its `Retry-After`
    (None: not such an answer). `headers` as any HTTP library gives them (case-insensitive)."""
    value = headers.get("retry-after", "") if status == 503 else ""
    return float(value) if value.isdigit() else None


@dataclass
class User:
    id: str
    headers: dict[str, str]


async def eventually(
    probe: Callable[[], Awaitable[T]], until: Callable[[T], bool], within: float = 20.0
) -> T:
    """Poll `probe()` until `until(result)`; fail with the last result after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = await probe()
        if until(result):
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {within}s; last: {result!r}")
        await asyncio.sleep(0.05)


def vin(n: int) -> str:
    """A valid, unique-per-n VIN (17 chars, no I/O/Q)."""
    return f"5YJ3E1EA{n:09d}"


class Platform:
    """The public API through one base URL (the gateway, or the embedded app)."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def login(self, email: str, password: str) -> User:
        r = await self.http.post("/auth/token", data={"username": email, "password": password})
        _expect(r, 200)
        headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
        me = (await self.http.get("/users/me", headers=headers)).json()
        return User(me["id"], headers)

    async def operator(self) -> User:
        return await self.login(*ADMIN)

    async def rider(self, credits_cents: int = 0) -> User:
        email = f"rider-{uuid.uuid4().hex[:12]}@example.com"
        body = {"email": email, "password": "correct-horse-9", "name": "Rider"}
        r = await self.http.post("/auth/register", json=body)
        _expect(r, 201)
        user = await self.login(email, "correct-horse-9")
        if credits_cents:
            r = await self.http.post(
                "/wallet/top-up", json={"amount_cents": credits_cents}, headers=user.headers
            )
            _expect(r, 200)
        return user

    async def vehicle(self, op: User, n: int, lat: float = 37.5665, lon: float = 126.978) -> str:
        body = {"vin": vin(n), "model": "Ioniq5", "seats": 4, "lat": lat, "lon": lon}
        r = await self.http.post("/vehicles", json=body, headers=op.headers)
        _expect(r, 201)
        return str(r.json()["id"])

    async def book(
        self, rider: User, key: str | None = None, *, within: float = 30.0, **extra: Any
    ) -> dict[str, Any]:
        """The pending trip (202). A booking refused because the platform is overloaded (503
        with Retry-After: nothing was booked) is sent again after the delay it asks for, for up
        to `within` seconds."""
        body = booking_body(**extra)
        headers = {**rider.headers, **({"Idempotency-Key": key} if key else {})}
        deadline = time.monotonic() + within
        while True:
            r = await self.http.post("/trips", json=body, headers=headers)
            delay = retry_after(r.status_code, r.headers)
            if delay is None or time.monotonic() + delay > deadline:
                break
            await asyncio.sleep(delay)
        _expect(r, 202)
        trip: dict[str, Any] = r.json()
        return trip

    async def trip(self, who: User, trip_id: str) -> dict[str, Any]:
        r = await self.http.get(f"/trips/{trip_id}", headers=who.headers)
        _expect(r, 200)
        body: dict[str, Any] = r.json()
        return body

    async def settled(self, who: User, trip_id: str, within: float = 20.0) -> dict[str, Any]:
        """The trip once its booking saga ended (confirmed or rejected)."""
        return await eventually(
            lambda: self.trip(who, trip_id),
            lambda t: t["status"] != "pending",
            within,
        )

    async def wallet(self, rider: User) -> dict[str, int]:
        body: dict[str, int] = (await self.http.get("/wallet", headers=rider.headers)).json()
        return body

    async def get(self, who: User, path: str) -> Any:
        r = await self.http.get(path, headers=who.headers)
        _expect(r, 200)
        return r.json()

    async def act(self, who: User | None, trip_id: str, action: str, **body: Any) -> httpx.Response:
        """`POST /trips/{id}/{action}` (start, complete, cancel) as `who` (None: anonymous)."""
        headers = who.headers if who else {}
        return await self.http.post(
            f"/trips/{trip_id}/{action}", json=body or None, headers=headers
        )

    async def confirmed_trip(self, op: User, n: int = 1) -> tuple[User, dict[str, Any]]:
        """A new rider with 100.00 credits and their confirmed trip in new vehicle number `n`."""
        await self.vehicle(op, n, lat=SEOUL["lat"] + n * 1e-4)
        rider = await self.rider(credits_cents=10_000)
        trip = await self.settled(rider, (await self.book(rider))["id"], within=5)
        if trip["status"] != "confirmed":
            raise ApiError(f"the booking did not confirm: {trip}")
        return rider, trip

    async def started_trip(self, op: User, n: int = 1) -> tuple[User, dict[str, Any]]:
        """As `confirmed_trip`, then started by the operator `op`."""
        rider, trip = await self.confirmed_trip(op, n)
        r = await self.act(op, trip["id"], "start")
        _expect(r, 200)
        started: dict[str, Any] = r.json()
        return rider, started

    async def status_of(self, who: User, trip_id: str) -> str:
        return str((await self.trip(who, trip_id))["status"])

    async def vehicle_becomes(
        self, op: User, vehicle_id: str, status: str, within: float = 5.0
    ) -> Any:
        """The vehicle once its status is `status` (events are applied asynchronously)."""
        return await eventually(
            lambda: self.get(op, f"/vehicles/{vehicle_id}"),
            lambda v: v["status"] == status,
            within,
        )

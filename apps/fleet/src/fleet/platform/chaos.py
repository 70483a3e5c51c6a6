"""Chaos runs: bookings and rides while service processes crash, then the invariants audited.

A run drives riders through the public API (book with an Idempotency-Key, wait for the saga, then
ride to completion, cancel or leave the trip booked) while a "monkey" SIGKILLs service processes at
random moments and starts them again. Clients do what real ones do: a request that meets a dead
service (transport error, or the gateway's 502/503/504) is sent again; bookings with the same
Idempotency-Key. When the traffic and the crashes are over, the run waits for the platform to
settle and audits it (`fleet.platform.audit`): nothing may be held, reserved, charged or invoiced
that should not be, and nothing that should be may be missing.

    fleet chaos --bookings 120 --crashes 8 --seed 3      # own stack on the local servers
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import create_async_engine

from fleet.common.messaging.rabbit import RabbitBus
from fleet.platform.audit import Violation, audit
from fleet.platform.client import SEOUL, Platform, User, retry_after
from fleet.platform.distributed import DistributedStack
from fleet.platform.services import SERVICE_NAMES

RETRYABLE = frozenset({502, 503, 504})
RETRY_WAIT_S = 0.2  # unless a 503 says how long (Retry-After: the trip service sheds load)
DROPOFF = {"lat": 37.5796, "lon": 126.9770}


@dataclass(frozen=True)
class ChaosPlan:
    """What a run does. Fewer vehicles than bookings makes some bookings fail on purpose."""

    bookings: int = 60  # at least; traffic goes on until the last crash is over
    concurrency: int = 8
    vehicles: int = 30
    riders: int = 8
    credits_cents: int = 500_000
    crashes: int = 4
    targets: tuple[str, ...] = SERVICE_NAMES
    pause_s: tuple[float, float] = (0.5, 3.0)  # between a restart and the next crash
    down_s: tuple[float, float] = (0.2, 2.0)  # how long a crashed service stays down
    ride_share: float = 0.6  # of confirmed trips: ridden to completion
    cancel_share: float = 0.3  # … cancelled by the rider (the rest stay booked)
    seed: int = 0
    request_timeout_s: float = 90.0  # retrying one request at most this long
    settle_s: float = 120.0  # after the run, for sagas and events to finish

    def __post_init__(self) -> None:
        unknown = set(self.targets) - set(SERVICE_NAMES)
        if unknown:
            raise ValueError(f"unknown services to crash: {sorted(unknown)}")
        if self.bookings < 1 or self.concurrency < 1 or self.riders < 1 or self.crashes < 0:
            raise ValueError("bookings, concurrency and riders must be positive, crashes >= 0")
        if not 0 <= self.ride_share + self.cancel_share <= 1:
            raise ValueError("ride_share + cancel_share must be between 0 and 1")


@dataclass(frozen=True)
class Crash:
    service: str
    at_s: float  # since the run started
    down_s: float


@dataclass
class ChaosResult:
    outcomes: Counter[str] = field(default_factory=Counter)  # final trip status per booking
    crashes: list[Crash] = field(default_factory=list)
    retries: int = 0  # requests sent again after meeting a dead service
    traffic_s: float = 0.0
    settle_s: float = 0.0
    violations: list[Violation] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def summary(self) -> str:
        trips = ", ".join(f"{n} {status}" for status, n in sorted(self.outcomes.items()))
        crashes = ", ".join(f"{c.service}@{c.at_s:.1f}s" for c in self.crashes) or "none"
        return (
            f"trips: {trips}\n"
            f"crashes ({len(self.crashes)}): {crashes}\n"
            f"requests retried after a crash: {self.retries}\n"
            f"traffic {self.traffic_s:.1f} s, settled in {self.settle_s:.1f} s"
        )


Progress = Callable[[str], None]


class ChaosRun:
    """One run against `stack` (which must be started); see the module docstring."""

    def __init__(
        self, stack: DistributedStack, plan: ChaosPlan, progress: Progress | None = None
    ) -> None:
        self.stack = stack
        self.plan = plan
        self.progress = progress or (lambda _line: None)
        self.rng = random.Random(plan.seed)  # noqa: S311 - reproducible chaos, not crypto
        self.result = ChaosResult()
        self._started = 0.0
        self._issued = 0

    async def run(self) -> ChaosResult:
        plan = self.plan
        async with httpx.AsyncClient(base_url=self.stack.gateway_url, timeout=30) as http:
            api = Platform(http)
            op = await api.operator()
            for n in range(plan.vehicles):
                await api.vehicle(op, n, lat=SEOUL["lat"] + n * 1e-4, lon=SEOUL["lon"])
            riders = [await api.rider(plan.credits_cents) for _ in range(plan.riders)]
            self.progress(f"setup: {plan.vehicles} vehicles, {plan.riders} riders")

            self._started = time.monotonic()
            monkey = asyncio.create_task(self._monkey())
            workers = [
                asyncio.create_task(self._worker(api, op, riders, monkey))
                for _ in range(plan.concurrency)
            ]
            try:
                await asyncio.gather(*workers, monkey)
            finally:
                for task in (*workers, monkey):
                    task.cancel()
            self.result.traffic_s = time.monotonic() - self._started
        await self._settle()
        return self.result

    # -- traffic ---------------------------------------------------------------------------

    async def _worker(
        self, api: Platform, op: User, riders: list[User], monkey: asyncio.Task[None]
    ) -> None:
        """Book until `bookings` were made and the monkey is done: traffic spans every crash."""
        while self._issued < self.plan.bookings or not monkey.done():
            rider = riders[self._issued % len(riders)]
            self._issued += 1
            status = await self._one_booking(api, op, rider)
            self.result.outcomes[status] += 1
            done = sum(self.result.outcomes.values())
            if done % 10 == 0:
                self.progress(f"{done} bookings done")

    async def _one_booking(self, api: Platform, op: User, rider: User) -> str:
        body = {"pickup": SEOUL, "dropoff": DROPOFF}
        key = str(uuid.uuid4())
        headers = {**rider.headers, "Idempotency-Key": key}
        trip = await self._call(api, "POST", "/trips", headers, body, ok={200, 201, 202})
        trip = await self._until(api, rider, trip["id"], lambda t: t["status"] != "pending")
        if trip["status"] != "confirmed":
            return str(trip["status"])
        roll = self.rng.random()
        path = f"/trips/{trip['id']}"
        if roll < self.plan.ride_share:
            await self._act(api, op, f"{path}/start", None, "in_progress")
            ride = {"distance_km": round(self.rng.uniform(1, 12), 2), "duration_min": 15.0}
            await self._act(api, op, f"{path}/complete", ride, "completed")
        elif roll < self.plan.ride_share + self.plan.cancel_share:
            await self._act(api, rider, f"{path}/cancel", None, "cancelled")
        trip = await self._call(api, "GET", path, rider.headers, None, ok={200})
        return str(trip["status"])

    async def _act(
        self, api: Platform, who: User, path: str, body: dict[str, Any] | None, target: str
    ) -> None:
        """A state change sent until it took: a retry after a lost answer meets 409."""
        trip_path = path.rsplit("/", 1)[0]
        try:
            await self._call(api, "POST", path, who.headers, body, ok={200})
        except _Conflict:
            trip = await self._call(api, "GET", trip_path, who.headers, None, ok={200})
            if trip["status"] != target:
                raise

    async def _until(
        self, api: Platform, who: User, trip_id: str, done: Callable[[dict[str, Any]], bool]
    ) -> dict[str, Any]:
        deadline = time.monotonic() + self.plan.request_timeout_s
        while True:
            trip = await self._call(api, "GET", f"/trips/{trip_id}", who.headers, None, ok={200})
            if done(trip) or time.monotonic() > deadline:
                return trip
            await asyncio.sleep(0.1)

    async def _call(
        self,
        api: Platform,
        method: str,
        path: str,
        headers: dict[str, str],
        body: dict[str, Any] | None,
        *,
        ok: set[int],
    ) -> dict[str, Any]:
        deadline = time.monotonic() + self.plan.request_timeout_s
        while True:
            wait = RETRY_WAIT_S
            try:
                r = await api.http.request(method, path, headers=headers, json=body)
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}"
            else:
                if r.status_code in ok:
                    answer: dict[str, Any] = r.json()
                    return answer
                if r.status_code == 409:
                    raise _Conflict(f"{method} {path} → 409: {r.text}")
                if r.status_code not in RETRYABLE:
                    raise ChaosError(f"{method} {path} → {r.status_code}: {r.text}")
                problem = f"{r.status_code}"
                wait = retry_after(r.status_code, r.headers) or wait
            if time.monotonic() > deadline:
                raise ChaosError(f"{method} {path} still failing ({problem}) after retries")
            self.result.retries += 1
            await asyncio.sleep(wait)

    # -- crashes ---------------------------------------------------------------------------

    async def _monkey(self) -> None:
        plan = self.plan
        for _ in range(plan.crashes):
            await asyncio.sleep(self.rng.uniform(*plan.pause_s))
            service = self.rng.choice(plan.targets)
            down = self.rng.uniform(*plan.down_s)
            at = time.monotonic() - self._started
            self.stack.kill(service)
            self.progress(f"crash {len(self.result.crashes) + 1}/{plan.crashes}: killed {service}")
            await asyncio.sleep(down)
            await asyncio.to_thread(self.stack.start_service, service)
            self.result.crashes.append(Crash(service, at, down))
            self.progress(f"{service} restarted after {down:.1f} s down")

    # -- settling and audit ----------------------------------------------------------------

    async def _settle(self) -> None:
        started = time.monotonic()
        deadline = started + self.plan.settle_s
        reported: int | None = None
        # One engine and one broker connection for every audit of the wait.
        engine = create_async_engine(self.stack.database_url)
        bus = RabbitBus(self.stack.amqp_url, "auditor")
        try:
            await bus.start()
            while True:
                violations = await audit(engine, bus)
                if not violations or time.monotonic() > deadline:
                    break
                if len(violations) != reported:
                    reported = len(violations)
                    names = ", ".join(v.invariant for v in violations)
                    self.progress(f"settling: {reported} invariant(s) not yet holding ({names})")
                await asyncio.sleep(1.0)
        finally:
            await bus.close()
            await engine.dispose()
        self.result.violations = violations
        self.result.settle_s = time.monotonic() - started


class ChaosError(RuntimeError):
    """The platform answered what no client should ever get (a 4xx or 500), or never answered."""


class _Conflict(ChaosError):
    pass

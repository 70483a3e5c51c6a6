"""Fixtures of the user service's tests (the shared ones live in the root conftest)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from fleet.common.db import Database
from fleet.common.messaging import Envelope, InMemoryBus
from fleet.common.saga import Phase, SagaCommand
from fleet.common.testing import Account, RiderFactory
from fleet.contracts.booking import REPLY_KEY, SAGA_NAME

ProblemCheck = Callable[..., dict[str, Any]]


def _expect_problem(r: httpx.Response, status: int, field: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert body["status"] == status
    if field is not None:
        locs = [e["loc"] for e in body.get("errors", [])]
        assert any(loc[-1] == field for loc in locs), locs
    return body


@pytest.fixture
def expect_problem() -> ProblemCheck:
    """`expect_problem(response, status, field=None)`: a problem document, naming `field`."""
    return _expect_problem


@pytest.fixture
async def user_db(client: httpx.AsyncClient, app: FastAPI) -> Database:
    """The running app's user database, for arranging state the API cannot create."""
    db: Database = app.state.fleet.services["user"].db
    return db


# --- Messaging: drive the live app through its in-memory bus, as trip's orchestrator would. ---

Check = Callable[[], Awaitable[bool]]


WAIT_S = 5.0


async def eventually(check: Check, what: str = "condition") -> None:
    """Poll `check` every 20 ms until it holds; fail after `WAIT_S` seconds."""
    try:
        async with asyncio.timeout(WAIT_S):
            while True:
                if await check():
                    return
                await asyncio.sleep(0.02)
    except TimeoutError:
        pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
def wait_until() -> Callable[..., Awaitable[None]]:
    """`await wait_until(async_check, what=...)`: poll until the check holds (≤ 5 s)."""
    return eventually


@dataclass
class Captured:
    """Every message a test queue received, in arrival order."""

    messages: list[Envelope] = field(default_factory=list)

    async def handle(self, envelope: Envelope) -> None:
        self.messages.append(envelope)

    def matching(self, **data: object) -> list[Envelope]:
        """The messages whose data has these values (UUIDs compared as strings)."""
        want = {k: str(v) if isinstance(v, uuid.UUID) else v for k, v in data.items()}
        return [m for m in self.messages if all(m.data.get(k) == v for k, v in want.items())]

    async def wait_for(self, count: int = 1, **data: object) -> list[Envelope]:
        """Wait until `count` messages match `data`; the matches."""

        async def enough() -> bool:
            return len(self.matching(**data)) >= count

        await eventually(enough, what=f"{count} message(s) with {data}")
        return self.matching(**data)


@pytest.fixture
async def bus(client: httpx.AsyncClient, app: FastAPI) -> InMemoryBus:
    """The running app's bus (in-memory in tests)."""
    running = app.state.fleet.bus
    assert isinstance(running, InMemoryBus)
    return running


@pytest.fixture
async def saga_replies(bus: InMemoryBus) -> Captured:
    """The replies participants send to trip's orchestrator."""
    captured = Captured()
    await bus.subscribe("test.saga-replies", [REPLY_KEY], captured.handle, exchange="commands")
    return captured


@pytest.fixture
async def credit_events(bus: InMemoryBus) -> Captured:
    """`credits.*` events, as billing would receive them."""
    captured = Captured()
    await bus.subscribe("test.credit-events", ["credits.*"], captured.handle, exchange="events")
    return captured


SendCommand = Callable[..., Awaitable[SagaCommand]]


@pytest.fixture
def send_command(bus: InMemoryBus) -> SendCommand:
    """`await send_command(command_type, payload, saga_id=..., attempt=1, phase=...)`."""

    async def send(
        command_type: str,
        payload: dict[str, Any],
        *,
        saga_id: uuid.UUID | None = None,
        attempt: int = 1,
        phase: Phase = Phase.ACTION,
    ) -> SagaCommand:
        command = SagaCommand(
            saga_id=saga_id or uuid.uuid4(),
            saga_name=SAGA_NAME,
            step=command_type.removeprefix("user."),
            phase=phase,
            attempt=attempt,
            command_type=command_type,
            payload=_jsonable(payload),
            reply_to=REPLY_KEY,
        )
        await bus.publish(_command_envelope(command), exchange="commands")
        return command

    return send


def _jsonable(payload: dict[str, Any]) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, uuid.UUID) else v for k, v in payload.items()}


def _command_envelope(command: SagaCommand) -> Envelope:
    return Envelope.new(
        command.command_type,
        command.to_dict(),
        producer="trip",
        aggregate_type="saga",
        aggregate_id=command.saga_id,
        kind="command",
        reply_to=REPLY_KEY,
    )


WalletOf = Callable[[Account], Awaitable[dict[str, Any]]]


@pytest.fixture
def wallet_of(client: httpx.AsyncClient) -> WalletOf:
    """`await wallet_of(rider)`: the rider's wallet as GET /wallet shows it."""

    async def get(who: Account) -> dict[str, Any]:
        r = await client.get("/wallet", headers=who.headers)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    return get


@pytest.fixture
def funded_rider(client: httpx.AsyncClient, make_rider: RiderFactory) -> RiderFactory:
    """`await funded_rider(balance_cents)`: a new rider whose wallet holds that much."""

    async def make(balance_cents: int = 0) -> Account:
        who = await make_rider()
        if balance_cents:
            r = await client.post(
                "/wallet/top-up", json={"amount_cents": balance_cents}, headers=who.headers
            )
            assert r.status_code == 200, r.text
        return who

    return make


BookTrip = Callable[[Account], Awaitable[uuid.UUID]]


@pytest.fixture
def book_trip(client: httpx.AsyncClient) -> BookTrip:
    """`await book_trip(rider)`: a new trip of the rider, booked through the trip service's own
    API (`POST /trips`, part of the app under test); pending, its saga left to run on."""

    async def book(who: Account) -> uuid.UUID:
        body = {
            "pickup": {"lat": 37.5665, "lon": 126.978},
            "dropoff": {"lat": 37.58, "lon": 126.977},
        }
        r = await client.post("/trips", json=body, headers=who.headers)
        assert r.status_code == 202, r.text
        return uuid.UUID(r.json()["id"])

    return book

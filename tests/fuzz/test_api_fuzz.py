"""API fuzzing: the platform holds to its OpenAPI document under bad and odd input.

Schemathesis generates requests for every operation of the document the platform serves (valid
ones, invalid ones, and the boundary cases of its coverage phase) and sends them in-process
(ASGI) to the whole platform: as a rider and as the operator, on the embedded platform (SQLite
files, in-memory bus) and on PostgreSQL (where NUL characters, for one, break what SQLite
takes). Each answer must be:

- never a 5xx (`not_a_server_error`);
- a status code the operation documents (`status_code_conformance`), with the documented media
  type, body schema and headers (`content_type_conformance`, `response_schema_conformance`,
  `response_headers_conformance`);
- a refusal (4xx) for a request that breaks the document (`negative_data_rejection`), on the
  cases sent as generated (in a default run ≈ 2,200 of them; a case whose ids or strings were
  swapped below may have become valid);
- an acceptance (not a 4xx other than who-asks-for-what) for a request that keeps to the
  document (`positive_data_acceptance`), on the same cases — except where it breaks a rule the
  document cannot state (`_beyond_the_schema`: opaque cursors, `near`'s `lat,lon`, a ride longer
  than a trip may cover, a reading from the future, text that is blank once stripped);
- for every 4xx/5xx, an RFC 9457 problem as /work/shared/API.md promises (`problem_details`):
  `application/problem+json` with `type`, `title`, `status` (the answer's), a `detail` naming
  what is wrong, and for a 422 `errors: [{loc, msg}]`.

To reach past the 404s, a small world is seeded first (a rider with credits, vehicles, a
confirmed and a completed trip with its saga and invoice, notifications) and generated ids are
swapped for seeded ones in about half the requests. To reach past what random text finds, a
NUL goes into about one generated string in four (PostgreSQL refuses it in text and jsonb) and
another hostile suffix (escape sequences, CRLF, BOM, RTL override, SQL) into another.

The run is bounded and reproducible: the coverage phase, then `FLEET_FUZZ_EXAMPLES` generated
examples (default 10) per operation, role and database; a fixed seed (`FLEET_FUZZ_SEED`); no
Hypothesis example database; a 10 s timeout per request and 120 s per test. About 45 s in all.
A longer or different local run:

    FLEET_FUZZ_EXAMPLES=300 uv run pytest tests/fuzz -x
    FLEET_FUZZ_SEED=$RANDOM FLEET_FUZZ_EXAMPLES=100 uv run pytest tests/fuzz -k postgres

A failure prints the failing check, the answer and a `curl` line that reproduces it (against
`fleet run`, with a real token in place of `[Filtered]`).
"""

from __future__ import annotations

import asyncio
import http
import json
import os
import tempfile
import time
import uuid
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import unquote

import pytest
import schemathesis
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis import Case, CheckContext, Response
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.types import Receive, Scope, Send

from fleet.common.app import create_app
from fleet.common.config import Settings
from fleet.common.errors import PROBLEM_BASE, PROBLEM_MEDIA_TYPE
from fleet.common.testing import create_database, drop_database
from fleet.platform.embedded import embedded_app
from fleet.platform.services import all_modules

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("FLEET_FUZZ_EXAMPLES", "10"))
SEED = int(os.environ.get("FLEET_FUZZ_SEED", "20250101"))
ROLES = ("rider", "operator")

# What `GET /openapi.json` serves (test_the_fuzzed_document_is_the_served_one proves it); built
# without starting anything, like `fleet api-doc`.
DOCUMENT = embedded_app(Settings(env="test", log_level="WARNING")).openapi()
# Mixed into a share of the generated strings: what breaks databases, logs and parsers more
# often than random text does. PostgreSQL, for one, refuses NUL in text and jsonb; SQLite
# stores it.
NUL = "\x00"
HOSTILE = (
    "\x1b[31m",
    "\r\nX-Injected: 1",
    "\u202e",
    "\ufeff",
    "🚗💨",
    "'; DROP TABLE trips; --",
    "%00",
    "../../etc/passwd",
    "e\u0301",
)
CONFIG: dict[str, Any] = {
    "seed": SEED,
    "request-timeout": 10,
    # An SSE stream of a live trip stays open: keep what came in the first half second.
    "operations": [{"include-path": "/trips/{trip_id}/tracking/stream", "request-timeout": 0.5}],
}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
# A request that breaks the document must be refused (4xx) — checked only on the cases sent as
# generated: swapping in seeded ids or hostile text can turn an invalid case into a valid one.
NEGATIVE_CHECKS = [*CHECKS, negative_data_rejection]
# …and a request that keeps to it must not be refused (2xx, or the 401/403/404/409 of who asks
# for what) — unless it breaks a rule the document cannot state (`_beyond_the_schema`).
POSITIVE_CHECKS = [*NEGATIVE_CHECKS, positive_data_acceptance]
FUZZ = settings(
    max_examples=EXAMPLES,
    database=None,  # the run is a function of the seed, not of earlier failures
    deadline=None,  # a slow example on a busy CI machine is not a bug; the request timeout is
    suppress_health_check=list(HealthCheck),
)


@schemathesis.check
def problem_details(ctx: CheckContext, response: Response, case: Case[Any]) -> bool | None:
    """Every 4xx/5xx is an RFC 9457 problem naming what is wrong (/work/shared/API.md)."""
    status = response.status_code
    if status < 400:
        return None
    media_type = (response.headers.get("content-type") or [""])[0].split(";")[0].strip()
    assert media_type == PROBLEM_MEDIA_TYPE, f"a {status} answered as {media_type!r}"
    body = json.loads(response.content)
    assert isinstance(body, dict), f"a problem is a JSON object, not {body!r}"
    for key in ("type", "title", "detail"):
        assert isinstance(body.get(key), str), f"no `{key}` in {body}"
        assert body[key], f"an empty `{key}` in {body}"
    assert body.get("status") == status, f"`status` {body.get('status')!r} in a {status}"
    if body["type"] == "about:blank":
        assert body["title"] == http.HTTPStatus(status).phrase, body
    else:
        assert body["type"].startswith(PROBLEM_BASE), body
    if status == 422:
        errors = body.get("errors")
        assert isinstance(errors, list), f"a 422 without `errors`: {body}"
        assert errors, f"a 422 with no `errors`: {body}"
        for error in errors:
            assert isinstance(error, dict), body
            assert isinstance(error.get("loc"), list), f"no `loc`: {body}"
            assert error["loc"], f"an empty `loc`: {body}"
            assert isinstance(error.get("msg"), str), f"no `msg`: {body}"
            assert error["msg"], f"an empty `msg`: {body}"
    return None


@dataclass
class World:
    """What is seeded before fuzzing: the callers' tokens and ids of things that exist."""

    tokens: dict[str, str] = field(default_factory=dict)
    ids: dict[str, list[str]] = field(default_factory=dict)

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


class Platform:
    """The platform as one ASGI app whose lifespan outlives schemathesis's per-test restarts.

    Schemathesis's pytest plugin ends an ASGI app's lifespan after every test and starts it
    again on the next request; the platform starts once per app (its metrics register once, its
    relays, bus consumers and pools live as long as the app). So the first startup builds the
    app (`backend` makes it, with its database) and runs its real lifespan in a task of its own;
    later startups and shutdowns are answered at once, until `close()`.
    """

    def __init__(self, backend: Callable[[], AbstractAsyncContextManager[FastAPI]]) -> None:
        self.backend = backend
        self.app: FastAPI | None = None
        self.world: World | None = None
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._ready: asyncio.Event | None = None
        self._stop: asyncio.Event | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            assert self.app is not None, "a request before the lifespan started"
            await self.app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self._start()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._closing:
                    await self._finish()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def as_asgi(self) -> asgi.ASGIApp:
        """The platform as schemathesis types an ASGI app: with dict messages where starlette's
        are mutable mappings (the messages the platform sends are dicts)."""
        return cast(asgi.ASGIApp, self)

    def seeded(self) -> World:
        """The world, seeded on first use (through schemathesis's own ASGI client)."""
        if self.world is None:
            with asgi.get_client(self.as_asgi()) as client:
                assert self.app is not None
                self.world = seed(client, self.app.state.fleet.settings)
        return self.world

    def close(self) -> None:
        """Stop the app for real (its lifespan's shutdown), if it ever started."""
        if self._task is None:
            return
        self._closing = True
        with asgi.get_client(self.as_asgi()):  # (re)attach to schemathesis's lifespan registry…
            pass
        asgi.shutdown_lifespans()  # …whose shutdown now reaches the app

    async def _start(self) -> None:
        if self._task is None:
            self._ready, self._stop = asyncio.Event(), asyncio.Event()
            self._task = asyncio.create_task(self._run())
        assert self._ready is not None
        ready = asyncio.create_task(self._ready.wait())
        await asyncio.wait({ready, self._task}, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if self._task.done():
            self._task.result()  # raises the startup's error
            raise RuntimeError("the platform stopped during startup")

    async def _run(self) -> None:
        assert self._ready is not None
        assert self._stop is not None
        async with self.backend() as app, LifespanManager(app, 60, 60):
            self.app = app
            self._ready.set()
            await self._stop.wait()

    async def _finish(self) -> None:
        if self._task is not None and self._stop is not None:
            self._stop.set()
            task, self._task = self._task, None
            await task


def _settings(data_dir: str, database_url: str | None = None) -> Settings:
    # Explicit: a DATABASE_URL, AMQP_URL or REDIS_URL in the environment must not leak in.
    return Settings(
        env="test",
        data_dir=Path(data_dir),
        database_url=database_url,
        amqp_url=None,
        redis_url=None,
        log_level="WARNING",
    )


@asynccontextmanager
async def embedded() -> AsyncIterator[FastAPI]:
    """`fleet run`'s platform: SQLite files in a temporary data dir, the in-memory bus."""
    with tempfile.TemporaryDirectory(prefix="fleet-fuzz-") as data_dir:
        yield embedded_app(_settings(data_dir))


@asynccontextmanager
async def on_postgres() -> AsyncIterator[FastAPI]:
    """The same platform on a throwaway PostgreSQL database."""
    url = await asyncio.to_thread(create_database)
    try:
        with tempfile.TemporaryDirectory(prefix="fleet-fuzz-") as data_dir:
            modules = all_modules()
            yield create_app(modules, _settings(data_dir, url), migrate_on_startup=True)
    finally:
        await asyncio.to_thread(drop_database, url)


RIDER = {"email": "fuzz-rider@example.com", "password": "fuzz-password", "name": "Fuzz Rider"}
SEOUL = {"lat": 37.5665, "lon": 126.978}
NEARBY = {"lat": 37.58, "lon": 126.98}


def seed(client: Any, settings: Settings) -> World:
    """A rider with credits, vehicles, a confirmed and a completed trip (with saga, invoice and
    notifications): things for the fuzzed ids to hit."""
    world = World()
    assert client.post("/auth/register", json=RIDER).status_code == 201
    for role, (email, password) in {
        "rider": (RIDER["email"], RIDER["password"]),
        "operator": (settings.admin_email, settings.admin_password.get_secret_value()),
    }.items():
        r = client.post("/auth/token", data={"username": email, "password": password})
        world.tokens[role] = r.json()["access_token"]
    rider, op = world.headers("rider"), world.headers("operator")
    assert client.post("/wallet/top-up", json={"amount_cents": 100_000}, headers=rider).ok
    for n in range(3):
        vehicle = {"vin": f"5YJ3E1EA7KF3170{n:02d}", "model": "Ioniq5", "seats": 4, **SEOUL}
        r = client.post("/vehicles", json=vehicle, headers=op)
        assert r.status_code == 201, r.text
        world.ids.setdefault("vehicle_id", []).append(r.json()["id"])
    completed, confirmed = _book(client, rider), _book(client, rider)
    assert client.post(f"/trips/{completed['id']}/start", headers=op).ok
    r = client.post(f"/trips/{completed['id']}/complete", json={"distance_km": 2.5}, headers=op)
    assert r.ok, r.text
    world.ids["trip_id"] = [confirmed["id"], completed["id"]]
    world.ids["saga_id"] = [confirmed["saga_id"], completed["saga_id"]]
    world.ids["invoice_id"] = [_eventually(client, "/invoices", rider)[0]["id"]]
    world.ids["notification_id"] = [n["id"] for n in _eventually(client, "/notifications", rider)]
    world.ids["queue"] = client.get("/dead-letters", headers=op).json()
    return world


def _book(client: Any, rider: dict[str, str]) -> dict[str, Any]:
    r = client.post("/trips", json={"pickup": SEOUL, "dropoff": NEARBY}, headers=rider)
    assert r.status_code == 202, r.text
    trip: dict[str, Any] = r.json()
    deadline = time.monotonic() + 20
    while trip["status"] == "pending" and time.monotonic() < deadline:
        time.sleep(0.05)
        trip = client.get(f"/trips/{trip['id']}", headers=rider).json()
    assert trip["status"] == "confirmed", trip
    return trip


def _eventually(client: Any, path: str, who: dict[str, str]) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 20
    while not (items := client.get(path, headers=who).json()["items"]):
        assert time.monotonic() < deadline, f"{path} stayed empty"
        time.sleep(0.05)
    items_: list[dict[str, Any]] = items
    return items_


def _known(world: World, name: str, value: Any) -> Any:
    """The generated `value` of `name`, or in about half the cases (decided by the value, so
    that a seed replays) a seeded id of that kind. Only well-formed values are swapped: an
    invalid one stays, to be refused."""
    known = world.ids.get(name)
    if not known or not isinstance(value, str) or not value:
        return value
    if name != "queue" and not _is_uuid(value):
        return value
    pick = _pick(value)
    return known[pick % len(known)] if pick % 2 == 0 else value


def _hostile(value: Any) -> Any:
    """`value` with a NUL in about one string in four and one of the HOSTILE strings appended
    to another (decided by the string, so that a seed replays). Ids stay as they are."""
    if isinstance(value, dict):
        return {k: _hostile(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_hostile(v) for v in value]
    if not isinstance(value, str) or _is_uuid(value):
        return value
    pick = _pick(value)
    if pick % 4 == 0:
        return value[:1] + NUL + value[1:]
    if pick % 4 == 1:
        return value + HOSTILE[pick // 4 % len(HOSTILE)]
    return value


def _pick(value: str) -> int:
    return zlib.crc32(value.encode("utf-8", "surrogatepass"))


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


# A test of one generated case, sent as one of the ROLES.
FuzzTest = Callable[[Case[Any], str], None]


def fuzzed(platform: Platform) -> Callable[[FuzzTest], FuzzTest]:
    """`parametrize()` of the served document, its requests sent to `platform`: a test runs
    once per generated case. (Schemathesis types the decorator as a bare `Callable`; this one
    keeps the test's signature.)"""
    schema = schemathesis.openapi.from_dict(DOCUMENT, config=schemathesis.Config.from_dict(CONFIG))
    schema.app = platform
    parametrize: Callable[[FuzzTest], FuzzTest] = schema.parametrize()
    return parametrize


EMBEDDED = Platform(embedded)
POSTGRES = Platform(on_postgres)
embedded_cases = fuzzed(EMBEDDED)
postgres_cases = fuzzed(POSTGRES)


@pytest.fixture(scope="module", autouse=True)
def _platforms() -> Iterator[None]:
    yield
    for platform in (EMBEDDED, POSTGRES):
        platform.close()


@pytest.fixture(params=ROLES)
def role(request: pytest.FixtureRequest) -> str:
    role: str = request.param
    return role


def _beyond_the_schema(case: Case[Any]) -> str | None:
    """Why a request that keeps to the document may still be refused with a 422: a rule that
    OpenAPI cannot state (the 422 names it), or None."""
    query = case.query or {}
    if "cursor" in query:
        return "a cursor is an opaque token: one the API did not issue does not decode"
    if case.path == "/vehicles" and ("near" in query or "radius_km" in query):
        return (
            "near is `lat,lon` in one string (syntax and ranges in its description only); "
            "radius_km needs near (a dependency between parameters)"
        )
    if case.method.upper() == "POST" and case.path == "/quotes":
        return "a ride longer than a trip may cover (a rule on two points' distance)"
    if case.method.upper() == "POST" and case.path == "/vehicles/{vehicle_id}/telemetry":
        return "a reading at most 5 minutes ahead of the server's clock (a rule on the clock)"
    if _has_blank_text(case.body):
        return "text is stripped of surrounding whitespace before its minimum length applies"
    return None


def _percent_escaped_path(case: Case[Any]) -> bool:
    """Whether a path value holds `%` escapes: the server reads `A%20B` as `A B`, so a value
    generated to break a pattern (`%` is not allowed) may arrive keeping to it."""
    return any(isinstance(v, str) and unquote(v) != v for v in case.path_parameters.values())


def _has_blank_text(value: object) -> bool:
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, dict):
        return any(_has_blank_text(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_blank_text(v) for v in value)
    return False


def _fuzz(case: Case[Any], platform: Platform, role: str) -> None:
    world = platform.seeded()
    generated = json.dumps([case.path_parameters, case.body, case.query], default=repr)
    # Mixed in here rather than in generation hooks, so that the coverage phase's cases get it.
    case.path_parameters = {k: _known(world, k, v) for k, v in case.path_parameters.items()}
    if isinstance(case.body, dict):
        case.body = {k: _known(world, k, v) for k, v in case.body.items()}
    case.body = _hostile(case.body)
    case.query = _hostile(case.query)
    sent = json.dumps([case.path_parameters, case.body, case.query], default=repr)
    if sent != generated or _percent_escaped_path(case):
        checks = CHECKS
    elif _beyond_the_schema(case) is not None:
        checks = NEGATIVE_CHECKS
    else:
        checks = POSITIVE_CHECKS
    case.call_and_validate(
        headers=world.headers(role), checks=checks, additional_checks=[problem_details]
    )


@embedded_cases
@FUZZ
@pytest.mark.timeout(120)
def test_embedded_platform_answers_every_request_as_documented(case: Case[Any], role: str) -> None:
    _fuzz(case, EMBEDDED, role)


@postgres_cases
@FUZZ
@pytest.mark.timeout(120)
def test_platform_on_postgres_answers_every_request_as_documented(
    case: Case[Any], role: str
) -> None:
    _fuzz(case, POSTGRES, role)


def test_the_fuzzed_document_is_the_served_one() -> None:
    with asgi.get_client(EMBEDDED.as_asgi()) as client:
        served = client.get("/openapi.json")
    assert served.status_code == 200
    assert served.json() == json.loads(json.dumps(DOCUMENT))

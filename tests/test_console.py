"""The operations console at /console, on the embedded platform in process (SQLite files, the
in-memory bus) and on the gateway in front of it: sign-in, every page with real data, escaping,
CSRF, and the API's refusals or absence shown as messages."""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from fleet.common.config import DEV_ADMIN_EMAIL, DEV_ADMIN_PASSWORD
from fleet.common.messaging import Envelope, MessageBus
from fleet.common.testing import local_settings, serving
from fleet.platform.client import Platform, User, eventually
from fleet.platform.console import console_app
from fleet.platform.embedded import embedded_app
from fleet.platform.gateway import gateway_app, owner_of

SCRIPT = "<script>alert(1)</script>"
CSRF = re.compile(r'name="csrf" value="([^"]*)"')
LOGIN_CSRF = re.compile(r'name="login_csrf" value="([^"]*)"')
PREVIOUS = "\N{SINGLE LEFT-POINTING ANGLE QUOTATION MARK} Previous page"


@dataclass
class Console:
    """A browser on the console: cookies kept, redirects looked at, not followed."""

    http: httpx.AsyncClient
    base: str = "/console"

    async def page(self, path: str, status: int = 200) -> str:
        r = await self.http.get(self.base + path)
        assert r.status_code == status, r.text
        assert r.headers["content-type"].startswith("text/html")
        return r.text

    async def follow(self, page: str, label: str) -> str:
        """The page the link labelled `label` on `page` leads to."""
        return await self.page(link(page, label).removeprefix(self.base))

    async def csrf(self, path: str = "/") -> str:
        found = CSRF.search(await self.page(path))
        assert found, "no CSRF token on the page"
        return found.group(1)

    async def post(self, path: str, **form: str) -> httpx.Response:
        return await self.http.post(self.base + path, data=form)

    async def login(self, email: str, password: str, next_: str = "") -> httpx.Response:
        token = LOGIN_CSRF.search(await self.page("/login"))
        assert token
        form = {"email": email, "password": password, "login_csrf": token.group(1), "next": next_}
        return await self.post("/login", **form)

    async def operator(self) -> None:
        r = await self.login(DEV_ADMIN_EMAIL, DEV_ADMIN_PASSWORD)
        assert (r.status_code, r.headers["location"]) == (303, f"{self.base}/"), r.text


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[FastAPI]:
    platform = embedded_app(local_settings(tmp_path))
    async with LifespanManager(platform, startup_timeout=30, shutdown_timeout=30):
        yield platform


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://fleet.test") as client:
        yield client


@pytest.fixture
def api(http: httpx.AsyncClient) -> Platform:
    return Platform(http)


@pytest.fixture
def console(http: httpx.AsyncClient) -> Console:
    return Console(http)


def texts(page: str) -> str:
    """The page's text with entities decoded, to look for values as an operator reads them."""
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def link(page: str, label: str) -> str:
    found = re.search(rf'<a href="([^"]+)"[^>]*>{re.escape(label)}', page)
    assert found, f"no link {label!r}"
    return html.unescape(found.group(1))


async def test_an_operator_signs_in_with_a_strict_http_only_cookie_and_signs_out(
    console: Console,
) -> None:
    r = await console.http.get("/console/trips?status=pending")
    assert r.status_code == 303
    assert r.headers["location"] == "/console/login?next=%2Fconsole%2Ftrips%3Fstatus%3Dpending"

    r = await console.login(DEV_ADMIN_EMAIL, DEV_ADMIN_PASSWORD, "/console/trips?status=pending")
    assert (r.status_code, r.headers["location"]) == (303, "/console/trips?status=pending")
    cookie = next(c for c in r.headers.get_list("set-cookie") if "session" in c).lower()
    for attribute in ("httponly", "samesite=strict", "path=/console", "max-age=3600"):
        assert attribute in cookie
    assert "secure" not in cookie  # plain http here; https sets it
    assert "Sign out" in await console.page("/trips?status=pending")

    assert (await console.post("/logout", csrf="forged")).status_code == 403
    r = await console.post("/logout", csrf=await console.csrf())
    assert (r.status_code, r.headers["location"]) == (303, "/console/login")
    assert "Signed out." in await console.page("/login")
    assert (await console.http.get("/console/")).status_code == 303


async def test_over_https_the_session_cookie_is_secure(app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://fleet.test") as http:
        r = await Console(http).login(DEV_ADMIN_EMAIL, DEV_ADMIN_PASSWORD)
    assert r.status_code == 303
    assert "; secure" in r.headers.get_list("set-cookie")[0].lower()


async def test_sign_in_refuses_wrong_passwords_foreign_forms_and_open_redirects(
    console: Console,
) -> None:
    r = await console.login(DEV_ADMIN_EMAIL, "not-the-password")
    assert r.status_code == 401
    assert "Wrong email or password." in r.text
    assert "fleet_console_session" not in r.headers.get("set-cookie", "")

    # a login form posted from elsewhere has no matching cookie
    form = {"email": DEV_ADMIN_EMAIL, "password": DEV_ADMIN_PASSWORD, "login_csrf": "x"}
    assert (await console.post("/login", **form)).status_code == 403

    for elsewhere in ("https://evil.example/", "//evil.example/console/", "/console\\@evil"):
        r = await console.login(DEV_ADMIN_EMAIL, DEV_ADMIN_PASSWORD, elsewhere)
        assert r.headers.get("location") == "/console/", r.text


async def test_a_rider_is_refused_and_gets_no_session(api: Platform, console: Console) -> None:
    rider = await api.rider()
    email = (await api.get(rider, "/users/me"))["email"]

    r = await console.login(email, "correct-horse-9")

    assert r.status_code == 403
    assert "not an operator" in r.text
    assert "fleet_console_session" not in r.headers.get("set-cookie", "")
    # a rider's token slipped into the cookie by hand: the API refuses, the console says so
    token = rider.headers["Authorization"].removeprefix("Bearer ")
    console.http.cookies.set("fleet_console_session", token, path="/console")
    assert "operator role required" in await console.page("/", 403)


async def test_an_invalid_or_expired_session_goes_back_to_the_login(console: Console) -> None:
    console.http.cookies.set("fleet_console_session", "not.a.jwt", path="/console")

    r = await console.http.get("/console/invoices")

    assert (r.status_code, r.headers["location"]) == (
        303,
        "/console/login?next=%2Fconsole%2Finvoices",
    )
    assert "fleet_console_session=" in r.headers.get_list("set-cookie")[-1]  # cleared
    assert "session has expired" in await console.page("/login")


async def _booked_trip(api: Platform, op: User) -> tuple[User, dict[str, Any]]:
    body = {"vin": "5YJ3E1EA0KF000001", "model": SCRIPT, "seats": 4, "lat": 37.5665, "lon": 126.978}
    r = await api.http.post("/vehicles", json=body, headers=op.headers)
    assert r.status_code == 201, r.text
    rider = await api.rider(credits_cents=10_000)
    trip = await api.settled(rider, (await api.book(rider))["id"], within=10)
    assert trip["status"] == "confirmed", trip
    return rider, trip


async def test_every_page_shows_real_data_after_a_booking_and_runs_the_trip(
    api: Platform, console: Console
) -> None:
    op = await api.operator()
    _rider, trip = await _booked_trip(api, op)
    await console.operator()

    dashboard = texts(await console.page("/"))
    assert "1 active trips" in re.sub(r"\s+", " ", dashboard)
    assert "billing.events" in dashboard

    vehicles = await console.page("/vehicles")
    assert "5YJ3E1EA0KF000001" in vehicles
    assert SCRIPT not in vehicles  # the model is shown, escaped
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in vehicles
    assert "5YJ3E1EA0KF000001" not in await console.page("/vehicles?status=offline")

    assert trip["id"] in await console.page("/trips?status=confirmed")
    assert trip["id"] not in await console.page("/trips?status=completed")
    detail = texts(await console.page(f"/trips/{trip['id']}"))
    assert "Booking saga" in detail
    saga = await api.get(op, f"/sagas/{trip['saga_id']}")
    assert saga["steps"]
    for step in saga["steps"]:
        assert step["name"] in detail

    # start and complete through the console's forms: 303 back to the trip with the outcome
    csrf = await console.csrf(f"/trips/{trip['id']}")
    r = await console.post(f"/trips/{trip['id']}/start", csrf=csrf)
    assert (r.status_code, r.headers["location"]) == (303, f"/console/trips/{trip['id']}")
    assert "Trip started." in await console.page(f"/trips/{trip['id']}")
    r = await console.post(f"/trips/{trip['id']}/complete", csrf=csrf, distance_km="abc")
    assert "must be numbers" in await console.page(f"/trips/{trip['id']}")
    r = await console.post(f"/trips/{trip['id']}/complete", csrf=csrf, distance_km="5")
    assert "Trip completed." in await console.page(f"/trips/{trip['id']}")
    assert (await api.trip(op, trip["id"]))["status"] == "completed"
    # a refused transition is a flashed message, not an error page
    await console.post(f"/trips/{trip['id']}/start", csrf=csrf)
    assert "The trip was not started" in await console.page(f"/trips/{trip['id']}")

    invoice = await eventually(
        lambda: api.get(op, "/invoices"), lambda page: bool(page["items"]), within=10
    )
    invoices = await console.page("/invoices")
    assert invoice["items"][0]["id"] in invoices
    assert trip["id"] in invoices
    await eventually(lambda: api.get(op, "/analytics/trips/daily"), bool, within=10)
    assert "1 trips" in texts(await console.page("/"))
    # the host app's metrics tell console pages from the API routes they mirror
    metrics = (await console.http.get("/metrics")).text
    assert 'route="/console/trips/{trip_id}"' in metrics


async def _poisoned(app: FastAPI, api: Platform, op: User) -> dict[str, Any]:
    """A malformed `trip.completed` carrying a script: parked at once in billing.events."""
    bus: MessageBus = app.state.fleet.bus
    poison = Envelope.new(
        "trip.completed",
        {"trip_id": "not-a-uuid", "note": SCRIPT},
        producer="trip",
        aggregate_type="trip",
        aggregate_id=uuid.uuid4(),
    )
    await bus.publish(poison)
    letters = await eventually(lambda: api.get(op, "/dead-letters/billing.events"), bool, within=5)
    letter: dict[str, Any] = letters[0]
    return letter


async def test_replay_needs_the_sessions_csrf_token_and_then_replays(
    app: FastAPI, api: Platform, console: Console
) -> None:
    op = await api.operator()
    letter = await _poisoned(app, api, op)
    await console.operator()

    page = await console.page("/dead-letters/billing.events")
    assert letter["id"] in page
    assert SCRIPT not in page
    assert "&lt;script&gt;" in page  # the body preview, escaped
    queues = texts(await console.page("/dead-letters"))
    assert re.search(r"billing\.events\s+1\b", queues)

    path = "/dead-letters/billing.events/replay"
    assert (await console.post(path, id=letter["id"])).status_code == 403
    assert (await console.post(path, id=letter["id"], csrf="0" * 64)).status_code == 403
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://x") as h:
        other = Console(h)
        await other.operator()
        foreign = await other.csrf()  # valid, but for another session
    assert (await console.post(path, id=letter["id"], csrf=foreign)).status_code == 403
    assert (await api.get(op, "/dead-letters/billing.events"))[0]["id"] == letter["id"]

    r = await console.post(path, id=letter["id"], csrf=await console.csrf())

    assert (r.status_code, r.headers["location"]) == (303, "/console/dead-letters/billing.events")
    assert "Replayed 1 dead letter(s) of billing.events." in await console.page(
        r.headers["location"].removeprefix("/console")
    )


async def test_lists_page_with_the_apis_cursor_and_keep_their_filter(
    api: Platform, console: Console
) -> None:
    op = await api.operator()
    ids = [await api.vehicle(op, n) for n in range(3)]
    await console.operator()

    first = await console.page("/vehicles?status=available&limit=2")
    assert "First page" not in first
    assert "status=available" in link(first, "Next page")
    second = await console.follow(first, "Next page")

    assert [i in first for i in ids] == [False, True, True]  # newest first
    assert [i in second for i in ids] == [True, False, False]
    assert "Next page" not in second
    assert link(second, "« First page") == "/console/vehicles?status=available&limit=2"


async def test_previous_page_leads_back_page_by_page_to_the_first_pages_items(
    api: Platform, console: Console
) -> None:
    op = await api.operator()
    ids = [await api.vehicle(op, n) for n in range(3)]
    await console.operator()

    first = await console.page("/vehicles?status=available&limit=1")
    second = await console.follow(first, "Next page")
    third = await console.follow(second, "Next page")
    assert [[i in p for i in ids] for p in (first, second, third)] == [
        [False, False, True],  # newest first
        [False, True, False],
        [True, False, False],
    ]
    assert "Previous page" not in first

    again_second = await console.follow(third, PREVIOUS)
    assert [i in again_second for i in ids] == [False, True, False]
    assert link(again_second, "Next page") == link(second, "Next page")
    to_first = link(again_second, PREVIOUS)
    assert to_first == "/console/vehicles?status=available&limit=1"
    again_first = await console.page(to_first.removeprefix("/console"))
    assert [i in again_first for i in ids] == [False, False, True]
    assert "Previous page" not in again_first


async def test_a_forged_or_overlong_page_trail_is_ignored_and_the_trail_stays_bounded(
    api: Platform, console: Console
) -> None:
    op = await api.operator()
    for n in range(3):
        await api.vehicle(op, n)
    await console.operator()
    next_link = link(await console.page("/vehicles?limit=1"), "Next page")
    [cursor] = parse_qs(urlsplit(next_link).query)["cursor"]
    here = f"/vehicles?limit=1&cursor={cursor}"

    for trail in (f"back={quote(SCRIPT)}", "&".join(["back="] * 21)):
        page = await console.page(f"{here}&{trail}")
        assert "Previous page" not in page
        assert link(page, "« First page") == "/console/vehicles?limit=1"
        assert SCRIPT not in page

    page = await console.page(here + "".join(f"&back={cursor}" for _ in range(20)))
    carried = parse_qs(urlsplit(link(page, "Next page")).query)["back"]
    assert carried == [cursor] * 20  # the oldest dropped, this page's cursor added


async def test_an_operator_takes_a_vehicle_out_of_service_and_back_through_its_page(
    api: Platform, console: Console
) -> None:
    op = await api.operator()
    vehicle_id = await api.vehicle(op, 1)
    await console.operator()
    here = f"/vehicles/{vehicle_id}"
    assert here in await console.page("/vehicles")  # the list links each vehicle's page
    csrf = await console.csrf(here)

    r = await console.post(f"{here}/status", csrf=csrf, status="maintenance")

    assert (r.status_code, r.headers["location"]) == (303, f"/console{here}")
    assert (await api.get(op, here))["status"] == "maintenance"
    page = texts(await console.page(here))
    assert "Vehicle status set to maintenance." in page
    assert "Put back in service" in page
    await console.post(f"{here}/status", csrf=csrf, status="available")
    assert "Vehicle status set to available." in texts(await console.page(here))
    assert (await api.get(op, here))["status"] == "available"


async def test_a_vehicle_status_form_without_the_sessions_csrf_token_changes_nothing(
    api: Platform, console: Console
) -> None:
    op = await api.operator()
    vehicle_id = await api.vehicle(op, 1)
    await console.operator()
    path = f"/vehicles/{vehicle_id}/status"

    assert (await console.post(path, status="offline")).status_code == 403
    assert (await console.post(path, status="offline", csrf="0" * 64)).status_code == 403

    assert (await api.get(op, f"/vehicles/{vehicle_id}"))["status"] == "available"


async def test_a_refused_status_change_is_flashed_with_the_apis_reason(
    api: Platform, console: Console
) -> None:
    op = await api.operator()
    _rider, trip = await _booked_trip(api, op)
    here = f"/vehicles/{trip['vehicle_id']}"
    await api.vehicle_becomes(op, trip["vehicle_id"], "reserved")
    await console.operator()
    page = await console.page(here)
    assert "None while the vehicle is reserved" in texts(page)  # no form offered
    assert SCRIPT not in page  # the model, escaped

    # a form loaded before the booking reserved the vehicle, submitted after
    r = await console.post(f"{here}/status", csrf=await console.csrf(here), status="maintenance")

    assert (r.status_code, r.headers["location"]) == (303, f"/console{here}")
    reason = f"vehicle {trip['vehicle_id']} is reserved; wait until its trip ends"
    assert f"The status was not changed: {reason}" in texts(await console.page(here))
    assert (await api.get(op, here))["status"] == "reserved"
    await console.post(f"{here}/status", csrf=await console.csrf(here), status="in_trip")
    assert "Choose one of available, maintenance, offline." in texts(await console.page(here))


async def test_api_refusals_are_messages_on_the_page(api: Platform, console: Console) -> None:
    await console.operator()

    missing = await console.page(f"/trips/{uuid.uuid4()}", 404)
    assert "not found" in missing
    assert "No such trip." in await console.page("/trips/not-a-uuid", 404)
    assert "No such vehicle." in await console.page("/vehicles/not-a-uuid", 404)
    assert "not found" in await console.page(f"/vehicles/{uuid.uuid4()}", 404)
    assert "No such queue." in await console.page("/dead-letters/%3Cscript%3E", 404)
    too_many = await console.page("/vehicles?limit=500", 422)
    assert "limit" in too_many
    scripted = await console.page(f"/vehicles?status={SCRIPT}", 422)
    assert SCRIPT not in scripted
    assert "No such page." in await console.page("/nowhere", 404)


async def test_an_unreachable_api_is_a_message_not_a_crash() -> None:
    down = console_app("http://127.0.0.1:9")  # nothing listens there
    transport = httpx.ASGITransport(app=down)
    async with httpx.AsyncClient(transport=transport, base_url="http://console") as http:
        c = Console(http, base="")
        r = await c.login(DEV_ADMIN_EMAIL, DEV_ADMIN_PASSWORD)
        assert r.status_code == 502
        assert "did not answer" in r.text

        http.cookies.set("fleet_console_session", "some.jwt.token")
        dashboard = await c.page("/")  # each section says what failed; the page stands
        assert dashboard.count("did not answer") == 3
        assert "did not answer (ConnectError)" in await c.page("/trips", 502)
        r = await c.post("/dead-letters/billing.events/replay", csrf=await c.csrf("/"))
        assert (r.status_code, r.headers["location"]) == (303, "/dead-letters/billing.events")
        after = await c.page("/dead-letters/billing.events", 502)
        assert "Nothing was replayed: the platform API did not answer" in after


async def test_the_gateway_serves_the_console_over_the_services(
    app: FastAPI, api: Platform, tmp_path: Path
) -> None:
    """The gateway's console reaches the services through the gateway's own proxy; here every
    service is the embedded app on a real port."""
    op = await api.operator()
    await _poisoned(app, api, op)
    async with serving(app) as url:
        gateway = gateway_app(dict.fromkeys(("user", "vehicle", "trip", "billing"), url))
        async with (
            gateway.router.lifespan_context(gateway),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=gateway), base_url="http://gw"
            ) as http,
        ):
            console = Console(http)
            await console.operator()
            assert re.search(r"billing\.events\s+1\b", texts(await console.page("/")))
            assert "&lt;script&gt;" in await console.page("/dead-letters/billing.events")
            assert "Vehicles" in await console.page("/vehicles")


def test_the_gateway_routes_a_queues_dead_letters_to_the_service_it_is_named_after() -> None:
    assert owner_of("/dead-letters/billing.events") == "billing"
    assert owner_of("/dead-letters/trip.saga-replies/replay") == "trip"
    assert owner_of("/dead-letters/nobody.events") is None
    assert owner_of("/trips/1") == "trip"

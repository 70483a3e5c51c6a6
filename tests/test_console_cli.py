"""`fleet console`: the console served alone (as its container runs it), against the platform's
API URL or straight against the services' URLs, here the embedded platform on a real port."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from starlette.applications import Starlette
from typer.testing import CliRunner

from fleet.common.config import DEV_ADMIN_EMAIL, DEV_ADMIN_PASSWORD
from fleet.common.testing import local_settings, serving
from fleet.contracts.queues import QUEUES
from fleet.platform.cli import app as cli
from fleet.platform.cli import console_server
from fleet.platform.console import console_secret
from fleet.platform.embedded import embedded_app
from fleet.platform.services import SERVICE_NAMES

LOGIN_CSRF = re.compile(r'name="login_csrf" value="([^"]*)"')
CSRF = re.compile(r'name="csrf" value="([^"]*)"')
KEY = b"k" * 32


@pytest.fixture
async def platform_url(tmp_path: Path) -> AsyncIterator[str]:
    """The embedded platform, started, on a real port: what the console's API URL points at."""
    settings = local_settings(tmp_path)
    platform = embedded_app(settings, console=False)
    async with (
        LifespanManager(platform, startup_timeout=30, shutdown_timeout=30),
        serving(platform) as url,
    ):
        yield url


@asynccontextmanager
async def browser(server: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the console server, started as uvicorn would start it (its lifespan)."""
    async with (
        LifespanManager(server),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=server), base_url="http://c") as http,
    ):
        yield http


async def sign_in(http: httpx.AsyncClient) -> None:
    page = await http.get("/console/login")
    assert page.status_code == 200
    token = LOGIN_CSRF.search(page.text)
    assert token
    form = {"email": DEV_ADMIN_EMAIL, "password": DEV_ADMIN_PASSWORD, "login_csrf": token[1]}
    r = await http.post("/console/login", data=form)
    assert (r.status_code, r.headers["location"]) == (303, "/console/"), r.text


async def test_the_console_alone_answers_health_and_login_and_signs_in_through_the_api_url(
    platform_url: str,
) -> None:
    async with browser(console_server(platform_url, KEY)) as http:
        assert (await http.get("/health")).json() == {"status": "ok"}
        await sign_in(http)  # POST /auth/token and GET /users/me on the platform
        vehicles = await http.get("/console/vehicles")
        assert vehicles.status_code == 200
        assert "Vehicles" in vehicles.text
        # Only the console is served: the API stays where --api-url points.
        assert (await http.get("/dead-letters")).status_code == 404


async def test_on_the_services_urls_it_routes_itself_and_lists_every_services_queues(
    platform_url: str,
) -> None:
    server = console_server(dict.fromkeys(SERVICE_NAMES, platform_url), KEY)
    async with browser(server) as http:
        await sign_in(http)
        dashboard = await http.get("/console/")
        assert dashboard.status_code == 200
        for queue in QUEUES:
            assert queue.name in dashboard.text
        async with httpx.AsyncClient(base_url=platform_url) as api:
            credentials = {"username": DEV_ADMIN_EMAIL, "password": DEV_ADMIN_PASSWORD}
            token = (await api.post("/auth/token", data=credentials)).json()["access_token"]
        union = await http.get("/dead-letters", headers={"authorization": f"Bearer {token}"})
        assert union.json() == sorted(q.name for q in QUEUES)
        assert (await http.get("/dead-letters")).status_code == 401  # the services decide


async def test_replicas_sharing_the_key_accept_each_others_forms(platform_url: str) -> None:
    async with (
        browser(console_server(platform_url, KEY)) as one,
        browser(console_server(platform_url, KEY)) as other,
        browser(console_server(platform_url, b"x" * 32)) as stranger,
    ):
        await sign_in(one)
        csrf = CSRF.search((await one.get("/console/")).text)
        assert csrf
        replay = {"csrf": csrf[1]}
        for http in (other, stranger):
            http.cookies = one.cookies
        page = "/console/dead-letters/billing.events"
        r = await other.post(f"{page}/replay", data=replay)
        assert (r.status_code, r.headers["location"]) == (303, page)
        refused = await stranger.post(f"{page}/replay", data=replay)
        assert refused.status_code == 403


def test_the_key_comes_from_the_environment_and_is_required_outside_dev() -> None:
    good = "s" * 32
    assert console_secret({"FLEET_ENV": "prod", "FLEET_CONSOLE_SECRET": good}) == good.encode()
    assert console_secret({"FLEET_ENV": "dev"}) is None  # a random key per process
    assert console_secret({}) is None
    with pytest.raises(ValueError, match="FLEET_CONSOLE_SECRET must be set"):
        console_secret({"FLEET_ENV": "prod"})
    with pytest.raises(ValueError, match="at least 32 characters"):
        console_secret({"FLEET_ENV": "dev", "FLEET_CONSOLE_SECRET": "short"})


def test_the_gateways_and_embedded_console_use_the_key_when_given_and_never_require_it() -> None:
    good = "g" * 32
    assert console_secret({"FLEET_ENV": "prod"}, required=False) is None
    assert console_secret({"FLEET_CONSOLE_SECRET": good}, required=False) == good.encode()
    with pytest.raises(ValueError, match="at least 32 characters"):
        console_secret({"FLEET_CONSOLE_SECRET": "short"}, required=False)


@pytest.mark.parametrize(
    ("args", "env", "complaint"),
    [
        ([], {}, "needs the platform API"),
        (["--api-url", "http://a", "--upstream", "user=http://u"], {}, "not both"),
        (["--api-url", "gateway:8000"], {}, "must be an http(s) URL"),
        (["--upstream", "nobody=http://n"], {}, "unknown service"),
        (["--api-url", "http://a"], {"FLEET_ENV": "prod"}, "FLEET_CONSOLE_SECRET must be set"),
    ],
)
def test_the_command_refuses_to_start_without_an_api_or_a_key(
    monkeypatch: pytest.MonkeyPatch, args: list[str], env: dict[str, str], complaint: str
) -> None:
    for name in ("FLEET_API_URL", "FLEET_CONSOLE_SECRET", "FLEET_ENV"):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(cli, ["console", *args], env=env)
    assert result.exit_code == 2
    assert complaint in " ".join(result.output.split())

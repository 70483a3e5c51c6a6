"""deploy/compose/docker-compose.yml: valid for Compose itself, and consistent with the code."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from importlib.resources import files
from types import ModuleType
from typing import Any

import jsonschema
import pytest
import yaml

from fleet.common.config import Settings
from fleet.platform.cli import CONSOLE_PORT
from fleet.platform.console import console_secret
from fleet.platform.distributed import PORTS
from fleet.platform.services import SERVICE_NAMES

JOBS = [f"migrate-{name}" for name in SERVICE_NAMES]
FLEET_CONTAINERS = [*SERVICE_NAMES, "gateway", "console", "keys", *JOBS]


def test_compose_file_meets_the_compose_specification(kit: ModuleType) -> None:
    raw = yaml.safe_load((kit.COMPOSE_DIR / "docker-compose.yml").read_text())
    schema_file = files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(schema_file.read_text())
    jsonschema.validate(raw, schema)


def test_compose_resolves_the_stack_with_the_example_env(compose_config: dict[str, Any]) -> None:
    services = compose_config["services"]
    infrastructure = {"postgres", "rabbitmq", "redis", "jaeger", "prometheus"}
    assert set(services) == set(FLEET_CONTAINERS) | infrastructure


def test_compose_refuses_to_run_without_the_credentials(kit: ModuleType) -> None:
    result = kit.run_compose("config", "--quiet", env_file=None)
    assert result.returncode != 0
    assert "set in .env" in result.stderr


def test_the_only_credentials_are_the_marked_dev_defaults_of_the_example_env(
    kit: ModuleType,
) -> None:
    compose_text = (kit.COMPOSE_DIR / "docker-compose.yml").read_text()
    example = dict(
        line.split("=", 1)
        for line in (kit.COMPOSE_DIR / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    secrets = {k: v for k, v in example.items() if k.endswith(("PASSWORD", "SECRET"))}
    assert {"FLEET_ADMIN_PASSWORD", "FLEET_CONSOLE_SECRET"} <= set(secrets)
    for name, value in secrets.items():
        assert value.startswith("dev-only-"), name
        assert value not in compose_text, name
    assert "DEV-ONLY" in (kit.COMPOSE_DIR / ".env.example").read_text()
    assert ".env" in (kit.COMPOSE_DIR / ".gitignore").read_text().split()


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_every_service_of_the_catalogue_serves_on_its_port(
    kit: ModuleType, compose_config: dict[str, Any], name: str
) -> None:
    service = compose_config["services"][name]
    port = str(PORTS[name])
    assert service["command"] == ["serve", name, "--host", kit.ANY_HOST, "--port", port]
    assert service["expose"] == [port]
    assert service["environment"]["FLEET_PORT"] == port
    assert f"http://127.0.0.1:{port}/ready" in " ".join(service["healthcheck"]["test"])


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_every_service_starts_after_its_migration_keys_and_brokers(
    compose_config: dict[str, Any], name: str
) -> None:
    services = compose_config["services"]
    job = services[f"migrate-{name}"]
    assert job["command"] == ["migrate", name]
    assert job["depends_on"]["postgres"]["condition"] == "service_healthy"
    waits = {dep: cond["condition"] for dep, cond in services[name]["depends_on"].items()}
    assert waits == {
        f"migrate-{name}": "service_completed_successfully",
        "keys": "service_completed_successfully",
        "rabbitmq": "service_healthy",
        "redis": "service_healthy",
    }


def test_gateway_routes_to_every_service_and_waits_until_they_are_ready(
    compose_config: dict[str, Any],
) -> None:
    gateway = compose_config["services"]["gateway"]
    upstreams = dict(
        arg.removeprefix("--upstream=").split("=", 1)
        for arg in gateway["command"]
        if arg.startswith("--upstream=")
    )
    assert upstreams == {name: f"http://{name}:{PORTS[name]}" for name in SERVICE_NAMES}
    assert "--port=8000" in gateway["command"]
    assert {d: c["condition"] for d, c in gateway["depends_on"].items()} == dict.fromkeys(
        SERVICE_NAMES, "service_healthy"
    )
    assert "http://127.0.0.1:8000/health" in " ".join(gateway["healthcheck"]["test"])
    [published] = gateway["ports"]
    assert (published["host_ip"], published["published"], published["target"]) == (
        "127.0.0.1",
        "8000",
        8000,
    )


def test_console_serves_over_the_gateway_with_the_key_from_env(
    kit: ModuleType, compose_config: dict[str, Any]
) -> None:
    console = compose_config["services"]["console"]
    port = str(CONSOLE_PORT)
    assert console["command"] == [
        "console",
        f"--host={kit.ANY_HOST}",
        f"--port={port}",
        "--api-url=http://gateway:8000",
    ]
    assert {d: c["condition"] for d, c in console["depends_on"].items()} == {
        "gateway": "service_healthy"
    }
    assert f"http://127.0.0.1:{port}/console/login" in " ".join(console["healthcheck"]["test"])
    [published] = console["ports"]
    assert (published["host_ip"], published["published"], published["target"]) == (
        "127.0.0.1",
        port,
        CONSOLE_PORT,
    )
    env = console["environment"]
    assert env["FLEET_PORT"] == port
    # The image's FLEET_ENV=prod applies: the key is required, and .env's is long enough.
    assert console_secret({"FLEET_ENV": "prod", **env})
    # A client of the API only: no database, broker, admin password or signing key.
    assert not {"DATABASE_URL", "AMQP_URL", "REDIS_URL", "FLEET_ADMIN_PASSWORD"} & set(env)
    assert "volumes" not in console


def test_every_awaited_health_has_a_healthcheck(compose_config: dict[str, Any]) -> None:
    services = compose_config["services"]
    for name, service in services.items():
        for dep, cond in service.get("depends_on", {}).items():
            if cond["condition"] == "service_healthy":
                check = services[dep].get("healthcheck", {})
                assert check.get("test"), f"{name} -> {dep}"
                assert not check.get("disable"), f"{name} -> {dep}"
            if cond["condition"] == "service_completed_successfully":
                assert services[dep]["restart"] == "no", f"{name} -> {dep}"


@pytest.mark.parametrize("name", [*SERVICE_NAMES, *JOBS])
def test_settings_load_in_prod_mode_from_what_compose_provides(
    compose_config: dict[str, Any],
    load_settings: Callable[[dict[str, str]], Settings],
    name: str,
) -> None:
    env = compose_config["services"][name]["environment"]
    settings = load_settings(env)
    assert settings.env == "prod"
    assert str(settings.database_url).startswith("postgresql+asyncpg://")
    assert settings.amqp_url
    assert settings.redis_url
    for other in SERVICE_NAMES:
        assert settings.service_url(other) == f"http://{other}:{PORTS[other]}"
    # Only the token issuer holds the private key; every service can verify.
    assert (settings.jwt_private_key_file is not None) == (name == "user")
    assert settings.jwt_public_key_file is not None


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_services_read_the_keys_the_key_job_writes(
    compose_config: dict[str, Any], name: str
) -> None:
    services = compose_config["services"]
    [written] = [v for v in services["keys"]["volumes"] if not v.get("read_only")]
    [mounted] = services[name]["volumes"]
    assert (mounted["source"], mounted["target"]) == (written["source"], written["target"])
    assert mounted["read_only"] is True
    env = services[name]["environment"]
    key_files = [v for k, v in env.items() if k.startswith("FLEET_JWT_") and k.endswith("_FILE")]
    assert key_files
    assert all(f.startswith(written["target"] + "/") for f in key_files)
    script = services["keys"]["command"][0]
    assert all(f.rsplit("/", 1)[1] in script for f in key_files)


@pytest.mark.parametrize("name", FLEET_CONTAINERS)
def test_fleet_containers_are_locked_down_and_bounded(
    kit: ModuleType, compose_config: dict[str, Any], name: str
) -> None:
    service = compose_config["services"][name]
    assert service["read_only"] is True
    assert service["tmpfs"] == [kit.TMP]
    assert service["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in service["security_opt"]
    assert service["image"] == "fleet:dev"
    assert service["build"]["dockerfile"] == "deploy/docker/Dockerfile"


def test_every_container_has_resource_limits(compose_config: dict[str, Any]) -> None:
    for name, service in compose_config["services"].items():
        limits = service["deploy"]["resources"]["limits"]
        assert limits["cpus"], name
        assert limits["memory"], name


def test_prometheus_scrapes_every_service_metrics(
    kit: ModuleType, compose_config: dict[str, Any]
) -> None:
    prometheus = compose_config["services"]["prometheus"]
    [mount] = prometheus["volumes"]
    assert mount["source"] == str(kit.COMPOSE_DIR / "prometheus.yml")
    config = yaml.safe_load((kit.COMPOSE_DIR / "prometheus.yml").read_text())
    [job] = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    targets = {t for group in job["static_configs"] for t in group["targets"]}
    assert targets == {f"{name}:{PORTS[name]}" for name in SERVICE_NAMES}


def test_traces_go_to_jaeger_over_otlp_http(compose_config: dict[str, Any]) -> None:
    services = compose_config["services"]
    endpoint = services["trip"]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"]
    assert services["trip"]["environment"]["OTEL_TRACES_EXPORTER"] == "otlp"
    assert re.fullmatch(r"http://jaeger:4318", endpoint)
    assert services["jaeger"]["environment"]["COLLECTOR_OTLP_ENABLED"] == "true"

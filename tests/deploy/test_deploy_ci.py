""".github/workflows: valid GitHub workflows; CI runs the same checks as .ci/run."""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pytest
import yaml

WORKFLOWS = Path(__file__).resolve().parents[2] / ".github" / "workflows"


def load(path: Path) -> dict[str, Any]:
    # YAML 1.1 reads the `on:` key as True; GitHub reads it as "on".
    doc: dict[Any, Any] = yaml.safe_load(path.read_text())
    if True in doc:
        doc["on"] = doc.pop(True)
    return doc


@pytest.fixture(scope="module")
def ci() -> dict[str, Any]:
    return load(WORKFLOWS / "ci.yml")


def commands(job: dict[str, Any]) -> list[str]:
    return [step["run"].strip() for step in job["steps"] if "run" in step]


@pytest.mark.parametrize("path", sorted(WORKFLOWS.glob("*.yml")), ids=lambda p: p.name)
def test_workflow_meets_the_github_workflow_schema(path: Path) -> None:
    schema_file = files("check_jsonschema.builtin_schemas.vendor") / "github-workflows.json"
    schema = json.loads(schema_file.read_text())
    jsonschema.validate(load(path), schema)


def test_ci_runs_lint_typecheck_and_the_whole_suite(ci: dict[str, Any]) -> None:
    jobs = ci["jobs"]
    assert "make lint" in commands(jobs["lint"])
    assert "make typecheck" in commands(jobs["typecheck"])
    assert "make test" in commands(jobs["test"])
    assert {"push", "pull_request"} <= set(ci["on"])


def test_suite_runs_against_the_servers_the_compose_stack_uses(
    kit: ModuleType, ci: dict[str, Any], compose_config: dict[str, Any]
) -> None:
    job = ci["jobs"]["test"]
    services = job["services"]
    for name in ("postgres", "rabbitmq", "redis"):
        assert services[name]["image"] == compose_config["services"][name]["image"], name
    ports = {p for s in services.values() for p in s["ports"]}
    assert ports == {"5432:5432", "5672:5672", "6379:6379"}
    # The suite's own defaults: trust auth for postgres; rabbitmqctl made available.
    assert services["postgres"]["env"]["POSTGRES_HOST_AUTH_METHOD"] == "trust"
    assert job["env"]["FLEET_TEST_PG_URL"].startswith("postgresql+asyncpg://postgres@127.0.0.1")
    assert any("rabbitmqctl" in c for c in commands(job))


def test_image_job_builds_the_dockerfile_and_starts_the_compose_stack(
    kit: ModuleType, ci: dict[str, Any]
) -> None:
    job = ci["jobs"]["image"]
    [build] = [s for s in job["steps"] if str(s.get("uses", "")).startswith("docker/build-push")]
    assert build["with"]["file"] == "deploy/docker/Dockerfile"
    assert build["with"]["push"] is False
    assert any("docker compose up" in c for c in commands(job))


def test_ci_uses_the_uv_version_the_image_is_built_with(
    kit: ModuleType, ci: dict[str, Any]
) -> None:
    dockerfile = (kit.DEPLOY / "docker" / "Dockerfile").read_text()
    assert f"ARG UV_VERSION={ci['env']['UV_VERSION']}" in dockerfile

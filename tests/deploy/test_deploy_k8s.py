"""deploy/k8s: valid Kubernetes objects (offline JSON schemas), consistent with the code."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
import yaml

from fleet.common.config import Settings
from fleet.contracts.queues import QUEUES, QueueSpec
from fleet.platform.cli import CONSOLE_PORT
from fleet.platform.console import console_secret
from fleet.platform.distributed import PORTS
from fleet.platform.gateway import owner_of
from fleet.platform.services import ROUTE_PREFIXES, SERVICE_NAMES

AUTOSCALED = {"trip", "vehicle"}


@pytest.fixture(scope="module")
def docs(kit: ModuleType) -> list[dict[str, Any]]:
    """Every object `kubectl apply -k deploy/k8s` creates."""
    kustomization = yaml.safe_load((kit.K8S_DIR / "kustomization.yaml").read_text())
    return [
        d for name in kustomization["resources"] for d in kit.yaml_documents(kit.K8S_DIR / name)
    ]


def named(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    [doc] = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def test_kustomization_applies_every_manifest_but_the_secret_template(kit: ModuleType) -> None:
    kustomization = yaml.safe_load((kit.K8S_DIR / "kustomization.yaml").read_text())
    on_disk = {p.name for p in kit.K8S_DIR.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == on_disk - {"secret.template.yaml"}
    assert kustomization["namespace"] == "fleet"
    images = {i["name"] for i in kustomization["images"]}
    used = {
        c["image"].rsplit(":", 1)[0]
        for _, pod in kit.pod_specs(
            [d for p in kit.K8S_DIR.glob("*.yaml") for d in kit.yaml_documents(p)]
        )
        for c in pod["containers"]
    }
    assert used == images


def test_manifests_meet_the_kubernetes_schemas(
    kit: ModuleType, validate_k8s: Callable[[dict[str, Any]], None]
) -> None:
    every = [d for p in sorted(kit.K8S_DIR.glob("*.yaml")) for d in kit.yaml_documents(p)]
    objects = [d for d in every if d["kind"] != "Kustomization"]
    assert len(objects) >= 5 * len(SERVICE_NAMES)
    for doc in objects:
        validate_k8s(doc)


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_every_service_has_its_deployment_service_budget_and_migration(
    kit: ModuleType, docs: list[dict[str, Any]], name: str
) -> None:
    port = PORTS[name]
    deployment = named(docs, "Deployment", name)
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["serve", name, "--host", kit.ANY_HOST, "--port", str(port)]
    assert container["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    kit.assert_probes(deployment, container)
    service = named(docs, "Service", name)
    assert service["spec"]["ports"][0]["port"] == port
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    for selector in (
        service["spec"]["selector"],
        deployment["spec"]["selector"]["matchLabels"],
        named(docs, "PodDisruptionBudget", name)["spec"]["selector"]["matchLabels"],
    ):
        assert selector.items() <= pod_labels.items()
    job = named(docs, "Job", f"migrate-{name}")
    [migrate] = job["spec"]["template"]["spec"]["containers"]
    assert migrate["args"] == ["migrate", name]
    assert migrate["image"] == container["image"]
    # A migration pod must never count as a pod of the service.
    job_labels = job["spec"]["template"]["metadata"]["labels"]
    assert not deployment["spec"]["selector"]["matchLabels"].items() <= job_labels.items()


def test_trip_and_vehicle_scale_with_cpu_and_leave_replicas_to_the_autoscaler(
    docs: list[dict[str, Any]],
) -> None:
    hpas = {d["metadata"]["name"]: d for d in docs if d["kind"] == "HorizontalPodAutoscaler"}
    assert set(hpas) == AUTOSCALED
    for name in SERVICE_NAMES:
        spec = named(docs, "Deployment", name)["spec"]
        if name in AUTOSCALED:
            target = hpas[name]["spec"]["scaleTargetRef"]
            assert (target["kind"], target["name"]) == ("Deployment", name)
            assert hpas[name]["spec"]["minReplicas"] >= 2
            assert "replicas" not in spec
        else:
            assert spec["replicas"] >= 2


def test_every_pod_is_hardened_with_probes_and_resources(
    kit: ModuleType, docs: list[dict[str, Any]]
) -> None:
    pods = list(kit.pod_specs(docs))
    assert len(pods) == 2 * len(SERVICE_NAMES) + 1  # + the console
    accounts = {d["metadata"]["name"] for d in docs if d["kind"] == "ServiceAccount"}
    for obj, pod in pods:
        kit.assert_pod_hardened(obj, pod)
        assert pod["serviceAccountName"] in accounts
    namespace = named(docs, "Namespace", "fleet")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_ingress_routes_every_prefix_to_the_service_owning_it(docs: list[dict[str, Any]]) -> None:
    routes: dict[str, set[str]] = {}
    for path in ingress_paths(docs):
        backend = path["backend"]["service"]
        assert backend["port"] == {"name": "http"}
        if not path["path"].startswith(("/dead-letters", "/console")):
            assert path["pathType"] == "Prefix"
            routes.setdefault(backend["name"], set()).add(path["path"])
    assert routes == {name: set(prefixes) for name, prefixes in ROUTE_PREFIXES.items()}


def ingress_paths(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    paths: list[dict[str, Any]] = named(docs, "Ingress", "fleet")["spec"]["rules"][0]["http"][
        "paths"
    ]
    return paths


@pytest.mark.parametrize("queue", QUEUES, ids=lambda q: q.name)
def test_every_queues_dead_letters_are_routed_to_the_service_consuming_it(
    kit: ModuleType, docs: list[dict[str, Any]], queue: QueueSpec
) -> None:
    paths = ingress_paths(docs)
    route = f"/dead-letters/{queue.name}"
    assert [(p["path"], p["pathType"]) for p in paths if p["path"] == route] == [(route, "Prefix")]
    for path in (route, f"{route}/replay"):
        assert kit.ingress_backend(paths, path) == queue.service == owner_of(path)


def test_ingress_sends_the_console_and_the_dead_letter_union_to_the_console(
    kit: ModuleType, docs: list[dict[str, Any]]
) -> None:
    paths = ingress_paths(docs)
    for path in ("/console", "/console/", "/console/trips/1", "/dead-letters"):
        assert kit.ingress_backend(paths, path) == "console", path
    # Only the queues of QUEUES have a route: no stale ones, no neighbours caught by a prefix.
    queues = {p["path"] for p in paths if p["path"].startswith("/dead-letters/")}
    assert queues == {f"/dead-letters/{q.name}" for q in QUEUES}
    for path in ("/dead-letters/nobody.events", "/dead-letters/trip.events-x", "/consoles"):
        assert kit.ingress_backend(paths, path) is None, path


def test_console_calls_every_service_directly_with_only_its_own_secret(
    kit: ModuleType, docs: list[dict[str, Any]]
) -> None:
    deployment = named(docs, "Deployment", "console")
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    args = container["args"]
    port = str(CONSOLE_PORT)
    assert args[:5] == ["console", "--host", kit.ANY_HOST, "--port", port]
    assert kit.upstream_args(args) == {name: f"http://{name}:{PORTS[name]}" for name in PORTS}
    for name in SERVICE_NAMES:
        assert named(docs, "Service", name)["spec"]["ports"][0]["port"] == PORTS[name]
    assert container["ports"] == [
        {"name": "http", "containerPort": CONSOLE_PORT, "protocol": "TCP"}
    ]
    kit.assert_probes(deployment, container, ready="/console/login")
    service = named(docs, "Service", "console")
    assert service["spec"]["ports"][0]["port"] == CONSOLE_PORT
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    for selector in (
        service["spec"]["selector"],
        deployment["spec"]["selector"]["matchLabels"],
        named(docs, "PodDisruptionBudget", "console")["spec"]["selector"]["matchLabels"],
    ):
        assert selector.items() <= pod_labels.items()
    for name in SERVICE_NAMES:  # never a pod of a service
        assert not named(docs, "Service", name)["spec"]["selector"].items() <= pod_labels.items()
    assert deployment["spec"]["replicas"] >= 2  # hence the shared key
    # No configuration or key of the services: only the fleet-console Secret.
    assert container["envFrom"] == [{"secretRef": {"name": "fleet-console"}}]
    assert set(kit.secret_template()["fleet-console"]) == set(kit.CONSOLE_SECRET_STAND_IN)
    assert "jwt" not in {v["name"] for v in pod["volumes"]}
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["FLEET_ENV"] == "prod"
    assert env["FORWARDED_ALLOW_IPS"] == "*"  # behind the TLS ingress: Secure cookies
    assert console_secret({**env, **kit.CONSOLE_SECRET_STAND_IN})
    with pytest.raises(ValueError, match="FLEET_CONSOLE_SECRET"):
        console_secret(env)


def test_secret_template_names_keys_without_values(kit: ModuleType) -> None:
    secrets = kit.secret_template()
    assert set(secrets) == {"fleet-secrets", "fleet-jwt", "fleet-console"}
    assert set(secrets["fleet-secrets"]) == set(kit.SECRET_STAND_INS)
    assert set(secrets["fleet-jwt"]) == {"jwt.pem", "jwt.pub"}
    assert all(value == "" for keys in secrets.values() for value in keys.values())


def test_settings_load_in_prod_mode_from_the_config_map_and_secrets(
    kit: ModuleType,
    docs: list[dict[str, Any]],
    load_settings: Callable[[dict[str, str]], Settings],
) -> None:
    config_maps = {d["metadata"]["name"]: d["data"] for d in docs if d["kind"] == "ConfigMap"}
    secrets = kit.secret_template()
    for obj, pod in kit.pod_specs(docs):
        if kit.is_console(obj):
            continue  # no Settings: a client of the API (its own test above)
        for container in pod["containers"]:
            refs = {s["secretRef"]["name"] for s in container["envFrom"] if "secretRef" in s}
            assert refs <= set(secrets)
            env = kit.container_env(container, config_maps, set(secrets["fleet-secrets"]))
            settings = load_settings(env)
            assert settings.env == "prod", obj["metadata"]["name"]
            for other in SERVICE_NAMES:
                assert settings.service_url(other) == f"http://{other}:{PORTS[other]}"
            if obj["kind"] == "Deployment":
                assert_key_files_are_mounted(obj, pod, container, settings)


def assert_key_files_are_mounted(
    obj: dict[str, Any], pod: dict[str, Any], container: dict[str, Any], settings: Settings
) -> None:
    """The JWT key files the settings name are in the fleet-jwt Secret's volume; only the user
    service (the token issuer) gets the private key."""
    name = obj["metadata"]["name"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    files: set[str] = set()
    for mount in container["volumeMounts"]:
        secret = volumes[mount["name"]].get("secret")
        if secret and secret["secretName"] == "fleet-jwt":
            files |= {f"{mount['mountPath']}/{item['path']}" for item in secret["items"]}
    assert str(settings.jwt_public_key_file) in files, name
    if name == "user":
        assert str(settings.jwt_private_key_file) in files
    else:
        assert settings.jwt_private_key_file is None, name
        assert not any(f.endswith(".pem") for f in files), name

"""deploy/helm/fleet: linted and rendered by Helm's own engine (its Go SDK, offline), the result
valid for Kubernetes and consistent with the code."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from types import ModuleType
from typing import Any

import jsonschema
import pytest
import yaml

from fleet.common.config import Settings
from fleet.contracts.queues import QUEUES, QueueSpec
from fleet.platform.cli import CONSOLE_PORT
from fleet.platform.console import console_secret
from fleet.platform.distributed import PORTS
from fleet.platform.gateway import owner_of
from fleet.platform.services import ROUTE_PREFIXES, SERVICE_NAMES

helm = pytest.importorskip("helm_python", reason="helm-python-sdk (Helm's Go SDK) not installed")

Render = Callable[..., list[dict[str, Any]]]


@pytest.fixture(scope="module")
def render(kit: ModuleType) -> Render:
    """`helm template <release> deploy/helm/fleet` with optional values: the objects."""
    chart = helm.Chart.load(kit.CHART_DIR)

    def run(values: dict[str, Any] | None = None, release: str = "fleet") -> list[dict[str, Any]]:
        manifests = chart.render(values, name=release, namespace="fleet", is_install=True)
        return [
            doc
            for path, text in sorted(manifests.items())
            if path.endswith(".yaml")
            for doc in yaml.safe_load_all(text)
            if doc
        ]

    return run


@pytest.fixture(scope="module")
def docs(render: Render) -> list[dict[str, Any]]:
    return render()


def of_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def test_chart_metadata_is_complete(kit: ModuleType) -> None:
    chart = yaml.safe_load((kit.CHART_DIR / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "fleet"
    assert chart["type"] == "application"
    assert re.fullmatch(r"\d+\.\d+\.\d+", chart["version"])
    assert re.fullmatch(r"\d+\.\d+\.\d+", chart["appVersion"])


def test_default_values_meet_the_values_schema(kit: ModuleType) -> None:
    values = yaml.safe_load((kit.CHART_DIR / "values.yaml").read_text())
    schema = json.loads((kit.CHART_DIR / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.validate(values, schema, cls=jsonschema.Draft7Validator)


def test_helm_lint_finds_nothing_to_warn_about(kit: ModuleType) -> None:
    report = helm.lint(kit.CHART_DIR, strict=True, kube_version=f"v{kit.KUBE_VERSIONS[0]}")
    assert report["errors"] == []
    # severity 1 is "info" (e.g. "icon is recommended"); 2 warning, 3 error
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"services": {"user": {"port": "8001"}}}, "/services/user/port"),
        ({"services": {"gateway": {"port": 8000}}}, "gateway"),
        ({"replicas": 3}, "replicas"),
        ({"config": {"logLevel": "LOUD"}}, "/config/logLevel"),
        ({"console": {"port": "8005"}}, "/console/port"),
        ({"services": {"trip": {"queues": ["/trips"]}}}, "/services/trip/queues/0"),
    ],
)
def test_values_outside_the_schema_are_refused(
    render: Render, values: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(helm.HelmValuesError, match=re.escape(complaint)):
        render(values)


def test_rendered_objects_meet_the_kubernetes_schemas(
    docs: list[dict[str, Any]], validate_k8s: Callable[[dict[str, Any]], None]
) -> None:
    kinds = {d["kind"] for d in docs}
    assert kinds == {
        "ServiceAccount",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "Job",
        "Ingress",
    }
    for doc in docs:
        validate_k8s(doc)


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_every_service_renders_on_its_port_with_probes_and_a_migration_hook(
    kit: ModuleType, docs: list[dict[str, Any]], name: str
) -> None:
    port = PORTS[name]
    deployment = of_kind(docs, "Deployment")[f"fleet-{name}"]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["serve", name, "--host", kit.ANY_HOST, "--port", str(port)]
    assert container["ports"][0]["containerPort"] == port
    kit.assert_probes(deployment, container)
    service = of_kind(docs, "Service")[f"fleet-{name}"]
    assert service["spec"]["ports"][0]["port"] == port
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    budget = of_kind(docs, "PodDisruptionBudget")[f"fleet-{name}"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    job = of_kind(docs, "Job")[f"fleet-migrate-{name}"]
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate", name]
    hooks = job["metadata"]["annotations"]["helm.sh/hook"].split(",")
    assert hooks == ["pre-install", "pre-upgrade"]


def test_trip_and_vehicle_autoscale_by_default_and_the_others_keep_two_replicas(
    docs: list[dict[str, Any]],
) -> None:
    hpas = of_kind(docs, "HorizontalPodAutoscaler")
    assert set(hpas) == {"fleet-trip", "fleet-vehicle"}
    for name, deployment in of_kind(docs, "Deployment").items():
        if name in hpas:
            assert "replicas" not in deployment["spec"]
            assert hpas[name]["spec"]["scaleTargetRef"]["name"] == name
        else:
            assert deployment["spec"]["replicas"] == 2


def test_every_rendered_pod_is_hardened(kit: ModuleType, docs: list[dict[str, Any]]) -> None:
    pods = list(kit.pod_specs(docs))
    assert len(pods) == 2 * len(SERVICE_NAMES) + 1  # + the console
    for obj, pod in pods:
        kit.assert_pod_hardened(obj, pod)


def test_ingress_routes_every_prefix_to_the_service_owning_it(
    kit: ModuleType, docs: list[dict[str, Any]]
) -> None:
    [ingress] = of_kind(docs, "Ingress").values()
    routes: dict[str, set[str]] = {}
    for path in kit.ingress_paths(ingress):
        if not path["path"].startswith(("/dead-letters", "/console")):
            routes.setdefault(path["backend"]["service"]["name"], set()).add(path["path"])
    assert routes == {f"fleet-{name}": set(p) for name, p in ROUTE_PREFIXES.items()}


@pytest.mark.parametrize("queue", QUEUES, ids=lambda q: q.name)
def test_every_queues_dead_letters_are_routed_to_the_service_consuming_it(
    kit: ModuleType, docs: list[dict[str, Any]], queue: QueueSpec
) -> None:
    [ingress] = of_kind(docs, "Ingress").values()
    paths = kit.ingress_paths(ingress)
    route = f"/dead-letters/{queue.name}"
    assert [(p["path"], p["pathType"]) for p in paths if p["path"] == route] == [(route, "Prefix")]
    for path in (route, f"{route}/replay"):
        assert kit.ingress_backend(paths, path) == f"fleet-{queue.service}"
        assert owner_of(path) == queue.service


def test_ingress_sends_the_console_and_the_dead_letter_union_to_the_console(
    kit: ModuleType, docs: list[dict[str, Any]]
) -> None:
    [ingress] = of_kind(docs, "Ingress").values()
    paths = kit.ingress_paths(ingress)
    for path in ("/console", "/console/", "/console/trips/1", "/dead-letters"):
        assert kit.ingress_backend(paths, path) == "fleet-console", path
    queues = {p["path"] for p in paths if p["path"].startswith("/dead-letters/")}
    assert queues == {f"/dead-letters/{q.name}" for q in QUEUES}
    for path in ("/dead-letters/nobody.events", "/dead-letters/trip.events-x", "/consoles"):
        assert kit.ingress_backend(paths, path) is None, path


@pytest.mark.parametrize("release", ["fleet", "staging"])
def test_console_calls_the_release_services_directly_with_only_its_own_secret(
    kit: ModuleType, render: Render, release: str
) -> None:
    docs = render(release=release)
    [deployment] = [d for d in of_kind(docs, "Deployment").values() if kit.is_console(d)]
    console = deployment["metadata"]["name"]
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    args = container["args"]
    assert args[:5] == ["console", "--host", kit.ANY_HOST, "--port", str(CONSOLE_PORT)]
    services = of_kind(docs, "Service")
    for name, url in kit.upstream_args(args).items():
        host, port = url.removeprefix("http://").split(":")
        assert services[host]["spec"]["ports"][0]["port"] == int(port) == PORTS[name]
    assert set(kit.upstream_args(args)) == set(SERVICE_NAMES)
    kit.assert_probes(deployment, container, ready="/console/login")
    assert services[console]["spec"]["ports"][0]["port"] == CONSOLE_PORT
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert services[console]["spec"]["selector"].items() <= pod_labels.items()
    budget = of_kind(docs, "PodDisruptionBudget")[console]
    assert budget["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    # Never a pod of a service: the services' selectors leave it out.
    for name, service in services.items():
        if name != console:
            assert not service["spec"]["selector"].items() <= pod_labels.items(), name
    assert container["envFrom"] == [{"secretRef": {"name": "fleet-console"}}]
    assert "jwt" not in {v["name"] for v in pod["volumes"]}
    env = {e["name"]: e["value"] for e in container["env"]}
    assert (env["FLEET_ENV"], env["FORWARDED_ALLOW_IPS"]) == ("prod", "*")
    assert console_secret({**env, **kit.CONSOLE_SECRET_STAND_IN})
    with pytest.raises(ValueError, match="FLEET_CONSOLE_SECRET"):
        console_secret(env)


def test_without_the_console_only_the_queues_routes_stay(kit: ModuleType, render: Render) -> None:
    docs = render({"console": {"enabled": False}})
    assert not {d["metadata"]["name"] for d in docs if "console" in d["metadata"]["name"]}
    [ingress] = of_kind(docs, "Ingress").values()
    paths = kit.ingress_paths(ingress)
    assert kit.ingress_backend(paths, "/console/") is None
    assert kit.ingress_backend(paths, "/dead-letters") is None
    assert kit.ingress_backend(paths, "/dead-letters/billing.events") == "fleet-billing"


@pytest.mark.parametrize("release", ["fleet", "staging"])
def test_settings_load_in_prod_mode_and_point_at_the_release_services(
    kit: ModuleType,
    render: Render,
    load_settings: Callable[[dict[str, str]], Settings],
    release: str,
) -> None:
    docs = render(release=release)
    services = of_kind(docs, "Service")
    secret_keys = set(kit.secret_template()["fleet-secrets"])
    for obj, pod in kit.pod_specs(docs):
        if kit.is_console(obj):
            continue  # no Settings: a client of the API (its own test above)
        [container] = pod["containers"]
        settings = load_settings(kit.container_env(container, {}, secret_keys))
        assert settings.env == "prod"
        for other in SERVICE_NAMES:
            host, port = str(settings.service_url(other)).removeprefix("http://").split(":")
            assert services[host]["spec"]["ports"][0]["port"] == int(port) == PORTS[other]
        if obj["kind"] == "Deployment":
            issuer = obj["metadata"]["name"].endswith("-user")
            assert (settings.jwt_private_key_file is not None) == issuer
            [jwt] = [v for v in pod["volumes"] if v["name"] == "jwt"]
            paths = {item["path"] for item in jwt["secret"]["items"]}
            assert paths == ({"jwt.pem", "jwt.pub"} if issuer else {"jwt.pub"})


def test_a_disabled_service_leaves_no_object_route_or_url_behind(
    kit: ModuleType, render: Render
) -> None:
    docs = render({"services": {"billing": {"enabled": False}}})
    names = {d["metadata"]["name"] for d in docs}
    assert not {n for n in names if "billing" in n}
    [ingress] = of_kind(docs, "Ingress").values()
    paths = {p["path"] for p in ingress["spec"]["rules"][0]["http"]["paths"]}
    assert paths.isdisjoint(ROUTE_PREFIXES["billing"])
    assert not {p for p in paths if p.startswith("/dead-letters/billing.")}
    [console] = of_kind(docs, "Deployment")["fleet-console"]["spec"]["template"]["spec"][
        "containers"
    ]
    assert set(kit.upstream_args(console["args"])) == set(SERVICE_NAMES) - {"billing"}
    env = {
        e["name"]
        for d in of_kind(docs, "Deployment").values()
        for e in d["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert "FLEET_BILLING_URL" not in env

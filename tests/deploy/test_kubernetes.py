"""deploy/kubernetes renders, for each overlay, objects a cluster accepts and that run WhatLead as intended:
valid against the Kubernetes API's schemas, every container under the restricted Pod Security profile,
probed, sized, disrupted one pod at a time, autoscaled in production, fenced by NetworkPolicies that allow
exactly the flows of docs/architecture.md, gRPC clients pointed at headless Services, images by digest,
migrations in Jobs, each service scraped as its own `job`, and every secret a service reads documented.

The monitoring.coreos.com objects (PodMonitor) have no schema in kubernetes-validate and none is vendored:
`test_pod_monitors_scrape_each_service_as_its_job` checks by hand the fields the Prometheus operator
requires and those this deployment relies on.
"""

from __future__ import annotations

import os
import re
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from executor_service.config import ExecutorSettings
from gate_service.config import GateSettings
from gateway.config import GatewaySettings
from libs.config import SERVICE_TOKEN_ALSO_ACCEPTED_ENV, SERVICE_TOKEN_ENV, ProcessSettings
from ops_service.config import OpsSettings
from reputation_service.config import ReputationSettings
from tests.deploy.kustomize import (
    KUBERNETES,
    OVERLAYS,
    Object,
    Rendered,
    containers,
    pod_labels,
    pod_spec,
    render,
    selects,
)
from tests.deploy.network import Pod, allowed

# The API version the schemas are checked against: the oldest cluster these manifests are meant for.
KUBERNETES_VERSION = "1.33.0"
SECRETS_EXAMPLE = KUBERNETES / "overlays" / "dev" / "secrets.example.yaml"

GRPC_PORT = 50051
METRICS_PORT = 9100
HTTP_PORT = 8080
SETTINGS: dict[str, type[ProcessSettings]] = {
    "gate": GateSettings,
    "executor": ExecutorSettings,
    "reputation": ReputationSettings,
    "ops": OpsSettings,
    "gateway": GatewaySettings,
}
GRPC_SERVICES = ("gate", "executor", "reputation", "ops")
AUTOSCALED = ("gate", "executor", "gateway")
# Who calls whom over gRPC (docs/architecture.md), and the variable holding the address.
GRPC_CALLS = {
    "GATE_REPUTATION_ADDR": ("gate", "reputation"),
    "GATE_OPS_ADDR": ("gate", "ops"),
    "REPUTATION_GATE_ADDRESS": ("reputation", "gate"),
    "GATEWAY_OPS_ADDRESS": ("gateway", "ops"),
}
DNS_TARGET = re.compile(
    r"^dns:///(?P<service>[a-z0-9-]+)\.(?P<namespace>[a-z0-9-]+)\.svc\.cluster\.local:(?P<port>\d+)$"
)
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
# Pods outside the namespace, as the NetworkPolicies find them.
PROMETHEUS = Pod("monitoring", {"app.kubernetes.io/name": "prometheus"}, {})
INGRESS_CONTROLLER = Pod("ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"}, {})
API_CLIENT = Pod("clients", {"app": "crm"}, {}, {"whatlead.io/api-clients": "true"})
UNLISTED_CLIENT = Pod("clients", {"app": "crm"}, {})
UNRELATED = Pod("elsewhere", {"app": "anything"}, {})
NATS = Pod("messaging", {"app.kubernetes.io/name": "nats"}, {})
REDIS = Pod("cache", {"app.kubernetes.io/name": "redis"}, {})
DNS = Pod("kube-system", {"k8s-app": "kube-dns"}, {})


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> Rendered:
    overlay: str = request.param
    return Rendered(overlay, render(KUBERNETES / "overlays" / overlay))


@pytest.fixture(scope="module")
def base() -> Rendered:
    return Rendered("base", render(KUBERNETES / "base"))


def service_of(workload: Object) -> str:
    name: str = pod_labels(workload)["app.kubernetes.io/name"]
    return name


def prefix_of(service: str) -> str:
    prefix: str = SETTINGS[service].model_config.get("env_prefix", "")
    return prefix


def deployment(rendered: Rendered, service: str) -> Object:
    return rendered.named("Deployment", service)


def env_of(rendered: Rendered, container: Object) -> dict[str, str]:
    """The container's environment from its ConfigMaps and its own `env` (Secrets left out)."""
    values: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            values.update(rendered.named("ConfigMap", source["configMapRef"]["name"])["data"])
    values.update({e["name"]: e["value"] for e in container.get("env", []) if "value" in e})
    return values


def as_pod(rendered: Rendered, workload: Object) -> Pod:
    ports = {p["name"]: p["containerPort"] for c in containers(workload) for p in c.get("ports", [])}
    return Pod(workload["metadata"]["namespace"], pod_labels(workload), ports)


def secrets_example() -> dict[str, dict[str, str]]:
    documents = [d for d in yaml.safe_load_all(SECRETS_EXAMPLE.read_text()) if d]
    return {d["metadata"]["name"]: d.get("stringData", {}) for d in documents}


def test_every_object_is_valid_for_the_kubernetes_api(rendered: Rendered) -> None:
    checked = 0
    for obj in rendered.objects:
        if obj["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # no schema offline: checked by hand below
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{rendered.overlay}: {obj['kind']} {obj['metadata']['name']}: {error.message}")
        checked += 1
    assert checked > 30


def test_the_example_secrets_are_valid_and_not_deployed(rendered: Rendered) -> None:
    documents = [d for d in yaml.safe_load_all(SECRETS_EXAMPLE.read_text()) if d]
    for document in documents:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    assert not rendered.of_kind("Secret"), "real secrets are made outside the repository"


def test_the_namespace_enforces_the_restricted_profile(rendered: Rendered) -> None:
    (namespace,) = rendered.of_kind("Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert {o["metadata"].get("namespace") for o in rendered.objects if o["kind"] != "Namespace"} == {
        rendered.namespace
    }


def test_every_container_runs_under_the_restricted_profile(rendered: Rendered) -> None:
    assert {service_of(w) for w in rendered.workloads} == set(SETTINGS)
    for workload in rendered.workloads:
        spec = pod_spec(workload)
        pod = spec.get("securityContext", {})
        assert spec.get("automountServiceAccountToken") is False, workload["metadata"]["name"]
        account = rendered.named("ServiceAccount", spec["serviceAccountName"])
        assert account.get("automountServiceAccountToken") is False
        assert spec.get("hostNetwork") is not True and spec.get("hostPID") is not True
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        assert all(
            set(v) - {"name"} <= {"emptyDir", "configMap", "secret", "projected"} for v in volumes.values()
        )
        for container in containers(workload):
            where = (
                f"{rendered.overlay}: {workload['kind']} {workload['metadata']['name']}/{container['name']}"
            )
            own = container.get("securityContext", {})
            effective = {**pod, **own}
            assert effective.get("runAsNonRoot") is True, where
            assert effective.get("runAsUser") == 10001, where
            assert own.get("allowPrivilegeEscalation") is False, where
            assert own.get("readOnlyRootFilesystem") is True, where
            assert own.get("privileged") is not True, where
            assert own.get("capabilities", {}).get("drop") == ["ALL"], where
            assert not own.get("capabilities", {}).get("add"), where
            assert effective.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
            mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
            assert "emptyDir" in volumes[mounts["/tmp"]], f"{where}: /tmp must be a writable emptyDir"


@pytest.mark.parametrize("service", ["gate", "reputation"])
def test_a_service_running_several_processes_shares_one_metrics_port_among_them(
    rendered: Rendered, service: str
) -> None:
    (container,) = pod_spec(deployment(rendered, service))["containers"]
    env = env_of(rendered, container)
    prefix = service.upper()
    assert int(env[f"{prefix}_PROCESSES"]) >= 1
    directory = env["PROMETHEUS_MULTIPROC_DIR"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec(deployment(rendered, service))["volumes"]}
    assert "emptyDir" in volumes[mounts[directory]]
    assert [p["containerPort"] for p in container["ports"] if p["name"] == "metrics"] == [
        int(env[f"{prefix}_METRICS_PORT"])
    ]
    if service == "gate" and rendered.overlay == "production":
        assert int(env["GATE_PROCESSES"]) > 1


def test_every_deployment_is_probed_at_start_readiness_and_liveness(rendered: Rendered) -> None:
    for service in SETTINGS:
        (container,) = pod_spec(deployment(rendered, service))["containers"]
        startup, ready, live = (container[p] for p in ("startupProbe", "readinessProbe", "livenessProbe"))
        if service == "gateway":
            assert startup["httpGet"]["path"] == "/healthz"
            assert ready["httpGet"]["path"] == "/readyz"
            assert live["httpGet"]["path"] == "/healthz"
        else:
            # Readiness follows the stores (""), liveness only the process ("liveness"): ADR 0009.
            assert ready["grpc"] == {"port": GRPC_PORT}
            assert live["grpc"] == {"port": GRPC_PORT, "service": "liveness"}
            assert startup["grpc"]["port"] == GRPC_PORT


def test_every_container_has_requests_and_a_memory_limit(rendered: Rendered) -> None:
    for workload in rendered.workloads:
        for container in containers(workload):
            resources = container.get("resources", {})
            where = f"{rendered.overlay}: {workload['metadata']['name']}/{container['name']}"
            assert {"cpu", "memory"} <= set(resources.get("requests", {})), where
            assert "memory" in resources.get("limits", {}), where


def test_deployments_spread_over_zones_and_nodes(rendered: Rendered) -> None:
    for service in SETTINGS:
        workload = deployment(rendered, service)
        constraints = pod_spec(workload)["topologySpreadConstraints"]
        keys = {c["topologyKey"] for c in constraints if selects(c["labelSelector"], pod_labels(workload))}
        assert keys == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}, service


def test_one_disruption_budget_selects_each_deployment(rendered: Rendered) -> None:
    budgets = rendered.of_kind("PodDisruptionBudget")
    for service in SETTINGS:
        labels = pod_labels(deployment(rendered, service))
        (budget,) = [b for b in budgets if selects(b["spec"]["selector"], labels)]
        spec = budget["spec"]
        # At most one pod of a service away at a time, and a drain never blocked at one replica.
        assert spec.get("maxUnavailable") == 1 or spec.get("minAvailable") == 1, service
    for job in rendered.of_kind("Job"):
        assert not any(selects(b["spec"]["selector"], pod_labels(job)) for b in budgets)


def test_replicas_and_autoscaling_fit_the_overlay(rendered: Rendered) -> None:
    autoscalers = {
        h["spec"]["scaleTargetRef"]["name"]: h for h in rendered.of_kind("HorizontalPodAutoscaler")
    }
    for service in SETTINGS:
        spec = deployment(rendered, service)["spec"]
        if rendered.overlay == "dev":
            assert spec["replicas"] == 1 and not autoscalers, service
        elif service in AUTOSCALED:
            autoscaler = autoscalers[service]
            assert autoscaler["apiVersion"] == "autoscaling/v2"
            assert autoscaler["spec"]["scaleTargetRef"]["kind"] == "Deployment"
            assert 2 <= autoscaler["spec"]["minReplicas"] < autoscaler["spec"]["maxReplicas"], service
            # The autoscaler owns the count: an apply must not reset it.
            assert "replicas" not in spec, service
        else:
            assert spec["replicas"] >= 2, service
            assert service not in autoscalers


def test_migrations_run_once_per_release_in_jobs(rendered: Rendered) -> None:
    for service in GRPC_SERVICES:
        workload = deployment(rendered, service)
        (server,) = pod_spec(workload)["containers"]
        assert "initContainers" not in pod_spec(workload), service
        assert env_of(rendered, server)[f"{service.upper()}_MIGRATE_ON_START"] == "false"
        (job,) = [j for j in rendered.of_kind("Job") if service_of(j) == service]
        (migrate,) = pod_spec(job)["containers"]
        assert migrate["command"] == [*server["command"], "migrate"]
        assert migrate["image"] == server["image"]
        assert pod_spec(job)["restartPolicy"] == "Never"
        # The Deployment's pods, and only they, are the Service's: the Job's pod is none of them.
        assert not selects(workload["spec"]["selector"], pod_labels(job))


def test_every_grpc_address_is_every_pod_of_a_headless_service(rendered: Rendered) -> None:
    seen = set()
    for workload in rendered.of_kind("Deployment"):
        for container in containers(workload):
            for name, value in env_of(rendered, container).items():
                if not name.endswith(("_ADDR", "_ADDRESS")) or not name.startswith(
                    prefix_of(service_of(workload))
                ):
                    continue
                match = DNS_TARGET.match(value)
                assert match, f"{name}={value}: clients balance per call only over dns:/// targets"
                caller, callee = GRPC_CALLS[name]
                assert (service_of(workload), match["service"]) == (caller, callee), name
                assert match["namespace"] == rendered.namespace, f"{name} names another namespace"
                headless = rendered.named("Service", match["service"])
                assert headless["spec"].get("clusterIP") == "None", f"{match['service']} must be headless"
                target = deployment(rendered, callee)
                assert selects({"matchLabels": headless["spec"]["selector"]}, pod_labels(target))
                assert int(match["port"]) in {p["port"] for p in headless["spec"]["ports"]}
                assert int(match["port"]) in as_pod(rendered, target).ports.values()
                seen.add(name)
    assert seen == set(GRPC_CALLS), f"addresses missing: {set(GRPC_CALLS) - seen}"
    for service in GRPC_SERVICES:
        assert rendered.named("Service", service)["spec"].get("clusterIP") == "None"


def test_network_policies_allow_exactly_the_architectures_flows(rendered: Rendered) -> None:
    policies = rendered.of_kind("NetworkPolicy")
    pods = {service_of(d): as_pod(rendered, d) for d in rendered.of_kind("Deployment")}
    jobs = [as_pod(rendered, j) for j in rendered.of_kind("Job")]
    denied_by_default = [
        p
        for p in policies
        if p["spec"]["podSelector"] == {} and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    ]
    assert denied_by_default and not any(
        p["spec"].get("ingress") or p["spec"].get("egress") for p in denied_by_default
    )

    for name, pod in pods.items():
        # Every pod is picked out by a policy of its own, beyond the namespace-wide ones.
        assert any(
            p["spec"]["podSelector"] and selects(p["spec"]["podSelector"], pod.labels) for p in policies
        )
        scrape_port = HTTP_PORT if name == "gateway" else METRICS_PORT
        assert allowed(policies, PROMETHEUS, pod, scrape_port), f"Prometheus cannot scrape {name}"
        assert not allowed(policies, PROMETHEUS, pod, GRPC_PORT), f"Prometheus calls {name}"
        assert allowed(policies, pod, DNS, 53, "UDP"), name
        assert allowed(policies, pod, NATS, 4222), f"{name} cannot reach NATS"
        assert not allowed(policies, UNRELATED, pod, scrape_port), f"anyone reaches {name}"
        assert allowed(policies, pod, REDIS, 6379) == (name == "gate"), f"{name} and Redis"
    for name in GRPC_SERVICES:
        # The public gRPC API: from namespaces that opted in, no others.
        assert allowed(policies, API_CLIENT, pods[name], GRPC_PORT), name
        assert not allowed(policies, UNLISTED_CLIENT, pods[name], GRPC_PORT), name
    for caller in pods:
        for callee in GRPC_SERVICES:
            expected = (caller, callee) in GRPC_CALLS.values()
            assert allowed(policies, pods[caller], pods[callee], GRPC_PORT) == expected, (
                f"{caller} -> {callee}"
            )
    assert allowed(policies, INGRESS_CONTROLLER, pods["gateway"], HTTP_PORT)
    assert not any(allowed(policies, INGRESS_CONTROLLER, pods[s], GRPC_PORT) for s in GRPC_SERVICES)
    for job in jobs:
        assert allowed(policies, job, DNS, 53, "UDP")
        assert not allowed(policies, job, NATS, 4222), "a migration needs only its database"
    assert not any(allowed(policies, pod, NATS, 4222) for pod in jobs)


def test_postgresql_is_reachable_from_the_services_and_migrations_only(rendered: Rendered) -> None:
    (policy,) = [p for p in rendered.of_kind("NetworkPolicy") if p["metadata"]["name"] == "egress-postgresql"]
    reaching = {
        service_of(w) for w in rendered.workloads if selects(policy["spec"]["podSelector"], pod_labels(w))
    }
    assert reaching == set(GRPC_SERVICES)
    assert all(p["port"] == 5432 for rule in policy["spec"]["egress"] for p in rule["ports"])
    migrations = {
        service_of(j)
        for j in rendered.of_kind("Job")
        if selects(policy["spec"]["podSelector"], pod_labels(j))
    }
    assert migrations == set(GRPC_SERVICES)


def test_the_ingress_exposes_webhooks_and_realtime_only_over_tls(rendered: Rendered) -> None:
    (ingress,) = rendered.of_kind("Ingress")
    hosts = set()
    for rule in ingress["spec"]["rules"]:
        hosts.add(rule["host"])
        paths = {(p["path"], p["pathType"]) for p in rule["http"]["paths"]}
        assert paths == {("/webhooks/", "Prefix"), ("/v1/realtime", "Exact")}
        for path in rule["http"]["paths"]:
            assert path["backend"]["service"]["name"] == "gateway"
            assert path["backend"]["service"]["port"] == {"name": "http"}
    assert hosts <= {h for tls in ingress["spec"]["tls"] for h in tls["hosts"]}
    assert all(tls.get("secretName") for tls in ingress["spec"]["tls"])


def test_pod_monitors_scrape_each_service_as_its_job(rendered: Rendered) -> None:
    monitors = rendered.of_kind("PodMonitor")
    for service in SETTINGS:
        workload = deployment(rendered, service)
        (monitor,) = [m for m in monitors if selects(m["spec"]["selector"], pod_labels(workload))]
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        assert monitor["metadata"]["namespace"] == rendered.namespace
        (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
        port = as_pod(rendered, workload).ports[endpoint["port"]]
        assert port == (HTTP_PORT if service == "gateway" else METRICS_PORT), service
        assert endpoint.get("path", "/metrics") == "/metrics"
        job = [r for r in endpoint["relabelings"] if r.get("targetLabel") == "job"]
        assert job == [{"action": "replace", "targetLabel": "job", "replacement": service}]
    assert len(monitors) == len(SETTINGS)


def test_every_image_is_pinned_by_digest(rendered: Rendered) -> None:
    for workload in rendered.workloads:
        for container in containers(workload):
            image = container["image"]
            assert DIGEST.search(image), (
                f"{rendered.overlay}: {container['name']} runs {image}, not by digest"
            )


def test_production_overlay_sets_its_own_digest() -> None:
    kustomization = yaml.safe_load(
        (KUBERNETES / "overlays" / "production" / "kustomization.yaml").read_text()
    )
    (image,) = kustomization["images"]
    assert image["name"] == "whatlead" and "newTag" not in image
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", image["digest"])


# URLs in the settings that are no provider's: no credential in them (a password-protected Redis URL
# goes in the Gate's Secret, README.md).
NOT_PROVIDERS = frozenset({"nats_url", "redis_url", "gateway_public_url"})


def secret_keys(settings: type[ProcessSettings]) -> set[str]:
    """The variables of a settings class that hold secrets or credentials: database URLs (with their
    password), SecretStr fields, provider endpoints (URL with their keys)."""
    prefix = settings.model_config.get("env_prefix", "")
    names: set[str] = set()
    for field_name, field in settings.model_fields.items():
        annotation = repr(field.annotation)
        if field_name.startswith("service_token"):
            continue  # one Secret for every service
        holds_secret = field_name == "database_url" or "SecretStr" in annotation
        is_provider_endpoint = field_name.endswith(("_api_key", "_url")) and field_name not in NOT_PROVIDERS
        if holds_secret or is_provider_endpoint:
            names.add(prefix + field_name.upper())
    return names


@pytest.mark.parametrize("service", SETTINGS)
def test_the_example_secrets_name_every_secret_a_service_reads(service: str, base: Rendered) -> None:
    examples = secrets_example()
    (container,) = pod_spec(deployment(base, service))["containers"]
    referenced = [s["secretRef"]["name"] for s in container["envFrom"] if "secretRef" in s]
    keys = {key for name in referenced for key in examples[name]}
    missing = secret_keys(SETTINGS[service]) - keys
    assert not missing, f"{service} reads {sorted(missing)}, which no example Secret of it names"
    assert (SERVICE_TOKEN_ENV in keys) == (service in GRPC_SERVICES)
    assert (SERVICE_TOKEN_ALSO_ACCEPTED_ENV in keys) == (service in GRPC_SERVICES)
    config = env_of(base, container)
    assert not secret_keys(SETTINGS[service]) & set(config), "secrets belong in Secrets, not the ConfigMap"


@pytest.mark.parametrize("service", SETTINGS)
def test_each_service_accepts_its_rendered_configuration(
    service: str, rendered: Rendered, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pod's environment (ConfigMap, example Secrets, the container's env) passes the service's own
    validation, so no pod exits at start-up on a variable the manifests got wrong."""
    (container,) = pod_spec(deployment(rendered, service))["containers"]
    examples = secrets_example()
    environment: dict[str, Any] = {}
    for source in container["envFrom"]:
        if "secretRef" in source:
            environment.update(examples[source["secretRef"]["name"]])
    environment.update(env_of(rendered, container))
    settings_type = SETTINGS[service]
    prefix = prefix_of(service)
    for name in list(os.environ):
        if name.startswith(prefix) or name in (SERVICE_TOKEN_ENV, SERVICE_TOKEN_ALSO_ACCEPTED_ENV):
            monkeypatch.delenv(name)
    for name, value in environment.items():
        monkeypatch.setenv(name, str(value))
    settings = settings_type()
    assert settings.nats_url.startswith("nats://")


def test_the_migrations_can_run_before_the_servers_roll(rendered: Rendered) -> None:
    """docs/operations.md applies `-l app.kubernetes.io/component!=server` first and waits for the Jobs:
    that set holds the Jobs and all they need (account, ConfigMap, NetworkPolicies), and no server."""
    labels = "app.kubernetes.io/component"
    first = {
        (o["kind"], o["metadata"]["name"])
        for o in rendered.objects
        if o["metadata"].get("labels", {}).get(labels) != "server"
    }
    assert not any(kind == "Deployment" for kind, _ in first)
    assert {("NetworkPolicy", p["metadata"]["name"]) for p in rendered.of_kind("NetworkPolicy")} <= first
    for job in rendered.of_kind("Job"):
        assert ("Job", job["metadata"]["name"]) in first
        assert ("ServiceAccount", pod_spec(job)["serviceAccountName"]) in first
        for container in containers(job):
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert ("ConfigMap", source["configMapRef"]["name"]) in first

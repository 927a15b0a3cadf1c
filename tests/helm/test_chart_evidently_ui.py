"""The Evidently UI of the rendered chart: off by default, on in the local cluster's
values; one pod that owns its claim, probed, hardened, telemetry off; the drift job
given its URL, project and write secret; a NetworkPolicy that lets the jobs in, and
people only as they reach Grafana."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from monitoring.settings import MonitoringSettings
from tests.helm.chart import (
    NAMESPACE,
    RELEASE,
    ROOT,
    Rendered,
    decoded,
    env_of,
    env_values,
    name,
    pod_labels,
    pod_spec,
)

UI = name("evidently-ui")
UI_VARIABLES = {
    "MONITORING_EVIDENTLY_UI_URL",
    "MONITORING_EVIDENTLY_UI_PROJECT",
    "MONITORING_EVIDENTLY_UI_MAX_RUNS",
    "MONITORING_EVIDENTLY_UI_SECRET",
}


def _drift_env(rendered: Rendered) -> dict[str, dict[str, Any]]:
    return env_of(pod_spec(rendered.get("CronJob", name("drift")))["containers"][0])


def _components(rendered: Rendered) -> set[str]:
    return {doc["metadata"]["labels"]["app.kubernetes.io/component"] for doc in rendered.docs}


def test_off_by_default_and_the_drift_job_then_stores_nothing(
    render: Callable[..., Rendered],
) -> None:
    rendered = render("default")
    assert "evidently-ui" not in _components(rendered)
    assert not UI_VARIABLES & set(_drift_env(rendered))


def test_on_in_the_local_cluster_values(render: Callable[..., Rendered]) -> None:
    local = render("default", "-f", str(ROOT / "k8s" / "values-local.yaml"))
    assert local.get("Deployment", UI) and local.get("Service", UI)
    assert set(_drift_env(local)) >= UI_VARIABLES


def test_the_drift_job_reaches_the_ui_service_with_its_write_secret(
    render: Callable[..., Rendered],
) -> None:
    rendered = render("evidently-ui")
    env = _drift_env(rendered)
    service = rendered.get("Service", UI)
    port = service["spec"]["ports"][0]["port"]
    assert env["MONITORING_EVIDENTLY_UI_URL"]["value"] == f"http://{UI}.{NAMESPACE}.svc:{port}"
    project = env["MONITORING_EVIDENTLY_UI_PROJECT"]["value"]
    assert project == MonitoringSettings.model_fields["evidently_ui_project"].default
    max_runs = int(env["MONITORING_EVIDENTLY_UI_MAX_RUNS"]["value"])
    assert max_runs == MonitoringSettings.model_fields["evidently_ui_max_runs"].default
    reference = env["MONITORING_EVIDENTLY_UI_SECRET"]["valueFrom"]["secretKeyRef"]
    container = pod_spec(rendered.get("Deployment", UI))["containers"][0]
    ui_reference = env_of(container)["EVIDENTLY_SECRET"]["valueFrom"]["secretKeyRef"]
    # Both read the same generated Secret: a 40-character secret, in no value.
    assert reference == ui_reference == {"name": name("evidently-ui-secret"), "key": "secret"}
    secret = decoded(rendered.get("Secret", reference["name"]))["secret"]
    assert len(secret) == 40 and secret not in rendered.text
    # The Service selects the UI's pod, on the port the container listens on.
    assert service["spec"]["selector"].items() <= pod_labels(rendered.get("Deployment", UI)).items()
    assert service["spec"]["ports"][0]["targetPort"] == container["ports"][0]["name"]


def test_an_existing_secret_replaces_the_generated_one(render: Callable[..., Rendered]) -> None:
    rendered = render(
        "evidently-ui",
        "--set",
        "evidentlyUi.secret.existingSecret=my-ui-secret",
        "--set",
        "evidentlyUi.secret.key=token",
    )
    assert name("evidently-ui-secret") not in rendered.names("Secret")
    reference = _drift_env(rendered)["MONITORING_EVIDENTLY_UI_SECRET"]["valueFrom"]
    assert reference["secretKeyRef"] == {"name": "my-ui-secret", "key": "token"}


def test_one_pod_owns_the_workspace_claim_probed_hardened_and_telemetry_off(
    render: Callable[..., Rendered],
) -> None:
    rendered = render("evidently-ui")
    deployment = rendered.get("Deployment", UI)
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    spec = pod_spec(deployment)
    assert spec["automountServiceAccountToken"] is False
    [container] = spec["containers"]
    values = rendered.values
    assert container["image"].split(":")[0] == values["jobsImage"]["repository"]
    assert container["command"][:4] == ["python", "-m", "evidently.cli", "ui"]
    assert "--workspace=/data" in container["command"]
    assert "--host=0.0.0.0" in container["command"]
    assert env_values(container)["DO_NOT_TRACK"] == "1"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/api/version", "port": "http"}, probe
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True and context["runAsUser"] == 10001
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    assert volumes[mounts["/data"]]["persistentVolumeClaim"]["claimName"] == UI
    assert "sizeLimit" in volumes[mounts["/tmp"]]["emptyDir"]
    claim = rendered.get("PersistentVolumeClaim", UI)
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert set(container["resources"]["limits"]) == {"cpu", "memory"}


def test_without_persistence_the_workspace_is_a_bounded_emptydir(
    render: Callable[..., Rendered],
) -> None:
    rendered = render("evidently-ui", "--set", "evidentlyUi.persistence.enabled=false")
    assert UI not in rendered.names("PersistentVolumeClaim")
    volumes = {v["name"]: v for v in pod_spec(rendered.get("Deployment", UI))["volumes"]}
    assert volumes["data"]["emptyDir"] == {"sizeLimit": "1Gi"}


def _ingress(rendered: Rendered) -> list[dict[str, Any]]:
    policy = rendered.get("NetworkPolicy", UI)
    assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == (
        "evidently-ui"
    )
    rules: list[dict[str, Any]] = policy["spec"]["ingress"]
    return rules


def _admits(rule: dict[str, Any], labels: dict[str, str]) -> bool:
    if "from" not in rule:
        return True
    for peer in rule["from"]:
        selector = peer["podSelector"]
        if not selector.get("matchLabels", {}).items() <= labels.items():
            continue
        if all(labels.get(e["key"]) in e["values"] for e in selector.get("matchExpressions", [])):
            return True
    return False


def test_the_network_policy_lets_the_jobs_in_and_people_as_for_grafana(
    render: Callable[..., Rendered],
) -> None:
    rendered = render("evidently-ui")
    rules = _ingress(rendered)
    drift = pod_labels(rendered.get("CronJob", name("drift")))
    scorer = pod_labels(rendered.get("Deployment", name("scorer")))
    assert all(rule["ports"] == [{"port": "http", "protocol": "TCP"}] for rule in rules)
    assert any(_admits(rule, drift) for rule in rules)
    # Open to people, as Grafana's policy is: a rule without `from`.
    grafana = rendered.get("NetworkPolicy", name("grafana"))["spec"]["ingress"]
    assert [rule for rule in rules if "from" not in rule] == grafana

    closed = render("evidently-ui", "--set", "evidentlyUi.openToUsers=false")
    rules = _ingress(closed)
    assert any(_admits(rule, drift) for rule in rules)
    quality = {**drift, "app.kubernetes.io/component": "quality"}
    assert any(_admits(rule, quality) for rule in rules)
    assert not any(_admits(rule, scorer) for rule in rules)
    other_release = {**drift, "app.kubernetes.io/instance": f"not-{RELEASE}"}
    assert not any(_admits(rule, other_release) for rule in rules)

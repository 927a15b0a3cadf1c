"""The storage of the rendered chart: the bundled SeaweedFS (server, Service, claim,
NetworkPolicy), one S3 identity per role and who reads which credentials, and the
checksum annotations that restart a pod when what it reads changes."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from tests.helm.chart import (
    NAMESPACE,
    RELEASE,
    Rendered,
    decoded,
    env_of,
    name,
    pod_labels,
    pod_spec,
)

Template = Callable[..., subprocess.CompletedProcess[str]]
ROLES = ("training", "scorer", "drift")
CREDENTIAL_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
SHA256_HEX = frozenset("0123456789abcdef")


# Workload component -> the storage role it runs as (the first-model Job trains).
ROLE_OF_COMPONENT = {
    "scorer": "scorer",
    "training": "training",
    "bootstrap": "training",
    "drift": "drift",
}


def role_of(doc: dict[str, Any]) -> str | None:
    """The storage role of a workload; None for the pods that never touch S3 (the
    store itself, Prometheus, Grafana, the Pushgateway, the `helm test` pod)."""
    return ROLE_OF_COMPONENT.get(doc["metadata"]["labels"]["app.kubernetes.io/component"])


def role_secret(values: dict[str, Any], role: str) -> str:
    """The Secret a role's pods should read: the chart's own with SeaweedFS, else the
    role's external Secret, else the shared existingSecret."""
    if values["seaweedfs"]["enabled"]:
        return name(f"s3-{role}")
    external = values["storage"]["external"]
    secret: str = external["roleSecrets"][role] or external["existingSecret"]
    return secret


def credential_refs(container: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """AWS credential variable -> (Secret, key) of a container."""
    refs = {}
    for variable, entry in env_of(container).items():
        if variable in CREDENTIAL_VARIABLES:
            reference = entry["valueFrom"]["secretKeyRef"]
            refs[variable] = (reference["name"], reference["key"])
    return refs


def secret_volumes(spec: dict[str, Any]) -> set[str]:
    return {v["secret"]["secretName"] for v in spec.get("volumes", []) if "secret" in v}


def is_sha256(value: str) -> bool:
    return len(value) == 64 and set(value) <= SHA256_HEX


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# --- the bundled SeaweedFS ----------------------------------------------------------------


def test_seaweedfs_serves_s3_on_its_service_and_creates_the_bucket(scenario: Rendered) -> None:
    values = scenario.values
    seaweedfs_objects = [
        d
        for d in scenario.docs
        if d["metadata"]["labels"]["app.kubernetes.io/component"] == "seaweedfs"
    ]
    if not values["seaweedfs"]["enabled"]:
        assert not seaweedfs_objects
        return
    port = values["seaweedfs"]["service"]["port"]
    deployment = scenario.get("Deployment", name("seaweedfs"))
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}, "one server on an RWO claim"
    spec = pod_spec(deployment)
    (container,) = spec["containers"]
    assert container["command"] == ["weed"]
    args = container["args"]
    assert args[0] == "mini"
    flags = dict(a.removeprefix("-").split("=", 1) for a in args[1:] if "=" in a)
    # SeaweedFS creates the bucket at start-up: no bucket Job.
    assert flags["bucket"] == values["storage"]["bucket"]
    assert flags["s3.port"] == str(port)
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert flags["dir"] == mounts["data"]
    assert flags["s3.config"] == f"{mounts['s3-config']}/s3.json"
    assert volumes["s3-config"]["secret"]["secretName"] == name("seaweedfs-s3-config")
    if values["seaweedfs"]["persistence"]["enabled"]:
        claim = scenario.get("PersistentVolumeClaim", name("seaweedfs"))
        assert volumes["data"]["persistentVolumeClaim"]["claimName"] == name("seaweedfs")
        # The models and logs outlive `helm uninstall`.
        assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        assert (
            claim["spec"]["resources"]["requests"]["storage"]
            == (values["seaweedfs"]["persistence"]["size"])
        )
    else:
        assert "emptyDir" in volumes["data"]
        assert not scenario.kinds("PersistentVolumeClaim")
    # Only S3 is a port of the pod and of the Service.
    assert container["ports"] == [{"name": "s3", "containerPort": port, "protocol": "TCP"}]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] == "s3", probe
    service = scenario.get("Service", name("seaweedfs"))
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [
        {"name": "s3", "port": port, "targetPort": "s3", "protocol": "TCP"}
    ]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


def test_seaweedfs_answers_only_the_release_pods_on_s3(scenario: Rendered) -> None:
    if not (
        scenario.values["seaweedfs"]["enabled"] and scenario.values["networkPolicy"]["enabled"]
    ):
        return
    deployment = scenario.get("Deployment", name("seaweedfs"))
    policy = scenario.get("NetworkPolicy", name("seaweedfs"))
    selector = policy["spec"]["podSelector"]["matchLabels"]
    assert selector == deployment["spec"]["selector"]["matchLabels"]
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert policy["spec"]["ingress"] == [
        {
            "from": [{"podSelector": {"matchLabels": {"app.kubernetes.io/instance": RELEASE}}}],
            "ports": [{"port": "s3", "protocol": "TCP"}],
        }
    ]
    # Policies add up: no other one may open the server's pod to anything else.
    labels = pod_labels(deployment)
    for other in scenario.kinds("NetworkPolicy"):
        selects = other["spec"]["podSelector"].get("matchLabels", {}).items() <= labels.items()
        if other is not policy and selects:
            assert not other["spec"].get("ingress"), other["metadata"]["name"]
    # Every pod that talks to S3 is one of the release's.
    for doc, _ in scenario.workloads():
        if role_of(doc):
            assert pod_labels(doc)["app.kubernetes.io/instance"] == RELEASE


def test_every_storage_user_reaches_the_same_endpoint(scenario: Rendered) -> None:
    values = scenario.values
    if values["seaweedfs"]["enabled"]:
        port = values["seaweedfs"]["service"]["port"]
        endpoint = f"http://{name('seaweedfs')}.{NAMESPACE}.svc:{port}"
    else:
        endpoint = values["storage"]["external"]["endpoint"]
    roles = set()
    for doc, container in scenario.containers():
        role = role_of(doc)
        env = env_of(container)
        if role is None:
            assert "AWS_ENDPOINT_URL" not in env, doc["metadata"]["name"]
            continue
        roles.add(role)
        assert env["AWS_ENDPOINT_URL"]["value"] == endpoint, doc["metadata"]["name"]
        assert env["AWS_DEFAULT_REGION"]["value"] == values["storage"]["region"]
    assert roles == set(ROLES)


# --- one identity per role ------------------------------------------------------------------


def test_each_pod_reads_only_its_own_roles_credentials(scenario: Rendered) -> None:
    values = scenario.values
    seaweedfs = values["seaweedfs"]["enabled"]
    external = values["storage"]["external"]
    keys = (
        CREDENTIAL_VARIABLES
        if seaweedfs
        else (external["accessKeyIdKey"], external["secretAccessKeyKey"])
    )
    seen = set()
    for doc, container in scenario.containers():
        where = f"{doc['kind']}/{doc['metadata']['name']} {container['name']}"
        role = role_of(doc)
        refs = credential_refs(container)
        if role is None:
            assert not refs, where
            continue
        seen.add(role)
        secret = role_secret(values, role)
        assert refs == {
            variable: (secret, key)
            for variable, key in zip(CREDENTIAL_VARIABLES, keys, strict=True)
        }, where
    assert seen == set(ROLES)
    if not seaweedfs:
        return
    # The admin identity is for operators: no pod reads it; only the server reads the
    # identities file.
    for doc, spec in scenario.workloads():
        text = yaml.safe_dump(spec)
        assert name("s3-admin") not in text, doc["metadata"]["name"]
        if doc["metadata"]["name"] == name("seaweedfs"):
            assert secret_volumes(spec) == {name("seaweedfs-s3-config")}
            assert not any(credential_refs(c) for c in spec["containers"])
        else:
            assert name("seaweedfs-s3-config") not in text, doc["metadata"]["name"]


def test_external_storage_uses_the_role_secrets_it_is_given(
    render: Callable[..., Rendered],
) -> None:
    rendered = render("external-s3")
    assert not [s for s in rendered.names("Secret") if "-s3-" in s]
    by_role: dict[str, set[str]] = {}
    for doc, container in rendered.containers():
        role = role_of(doc)
        if role:
            by_role.setdefault(role, set()).update(
                s for s, _ in credential_refs(container).values()
            )
    # ci/external-s3-values.yaml: a narrower Secret for the scorer, the shared one else.
    assert by_role == {
        "scorer": {"triage-s3-scorer"},
        "training": {"triage-s3"},
        "drift": {"triage-s3"},
    }
    # Without any Secret (IRSA, workload identity): no credential variables at all.
    ambient = render(
        "external-s3",
        "--set",
        "storage.external.existingSecret=,storage.external.roleSecrets.scorer=",
    )
    for doc, container in ambient.containers():
        assert not credential_refs(container), doc["metadata"]["name"]
        if role_of(doc):
            assert env_of(container)["AWS_ENDPOINT_URL"]["value"].startswith("https://")


def expected_actions(bucket: str, prefix: str) -> dict[str, set[str]]:
    root = f"{bucket}/{prefix.strip('/')}/" if prefix.strip("/") else f"{bucket}/"
    return {
        "training": {f"Read:{bucket}", f"List:{bucket}", f"Write:{root}models/*"},
        "scorer": {
            f"Read:{root}models/*",
            f"Write:{root}inference-logs/*",
            f"Write:{root}feedback/*",
            f"Read:{root}retrain-claims/*",
            f"Write:{root}retrain-claims/*",
        },
        "drift": {
            f"Read:{bucket}",
            f"List:{bucket}",
            f"Write:{root}reports/*",
            f"Write:{root}retrain-claims/*",
        },
        "admin": {"Admin", "Read", "Write", "List", "Tagging"},
    }


@pytest.mark.parametrize(("bucket", "prefix"), [("triage", ""), ("models-eu", "/prod/v2/")])
def test_seaweedfs_identities_are_the_role_secrets_with_scoped_actions(
    render: Callable[..., Rendered], bucket: str, prefix: str
) -> None:
    """s3.json and the role Secrets come from the same generated values, within one
    render (triage.generatedSecretValue memoises them)."""
    rendered = render(
        "default", "--set", f"storage.bucket={bucket}", "--set-string", f"storage.prefix={prefix}"
    )
    config = json.loads(decoded(rendered.get("Secret", name("seaweedfs-s3-config")))["s3.json"])
    identities = {identity["name"]: identity for identity in config["identities"]}
    assert set(identities) == {*ROLES, "admin"}
    access_keys = set()
    for role, identity in identities.items():
        secret = rendered.get("Secret", name(f"s3-{role}"))
        assert secret["metadata"]["labels"]["accident-triage/s3-role"] == role
        data = decoded(secret)
        assert set(data) == set(CREDENTIAL_VARIABLES)
        # SeaweedFS's own field names: anything else is an identity without a key.
        assert identity["credentials"] == [
            {"accessKey": data["AWS_ACCESS_KEY_ID"], "secretKey": data["AWS_SECRET_ACCESS_KEY"]}
        ], role
        assert len(data["AWS_ACCESS_KEY_ID"]) == 20 and data["AWS_ACCESS_KEY_ID"].isalnum()
        assert len(data["AWS_SECRET_ACCESS_KEY"]) == 40
        access_keys.add(data["AWS_ACCESS_KEY_ID"])
    assert len(access_keys) == len(identities), "every role has its own key"
    actions = {role: set(identity["actions"]) for role, identity in identities.items()}
    assert actions == expected_actions(bucket, prefix)


def test_credentials_are_generated_per_install_not_fixed(template: Template) -> None:
    def credentials() -> dict[str, dict[str, str]]:
        result = template("--show-only", "templates/storage/seaweedfs-secrets.yaml")
        assert result.returncode == 0, result.stderr
        return {
            d["metadata"]["name"]: decoded(d)
            for d in yaml.safe_load_all(result.stdout)
            if d and d["metadata"]["name"] != name("seaweedfs-s3-config")
        }

    first, second = credentials(), credentials()
    assert set(first) == {name(f"s3-{role}") for role in (*ROLES, "admin")}
    for secret in first:
        for key in CREDENTIAL_VARIABLES:
            assert first[secret][key] != second[secret][key], (secret, key)


# --- checksums: a changed Secret or configuration restarts the pods that read it -----------


def pod_annotations(rendered: Rendered, component: str) -> dict[str, str]:
    annotations: dict[str, str] = rendered.get("Deployment", name(component))["spec"]["template"][
        "metadata"
    ]["annotations"]
    return annotations


def checksum_of_generated(value_b64: str) -> set[str]:
    """The checksum a generated Secret value may have: of its base64 or of its text."""
    return {sha256(value_b64), sha256(decoded({"data": {"v": value_b64}})["v"])}


def test_pods_carry_checksums_of_what_they_read(scenario: Rendered) -> None:
    values = scenario.values
    scorer = pod_annotations(scenario, "scorer")
    for key in ("checksum/s3-credentials", "checksum/api-key"):
        assert is_sha256(scorer[key]), key
    if not values["scorer"]["apiKey"]["existingSecret"]:
        secret = scenario.get("Secret", name("scorer-api-key"))
        key = values["scorer"]["apiKey"]["key"]
        assert scorer["checksum/api-key"] in checksum_of_generated(secret["data"][key])
    if values["seaweedfs"]["enabled"]:
        seaweedfs = pod_annotations(scenario, "seaweedfs")
        identities = decoded(scenario.get("Secret", name("seaweedfs-s3-config")))["s3.json"]
        assert seaweedfs["checksum/s3-config"] == sha256(identities)
    if values["grafana"]["enabled"]:
        grafana = pod_annotations(scenario, "grafana")
        assert is_sha256(grafana["checksum/provisioning"])
        assert is_sha256(grafana["checksum/admin"])
        if not values["grafana"]["admin"]["existingSecret"]:
            secret = scenario.get("Secret", name("grafana"))
            password = secret["data"][values["grafana"]["admin"]["passwordKey"]]
            assert grafana["checksum/admin"] in checksum_of_generated(password)


def test_scorer_credentials_checksum_follows_the_scorers_secret_only(
    render: Callable[..., Rendered], template: Template
) -> None:
    def checksum(rendered: Rendered) -> str:
        return pod_annotations(rendered, "scorer")["checksum/s3-credentials"]

    external = checksum(render("external-s3"))
    other_scorer = render("external-s3", "--set", "storage.external.roleSecrets.scorer=other")
    other_training = render("external-s3", "--set", "storage.external.roleSecrets.training=other")
    assert checksum(other_scorer) != external
    assert checksum(other_training) == external
    # Generated credentials: new ones, new checksum.
    bundled = [
        next(
            d
            for d in yaml.safe_load_all(template().stdout)
            if d and d["kind"] == "Deployment" and d["metadata"]["name"] == name("scorer")
        )["spec"]["template"]["metadata"]["annotations"]["checksum/s3-credentials"]
        for _ in range(2)
    ]
    assert bundled[0] != bundled[1]
    assert external not in bundled

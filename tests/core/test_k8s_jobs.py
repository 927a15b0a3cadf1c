"""The retrain Job: built as ``kubectl create job --from=cronjob`` builds it, valid
against the Kubernetes schema, and created through :class:`core.k8s_jobs.KubeClient`
against a fake API server that records the requests: over plain HTTP, and over TLS
with the credentials a pod or a kubeconfig gives it."""

from __future__ import annotations

import base64
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from core import k8s_jobs
from core.errors import (
    RetrainAlreadyActiveError,
    RetrainAlreadyTriggeredError,
    RetrainConflictError,
    RetrainError,
)
from tests.fake_kube import FakeKube, TlsFiles, fake_kube_server, make_tls, training_cronjob

NAMESPACE = "triage"
CRONJOB = "accident-triage-training"
KUBERNETES_VERSIONS = ("1.29", "1.30", "1.31", "1.32", "1.33")
LABELS = {"triage/trigger": "drift", "triage/drift-window": "20261125T12"}
ANNOTATIONS = {"triage/drift-report-url": "s3://bucket/reports/drift/x/summary.json"}


def _manifest(cronjob: dict | None = None) -> dict:
    return k8s_jobs.job_from_cronjob(
        cronjob or training_cronjob(NAMESPACE, CRONJOB),
        "training-drift-1",
        labels=LABELS,
        annotations=ANNOTATIONS,
    )


def test_job_copies_the_job_template_as_kubectl_does() -> None:
    cronjob = training_cronjob(NAMESPACE, CRONJOB)
    job = _manifest(cronjob)
    template = cronjob["spec"]["jobTemplate"]
    assert job["apiVersion"] == "batch/v1" and job["kind"] == "Job"
    assert job["spec"] == template["spec"]
    assert job["spec"] is not template["spec"]  # a copy: the CronJob object is untouched
    assert job["metadata"]["labels"] == {**template["metadata"]["labels"], **LABELS}
    assert job["metadata"]["annotations"] == {
        "cronjob.kubernetes.io/instantiate": "manual",
        **template["metadata"]["annotations"],
        **ANNOTATIONS,
    }
    (owner,) = job["metadata"]["ownerReferences"]
    # kubectl sets controller but not blockOwnerDeletion (that needs RBAC on
    # cronjobs/finalizers).
    assert owner == {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "name": CRONJOB,
        "uid": cronjob["metadata"]["uid"],
        "controller": True,
    }


def test_template_annotations_win_over_the_manual_marker_as_in_kubectl() -> None:
    cronjob = training_cronjob()
    cronjob["spec"]["jobTemplate"]["metadata"]["annotations"] = {
        "cronjob.kubernetes.io/instantiate": "from-template"
    }
    job = k8s_jobs.job_from_cronjob(cronjob, "x")
    assert job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "from-template"


def test_a_cronjob_without_job_template_is_refused() -> None:
    with pytest.raises(RetrainError, match="no jobTemplate"):
        k8s_jobs.job_from_cronjob({"metadata": {"name": "x"}, "spec": {}}, "x")


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_job_is_valid_against_the_strict_kubernetes_schema(version: str) -> None:
    assert kubernetes_validate.validate(_manifest(), version, strict=True)


def test_strict_schema_catches_a_typo() -> None:
    job = _manifest()
    job["spec"]["backofLimit"] = 2
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, "1.33", strict=True)


def test_kubernetes_validate_command_accepts_the_job(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "kubernetes-validate"
    command = [str(script)] if script.exists() else [shutil.which("kubernetes-validate") or ""]
    manifest = tmp_path / "job.yaml"
    manifest.write_text(yaml.safe_dump(_manifest()))
    result = subprocess.run(
        [*command, "--strict", "--kubernetes-version", "1.33", str(manifest)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_job_names_are_deterministic_and_fit_a_label_value() -> None:
    long_name = "a-very-long-training-cronjob-name-that-goes-on-and-on-and-on-forever"
    first = k8s_jobs.job_name(long_name, "drift:model:20261125T12")
    assert first == k8s_jobs.job_name(long_name, "drift:model:20261125T12")
    assert first != k8s_jobs.job_name(long_name, "drift:model:20261125T13")
    assert len(first) <= 63
    assert k8s_jobs.job_name("training", "k").startswith("training-")


@pytest.mark.parametrize(
    ("status", "active"),
    [
        ({}, True),
        ({"active": 1}, True),
        ({"conditions": [{"type": "Complete", "status": "True"}]}, False),
        ({"conditions": [{"type": "Failed", "status": "True"}]}, False),
        ({"conditions": [{"type": "Suspended", "status": "True"}]}, True),
        ({"completionTime": "2026-11-25T12:00:00Z"}, False),
    ],
)
def test_is_active(status: dict, active: bool) -> None:
    assert k8s_jobs.is_active({"status": status}) is active


# --- through our client, against the fake API server ----------------------------


def _create(
    kube: FakeKube,
    *,
    dedupe_key: str | None = "drift:w1",
    api: k8s_jobs.KubeClient | None = None,
) -> str:
    return k8s_jobs.create_job_from_cronjob(
        NAMESPACE,
        CRONJOB,
        reason="dataset drift: 5 of 26 features",
        labels=dict(LABELS),
        annotations=dict(ANNOTATIONS),
        dedupe_key=dedupe_key,
        api_client=api or kube.api_client(),
    )


def test_creates_the_job_read_list_then_post(fake_kube: FakeKube) -> None:
    cronjob = fake_kube.add_cronjob(training_cronjob(NAMESPACE, CRONJOB))
    name = _create(fake_kube)
    assert name == k8s_jobs.job_name(CRONJOB, "drift:w1")
    calls = [(r.method, r.path) for r in fake_kube.requests]
    assert calls == [
        ("GET", f"/apis/batch/v1/namespaces/{NAMESPACE}/cronjobs/{CRONJOB}"),
        ("GET", f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs"),
        ("POST", f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs"),
    ]
    # Active Jobs are found by their owner, not by labels (a chart upgrade changes
    # labels; tests/cluster checks that across a real upgrade).
    assert "labelSelector" not in fake_kube.requests[1].query
    (posted,) = fake_kube.posted_jobs()
    assert posted["metadata"]["name"] == name
    assert posted["metadata"]["namespace"] == NAMESPACE
    assert posted["metadata"]["ownerReferences"][0]["uid"] == cronjob["metadata"]["uid"]
    assert posted["metadata"]["annotations"]["triage/retrain-reason"].startswith("dataset drift")
    assert posted["spec"] == cronjob["spec"]["jobTemplate"]["spec"]
    assert kubernetes_validate.validate(posted, "1.33", strict=True)


def test_an_active_job_of_the_cronjob_blocks_a_new_one(fake_kube: FakeKube) -> None:
    cronjob = fake_kube.add_cronjob(training_cronjob(NAMESPACE, CRONJOB))
    running = k8s_jobs.job_from_cronjob(cronjob, "scheduled-run")
    fake_kube.add_job(NAMESPACE, {**running, "status": {"active": 1}})
    with pytest.raises(RetrainAlreadyActiveError, match="scheduled-run") as caught:
        _create(fake_kube)
    assert caught.value.job_name == "scheduled-run"
    assert fake_kube.posted_jobs() == []


def test_finished_jobs_and_jobs_of_other_owners_do_not_block(fake_kube: FakeKube) -> None:
    cronjob = fake_kube.add_cronjob(training_cronjob(NAMESPACE, CRONJOB))
    done = k8s_jobs.job_from_cronjob(cronjob, "last-week")
    fake_kube.add_job(
        NAMESPACE, {**done, "status": {"conditions": [{"type": "Complete", "status": "True"}]}}
    )
    stranger = k8s_jobs.job_from_cronjob(training_cronjob(NAMESPACE, "other"), "other-run")
    fake_kube.add_job(NAMESPACE, {**stranger, "status": {"active": 1}})
    assert _create(fake_kube)
    assert len(fake_kube.posted_jobs()) == 1


def test_a_second_trigger_for_the_same_window_gets_already_exists(fake_kube: FakeKube) -> None:
    fake_kube.add_cronjob(training_cronjob(NAMESPACE, CRONJOB))
    name = _create(fake_kube)
    # The first Job finished quickly (or is not visible yet): the name still collides.
    fake_kube.jobs[(NAMESPACE, name)]["status"] = {
        "conditions": [{"type": "Complete", "status": "True"}]
    }
    with pytest.raises(RetrainAlreadyTriggeredError) as caught:
        _create(fake_kube)
    assert caught.value.job_name == name
    assert len(fake_kube.jobs) == 1


def test_concurrent_triggers_create_exactly_one_job(fake_kube: FakeKube) -> None:
    fake_kube.add_cronjob(training_cronjob(NAMESPACE, CRONJOB))
    # Both triggers list the Jobs (and see none active) before either creates one.
    fake_kube.list_barrier = threading.Barrier(2)
    outcomes: list[object] = []

    def trigger() -> None:
        try:
            outcomes.append(_create(fake_kube))
        except RetrainConflictError as error:
            outcomes.append(error)

    threads = [threading.Thread(target=trigger) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(fake_kube.posted_jobs()) == 2  # both tried...
    assert len(fake_kube.jobs) == 1  # ...one Job exists
    created = [o for o in outcomes if isinstance(o, str)]
    refused = [o for o in outcomes if isinstance(o, RetrainAlreadyTriggeredError)]
    assert len(created) == 1 and len(refused) == 1
    assert refused[0].job_name == created[0]


def test_requests_without_dedupe_key_in_the_same_minute_share_a_name(fake_kube: FakeKube) -> None:
    fake_kube.add_cronjob(training_cronjob(NAMESPACE, CRONJOB))
    name = _create(fake_kube, dedupe_key=None)
    assert name.startswith(CRONJOB + "-")
    fake_kube.jobs[(NAMESPACE, name)]["status"] = {"completionTime": "2026-11-25T12:00:00Z"}
    try:
        _create(fake_kube, dedupe_key=None)
    except RetrainAlreadyTriggeredError:
        pass  # same minute: the same name
    else:
        assert len(fake_kube.jobs) == 2  # the minute turned between the two calls


def test_a_missing_cronjob_is_a_one_line_error(fake_kube: FakeKube) -> None:
    with pytest.raises(
        RetrainError, match=r"read CronJob triage/accident-triage-training: HTTP 404"
    ):
        _create(fake_kube)


def test_forbidden_creation_names_the_missing_permission(fake_kube: FakeKube) -> None:
    fake_kube.add_cronjob(training_cronjob(NAMESPACE, CRONJOB))
    fake_kube.create_status = 403
    with pytest.raises(RetrainError, match=r"HTTP 403: jobs\.batch is forbidden") as caught:
        _create(fake_kube)
    assert "\n" not in str(caught.value)


def test_an_unreachable_api_server_is_a_one_line_error() -> None:
    with pytest.raises(
        RetrainError, match=r"API server http://127\.0\.0\.1:9 unreachable"
    ) as caught:
        k8s_jobs.create_job_from_cronjob(
            NAMESPACE,
            CRONJOB,
            reason="r",
            labels={},
            annotations={},
            api_client=k8s_jobs.KubeClient("http://127.0.0.1:9"),
        )
    assert "\n" not in str(caught.value)


def test_an_answer_that_is_not_json_is_a_one_line_error(fake_kube: FakeKube) -> None:
    # The fake answers its 404 Status as JSON; a proxy's HTML page is not.
    client = k8s_jobs.KubeClient(fake_kube.host)
    with pytest.raises(k8s_jobs.ApiError, match=r"^read x: HTTP 404: the server could not"):
        client.request("GET", "/api/v1/nothing", what="read x")


def test_no_credentials_outside_a_cluster(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    with pytest.raises(RetrainError, match="no Kubernetes credentials") as caught:
        k8s_jobs.cluster_api_client()
    assert "KUBERNETES_SERVICE_HOST" in str(caught.value)
    assert str(tmp_path / "missing") in str(caught.value)


# --- credentials: a pod's service account, a kubeconfig, over TLS ---------------------


@pytest.fixture
def tls(tmp_path: Path) -> TlsFiles:
    folder = tmp_path / "tls"
    folder.mkdir()
    return make_tls(folder)


@pytest.fixture
def tls_kube(tls: TlsFiles) -> Iterator[FakeKube]:
    with fake_kube_server(tls) as kube:
        kube.add_cronjob(training_cronjob(NAMESPACE, CRONJOB))
        yield kube


def _port(kube: FakeKube) -> str:
    return kube.host.rsplit(":", 1)[1]


def _service_account(folder: Path, tls: TlsFiles, token: str) -> Path:
    folder.mkdir()
    (folder / "token").write_text(token)
    (folder / "ca.crt").write_bytes(tls.ca.read_bytes())
    (folder / "namespace").write_text(NAMESPACE)
    return folder


def test_in_cluster_uses_the_service_account_token_and_ca(
    tls_kube: FakeKube, tls: TlsFiles, tmp_path: Path
) -> None:
    account = _service_account(tmp_path / "sa", tls, "token-1")
    environ = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": _port(tls_kube)}
    client = k8s_jobs.KubeClient.in_cluster(environ, account)
    assert client.server == tls_kube.host
    name = _create(tls_kube, dedupe_key="w1", api=client)
    tls_kube.jobs[(NAMESPACE, name)]["status"] = {"completionTime": "2026-11-25T12:00:00Z"}
    # The kubelet rotates the projected token under a running pod: read per request.
    (account / "token").write_text("token-2\n")
    with pytest.raises(RetrainAlreadyTriggeredError):
        _create(tls_kube, dedupe_key="w1", api=client)
    tokens = [r.headers.get("Authorization") for r in tls_kube.requests]
    assert tokens == ["Bearer token-1"] * 3 + ["Bearer token-2"] * 3


@pytest.mark.parametrize("missing", ["KUBERNETES_SERVICE_HOST", "token", "ca.crt"])
def test_in_cluster_without_its_pieces_is_no_credentials(
    missing: str, tls: TlsFiles, tmp_path: Path
) -> None:
    account = _service_account(tmp_path / "sa", tls, "t")
    environ = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    if missing in environ:
        del environ[missing]
    else:
        (account / missing).unlink()
    with pytest.raises(k8s_jobs.NoCredentialsError, match=missing):
        k8s_jobs.KubeClient.in_cluster(environ, account)


def test_a_ca_that_is_not_a_certificate_is_a_one_line_error(tls: TlsFiles, tmp_path: Path) -> None:
    account = _service_account(tmp_path / "sa", tls, "t")
    (account / "ca.crt").write_text("not a certificate\n")
    environ = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    with pytest.raises(k8s_jobs.NoCredentialsError, match=r"ca\.crt") as caught:
        k8s_jobs.KubeClient.in_cluster(environ, account)
    assert "\n" not in str(caught.value)
    config = _kubeconfig(tmp_path / "config", "https://127.0.0.1:6443", {"token": "t"})
    _with_ca(config, tls, inline=True)
    text = config.read_text().replace(
        "certificate-authority-data: ", "certificate-authority-data: x"
    )
    config.write_text(text)
    with pytest.raises(k8s_jobs.NoCredentialsError, match="TLS settings of context 'test'"):
        k8s_jobs.KubeClient.from_kubeconfig([config])


def test_a_server_certificate_of_another_ca_is_refused(tls_kube: FakeKube, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    account = _service_account(tmp_path / "sa", make_tls(other), "t")
    environ = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": _port(tls_kube)}
    client = k8s_jobs.KubeClient.in_cluster(environ, account)
    with pytest.raises(RetrainError, match=r"unreachable .*CERTIFICATE_VERIFY_FAILED"):
        _create(tls_kube, api=client)
    assert tls_kube.requests == []


def _kubeconfig(path: Path, server: str, user: dict, *, current: str | None = "test") -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": {"server": server}}],
        "users": [{"name": "test", "user": user}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
    }
    if current:
        config["current-context"] = current
    path.write_text(yaml.safe_dump(config))
    return path


def _with_ca(path: Path, tls: TlsFiles, *, inline: bool) -> None:
    config = yaml.safe_load(path.read_text())
    cluster = config["clusters"][0]["cluster"]
    if inline:
        cluster["certificate-authority-data"] = base64.b64encode(tls.ca.read_bytes()).decode()
    else:
        cluster["certificate-authority"] = tls.ca.name  # relative to the kubeconfig
    path.write_text(yaml.safe_dump(config))


def test_kubeconfig_with_a_token_and_a_ca_file(tls_kube: FakeKube, tls: TlsFiles) -> None:
    path = _kubeconfig(tls.ca.parent / "config", tls_kube.host, {"token": "kubeconfig-token"})
    _with_ca(path, tls, inline=False)
    assert _create(tls_kube, api=k8s_jobs.KubeClient.from_kubeconfig([path]))
    assert {r.headers.get("Authorization") for r in tls_kube.requests} == {
        "Bearer kubeconfig-token"
    }


def test_kubeconfig_with_an_inline_client_certificate(
    tls_kube: FakeKube, tls: TlsFiles, tmp_path: Path
) -> None:
    user = {
        "client-certificate-data": base64.b64encode(tls.client_cert.read_bytes()).decode(),
        "client-key-data": base64.b64encode(tls.client_key.read_bytes()).decode(),
    }
    path = _kubeconfig(tmp_path / "config", tls_kube.host, user)
    _with_ca(path, tls, inline=True)
    assert _create(tls_kube, api=k8s_jobs.KubeClient.from_kubeconfig([path]))
    assert {r.client_certificate for r in tls_kube.requests} == {tls.client_name}
    assert all("Authorization" not in r.headers for r in tls_kube.requests)


def test_kubeconfig_exec_plugin_gives_the_token(
    tls_kube: FakeKube, tls: TlsFiles, tmp_path: Path
) -> None:
    credential = {
        "apiVersion": "client.authentication.k8s.io/v1",
        "kind": "ExecCredential",
        "status": {"token": "from-plugin"},
    }
    # The plugin sees the cluster it is asked for, as kubectl tells it.
    script = (
        "import json, os, sys; info = json.loads(os.environ['KUBERNETES_EXEC_INFO']); "
        f"assert info['spec']['cluster']['server'] == {tls_kube.host!r}; "
        f"print(json.dumps({credential!r}))"
    )
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": sys.executable,
            "args": ["-c", script],
        }
    }
    path = _kubeconfig(tmp_path / "config", tls_kube.host, user)
    _with_ca(path, tls, inline=True)
    assert _create(tls_kube, api=k8s_jobs.KubeClient.from_kubeconfig([path]))
    assert {r.headers.get("Authorization") for r in tls_kube.requests} == {"Bearer from-plugin"}


def test_a_failing_exec_plugin_is_no_credentials(tmp_path: Path) -> None:
    user = {"exec": {"command": sys.executable, "args": ["-c", "raise SystemExit(3)"]}}
    path = _kubeconfig(tmp_path / "config", "https://127.0.0.1:6443", user)
    with pytest.raises(k8s_jobs.NoCredentialsError, match=r"exec plugin .* failed"):
        k8s_jobs.KubeClient.from_kubeconfig([path])


def test_kubeconfig_files_merge_as_kubectl_merges_them(tmp_path: Path) -> None:
    # The first file to set a name wins; the current context may come from another file.
    first = _kubeconfig(tmp_path / "a", "https://first:6443", {"token": "a"}, current=None)
    second = _kubeconfig(tmp_path / "b", "https://second:6443", {"token": "b"})
    environ = {"KUBECONFIG": f"{tmp_path / 'missing'}:{first}:{second}"}
    paths = k8s_jobs.kubeconfig_paths(environ)
    client = k8s_jobs.KubeClient.from_kubeconfig(paths)
    assert client.server == "https://first:6443"


def test_kubeconfig_without_current_context_or_with_an_unknown_one(tmp_path: Path) -> None:
    path = _kubeconfig(tmp_path / "config", "https://x:6443", {"token": "t"}, current=None)
    with pytest.raises(k8s_jobs.NoCredentialsError, match="no current-context"):
        k8s_jobs.KubeClient.from_kubeconfig([path])
    with pytest.raises(k8s_jobs.NoCredentialsError, match="no context named 'elsewhere'"):
        k8s_jobs.KubeClient.from_kubeconfig([path], context="elsewhere")


def test_kubeconfig_default_path_is_under_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    assert k8s_jobs.kubeconfig_paths() == [Path.home() / ".kube" / "config"]
    # An empty KUBECONFIG is unset, as for kubectl.
    assert k8s_jobs.kubeconfig_paths({"KUBECONFIG": ""}) == [Path.home() / ".kube" / "config"]

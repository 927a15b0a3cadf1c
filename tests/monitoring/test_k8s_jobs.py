"""The retrain Job: built as ``kubectl create job --from=cronjob`` builds it, valid
against the Kubernetes schema, and created through the real ``kubernetes`` client
against a fake API server that records the requests."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
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
from tests.monitoring.fake_kube import FakeKube, training_cronjob

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


# --- through the real client, against the fake API server ----------------------------


def _create(kube: FakeKube, *, dedupe_key: str | None = "drift:w1") -> str:
    return k8s_jobs.create_job_from_cronjob(
        NAMESPACE,
        CRONJOB,
        reason="dataset drift: 5 of 26 features",
        labels=dict(LABELS),
        annotations=dict(ANNOTATIONS),
        dedupe_key=dedupe_key,
        api_client=kube.api_client(),
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
    from kubernetes import client

    configuration = client.Configuration(host="http://127.0.0.1:9")
    configuration.retries = 0
    with pytest.raises(RetrainError, match="API server unreachable"):
        k8s_jobs.create_job_from_cronjob(
            NAMESPACE,
            CRONJOB,
            reason="r",
            labels={},
            annotations={},
            api_client=client.ApiClient(configuration),
        )


def test_no_credentials_outside_a_cluster(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    with pytest.raises(RetrainError, match="no Kubernetes credentials"):
        k8s_jobs.cluster_api_client()

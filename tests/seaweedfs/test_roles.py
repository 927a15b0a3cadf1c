"""The chart's S3 identities on the real server: every role runs its real code path
(the training job, the scorer app, the drift job, through ``open_storage`` with the
role's AWS_* variables, as its pod does) and may do what that path needs and nothing
that could harm another role's data. Once with the chart's defaults (bucket
``triage``, keys at its root) and once with ``--set storage.prefix=prod``.

The admin identity only sets up (it reads objects back to prove they did not change);
no role's code path uses it."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from core import claims, layout
from core.errors import ObjectNotFoundError, RegistryError, RetrainClaimedError, StorageError
from core.registry import Registry
from core.storage import Storage, open_storage, wait_until_usable
from monitoring.job import run_drift
from monitoring.reports import LAST_RETRAIN_KEY, write_last_retrain
from monitoring.settings import MonitoringSettings
from service.app import create_app
from service.settings import ScorerSettings
from tests import seaweedfs_server as swfs
from tests.factories import publish_model
from tests.service.helpers import wait_for
from tools.simulate import contract_rows, synthetic_table
from training.settings import TrainingSettings
from training.train import train

pytestmark = [pytest.mark.servers, pytest.mark.seaweedfs]

MODEL = layout.DEFAULT_MODEL_NAME
ROOT = swfs.ROOT


@contextlib.contextmanager
def as_role(server: swfs.SeaweedFS, role: str) -> Iterator[None]:
    """The process environment of a pod of ``role``: its AWS_* variables and no other.
    S3 clients take their credentials when they are built, so build them inside."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("AWS_"):
                patch.delenv(name)
        for name, value in server.role_env(role).items():
            patch.setenv(name, value)
        yield


def storage_of(server: swfs.SeaweedFS, role: str) -> Storage:
    with as_role(server, role):
        return open_storage(server.registry_uri, max_attempts=1)


def assert_denied(error: pytest.ExceptionInfo[StorageError]) -> None:
    message = str(error.value)
    assert "access denied (AccessDenied" in message or "access denied (403" in message, message
    assert "\n" not in message


def assert_cannot_write_or_delete(storage: Storage, key: str, body: bytes) -> None:
    with pytest.raises(StorageError) as caught:
        storage.write_bytes(key, body)
    assert_denied(caught)
    with pytest.raises(StorageError) as caught:
        storage.delete(key)
    assert_denied(caught)


@pytest.fixture(
    scope="module",
    params=[
        pytest.param({}, id="bucket-root"),
        pytest.param({"storage.prefix": "prod"}, id="prefix-prod"),
    ],
)
def deployment(request: pytest.FixtureRequest) -> Iterator[swfs.SeaweedFS]:
    """The chart's store for one set of values. The defaults reuse the session's
    server (nothing else writes its ``triage`` bucket)."""
    if not request.param:
        yield request.getfixturevalue("seaweedfs")
        return
    swfs.require_seaweedfs()
    with swfs.seaweedfs_server(request.param) as server:
        yield server


@pytest.fixture(scope="module")
def trained(deployment: swfs.SeaweedFS) -> dict[str, Any]:
    """A real model, trained, published and promoted by the training job's own code
    with the training identity: the first thing a fresh deployment does."""
    with as_role(deployment, "training"):
        values: dict[str, Any] = {
            "raw_uri": "synthetic://?accidents=2500&seed=7",
            "registry_uri": deployment.registry_uri,
            "reference_rows": 2000,
            "storage_attempts": 1,
        }
        summary = train(TrainingSettings(**values))
    assert summary["status"] == "trained" and summary["promoted"] is True, summary
    return summary


def restore_production(server: swfs.SeaweedFS, version: str) -> None:
    """Tests that promote something else put the trained model back when they need it."""
    registry = Registry(storage_of(server, "training"), MODEL)
    if registry.alias_version() != version:
        registry.promote(version, reason="test: back to the trained model")


def admin_snapshot(server: swfs.SeaweedFS, keys: list[str]) -> dict[str, bytes]:
    storage = storage_of(server, "admin")
    return {key: storage.read_bytes(key) for key in keys}


# --- the chart ----------------------------------------------------------------------


def test_each_identity_is_scoped_to_the_prefix(deployment: swfs.SeaweedFS) -> None:
    prefix = deployment.chart.values.get("storage.prefix", "")
    root = f"triage/{prefix}/" if prefix else "triage/"
    assert deployment.registry_uri == f"s3://{root}"
    assert deployment.chart.identities == {
        "training": ["Read:triage", "List:triage", f"Write:{root}models/*"],
        "scorer": [
            f"Read:{root}models/*",
            f"Write:{root}inference-logs/*",
            f"Write:{root}feedback/*",
            f"Read:{root}retrain-claims/*",
            f"Write:{root}retrain-claims/*",
        ],
        "drift": [
            "Read:triage",
            "List:triage",
            f"Write:{root}reports/*",
            f"Write:{root}retrain-claims/*",
        ],
        "admin": ["Admin", "Read", "Write", "List", "Tagging"],
    }


def test_no_workload_is_given_the_admin_identity(deployment: swfs.SeaweedFS) -> None:
    chart = deployment.chart
    used = {workload: secrets for workload, secrets in chart.workload_secrets.items() if secrets}
    role = {"scorer": "scorer", "drift": "drift", "training": "training", "bootstrap": "training"}
    for workload, secrets in used.items():
        component = workload.split("/", 1)[1].removeprefix(f"{swfs.FULLNAME}-").split("-")[0]
        assert secrets == {chart.role_secret(role[component])}, workload
    assert chart.role_secret("admin") not in set().union(*used.values())


# --- training -----------------------------------------------------------------------


def test_training_publishes_and_promotes_with_its_own_identity(
    deployment: swfs.SeaweedFS, trained: dict[str, Any]
) -> None:
    version = trained["version"]
    registry = Registry(storage_of(deployment, "training"), MODEL)
    assert version in registry.versions()
    assert registry.alias_version() == version
    prefix = layout.version_prefix(MODEL, version)
    assert set(registry.manifest(version)["files"]) <= {
        layout.MODEL_JOBLIB,
        layout.MODEL_ONNX,
        layout.REFERENCE,
    }
    assert registry.storage.exists(prefix + layout.MANIFEST)
    # Promotion (and rollback, the same operation) rewrites the pointer and its history.
    pointer = registry.promote(version, reason="test: promote again")
    assert pointer["previous"] == version
    # Immutability is the registry's: the identity may write models/, the code refuses.
    with pytest.raises(RegistryError, match="immutable"):
        registry.publish(version, {layout.MODEL_JOBLIB: b"x"}, {})


@pytest.mark.parametrize(
    ("role", "area"),
    [
        ("training", "models"),
        ("scorer", "inference-logs"),
        ("scorer", "retrain-claims"),
        ("drift", "reports"),
        ("drift", "retrain-claims"),
    ],
)
def test_a_role_writes_its_area_under_the_prefix_only(
    deployment: swfs.SeaweedFS, role: str, area: str
) -> None:
    # Write:<bucket>/<prefix><area>/* : the same area under another root is refused
    # (with storage.prefix=prod, the bucket's root is such another root).
    prefix = deployment.chart.values.get("storage.prefix", "")
    roots = ["s3://triage/elsewhere/"] + (["s3://triage/"] if prefix else [])
    with as_role(deployment, role):
        own = open_storage(deployment.registry_uri, max_attempts=1)
        others = [open_storage(root, max_attempts=1) for root in roots]
    key = f"{area}/probe-{role}.json"
    own.write_bytes(key, b"{}")
    own.delete(key)
    for other in others:
        with pytest.raises(StorageError) as caught:
            other.write_bytes(key, b"{}")
        assert_denied(caught)


def test_the_scorer_and_the_drift_job_share_one_retrain_claim(deployment: swfs.SeaweedFS) -> None:
    # Each with its own identity: a conditional create, the loser reading the holder,
    # the holder giving its claim back.
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    window = claims.decision_window(now)
    scorer, drift = storage_of(deployment, "scorer"), storage_of(deployment, "drift")
    held = claims.claim_retrain(
        scorer, MODEL, window=window, trigger="scorer-api", host="pod-a", reason="api", now=now
    )
    with pytest.raises(RetrainClaimedError, match="already claimed by scorer-api on pod-a"):
        claims.claim_retrain(
            drift, MODEL, window=window, trigger="drift", host="pod-b", reason="drift", now=now
        )
    claims.release(scorer, held)
    drifted = claims.claim_retrain(
        drift, MODEL, window=window, trigger="drift", host="pod-b", reason="drift", now=now
    )
    with pytest.raises(RetrainClaimedError, match="already claimed by drift on pod-b"):
        claims.claim_retrain(
            scorer, MODEL, window=window, trigger="scorer-api", host="pod-a", reason="x", now=now
        )
    claims.release(drift, drifted)
    assert not storage_of(deployment, "admin").exists(layout.retrain_claim_key(MODEL, window))


def test_training_cannot_write_outside_models(deployment: swfs.SeaweedFS) -> None:
    storage = storage_of(deployment, "training")
    for key in ("inference-logs/date=2026-01-01/x.parquet", "feedback/x", "reports/drift/x"):
        with pytest.raises(StorageError) as caught:
            storage.write_bytes(key, b"x")
        assert_denied(caught)


# --- what nobody but training may touch -------------------------------------------


@pytest.mark.parametrize("role", ["scorer", "drift"])
def test_models_manifests_and_the_alias_are_out_of_reach(
    deployment: swfs.SeaweedFS, trained: dict[str, Any], role: str
) -> None:
    version = trained["version"]
    restore_production(deployment, version)
    prefix = layout.version_prefix(MODEL, version)
    history = next(
        key
        for key in storage_of(deployment, "admin").list(layout.model_prefix(MODEL))
        if "/aliases/history/" in key
    )
    protected = [
        prefix + layout.MODEL_ONNX,
        prefix + layout.MODEL_JOBLIB,
        prefix + layout.REFERENCE,
        prefix + layout.MANIFEST,
        layout.alias_key(MODEL, layout.PRODUCTION_ALIAS),
        history,
    ]
    before = admin_snapshot(deployment, protected)
    storage = storage_of(deployment, role)
    for key in protected:
        assert_cannot_write_or_delete(storage, key, b'{"version": "evil"}')

    registry = Registry(storage, MODEL)
    with pytest.raises(StorageError) as caught:
        registry.promote(version, reason="not mine to do")
    assert_denied(caught)
    with pytest.raises(StorageError) as caught:
        registry.publish("20990101t000000-evil0000", {layout.MODEL_ONNX: b"x"}, {})
    assert_denied(caught)

    # Nor through the calls the storage layer does not make.
    client = deployment.role_client(role)
    bucket, root = deployment.bucket, deployment.registry_uri.split("/", 3)[3]
    answer = client.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": root + key} for key in protected]}
    )
    assert [error["Code"] for error in answer.get("Errors", [])] == ["AccessDenied"] * len(
        protected
    )
    assert "Deleted" not in answer
    with pytest.raises(Exception, match="AccessDenied"):
        client.copy_object(
            Bucket=bucket,
            Key=root + protected[0],
            CopySource={"Bucket": bucket, "Key": root + protected[1]},
        )
    assert admin_snapshot(deployment, protected) == before


def test_no_role_may_create_a_bucket_or_use_another_one(deployment: swfs.SeaweedFS) -> None:
    other = deployment.make_bucket()
    try:
        for role in ("training", "scorer", "drift"):
            with pytest.raises(Exception, match="AccessDenied"):
                deployment.role_client(role).create_bucket(Bucket=f"{other}-{role}")
            with as_role(deployment, role):
                foreign = open_storage(f"s3://{other}/", max_attempts=1)
            with pytest.raises(StorageError) as caught:
                foreign.list()
            assert_denied(caught)
            with pytest.raises(StorageError) as caught:
                foreign.write_bytes("k", b"")
            assert_denied(caught)
    finally:
        swfs.empty_and_delete_bucket(deployment.admin, other)


# --- the scorer ---------------------------------------------------------------------


def scorer_app(server: swfs.SeaweedFS, **overrides: Any) -> TestClient:
    values: dict[str, Any] = {
        "registry_uri": server.registry_uri,
        "poll_interval_seconds": 0,
        "inference_log_flush_rows": 1,
        "inference_log_flush_seconds": 0.2,
        "retrain_mode": "disabled",
        "storage_attempts": 1,
        **overrides,
    }
    with as_role(server, "scorer"):
        return TestClient(create_app(ScorerSettings(**values)), raise_server_exceptions=False)


def parquet_ids(storage: Storage, prefix: str) -> list[str]:
    ids: list[str] = []
    for key in storage.list(prefix):
        frame = pd.read_parquet(io.BytesIO(storage.read_bytes(key)))
        ids += frame[layout.REQUEST_ID].tolist()
    return ids


def test_scorer_loads_the_model_logs_and_takes_feedback_with_its_own_identity(
    deployment: swfs.SeaweedFS, trained: dict[str, Any]
) -> None:
    restore_production(deployment, trained["version"])
    admin = storage_of(deployment, "admin")
    rows, _ = contract_rows(synthetic_table(60, seed=11))
    with scorer_app(deployment) as client:
        ready = client.get("/ready")
        assert ready.status_code == 200, ready.text
        assert ready.json()["model_version"] == trained["version"]
        scored = client.post("/predict", json=rows[0])
        assert scored.status_code == 200, scored.text
        request_id = scored.json()["request_id"]
        feedback = client.post("/feedback", json={"request_id": request_id, "label": 1})
        assert feedback.status_code == 200, feedback.text
        wait_for(lambda: request_id in parquet_ids(admin, layout.INFERENCE_LOG_PREFIX), timeout=30)
    assert request_id in parquet_ids(admin, layout.FEEDBACK_PREFIX)


def test_scorer_cannot_write_reports_nor_read_what_others_wrote(
    deployment: swfs.SeaweedFS, trained: dict[str, Any]
) -> None:
    storage = storage_of(deployment, "scorer")
    with pytest.raises(StorageError) as caught:
        storage.write_bytes("reports/drift/20990101T000000000000Z/summary.json", b"{}")
    assert_denied(caught)
    with pytest.raises(StorageError) as caught:
        storage.write_bytes(LAST_RETRAIN_KEY, b"{}")
    assert_denied(caught)
    storage_of(deployment, "drift").write_bytes("reports/drift/probe.json", b"{}")
    with pytest.raises(StorageError) as caught:
        storage.read_bytes("reports/drift/probe.json")
    assert_denied(caught)


def test_scorer_hot_swaps_a_version_training_promotes(
    deployment: swfs.SeaweedFS, trained: dict[str, Any]
) -> None:
    restore_production(deployment, trained["version"])
    training = Registry(storage_of(deployment, "training"), MODEL)
    new = f"{datetime.now(UTC):%Y%m%dt%H%M%S}-hotswap0"
    try:
        with scorer_app(
            deployment, poll_interval_seconds=0.2, inference_log_enabled=False
        ) as client:
            assert client.get("/ready").json()["model_version"] == trained["version"]
            publish_model(training, new, seed=3)
            wait_for(lambda: client.get("/ready").json()["model_version"] == new, timeout=30)
            # A rollback is picked up the same way.
            training.promote(trained["version"], reason="test: rollback")
            wait_for(
                lambda: client.get("/ready").json()["model_version"] == trained["version"],
                timeout=30,
            )
    finally:
        restore_production(deployment, trained["version"])


# --- the drift job ------------------------------------------------------------------


def test_drift_job_reads_logs_and_models_and_writes_reports_with_its_own_identity(
    deployment: swfs.SeaweedFS, trained: dict[str, Any]
) -> None:
    restore_production(deployment, trained["version"])
    rows, _ = contract_rows(synthetic_table(400, seed=12))
    started = datetime.now(UTC) - timedelta(seconds=1)
    with scorer_app(deployment, inference_log_flush_rows=1000) as client:
        batch = client.post("/predict/batch", json={"rows": rows[:300]})
        assert batch.status_code == 200, batch.text
    # The app's shutdown flushed the log.
    with as_role(deployment, "drift"):
        end = datetime.now(UTC) + timedelta(seconds=1)
        values: dict[str, Any] = {
            "registry_uri": deployment.registry_uri,
            "window_end": end,
            "window_hours": (end - started).total_seconds() / 3600,
            "min_rows": 100,
            "retrain_mode": "disabled",
            "storage_attempts": 1,
        }
        summary = run_drift(MonitoringSettings(**values))
    assert summary["status"] in ("drift", "no-drift"), summary
    assert summary["rows"]["current"] == 300
    summary_url = summary["report"]["summary"]
    assert summary_url.startswith(deployment.registry_uri + layout.DRIFT_REPORT_PREFIX)
    key = summary_url.removeprefix(deployment.registry_uri)
    stored = json.loads(storage_of(deployment, "admin").read_bytes(key))
    assert stored["model"]["version"] == trained["version"]
    # The retrain cooldown record lives under reports/ too.
    drift_storage = storage_of(deployment, "drift")
    write_last_retrain(drift_storage, {"started_at": end.isoformat()})


def test_drift_job_cannot_write_inference_logs_or_feedback(deployment: swfs.SeaweedFS) -> None:
    storage = storage_of(deployment, "drift")
    for key in (
        "inference-logs/date=2026-01-01/drift-0.parquet",
        "feedback/date=2026-01-01/drift-0.parquet",
    ):
        assert_cannot_write_or_delete(storage, key, b"PAR1")


# --- HeadBucket -----------------------------------------------------------------------


def test_head_bucket_needs_read_on_the_whole_bucket(deployment: swfs.SeaweedFS) -> None:
    # SeaweedFS authorizes HeadBucket as Read on the bucket itself, which
    # Read:triage/<prefix>models/* does not give: the scorer cannot. The storage layer
    # sends HeadBucket only after a HEAD of a missing key (exists, download_file),
    # to tell a missing bucket from a missing key; only training calls those, and
    # training holds Read:triage. Should the scorer ever call exists(), its identity
    # would need Read:triage (or the storage layer another way to tell).
    answers = {}
    for role in ("training", "scorer", "drift"):
        try:
            deployment.role_client(role).head_bucket(Bucket=deployment.bucket)
            answers[role] = "OK"
        except Exception as error:  # botocore ClientError
            answers[role] = str(getattr(error, "response", {}).get("Error", {}).get("Code"))
    assert answers == {"training": "OK", "scorer": "403", "drift": "OK"}
    scorer = storage_of(deployment, "scorer")
    missing = layout.version_prefix(MODEL, "20990101t000000-missing0") + layout.MANIFEST
    with pytest.raises(ObjectNotFoundError):
        scorer.read_bytes(missing)  # what the scorer's code does: fine
    with pytest.raises(StorageError) as caught:
        scorer.exists(missing)  # what it never does
    assert "access denied (403" in str(caught.value)
    assert storage_of(deployment, "training").exists(missing) is False


# --- waiting for the store (the training Jobs' init container) ------------------------


def test_wait_for_storage_with_the_training_identity() -> None:
    swfs.require_seaweedfs()
    with swfs.seaweedfs_server(create_bucket=False) as server:
        root = server.registry_uri
        with as_role(server, "training"), pytest.raises(StorageError) as caught:
            wait_until_usable(root, timeout=1.5, interval=0.5)
        message = str(caught.value)
        assert message.startswith("still not usable after ")
        assert f"{root}: bucket 'triage' does not exist" in message
        assert "\n" not in message

        env = swfs.environment_without_aws(server.role_env("training"))

        def wait_for_storage(timeout: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "training",
                    "wait-for-storage",
                    "--registry",
                    root,
                    "--timeout",
                    timeout,
                ],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
                cwd=ROOT,
            )

        failed = wait_for_storage("1")
        assert failed.returncode == 1, failed.stderr
        assert "bucket 'triage' does not exist" in failed.stderr.strip().splitlines()[-1]

        server.admin.create_bucket(Bucket=server.bucket)
        with as_role(server, "training"):
            # A failed first attempt would sleep the interval: returning sooner than it
            # means the first attempt succeeded.
            waited = wait_until_usable(root, timeout=300, interval=120)
        assert waited < 120
        done = wait_for_storage("60")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["registry"] == root

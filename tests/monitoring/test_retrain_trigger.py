"""The retrain decision and what it starts: a local training subprocess, or a Job
created from the training CronJob (against the fake API server), at most once per
drift window and never within the cooldown."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from monitoring import k8s_jobs, retrain
from monitoring.errors import RetrainError
from monitoring.job import run_drift
from monitoring.reports import LAST_RETRAIN_KEY, ReportLocation, read_last_retrain
from monitoring.settings import MonitoringSettings, RetrainMode
from tests.monitoring.conftest import NOW
from tests.monitoring.fake_kube import FakeKube, training_cronjob
from tests.monitoring.support import TrainedModel, live_rows, write_inference_logs
from training import layout
from training.storage import Storage

Settings = Callable[..., MonitoringSettings]
DRIFT = retrain.RetrainDecision(True, "drift (test)")


@pytest.mark.parametrize(
    ("case", "expected", "reason"),
    [
        ({"insufficient_data": True}, False, "insufficient data"),
        ({"drift_detected": False}, False, "no drift (why)"),
        ({"mode": RetrainMode.DISABLED}, False, "retraining is disabled"),
        ({"last_triggered_at": NOW - timedelta(hours=2)}, False, "cooldown until"),
        ({"last_triggered_at": NOW - timedelta(hours=30)}, True, "drift (why)"),
        ({}, True, "drift (why)"),
    ],
)
def test_decide(case: dict[str, Any], expected: bool, reason: str) -> None:
    arguments: dict[str, Any] = {
        "insufficient_data": False,
        "drift_detected": True,
        "mode": RetrainMode.LOCAL,
        "last_triggered_at": None,
        "now": NOW,
        "cooldown_hours": 24,
        "drift_reason": "why",
        **case,
    }
    decision = retrain.decide(**arguments)
    assert decision.retrain is expected
    assert reason in decision.reason


def _fake_training(monkeypatch: pytest.MonkeyPatch, *, exit_code: int = 0) -> None:
    summary = {"status": "trained", "version": "v2", "promoted": False, "reason": "gate"}
    code = f"import json, sys; print(json.dumps({summary!r})); sys.exit({exit_code})"
    monkeypatch.setattr(retrain, "training_command", lambda settings: [sys.executable, "-c", code])


def _execute(
    settings: MonitoringSettings, storage: Storage, *, now: datetime = NOW
) -> dict[str, Any]:
    return retrain.execute(
        DRIFT,
        settings,
        report_storage=storage,
        location=ReportLocation.for_run(storage, now),
        window_end=now,
        now=now,
    )


def test_local_mode_runs_training_and_records_the_trigger(
    make_settings: Settings, live_storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_training(monkeypatch)
    result = _execute(make_settings(retrain_mode="local"), live_storage)
    assert result["triggered"] is True
    assert result["training"] == {
        "status": "trained",
        "version": "v2",
        "promoted": False,
        "reason": "gate",
    }
    record = read_last_retrain(live_storage)
    assert record is not None and record["triggered_at"] == NOW.isoformat()
    assert record["report"].endswith(layout.drift_report_prefix(NOW) + "summary.json")
    assert retrain.last_triggered_at(live_storage) == NOW


def test_the_real_training_command_targets_the_same_registry(make_settings: Settings) -> None:
    settings = make_settings(training_raw_uri="/data/raw", registry_uri="s3://models/prod/")
    command = retrain.training_command(settings)
    assert command[0] == sys.executable
    assert command[1:] == [
        "-m",
        "training",
        "train",
        "--registry",
        "s3://models/prod/",
        "--model-name",
        "accident-severity",
        "--raw",
        "/data/raw",
    ]


def test_a_failed_local_training_is_an_error_and_still_counts_for_the_cooldown(
    make_settings: Settings, live_storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_training(monkeypatch, exit_code=3)
    with pytest.raises(RetrainError, match="exit code 3"):
        _execute(make_settings(retrain_mode="local"), live_storage)
    assert retrain.last_triggered_at(live_storage) == NOW


def test_dry_run_starts_nothing_and_records_nothing(
    make_settings: Settings, live_storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_training(monkeypatch)
    local = _execute(make_settings(retrain_mode="local", dry_run=True), live_storage)
    assert local["triggered"] is False and local["command"][0] == sys.executable
    cluster = _execute(
        make_settings(retrain_mode="kubernetes", dry_run=True, namespace="triage"), live_storage
    )
    assert cluster["triggered"] is False
    assert cluster["job"] == k8s_jobs.job_name(
        "accident-triage-training", f"drift:accident-severity:{NOW:%Y%m%dT%H}"
    )
    assert not live_storage.exists(LAST_RETRAIN_KEY)


def test_an_unreadable_cooldown_record_does_not_block(live_storage: Storage) -> None:
    live_storage.write_bytes(LAST_RETRAIN_KEY, b"{not json")
    assert retrain.last_triggered_at(live_storage) is None


@pytest.fixture
def cluster(
    fake_kube: FakeKube, monkeypatch: pytest.MonkeyPatch
) -> tuple[FakeKube, dict[str, Any]]:
    cronjob = fake_kube.add_cronjob(training_cronjob("triage", "accident-triage-training"))
    monkeypatch.setattr(k8s_jobs, "cluster_api_client", fake_kube.api_client)
    return fake_kube, cronjob


def test_a_drift_run_in_a_cluster_creates_a_labelled_job(
    cluster: tuple[FakeKube, dict[str, Any]],
    trained_model: TrainedModel,
    live_storage: Storage,
    make_settings: Settings,
) -> None:
    kube, cronjob = cluster
    write_inference_logs(
        live_storage, live_rows(trained_model, 1200, seed=7, drift="two-wheelers"), end=NOW
    )
    settings = make_settings(retrain_mode="kubernetes", namespace="triage")
    summary = run_drift(settings, now=NOW)
    assert summary["status"] == "drift" and summary["retrain"]["triggered"] is True
    (job,) = kube.posted_jobs()
    assert summary["retrain"]["job"] == job["metadata"]["name"]
    labels, annotations = job["metadata"]["labels"], job["metadata"]["annotations"]
    slug = layout.drift_report_prefix(NOW).rstrip("/").rsplit("/", 1)[1]
    assert labels["triage/trigger"] == "drift"
    assert labels["triage/drift-report"] == slug
    assert labels["triage/drift-window"] == f"{NOW:%Y%m%dT%H}"
    assert labels["app.kubernetes.io/component"] == "training"  # from the jobTemplate
    assert annotations["triage/drift-report-url"] == summary["report"]["summary"]
    assert annotations["triage/retrain-reason"].startswith("drift (dataset drift yes")
    assert annotations["cronjob.kubernetes.io/instantiate"] == "manual"
    assert job["metadata"]["ownerReferences"][0]["uid"] == cronjob["metadata"]["uid"]
    record = json.loads(live_storage.read_bytes(LAST_RETRAIN_KEY))
    assert record["job"] == job["metadata"]["name"] and record["namespace"] == "triage"

    # The next run, an hour later and still drifting: the cooldown holds it back, and
    # says so in the summary; the metrics still carry the last trigger time.
    later = NOW + timedelta(hours=1)
    write_inference_logs(
        live_storage, live_rows(trained_model, 1200, seed=8, drift="two-wheelers"), end=later
    )
    settings = make_settings(retrain_mode="kubernetes", namespace="triage", window_end=later)
    again = run_drift(settings, now=later)
    assert again["retrain"]["triggered"] is False
    assert "cooldown until" in again["retrain"]["reason"]
    assert again["retrain"]["last_triggered_timestamp"] == NOW.timestamp()
    assert len(kube.posted_jobs()) == 1


def test_concurrent_drift_runs_on_one_window_create_one_job(
    cluster: tuple[FakeKube, dict[str, Any]], make_settings: Settings, live_storage: Storage
) -> None:
    kube, _ = cluster
    kube.list_barrier = threading.Barrier(2)
    settings = make_settings(retrain_mode="kubernetes", namespace="triage")
    results: list[dict[str, Any]] = []

    def run(seconds: int) -> None:
        # Two CronJob runs a few seconds apart: different reports, same window hour.
        now = datetime(2026, 11, 25, 12, 5, seconds, tzinfo=UTC)
        results.append(_execute(settings, live_storage, now=now))

    threads = [threading.Thread(target=run, args=(s,)) for s in (1, 7)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(kube.jobs) == 1
    assert sorted(r["triggered"] for r in results) == [False, True]
    loser = next(r for r in results if not r["triggered"])
    winner = next(r for r in results if r["triggered"])
    assert loser["job"] == winner["job"]
    assert "already exists: this retrain was already started" in loser["reason"]


def test_an_api_error_fails_the_run_after_writing_its_summary(
    cluster: tuple[FakeKube, dict[str, Any]],
    trained_model: TrainedModel,
    live_storage: Storage,
    make_settings: Settings,
) -> None:
    kube, _ = cluster
    kube.create_status = 403
    write_inference_logs(
        live_storage, live_rows(trained_model, 1200, seed=7, drift="night-rural"), end=NOW
    )
    with pytest.raises(RetrainError, match="HTTP 403"):
        run_drift(make_settings(retrain_mode="kubernetes", namespace="triage"), now=NOW)
    summary = json.loads(live_storage.read_bytes(layout.drift_report_prefix(NOW) + "summary.json"))
    assert summary["status"] == "drift"
    assert summary["retrain"]["triggered"] is False
    assert "HTTP 403" in summary["retrain"]["error"]
    assert not live_storage.exists(LAST_RETRAIN_KEY)

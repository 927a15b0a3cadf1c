"""The retrain decision and what it starts: a local training subprocess, or a Job
created from the training CronJob (against the fake API server), at most once per
decision window (the retrain claim, on files and on SeaweedFS) and never within the
cooldown."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from core import k8s_jobs, layout
from core import retrain as core_retrain
from core.errors import RetrainError
from core.storage import Storage, open_storage
from monitoring import retrain
from monitoring.job import run_drift
from monitoring.reports import LAST_RETRAIN_KEY, ReportLocation, read_last_retrain
from monitoring.settings import MonitoringSettings, RetrainMode
from tests.fake_kube import FakeKube, training_cronjob
from tests.monitoring.conftest import NOW
from tests.monitoring.support import TrainedModel, live_rows, write_inference_logs

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


def _fake_training(
    monkeypatch: pytest.MonkeyPatch, *, exit_code: int = 0, ledger: Path | None = None
) -> None:
    """Stands for `python -m training train`; each start adds a line to ``ledger``,
    so a test counts the trainings really started, not the ones reported."""
    summary = {"status": "trained", "version": "v2", "promoted": False, "reason": "gate"}
    record = f"open({str(ledger)!r}, 'a').write('started\\n'); " if ledger else ""
    code = f"import json, sys; {record}print(json.dumps({summary!r})); sys.exit({exit_code})"
    monkeypatch.setattr(core_retrain, "training_command", lambda _: [sys.executable, "-c", code])


def _execute(
    settings: MonitoringSettings,
    storage: Storage,
    *,
    now: datetime = NOW,
    claim_storage: Storage | None = None,
) -> dict[str, Any]:
    return retrain.execute(
        DRIFT,
        settings,
        report_storage=storage,
        claim_storage=claim_storage or storage,
        location=ReportLocation.for_run(storage, now),
        window_end=now,
        now=now,
    )


def _claim_of(storage: Storage, window: str) -> dict[str, Any]:
    key = layout.retrain_claim_key("accident-severity", window)
    claim: dict[str, Any] = json.loads(storage.read_bytes(key))
    return claim


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
    assert record["window"] == result["window"] == "20261125T12"
    assert retrain.last_triggered_at(live_storage) == NOW
    claim = _claim_of(live_storage, "20261125T12")
    assert claim["trigger"] == "drift" and claim["reason"] == "drift (test)"
    assert claim["window"] == "20261125T12" and claim["host"]
    assert datetime.fromisoformat(claim["claimed_at"]) == NOW


def test_the_training_command_targets_the_same_registry(
    make_settings: Settings, live_storage: Storage
) -> None:
    settings = make_settings(training_raw_uri="/data/raw", registry_uri="s3://models/prod/")
    command = retrain.launcher(settings, live_storage).command()
    assert command[0] == sys.executable
    assert command[1:] == [
        "-m",
        "training",
        "train",
        "--registry-uri",
        "s3://models/prod/",
        "--model-name",
        "accident-severity",
        "--raw-uri",
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
    assert live_storage.list(layout.RETRAIN_CLAIMS_PREFIX) == []


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
    settings = make_settings(retrain_mode="kubernetes", namespace="triage")
    barrier = threading.Barrier(2)
    results: list[dict[str, Any]] = []

    def run(seconds: int) -> None:
        # Two CronJob runs a few seconds apart: different reports, same window hour.
        now = datetime(2026, 11, 25, 12, 5, seconds, tzinfo=UTC)
        storage = open_storage(live_storage.uri)
        barrier.wait(timeout=30)
        results.append(_execute(settings, storage, now=now))

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
    assert (
        "not started: the retrain of model accident-severity for decision window "
        in (loser["reason"])
    )
    assert "already claimed by drift on " in loser["reason"]
    assert loser["claim"]["trigger"] == "drift"
    # The loser never reached the API server: one read of the CronJob, one list, one create.
    assert [r.method for r in kube.requests].count("POST") == 1


STORAGES = ["file", pytest.param("seaweedfs", marks=[pytest.mark.servers, pytest.mark.seaweedfs])]


@pytest.fixture(params=STORAGES)
def shared_root(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The storage two drift jobs share (registry, reports): a folder, then SeaweedFS."""
    if request.param == "file":
        return str(tmp_path / "shared")
    uri: str = request.getfixturevalue("s3_bucket")
    return uri


def test_two_drift_jobs_racing_in_local_mode_start_one_training(
    make_settings: Settings, shared_root: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each job does what run_drift does after its report: read the cooldown record,
    # decide, act. Both read "no retrain yet" (the barrier holds them until both
    # have), which is the race the cooldown record alone lost.
    ledger = tmp_path / "trainings.log"
    _fake_training(monkeypatch, ledger=ledger)
    settings = make_settings(retrain_mode="local")
    jobs = 4
    barrier = threading.Barrier(jobs)
    results: list[dict[str, Any]] = []
    errors: list[BaseException] = []

    def drift_job(seconds: int) -> None:
        now = datetime(2026, 11, 25, 12, 30, seconds, tzinfo=UTC)
        storage = open_storage(shared_root)  # a process of its own would open its own
        try:
            decision = retrain.decide(
                insufficient_data=False,
                drift_detected=True,
                mode=settings.retrain_mode,
                last_triggered_at=retrain.last_triggered_at(storage),
                now=now,
                cooldown_hours=settings.cooldown_hours,
                drift_reason=f"job {seconds}",
            )
            barrier.wait(timeout=30)
            results.append(
                retrain.execute(
                    decision,
                    settings,
                    report_storage=storage,
                    claim_storage=storage,
                    location=ReportLocation.for_run(storage, now),
                    window_end=now,
                    now=now,
                )
            )
        except BaseException as error:  # an assert in the thread would not fail the test
            errors.append(error)

    threads = [threading.Thread(target=drift_job, args=(s,)) for s in range(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert all(r["decision"] for r in results)
    assert ledger.read_text().splitlines() == ["started"]
    (winner,) = [r for r in results if r["triggered"]]
    assert winner["training"]["status"] == "trained"
    storage = open_storage(shared_root)
    claim = _claim_of(storage, "20261125T12")
    assert winner["reason"] == claim["reason"]
    for loser in (r for r in results if not r["triggered"]):
        assert "training" not in loser
        assert f"already claimed by drift on {claim['host']}" in loser["reason"]
        assert loser["claim"] == {k: v for k, v in claim.items() if k != "token"}
    record = read_last_retrain(storage)
    assert record is not None and record["reason"] == winner["reason"]


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
    # Nothing started, so the claim was given back: the next run of the window may try.
    registry = open_storage(make_settings().registry_uri)
    assert registry.list(layout.RETRAIN_CLAIMS_PREFIX) == []
    kube.create_status = None
    again = run_drift(make_settings(retrain_mode="kubernetes", namespace="triage"), now=NOW)
    assert again["retrain"]["triggered"] is True and len(kube.jobs) == 1

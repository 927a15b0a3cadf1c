"""Realised quality: feedback labels joined with the inference log by request id, per
served version, beside the manifest's figures; late labels, unknown ids, duplicates,
version changes and ambiguous ids counted; the decay verdict and the retrain it starts
under the drift retrain's cooldown and claim."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    brier_score_loss,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from core import claims, layout
from core.registry import Registry
from core.storage import Storage, open_storage
from monitoring import quality, retrain
from monitoring.compaction import run_compaction
from monitoring.job import run_drift
from monitoring.reports import quality_html, write_last_retrain
from monitoring.settings import MonitoringSettings
from tests.monitoring.conftest import NOW
from tests.monitoring.support import MODEL_NAME, NEW, OLD, THRESHOLD, Traffic, issued_id

Settings = Callable[..., MonitoringSettings]


def measure(settings: MonitoringSettings, storage: Storage, *, now: datetime) -> quality.QualityRun:
    registry = Registry(open_storage(settings.registry_uri), MODEL_NAME)
    return quality.measure_quality(
        settings,
        registry=registry,
        log_storage=storage,
        production_version=registry.alias_version(),
        now=now,
    )


def test_labels_join_their_predictions_per_served_version(
    make_settings: Settings, live_storage: Storage, versions: Registry
) -> None:
    """A promotion mid-window: each label counts for the version that served its row;
    duplicates, unknown ids, ambiguous ids and labels of older predictions are counted
    and left out; the figures are those of the matched rows."""
    rng = np.random.default_rng(0)
    traffic = Traffic(live_storage)
    start = NOW - timedelta(hours=20)
    old_ids = [
        traffic.predict(start + timedelta(minutes=i), OLD, float(rng.random())) for i in range(40)
    ]
    new_ids = [
        traffic.predict(NOW - timedelta(hours=5, minutes=-i), NEW, float(rng.random()))
        for i in range(30)
    ]
    before = traffic.predict(NOW - timedelta(days=3), OLD, 0.9)
    twice = issued_id(NOW - timedelta(hours=2))
    traffic.rows.append((twice, (NOW - timedelta(hours=2)).timestamp(), OLD, 0.2, 0, {}))
    traffic.rows.append((twice, (NOW - timedelta(hours=2)).timestamp(), NEW, 0.3, 0, {}))
    traffic.flush()

    labels_old = {rid: int(rng.random() < 0.5) for rid in old_ids[:30]}
    labels_new = {rid: int(rng.random() < 0.5) for rid in new_ids[:20]}
    traffic.label(NOW - timedelta(hours=1), [*labels_old.items(), *labels_new.items()])
    # A second label for an id (the first wins) and an admin overwrite (it wins).
    traffic.label(NOW - timedelta(minutes=30), [(old_ids[0], 1 - labels_old[old_ids[0]])])
    traffic.label(
        NOW - timedelta(minutes=20), [(new_ids[0], 1 - labels_new[new_ids[0]])], overwrite=True
    )
    labels_new[new_ids[0]] = 1 - labels_new[new_ids[0]]
    unknown = [issued_id(NOW - timedelta(hours=3)), "admin-label-1"]
    traffic.label(NOW - timedelta(minutes=10), [(unknown[0], 1), (unknown[1], 0), (before, 1)])
    traffic.label(NOW - timedelta(minutes=5), [(twice, 0)])

    run = measure(make_settings(quality_window_hours=24), live_storage, now=NOW)
    summary = run.summary
    assert summary["labels"] == {
        "read": 30 + 20 + 1 + 1 + 3 + 1,
        "duplicate": 2,
        "matched": 50,
        "unknown": 2,
        "ambiguous": 1,
        "outside_window": 1,
    }
    old, new = summary["versions"][OLD], summary["versions"][NEW]
    assert (old["served"], old["matched"], old["pending"], old["duplicate"]) == (41, 30, 11, 1)
    assert (new["served"], new["matched"], new["pending"], new["duplicate"]) == (31, 20, 11, 1)
    assert old["manifest"]["accuracy"] == 0.8 and new["manifest"]["accuracy"] == 0.9
    probability = {row_id: p for row_id, p in zip(*_logged(live_storage), strict=True)}
    for version, chosen in ((OLD, labels_old), (NEW, labels_new)):
        y = np.array(list(chosen.values()))
        p = np.array([probability[rid] for rid in chosen])
        predicted = (p >= THRESHOLD).astype(int)
        figures = summary["versions"][version]["figures"]
        assert figures["accuracy"] == pytest.approx(accuracy_score(y, predicted))
        assert figures["precision"] == pytest.approx(precision_score(y, predicted))
        assert figures["recall"] == pytest.approx(recall_score(y, predicted))
        assert figures["f1"] == pytest.approx(f1_score(y, predicted))
        assert figures["roc_auc"] == pytest.approx(roc_auc_score(y, p))
        assert figures["brier"] == pytest.approx(brier_score_loss(y, p))
        matrix = summary["versions"][version]["confusion_matrix"]
        assert sum(map(sum, matrix)) == len(y)
        assert matrix[1][1] == int(((y == 1) & (predicted == 1)).sum())
        assert matrix[0][1] == int(((y == 0) & (predicted == 1)).sum())
    assert set(run.snapshots) == {OLD, NEW}
    assert run.snapshots[NEW].dict()["metrics"]


def _logged(storage: Storage) -> tuple[list[str], list[float]]:
    import io

    import pandas as pd

    frames = [
        pd.read_parquet(io.BytesIO(storage.read_bytes(key)))
        for key in storage.list(layout.INFERENCE_LOG_PREFIX)
    ]
    rows = pd.concat(frames)
    return rows[layout.REQUEST_ID].tolist(), rows[layout.PROBABILITY].tolist()


def test_a_prediction_counts_once_its_late_label_is_there(
    make_settings: Settings, live_storage: Storage, versions: Registry
) -> None:
    """Labels received days after the window still join its predictions; until they
    arrive, the predictions are pending."""
    traffic = Traffic(live_storage)
    ids = [traffic.predict(NOW - timedelta(hours=1, minutes=i), NEW, 0.8) for i in range(10)]
    traffic.flush()
    settings = make_settings(quality_window_hours=24)
    first = measure(settings, live_storage, now=NOW).summary["versions"][NEW]
    assert (first["matched"], first["pending"], first["figures"]) == (0, 10, {})

    later = NOW + timedelta(days=2)
    traffic.label(later, [(rid, 1) for rid in ids[:4]])
    second = measure(settings, live_storage, now=later).summary["versions"][NEW]
    assert (second["matched"], second["pending"]) == (4, 6)
    assert second["figures"]["accuracy"] == 1.0
    assert second["figures"]["roc_auc"] is None  # one class among the labels
    assert second["figures"]["brier"] == pytest.approx(0.04)


def test_decay_is_judged_with_enough_labels_against_the_manifest(
    make_settings: Settings, live_storage: Storage, versions: Registry
) -> None:
    traffic = Traffic(live_storage)
    # Always 0.8, wrong half the time: accuracy 0.5 where the manifest says 0.9, ROC-AUC
    # 0.5, Brier 0.34; F1 0.667 stays within 0.05 of 0.65.
    ids = [traffic.predict(NOW - timedelta(minutes=i + 1), NEW, 0.8) for i in range(40)]
    traffic.flush()
    traffic.label(NOW, [(rid, i % 2) for i, rid in enumerate(ids)])

    few = measure(make_settings(quality_min_labels=41), live_storage, now=NOW)
    assert few.decay is None and few.summary["versions"][NEW]["decayed"] == []

    enough = measure(make_settings(quality_min_labels=40), live_storage, now=NOW)
    assert enough.summary["versions"][NEW]["decayed"] == ["accuracy", "roc_auc", "brier"]
    assert enough.decay is not None
    assert enough.decay.startswith(f"version {NEW}, 40 labels: accuracy 0.500 vs 0.900 held out")

    tolerant = measure(
        make_settings(quality_min_labels=40, quality_tolerance=0.5), live_storage, now=NOW
    )
    assert tolerant.decay is None


def test_decayed_figures_compare_in_each_figures_direction() -> None:
    manifest = {"accuracy": 0.8, "f1": 0.6, "roc_auc": 0.9, "brier": 0.1, "precision": 0.9}
    realised = {"accuracy": 0.76, "f1": 0.54, "roc_auc": 0.95, "brier": 0.16, "precision": 0.1}
    # precision is not judged; brier is worse when higher.
    assert quality.decayed_figures(realised, manifest, 0.05) == ["f1", "brier"]
    assert quality.decayed_figures(realised, None, 0.05) == []


def test_a_drift_run_measures_quality_and_retrains_on_decay_with_the_drift_cooldown_and_claim(
    make_settings: Settings,
    live_storage: Storage,
    versions: Registry,
) -> None:
    """Too few rows to judge drift, but decayed quality: the decision retrains, for
    quality decay; a cooldown or a claim already held holds it back as for drift."""
    traffic = Traffic(live_storage)
    ids = [traffic.predict(NOW - timedelta(minutes=i + 1), NEW, 0.8) for i in range(40)]
    traffic.flush()
    traffic.label(NOW, [(rid, i % 2) for i, rid in enumerate(ids)])
    settings = make_settings(
        quality_min_labels=40, retrain_mode="kubernetes", dry_run=True, compaction_enabled=False
    )
    summary = run_drift(settings, now=NOW)
    assert summary["status"] == "insufficient-data"
    assert summary["retrain"]["decision"] is True
    assert summary["retrain"]["reason"].startswith(f"quality decay (version {NEW}, 40 labels")
    report = summary["quality"]["versions"][NEW]["report"]
    assert report.endswith(quality_html(NEW))
    html = live_storage.read_bytes(layout.drift_report_prefix(NOW) + quality_html(NEW))
    assert b"Accuracy" in html

    turned_off = run_drift(settings.model_copy(update={"retrain_on_quality_decay": False}), now=NOW)
    assert turned_off["retrain"]["decision"] is False
    assert turned_off["quality"]["decay"] is not None

    write_last_retrain(live_storage, {"triggered_at": (NOW - timedelta(hours=2)).isoformat()})
    cooled = run_drift(settings, now=NOW)
    assert cooled["retrain"]["decision"] is False
    assert "quality decay" in cooled["retrain"]["reason"]
    assert "cooldown until" in cooled["retrain"]["reason"]


def test_a_quality_retrain_loses_to_a_held_claim(
    make_settings: Settings, live_storage: Storage, versions: Registry, registry_root: Any
) -> None:
    """The drift job claims the decision window before starting a quality retrain: a
    window already claimed (by POST /retrain here) starts nothing."""
    traffic = Traffic(live_storage)
    ids = [traffic.predict(NOW - timedelta(minutes=i + 1), NEW, 0.8) for i in range(40)]
    traffic.flush()
    traffic.label(NOW, [(rid, i % 2) for i, rid in enumerate(ids)])
    registry_storage = open_storage(str(registry_root))
    claims.claim_retrain(
        registry_storage,
        MODEL_NAME,
        window=claims.decision_window(NOW),
        trigger=claims.TRIGGER_SCORER_API,
        host="scorer-0",
        reason="operator",
        now=NOW,
    )
    summary = run_drift(
        make_settings(quality_min_labels=40, retrain_mode="local", compaction_enabled=False),
        now=NOW,
    )
    assert summary["retrain"]["decision"] is True
    assert summary["retrain"]["triggered"] is False
    assert "already claimed by scorer-api" in summary["retrain"]["reason"]
    assert retrain.last_triggered_at(live_storage) is None


def test_quality_can_be_turned_off(
    make_settings: Settings, live_storage: Storage, versions: Registry
) -> None:
    summary = run_drift(make_settings(quality_enabled=False), now=NOW)
    assert summary["quality"] is None
    assert not [k for k in live_storage.list(layout.DRIFT_REPORT_PREFIX) if "quality-" in k]


def test_an_unreadable_log_file_is_skipped_and_counted(
    make_settings: Settings, live_storage: Storage, versions: Registry
) -> None:
    traffic = Traffic(live_storage)
    request_id = traffic.predict(NOW - timedelta(hours=1), NEW, 0.7)
    traffic.flush()
    traffic.label(NOW, [(request_id, 1)])
    live_storage.write_bytes(
        layout.partitioned_key(layout.INFERENCE_LOG_PREFIX, NOW - timedelta(hours=2), "broken"),
        b"not parquet",
    )
    summary = measure(make_settings(), live_storage, now=NOW).summary
    assert summary["files"]["inference_logs_unreadable"] == 1
    assert summary["versions"][NEW]["matched"] == 1
    json.dumps(summary)  # the summary is JSON as it is


@pytest.mark.parametrize(
    ("case", "expected", "reason"),
    [
        ({"insufficient_data": True}, True, "quality decay (f1 down)"),
        ({"drift_detected": True}, True, "drift (why); quality decay (f1 down)"),
        ({"quality_decay": None}, False, "no drift (why)"),
        ({"mode": retrain.RetrainMode.DISABLED}, False, "retraining is disabled"),
        ({"last_triggered_at": NOW - timedelta(hours=2)}, False, "cooldown until"),
    ],
)
def test_drift_and_quality_decay_make_one_decision(
    case: dict[str, Any], expected: bool, reason: str
) -> None:
    arguments: dict[str, Any] = {
        "insufficient_data": False,
        "drift_detected": False,
        "mode": retrain.RetrainMode.LOCAL,
        "last_triggered_at": None,
        "now": NOW,
        "cooldown_hours": 24,
        "drift_reason": "why",
        "quality_decay": "f1 down",
        **case,
    }
    decision = retrain.decide(**arguments)
    assert decision.retrain is expected
    assert reason in decision.reason


def test_retention_keeps_the_days_of_the_quality_window(
    make_settings: Settings, live_storage: Storage, versions: Registry
) -> None:
    """Late labels need their predictions: a day inside the quality window is kept
    whatever the retention says, and expires once quality is turned off."""
    traffic = Traffic(live_storage)
    traffic.predict(NOW - timedelta(days=2), NEW, 0.7)
    traffic.flush()
    day = layout.day_prefix(layout.INFERENCE_LOG_PREFIX, (NOW - timedelta(days=2)).date())
    settings = make_settings(retention_days=1, quality_window_hours=72)
    run_compaction(settings, live_storage, live_storage, now=NOW)
    assert live_storage.list(day)
    run_compaction(
        settings.model_copy(update={"quality_enabled": False}), live_storage, live_storage, now=NOW
    )
    assert not live_storage.list(day)

"""The realised-quality metrics of a drift run, pushed to a real Pushgateway in the
drift job's group and read back from its /metrics page."""

from __future__ import annotations

import urllib.request
from datetime import timedelta
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.registry import Registry
from core.storage import Storage
from monitoring.job import run_drift
from tests.monitoring.conftest import NOW
from tests.monitoring.support import NEW, OLD, Traffic, issued_id
from tests.monitoring.test_quality import Settings

pytestmark = pytest.mark.servers

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def quality_samples(url: str) -> Samples:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        text = response.read().decode()
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("triage_quality_"):
                assert sample.labels.get("job") == "drift"
                labels = tuple(
                    sorted((k, v) for k, v in sample.labels.items() if k not in ("job", "instance"))
                )
                found[(sample.name, labels)] = sample.value
    return found


def test_a_drift_run_pushes_quality_figures_and_label_counts_per_version(
    pushgateway: str, make_settings: Settings, live_storage: Storage, versions: Registry
) -> None:
    traffic = Traffic(live_storage)
    old = [traffic.predict(NOW - timedelta(hours=10, minutes=i), OLD, 0.8) for i in range(6)]
    new = [traffic.predict(NOW - timedelta(hours=1, minutes=i), NEW, 0.3) for i in range(8)]
    traffic.flush()
    traffic.label(NOW, [(rid, 1) for rid in old[:4]] + [(rid, 0) for rid in new[:5]])
    traffic.label(
        NOW + timedelta(minutes=1), [(new[0], 1), (issued_id(NOW - timedelta(minutes=1)), 1)]
    )
    settings = make_settings(
        pushgateway_url=pushgateway, quality_min_labels=7, compaction_enabled=False
    )
    summary: dict[str, Any] = run_drift(settings, now=NOW + timedelta(minutes=2))
    assert summary["quality"]["labels"]["matched"] == 9

    samples = quality_samples(pushgateway)

    def labels(**values: str) -> tuple[tuple[str, str], ...]:
        return tuple(sorted(values.items()))

    assert samples[("triage_quality_labels", labels(version=OLD, kind="matched"))] == 4
    assert samples[("triage_quality_labels", labels(version=OLD, kind="pending"))] == 2
    assert samples[("triage_quality_labels", labels(version=NEW, kind="matched"))] == 5
    assert samples[("triage_quality_labels", labels(version=NEW, kind="pending"))] == 3
    assert samples[("triage_quality_labels", labels(version=NEW, kind="duplicate"))] == 1
    assert samples[("triage_quality_unknown_labels", ())] == 1
    assert samples[("triage_quality_ambiguous_labels", ())] == 0
    assert samples[("triage_quality_realised", labels(version=OLD, figure="accuracy"))] == 1.0
    assert samples[("triage_quality_realised", labels(version=NEW, figure="accuracy"))] == 1.0
    assert samples[("triage_quality_realised", labels(version=NEW, figure="brier"))] == (
        pytest.approx(0.09)
    )
    # One class among a version's labels: no ROC-AUC, rather than a made-up one.
    assert ("triage_quality_realised", labels(version=NEW, figure="roc_auc")) not in samples
    assert samples[("triage_quality_manifest", labels(version=NEW, figure="accuracy"))] == 0.9
    assert samples[("triage_quality_manifest", labels(version=OLD, figure="accuracy"))] == 0.8
    assert (
        samples[("triage_quality_confusion_matrix", labels(version=NEW, actual="0", predicted="0"))]
        == 5
    )
    assert (
        samples[("triage_quality_confusion_matrix", labels(version=OLD, actual="1", predicted="1"))]
        == 4
    )
    tolerances = {
        dict(k)["figure"]: v for (name, k), v in samples.items() if name.endswith("tolerance")
    }
    assert tolerances == {"accuracy": 0.05, "f1": 0.05, "roc_auc": 0.05, "brier": 0.05}
    assert samples[("triage_quality_min_labels", ())] == 7

    # A run with quality turned off replaces the group: no stale figure survives.
    run_drift(settings.model_copy(update={"quality_enabled": False}), now=NOW)
    assert quality_samples(pushgateway) == {}

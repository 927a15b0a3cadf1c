"""The drift job's metrics, pushed to a real ``prometheus-pushgateway`` (the Debian
package) on a loopback port, and read back from its /metrics page."""

from __future__ import annotations

import urllib.request
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from core import contract
from monitoring import push
from monitoring.errors import PushError
from tests.support import LOOPBACK, free_port

pytestmark = pytest.mark.servers


def samples_of(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every triage_drift_* sample of the gateway, keyed by name and labels (without
    the labels the gateway adds)."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        text = response.read().decode()
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if not sample.name.startswith("triage_drift_"):
                continue
            assert sample.labels.get("job") == "drift"
            labels = tuple(
                sorted((k, v) for k, v in sample.labels.items() if k not in ("job", "instance"))
            )
            found[(sample.name, labels)] = sample.value
    return found


def _summary(**overrides: Any) -> dict[str, Any]:
    columns = {
        name: {"score": 0.01, "drifted": False, "method": "Jensen-Shannon distance"}
        for name in contract.FEATURE_NAMES
    }
    columns["vma"] = {"score": 0.42, "drifted": True, "method": "Wasserstein distance (normed)"}
    return {
        "status": "drift",
        "dataset_drift": True,
        "prediction_drift": True,
        "share_of_drifted_columns": 0.15,
        "rows": {"current": 2500, "reference": 5000},
        "columns": columns,
        "prediction": {
            "reference": {"prioritaire_share": 0.26},
            "current": {"prioritaire_share": 0.41},
        },
        "retrain": {"triggered": True, "last_triggered_timestamp": 1_795_000_000.0},
        "finished_timestamp": 1_795_000_123.5,
        **overrides,
    }


def test_a_drift_run_pushes_every_documented_gauge(pushgateway: str) -> None:
    push.push(pushgateway, push.build_registry(_summary()), timeout=5)
    samples = samples_of(pushgateway)
    assert samples[("triage_drift_dataset_drift", ())] == 1
    assert samples[("triage_drift_prediction_drift", ())] == 1
    assert samples[("triage_drift_share_drifted_columns", ())] == 0.15
    assert samples[("triage_drift_current_rows", ())] == 2500
    assert samples[("triage_drift_reference_rows", ())] == 5000
    assert samples[("triage_drift_insufficient_data", ())] == 0
    assert samples[("triage_drift_retrain_triggered", ())] == 1
    assert samples[("triage_drift_last_retrain_timestamp_seconds", ())] == 1_795_000_000.0
    assert samples[("triage_drift_last_success_timestamp_seconds", ())] == 1_795_000_123.5
    assert samples[("triage_drift_feature_score", (("feature", "vma"),))] == 0.42
    assert samples[("triage_drift_feature_drifted", (("feature", "vma"),))] == 1
    assert samples[("triage_drift_feature_drifted", (("feature", "nb_pedestrians"),))] == 0
    features = {labels for name, labels in samples if name == "triage_drift_feature_score"}
    assert features == {(("feature", name),) for name in contract.FEATURE_NAMES}
    assert samples[("triage_drift_prediction_share", (("source", "reference"),))] == 0.26
    assert samples[("triage_drift_prediction_share", (("source", "current"),))] == 0.41


def test_an_insufficient_data_run_replaces_the_previous_verdict(pushgateway: str) -> None:
    push.push(pushgateway, push.build_registry(_summary()), timeout=5)
    insufficient = _summary(
        status="insufficient-data",
        dataset_drift=None,
        prediction_drift=None,
        share_of_drifted_columns=None,
        rows={"current": 12, "reference": 0},
        columns={},
        prediction={},
        retrain={"triggered": False, "last_triggered_timestamp": 1_795_000_000.0},
    )
    push.push(pushgateway, push.build_registry(insufficient), timeout=5)
    samples = samples_of(pushgateway)
    assert samples[("triage_drift_insufficient_data", ())] == 1
    assert samples[("triage_drift_current_rows", ())] == 12
    assert samples[("triage_drift_retrain_triggered", ())] == 0
    # The group is replaced (PUT): no stale verdict from the previous run survives.
    assert ("triage_drift_dataset_drift", ()) not in samples
    assert not any(name == "triage_drift_feature_score" for name, _ in samples)
    # What is still true is pushed again.
    assert samples[("triage_drift_last_retrain_timestamp_seconds", ())] == 1_795_000_000.0


def test_an_unreachable_pushgateway_is_a_one_line_error() -> None:
    url = f"http://{LOOPBACK}:{free_port()}"
    with pytest.raises(PushError, match="cannot push metrics to the Pushgateway") as caught:
        push.push(url, push.build_registry(_summary()), timeout=2)
    assert "\n" not in str(caught.value)


def test_the_errors_of_steps_that_let_the_run_go_on_are_pushed(pushgateway: str) -> None:
    day_failed = {"errors": ["2026-11-20: cannot delete ..."], "days_compacted": []}
    compaction = {"inference-logs": day_failed, "feedback": {"errors": []}, "reports_deleted": 3}
    push.push(
        pushgateway,
        push.build_registry(_summary(compaction=compaction, quality={"error": "no registry"})),
        timeout=5,
    )
    samples = samples_of(pushgateway)
    assert samples[("triage_drift_step_errors", (("step", "compaction"),))] == 1
    assert samples[("triage_drift_step_errors", (("step", "quality"),))] == 1

    whole_step = {"error": "storage unreachable"}
    healthy_quality = {"labels": {"matched": 0}, "versions": {}}
    push.push(
        pushgateway,
        push.build_registry(_summary(compaction=whole_step, quality=healthy_quality)),
        timeout=5,
    )
    samples = samples_of(pushgateway)
    assert samples[("triage_drift_step_errors", (("step", "compaction"),))] == 1
    assert samples[("triage_drift_step_errors", (("step", "quality"),))] == 0

    # Steps turned off (None in the summary) push nothing: no false "0 errors".
    push.push(pushgateway, push.build_registry(_summary(compaction=None, quality=None)), timeout=5)
    assert not any(name == "triage_drift_step_errors" for name, _ in samples_of(pushgateway))

"""The Prometheus alert rules: valid for promtool, unit-tested by promtool (each alert
fires in one case and stays silent in a near miss), annotated, and linked to a section
of docs/runbook.md that exists."""

from __future__ import annotations

import shutil
import subprocess
from collections import defaultdict

import pytest
import yaml

from tests.grafana.dashboard_queries import (
    ALERT_TESTS_FILE,
    ALERTS_FILE,
    EXTERNAL_METRICS,
    RUNBOOK,
    documented_metrics,
    documented_name,
    github_anchors,
    load_alert_rules,
    metric_names,
)

RUNBOOK_BASE = "https://github.com/accident-triage/accident-triage/blob/main/docs/runbook.md"
SEVERITIES = {"critical", "warning", "info"}
REQUIRED_ALERTS = {
    "TriageScorerDown",
    "TriageScorerHighErrorRatio",
    "TriageScorerLatencyHigh",
    "TriageNoModelLoaded",
    "TriageModelReloadFailing",
    "TriageInferenceLogDropping",
    "TriageDatasetDrift",
    "TriageDriftJobStale",
    "TriagePredictionMixShifted",
    "TriageQualityBelowManifest",
}

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (Debian package prometheus)"
)


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ALERTS_FILE.parent,
    )


@needs_promtool
def test_promtool_check_rules() -> None:
    result = _promtool("check", "rules", ALERTS_FILE.name)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_unit_tests() -> None:
    result = _promtool("test", "rules", ALERT_TESTS_FILE.name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_required_alerts_exist_once() -> None:
    names = [rule["alert"] for rule in load_alert_rules()]
    assert len(names) == len(set(names))
    assert set(names) >= REQUIRED_ALERTS


@pytest.mark.parametrize("rule", load_alert_rules(), ids=lambda rule: rule["alert"])
def test_alert_is_annotated_and_labelled(rule: dict[str, object]) -> None:
    annotations = rule["annotations"]
    assert isinstance(annotations, dict)
    assert annotations["summary"].strip()
    assert len(annotations["description"].strip()) >= 60
    assert annotations["runbook_url"] == f"{RUNBOOK_BASE}#{str(rule['alert']).lower()}"
    labels = rule["labels"]
    assert isinstance(labels, dict)
    assert labels["severity"] in SEVERITIES
    assert labels["component"] in {"scorer", "model", "drift"}


def test_every_runbook_anchor_exists() -> None:
    anchors = github_anchors(RUNBOOK.read_text(encoding="utf-8"))
    for rule in load_alert_rules():
        anchor = rule["annotations"]["runbook_url"].partition("#")[2]
        assert anchor in anchors, f"{rule['alert']}: no section #{anchor} in docs/runbook.md"


def test_every_runbook_alert_section_is_an_alert() -> None:
    # A section left behind by a renamed or deleted alert misleads whoever lands on it.
    anchors = github_anchors(RUNBOOK.read_text(encoding="utf-8"))
    alerts = {rule["alert"].lower() for rule in load_alert_rules()}
    assert {anchor for anchor in anchors if anchor.startswith("triage")} == alerts


def test_every_alert_is_unit_tested_firing_and_silent() -> None:
    tests = yaml.safe_load(ALERT_TESTS_FILE.read_text(encoding="utf-8"))
    assert tests["rule_files"] == [ALERTS_FILE.name]
    outcomes: dict[str, set[str]] = defaultdict(set)
    for case in tests["tests"]:
        for check in case.get("alert_rule_test", []):
            outcomes[check["alertname"]].add("fires" if check["exp_alerts"] else "silent")
    for rule in load_alert_rules():
        assert outcomes[rule["alert"]] == {"fires", "silent"}, rule["alert"]


def test_alert_rules_use_documented_metrics() -> None:
    documented = documented_metrics()
    for rule in load_alert_rules():
        names = {documented_name(name, documented) for name in metric_names(rule["expr"])}
        assert names, rule["alert"]
        unknown = names - documented.keys() - EXTERNAL_METRICS
        assert not unknown, f"{rule['alert']}: {sorted(unknown)} not in docs/metrics.md"

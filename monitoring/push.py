"""The drift job's metrics, its realised-quality ones included, pushed to a
Prometheus Pushgateway (``job="drift"``).

A batch job is gone before Prometheus could scrape it, hence the push. Each run
replaces the whole group (HTTP PUT), so a metric the run did not set (the per-feature
scores of an "insufficient data" run) disappears instead of showing a stale value. The
gauges are registered on a fresh ``CollectorRegistry`` per push: nothing global, and
nothing the scorer's registry could collide with. Names and meanings are in
``docs/metrics.md``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.exposition import push_to_gateway

from monitoring.errors import PushError

log = logging.getLogger(__name__)

JOB = "drift"


def step_errors(summary: Mapping[str, Any]) -> dict[str, int]:
    """The errors of the steps that report a failure in the summary and go on: unseen
    there, a compaction failing every night would only show as storage costs growing."""
    errors: dict[str, int] = {}
    compaction = summary.get("compaction")
    if compaction is not None:
        errors["compaction"] = (
            1
            if "error" in compaction
            else sum(
                len(part.get("errors", ()))
                for part in compaction.values()
                if isinstance(part, dict)
            )
        )
    quality = summary.get("quality")
    if quality is not None:
        errors["quality"] = 1 if "error" in quality else 0
    return errors


def build_registry(summary: Mapping[str, Any]) -> CollectorRegistry:
    """The gauges of one run, from its summary (see :func:`monitoring.job.run_drift`)."""
    registry = CollectorRegistry()

    def gauge(name: str, documentation: str, labelnames: tuple[str, ...] = ()) -> Gauge:
        return Gauge(name, documentation, labelnames, registry=registry)

    rows = summary.get("rows", {})
    gauge("triage_drift_current_rows", "Live rows analysed in the last run.").set(
        rows.get("current", 0)
    )
    gauge("triage_drift_reference_rows", "Reference rows analysed in the last run.").set(
        rows.get("reference", 0)
    )
    insufficient = summary.get("status") == "insufficient-data"
    gauge("triage_drift_insufficient_data", "1 when the window had too few rows to judge.").set(
        1 if insufficient else 0
    )

    if not insufficient:
        gauge("triage_drift_dataset_drift", "1 when Evidently found dataset drift.").set(
            1 if summary.get("dataset_drift") else 0
        )
        gauge(
            "triage_drift_prediction_drift",
            "1 when the predicted probabilities or class mix drifted.",
        ).set(1 if summary.get("prediction_drift") else 0)
        gauge("triage_drift_share_drifted_columns", "Share of features that drifted.").set(
            summary.get("share_of_drifted_columns") or 0.0
        )
        score = gauge(
            "triage_drift_feature_score",
            "Drift score of each feature (p-value or distance, see summary.json's method).",
            ("feature",),
        )
        drifted = gauge(
            "triage_drift_feature_drifted", "1 when that feature drifted.", ("feature",)
        )
        for feature, column in summary.get("columns", {}).items():
            if column.get("score") is not None:
                score.labels(feature=feature).set(column["score"])
            drifted.labels(feature=feature).set(1 if column.get("drifted") else 0)
        share = gauge(
            "triage_drift_prediction_share", "Share of prioritaire predictions.", ("source",)
        )
        for source in ("reference", "current"):
            value = summary.get("prediction", {}).get(source, {}).get("prioritaire_share")
            if value is not None:
                share.labels(source=source).set(value)

    stored = summary.get("evidently_ui")
    if stored:
        gauge(
            "triage_drift_ui_snapshot_stored",
            "1 when the run's snapshot was stored in the Evidently UI, 0 when that failed.",
        ).set(1 if stored.get("stored") else 0)
        if stored.get("stored"):
            # One series per run: what the Grafana dashboard links each run's report by.
            gauge(
                "triage_drift_report_info",
                "The run's report in the Evidently UI (always 1).",
                ("run", "project_id", "snapshot_id"),
            ).labels(
                run=stored["run_id"],
                project_id=stored["project_id"],
                snapshot_id=stored["snapshot_id"],
            ).set(1)

    quality = summary.get("quality") or {}
    if "versions" in quality:
        _quality_gauges(gauge, quality)
    failures = gauge(
        "triage_drift_step_errors",
        "Errors of the run's housekeeping steps, which never stop the run: compaction "
        "(days that failed, or the whole step) and quality (the step failed).",
        ("step",),
    )
    for step, errors in step_errors(summary).items():
        failures.labels(step=step).set(errors)

    retrain = summary.get("retrain", {})
    gauge("triage_drift_retrain_triggered", "1 when the last run started a retrain Job.").set(
        1 if retrain.get("triggered") else 0
    )
    last_retrain = retrain.get("last_triggered_timestamp")
    if last_retrain is not None:
        gauge(
            "triage_drift_last_retrain_timestamp_seconds", "When a run last started a retrain."
        ).set(last_retrain)
    gauge("triage_drift_last_success_timestamp_seconds", "When a run last completed.").set(
        summary.get("finished_timestamp", 0)
    )
    return registry


def _quality_gauges(gauge: Any, quality: Mapping[str, Any]) -> None:
    """The realised quality of each served version, its manifest's held-out figures,
    the label counts, and the settings the alert rules judge by (so the rules and the
    job's retrain decision read the same tolerance and minimum)."""
    realised = gauge(
        "triage_quality_realised",
        "Realised figure of a served version, on its labelled predictions of the window.",
        ("version", "figure"),
    )
    held_out = gauge(
        "triage_quality_manifest",
        "The same figure on the version's held-out rows (its manifest).",
        ("version", "figure"),
    )
    matrix = gauge(
        "triage_quality_confusion_matrix",
        "Labelled predictions of a version by true and predicted class.",
        ("version", "actual", "predicted"),
    )
    labels = gauge(
        "triage_quality_labels",
        "Predictions of the window by label state: matched (labelled), pending (no label "
        "yet), duplicate (extra labels ignored).",
        ("version", "kind"),
    )
    for version, figures in quality["versions"].items():
        for kind in ("matched", "pending", "duplicate"):
            labels.labels(version=version, kind=kind).set(figures.get(kind, 0))
        for name, value in (figures.get("figures") or {}).items():
            if value is not None:
                realised.labels(version=version, figure=name).set(value)
        for name, value in (figures.get("manifest") or {}).items():
            if value is not None:
                held_out.labels(version=version, figure=name).set(value)
        for actual, row in enumerate(figures.get("confusion_matrix") or []):
            for predicted, count in enumerate(row):
                matrix.labels(version=version, actual=str(actual), predicted=str(predicted)).set(
                    count
                )
    counts = quality.get("labels", {})
    gauge(
        "triage_quality_unknown_labels",
        "Labels of the window whose request id has no logged prediction.",
    ).set(counts.get("unknown", 0))
    gauge(
        "triage_quality_ambiguous_labels",
        "Labels whose request id was logged by two versions (left out).",
    ).set(counts.get("ambiguous", 0))
    tolerance = gauge(
        "triage_quality_tolerance",
        "How much worse than the manifest a judged figure may be (quality_tolerance); "
        "only the judged figures have one.",
        ("figure",),
    )
    for name in quality.get("judged", ()):
        tolerance.labels(figure=name).set(quality["tolerance"])
    gauge("triage_quality_min_labels", "Matched labels a version needs to be judged.").set(
        quality.get("min_labels", 0)
    )


def push(
    url: str, registry: CollectorRegistry, *, timeout: float, namespace: str | None = None
) -> None:
    """PUT the registry's metrics as the ``job="drift"`` group, and, in a cluster, the
    ``namespace`` group: releases in several namespaces can share one Pushgateway
    without overwriting each other, and the alerts say which namespace drifted."""
    grouping = {"namespace": namespace} if namespace else None
    try:
        push_to_gateway(url, job=JOB, registry=registry, timeout=timeout, grouping_key=grouping)
    except OSError as error:  # URLError and HTTPError are OSErrors
        raise PushError(f"cannot push metrics to the Pushgateway at {url}: {error}") from error
    log.info("metrics pushed", extra={"pushgateway": url, "job": JOB})

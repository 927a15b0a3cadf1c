"""The drift job, end to end: compact, load the window and the reference, compare,
measure the realised quality from the feedback labels, write the reports, decide on a
retrain, push the metrics. ``python -m monitoring drift`` calls
:func:`run_drift` and prints the summary it returns.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from core import contract, k8s_jobs
from core.errors import RetrainError, TriageError
from core.registry import Registry
from core.storage import Storage, open_storage
from monitoring import compaction, drift, push, quality, retrain, workspace
from monitoring.reports import ReportLocation, quality_html
from monitoring.settings import MonitoringSettings

log = logging.getLogger(__name__)

STATUS_DRIFT = "drift"
STATUS_NO_DRIFT = "no-drift"
STATUS_INSUFFICIENT = "insufficient-data"


def storages(settings: MonitoringSettings) -> tuple[Storage, Storage, Storage]:
    """Registry, inference-log and report storages; one object when they share a URI."""
    opened: dict[str, Storage] = {}

    def get(uri: str) -> Storage:
        if uri not in opened:
            opened[uri] = open_storage(uri, max_attempts=settings.storage_attempts)
        return opened[uri]

    return (
        get(settings.registry_uri),
        get(settings.effective_inference_log_uri),
        get(settings.effective_report_uri),
    )


def _compact(
    settings: MonitoringSettings, log_storage: Storage, report_storage: Storage, now: datetime
) -> dict[str, Any] | None:
    """Compaction and retention, first: the window is then read compacted. A failure
    is reported in the summary and never stops the drift run."""
    if not settings.compaction_enabled:
        return None
    try:
        return compaction.run_compaction(settings, log_storage, report_storage, now=now)
    except TriageError as error:
        log.error("compaction failed", extra={"error": str(error)})
        return {"error": str(error)}


def _quality(
    settings: MonitoringSettings,
    registry: Registry,
    log_storage: Storage,
    location: ReportLocation,
    version: str,
    now: datetime,
) -> quality.QualityRun | None:
    """The realised-quality step; its reports are written beside the drift report. A
    failure is reported in the summary (as an error, judging nothing) and never stops
    the drift run."""
    if not settings.quality_enabled:
        return None
    try:
        measured = quality.measure_quality(
            settings,
            registry=registry,
            log_storage=log_storage,
            production_version=version,
            now=now,
        )
        for served, snapshot in measured.snapshots.items():
            location.write_quality(served, snapshot.get_html_str(as_iframe=False), snapshot.json())
            stored = measured.summary["versions"][served]
            stored["report"] = location.url(quality_html(served))
            stored["evidently_ui"] = workspace.store_snapshot(
                settings,
                workspace.SnapshotKind.QUALITY,
                snapshot,
                run_id=location.slug,
                metadata={"model_version": served},
                timestamp=now,
            )
    except TriageError as error:
        log.error("quality measurement failed", extra={"error": str(error)})
        return quality.QualityRun({"error": str(error)}, {}, None)
    log.info(
        "realised quality measured",
        extra={"labels": measured.summary["labels"], "decay": measured.decay},
    )
    return measured


def run_drift(settings: MonitoringSettings, *, now: datetime | None = None) -> dict[str, Any]:
    """One drift run; returns its summary (also written as summary.json)."""
    started = time.perf_counter()
    now = (now or datetime.now(UTC)).astimezone(UTC)
    registry_storage, log_storage, report_storage = storages(settings)
    registry = Registry(registry_storage, settings.model_name)
    version = drift.production_version(registry)
    window = drift.Window.ending(settings.window_end or now, settings.window_hours)
    location = ReportLocation.for_run(report_storage, now)
    housekeeping = _compact(settings, log_storage, report_storage, now)

    log.info("loading the window's inference logs", extra=window.to_dict())
    live = drift.load_window(
        log_storage, window, max_rows=settings.max_current_rows, seed=settings.sample_seed
    )
    if live.unreadable_files:
        log.warning(
            "some inference-log files were skipped",
            extra={"unreadable_files": len(live.unreadable_files), "files": live.files},
        )
    current_rows = len(live.frame)
    summary: dict[str, Any] = {
        "status": None,
        "model": {"name": settings.model_name, "version": version},
        "window": window.to_dict(),
        "rows": {
            "current": current_rows,
            "in_window": live.rows_in_window,
            "reference": 0,
            "reference_available": None,
            "min_rows": settings.min_rows,
            "max_current_rows": settings.max_current_rows,
            "max_reference_rows": settings.max_reference_rows,
        },
        "files": {
            "read": live.files - len(live.unreadable_files),
            "unreadable": len(live.unreadable_files),
            "unreadable_keys": live.unreadable_files[: drift.NAMED_UNREADABLE_FILES],
        },
        "dataset_drift": None,
        "prediction_drift": None,
        "drift_share_threshold": settings.drift_share,
        "share_of_drifted_columns": None,
        "drifted_columns": None,
        "columns": {},
        "prediction": {},
        "tests": None,
        "report": location.urls(with_evidently=False),
        "started_at": now.isoformat(),
        "compaction": housekeeping,
        "evidently_ui": None,
    }

    insufficient = current_rows < settings.min_rows
    drift_reason = ""
    drift_detected = False
    if insufficient:
        summary["status"] = STATUS_INSUFFICIENT
        summary["message"] = (
            f"insufficient data: {current_rows} rows in the window, {settings.min_rows} needed"
        )
        log.warning(summary["message"], extra={"rows": current_rows})
    else:
        reference, available = drift.load_reference(
            registry, version, max_rows=settings.max_reference_rows, seed=settings.sample_seed
        )
        summary["rows"].update(reference=len(reference), reference_available=available)
        log.info(
            "comparing with Evidently",
            extra={"current_rows": current_rows, "reference_rows": len(reference)},
        )
        snapshot, results = drift.run_report(
            reference,
            live.frame,
            drift_share=settings.drift_share,
            column_threshold=settings.column_threshold,
            model_version=version,
        )
        if results.empty_features:
            log.warning(
                "features without values were not compared (counted as drifted)",
                extra={"features": list(results.empty_features)},
            )
        location.write_evidently(snapshot.get_html_str(as_iframe=False), snapshot.json())
        summary["evidently_ui"] = workspace.store_snapshot(
            settings,
            workspace.SnapshotKind.DRIFT,
            snapshot,
            run_id=location.slug,
            metadata={"model_version": version},
            timestamp=now,
        )
        drifted = drift.drifted_features(results)
        outputs = [name for name, column in results.prediction.items() if column.drifted]
        prediction_drift = bool(outputs)
        drift_detected = results.dataset_drift or (
            prediction_drift and settings.retrain_on_prediction_drift
        )
        drift_reason = (
            f"dataset drift {'yes' if results.dataset_drift else 'no'}: "
            f"{results.drifted_columns} of {len(contract.FEATURE_NAMES)} features drifted "
            f"(share {results.share_of_drifted_columns:.3f}, threshold {settings.drift_share})"
            f" [{drift.names(drifted)}]; prediction drift "
            f"{'yes' if prediction_drift else 'no'} [{drift.names(outputs)}]"
        )
        stats = drift.prediction_stats(reference, live.frame)
        summary.update(
            status=STATUS_DRIFT if drift_detected else STATUS_NO_DRIFT,
            message=drift_reason,
            dataset_drift=results.dataset_drift,
            prediction_drift=prediction_drift,
            share_of_drifted_columns=results.share_of_drifted_columns,
            drifted_columns=results.drifted_columns,
            drifted_features=drifted,
            empty_features=list(results.empty_features),
            columns={name: column.to_dict() for name, column in results.columns.items()},
            prediction={
                **stats,
                "drift": {name: c.to_dict() for name, c in results.prediction.items()},
            },
            tests={"total": results.tests_total, "failed": results.tests_failed},
            report=location.urls(with_evidently=True),
        )

    measured = _quality(settings, registry, log_storage, location, version, now)
    summary["quality"] = measured.summary if measured else None
    decision = retrain.decide(
        insufficient_data=insufficient,
        drift_detected=drift_detected,
        mode=settings.retrain_mode,
        last_triggered_at=retrain.last_triggered_at(report_storage),
        now=now,
        cooldown_hours=settings.cooldown_hours,
        drift_reason=drift_reason,
        quality_decay=(measured.decay if measured and settings.retrain_on_quality_decay else None),
    )
    failure: RetrainError | None = None
    try:
        summary["retrain"] = retrain.execute(
            decision,
            settings,
            report_storage=report_storage,
            claim_storage=registry_storage,
            location=location,
            window_end=window.end,
            now=now,
        )
    except RetrainError as error:
        failure = error
        summary["retrain"] = {
            "decision": True,
            "reason": decision.reason,
            "mode": settings.retrain_mode.value,
            # A local training that started and failed did trigger (and counts for
            # the cooldown); anything refused before starting did not.
            "triggered": retrain.last_triggered_at(report_storage) == now,
            "error": str(error),
        }
    last = retrain.last_triggered_at(report_storage)
    summary["retrain"]["last_triggered_at"] = last.isoformat() if last else None
    summary["retrain"]["last_triggered_timestamp"] = last.timestamp() if last else None
    finished = datetime.now(UTC)
    summary["finished_at"] = finished.isoformat()
    summary["finished_timestamp"] = finished.timestamp()
    summary["seconds"] = round(time.perf_counter() - started, 3)
    location.write_summary(summary)
    log.info(
        "drift run finished",
        extra={
            "status": summary["status"],
            "retrain": summary["retrain"]["reason"],
            "summary": location.url("summary.json"),
        },
    )
    if failure is not None:
        raise failure
    if settings.pushgateway_url:
        push.push(
            settings.pushgateway_url,
            push.build_registry(summary),
            timeout=settings.push_timeout_seconds,
            namespace=settings.namespace or k8s_jobs.pod_namespace(),
        )
    return summary

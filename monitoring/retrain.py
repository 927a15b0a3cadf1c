"""What a drift run starts: the retrain decision and its execution.

A retrain starts only when the window had enough rows and drifted (dataset drift, or
prediction drift unless that trigger is turned off), or the production version's
realised quality decayed (``monitoring/quality.py``, unless that trigger is turned
off), retraining is enabled,
the last retrain a drift run started is older than the cooldown, and this run wins the
retrain claim of its decision window (:mod:`core.claims`, shared with the scorer's
``POST /retrain``): of any number of drift runs and API calls in the same UTC hour,
one starts a training and the others say who holds the claim. In a cluster the API
server also refuses while a Job of the training CronJob is active (see
:mod:`core.k8s_jobs`). The launching is :mod:`core.retrain`, the scorer's too; what is
the drift job's own is the decision, the cooldown record, and waiting for a local
training to end.

Starting training is not promoting a model: the training job's label guard skips a run
with no new labelled data, and its promotion gate keeps the production model unless
the new one is at least as good on the same held-out rows.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from core import claims, k8s_jobs
from core.errors import RetrainClaimedError, RetrainConflictError, RetrainError, StorageError
from core.retrain import RetrainLauncher, RetrainMode, RetrainTarget, wait_for_training
from core.storage import Storage
from monitoring.reports import ReportLocation, read_last_retrain, write_last_retrain
from monitoring.settings import MonitoringSettings

log = logging.getLogger(__name__)

DRIFT_REPORT_LABEL = k8s_jobs.LABEL_PREFIX + "drift-report"
DRIFT_WINDOW_LABEL = k8s_jobs.LABEL_PREFIX + "drift-window"
DRIFT_REPORT_ANNOTATION = k8s_jobs.LABEL_PREFIX + "drift-report-url"
# What the run's summary keeps of the training's own.
SUMMARY_KEYS = ("status", "version", "promoted", "reason", "production_version", "metrics")


@dataclass(frozen=True)
class RetrainDecision:
    retrain: bool
    reason: str


def decide(
    *,
    insufficient_data: bool,
    drift_detected: bool,
    mode: RetrainMode,
    last_triggered_at: datetime | None,
    now: datetime,
    cooldown_hours: float,
    drift_reason: str,
    quality_decay: str | None = None,
) -> RetrainDecision:
    """Pure: the same inputs always give the same answer, and each "no" says why.

    Drift and quality decay are two causes of one decision: a run where both hold
    starts one retrain, under the same cooldown and claim, its reason naming both.
    ``quality_decay`` says why the production version's realised quality decayed
    (None: it did not, or was not judged); it is judged on labels, so it counts even
    when the drift window had too few rows."""
    causes = []
    if drift_detected and not insufficient_data:
        causes.append(f"drift ({drift_reason})")
    if quality_decay:
        causes.append(f"quality decay ({quality_decay})")
    if not causes:
        if insufficient_data:
            return RetrainDecision(False, "insufficient data: nothing was judged")
        return RetrainDecision(False, f"no drift ({drift_reason})")
    cause = "; ".join(causes)
    if mode is RetrainMode.DISABLED:
        return RetrainDecision(False, f"{cause}, but retraining is disabled")
    if last_triggered_at is not None:
        ready_at = last_triggered_at + timedelta(hours=cooldown_hours)
        if now < ready_at:
            return RetrainDecision(
                False,
                f"{cause}, but the last retrain started at "
                f"{last_triggered_at.isoformat()}: cooldown until {ready_at.isoformat()}",
            )
    return RetrainDecision(True, cause)


def last_triggered_at(storage: Storage) -> datetime | None:
    record = read_last_retrain(storage)
    if not record or "triggered_at" not in record:
        return None
    try:
        return datetime.fromisoformat(str(record["triggered_at"]))
    except ValueError:
        return None


def launcher(settings: MonitoringSettings, claim_storage: Storage) -> RetrainLauncher:
    """The drift job's launcher: the local retrain is the training CLI on the same
    registry (feedback labels in the registry's storage are what it can learn from;
    its raw data is TRAINING_RAW_URI unless the drift job names one)."""
    return RetrainLauncher(
        RetrainTarget.of(settings),
        claim_storage=claim_storage,
        trigger=claims.TRIGGER_DRIFT,
        host=socket.gethostname(),
    )


def window_bucket(window_end: datetime) -> str:
    """The decision window: the claim's key and the Job's name both derive from it."""
    return claims.decision_window(window_end)


def execute(
    decision: RetrainDecision,
    settings: MonitoringSettings,
    *,
    report_storage: Storage,
    claim_storage: Storage,
    location: ReportLocation,
    window_end: datetime,
    now: datetime,
) -> dict[str, Any]:
    """Acts on the decision; returns what was done, for the summary. Raises
    RetrainError when the retrain could not be started or (locally) failed.

    The retrain is claimed (in ``claim_storage``, the registry's) before anything
    starts; a run that loses the claim starts nothing and says who holds it."""
    result: dict[str, Any] = {
        "decision": decision.retrain,
        "reason": decision.reason,
        "mode": settings.retrain_mode.value,
        "triggered": False,
        "dry_run": settings.dry_run,
    }
    if not decision.retrain:
        return result
    record = {
        "triggered_at": now.isoformat(),
        "mode": settings.retrain_mode.value,
        "report": location.url("summary.json"),
        "reason": decision.reason,
    }
    bucket = window_bucket(window_end)
    result["window"] = bucket
    retrain = launcher(settings, claim_storage)
    if settings.retrain_mode is RetrainMode.LOCAL:
        result["command"] = retrain.command()
        if settings.dry_run:
            return result

        def start_local() -> Any:
            # Recorded before the run: a training that fails still counts against the
            # cooldown, so a persistent failure is not retried on every drift run (and
            # keeps its claim, for the same reason).
            write_last_retrain(report_storage, {**record, "window": bucket})
            return retrain.start_local()

        try:
            process = _launch(retrain, decision, now, start_local)
        except RetrainClaimedError as claimed:
            result.update(reason=f"{decision.reason}; not started: {claimed}", claim=claimed.holder)
            return result
        log.info("local retrain started", extra={"command": result["command"]})
        summary = wait_for_training(process, settings.training_timeout_seconds)
        kept = {key: summary[key] for key in SUMMARY_KEYS if key in summary}
        result.update(triggered=True, training=kept or summary)
        return result

    namespace = retrain.namespace() or "default"
    dedupe_key = f"drift:{settings.model_name}:{bucket}"
    result.update(
        namespace=namespace, cronjob=settings.training_cronjob, job=retrain.job_name(dedupe_key)
    )
    if settings.dry_run:
        return result
    try:
        created = _launch(
            retrain,
            decision,
            now,
            lambda: retrain.create_job(
                namespace,
                reason=decision.reason,
                labels={DRIFT_WINDOW_LABEL: bucket, DRIFT_REPORT_LABEL: location.slug},
                annotations={DRIFT_REPORT_ANNOTATION: location.url("summary.json")},
                dedupe_key=dedupe_key,
            ),
        )
    except RetrainClaimedError as claimed:
        result.update(reason=f"{decision.reason}; not started: {claimed}", claim=claimed.holder)
        return result
    except RetrainConflictError as conflict:
        # Nothing was started under the claim, which was given back: a later run of
        # this window may start the retrain once the running Job is done.
        result.update(job=conflict.job_name, reason=f"{decision.reason}; not started: {conflict}")
        return result
    write_last_retrain(
        report_storage, {**record, "window": bucket, "job": created, "namespace": namespace}
    )
    result.update(triggered=True, job=created)
    return result


def _launch(retrain: RetrainLauncher, decision: RetrainDecision, now: datetime, start: Any) -> Any:
    try:
        return retrain.launch(decision.reason, now, start)
    except StorageError as error:
        raise RetrainError(f"cannot claim the retrain: {error}") from error

"""What a drift run starts: the retrain decision and its execution.

A retrain starts only when the window had enough rows and drifted (dataset drift, or
prediction drift unless that trigger is turned off), retraining is enabled,
the last retrain a drift run started is older than the cooldown, and this run wins the
retrain claim of its decision window (:mod:`core.claims`, shared with the scorer's
``POST /retrain``): of any number of drift runs and API calls in the same UTC hour,
one starts a training and the others say who holds the claim. In a cluster the API
server also refuses while a Job of the training CronJob is active (see
:mod:`core.k8s_jobs`).

Starting training is not promoting a model: the training job's label guard skips a run
with no new labelled data, and its promotion gate keeps the production model unless
the new one is at least as good on the same held-out rows.
"""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from core import claims, k8s_jobs
from core.errors import RetrainClaimedError, RetrainConflictError, RetrainError, StorageError
from core.storage import Storage
from monitoring.reports import ReportLocation, read_last_retrain, write_last_retrain
from monitoring.settings import MonitoringSettings, RetrainMode

log = logging.getLogger(__name__)

DRIFT_REPORT_LABEL = k8s_jobs.LABEL_PREFIX + "drift-report"
DRIFT_WINDOW_LABEL = k8s_jobs.LABEL_PREFIX + "drift-window"
DRIFT_REPORT_ANNOTATION = k8s_jobs.LABEL_PREFIX + "drift-report-url"


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
) -> RetrainDecision:
    """Pure: the same inputs always give the same answer, and each "no" says why."""
    if insufficient_data:
        return RetrainDecision(False, "insufficient data: nothing was judged")
    if not drift_detected:
        return RetrainDecision(False, f"no drift ({drift_reason})")
    if mode is RetrainMode.DISABLED:
        return RetrainDecision(False, f"drift ({drift_reason}), but retraining is disabled")
    if last_triggered_at is not None:
        ready_at = last_triggered_at + timedelta(hours=cooldown_hours)
        if now < ready_at:
            return RetrainDecision(
                False,
                f"drift ({drift_reason}), but the last retrain started at "
                f"{last_triggered_at.isoformat()}: cooldown until {ready_at.isoformat()}",
            )
    return RetrainDecision(True, f"drift ({drift_reason})")


def last_triggered_at(storage: Storage) -> datetime | None:
    record = read_last_retrain(storage)
    if not record or "triggered_at" not in record:
        return None
    try:
        return datetime.fromisoformat(str(record["triggered_at"]))
    except ValueError:
        return None


def training_command(settings: MonitoringSettings) -> list[str]:
    """The local retrain: the training CLI on the same registry. Feedback labels in the
    registry's storage are what it can learn from; its raw data is TRAINING_RAW_URI
    unless the drift job names one."""
    command = [
        sys.executable,
        "-m",
        "training",
        "train",
        "--registry",
        settings.registry_uri,
        "--model-name",
        settings.model_name,
    ]
    if settings.training_raw_uri:
        command += ["--raw", settings.training_raw_uri]
    return command


def window_bucket(window_end: datetime) -> str:
    """The decision window: the claim's key and the Job's name both derive from it."""
    return claims.decision_window(window_end)


def _claim(
    settings: MonitoringSettings,
    claim_storage: Storage,
    decision: RetrainDecision,
    window: str,
    now: datetime,
) -> claims.RetrainClaim:
    try:
        return claims.claim_retrain(
            claim_storage,
            settings.model_name,
            window=window,
            trigger=claims.TRIGGER_DRIFT,
            host=socket.gethostname(),
            reason=decision.reason,
            now=now,
        )
    except StorageError as error:
        raise RetrainError(f"cannot claim the retrain: {error}") from error


def _release(claim_storage: Storage, claim: claims.RetrainClaim) -> None:
    # Best effort: a claim that cannot be given back only holds its window (one hour).
    try:
        claims.release(claim_storage, claim)
    except StorageError as error:
        log.warning("cannot give the retrain claim back", extra={"error": str(error)})


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
    if settings.retrain_mode is RetrainMode.LOCAL:
        command = training_command(settings)
        result["command"] = command
        if settings.dry_run:
            return result
        try:
            claim = _claim(settings, claim_storage, decision, bucket, now)
        except RetrainClaimedError as claimed:
            result.update(reason=f"{decision.reason}; not started: {claimed}", claim=claimed.holder)
            return result
        # Recorded before the run: a training that fails still counts against the
        # cooldown, so a persistent failure is not retried on every drift run (and
        # keeps its claim, for the same reason).
        write_last_retrain(report_storage, {**record, "window": bucket})
        result.update(triggered=True, training=_run_training(command, settings))
        return result

    namespace = settings.namespace or k8s_jobs.current_namespace()
    dedupe_key = f"drift:{settings.model_name}:{bucket}"
    name = k8s_jobs.job_name(settings.training_cronjob, dedupe_key)
    result.update(namespace=namespace, cronjob=settings.training_cronjob, job=name)
    if settings.dry_run:
        return result
    try:
        claim = _claim(settings, claim_storage, decision, bucket, now)
    except RetrainClaimedError as claimed:
        result.update(reason=f"{decision.reason}; not started: {claimed}", claim=claimed.holder)
        return result
    try:
        created = k8s_jobs.create_job_from_cronjob(
            namespace,
            settings.training_cronjob,
            reason=decision.reason,
            labels={
                k8s_jobs.TRIGGER_LABEL: "drift",
                DRIFT_WINDOW_LABEL: bucket,
                DRIFT_REPORT_LABEL: location.slug,
            },
            annotations={DRIFT_REPORT_ANNOTATION: location.url("summary.json")},
            dedupe_key=dedupe_key,
        )
    except RetrainConflictError as conflict:
        # Nothing was started under the claim: give it back, so a later run of this
        # window may start the retrain once the running Job is done.
        _release(claim_storage, claim)
        result.update(job=conflict.job_name, reason=f"{decision.reason}; not started: {conflict}")
        return result
    except RetrainError:
        _release(claim_storage, claim)
        raise
    write_last_retrain(
        report_storage, {**record, "window": bucket, "job": created, "namespace": namespace}
    )
    result.update(triggered=True, job=created)
    return result


def _run_training(command: list[str], settings: MonitoringSettings) -> dict[str, Any]:
    """Runs the training CLI, its logs passing through to our stderr, and returns its
    JSON summary (status, version, promoted, reason)."""
    log.info("starting local retrain", extra={"command": command})
    try:
        completed = subprocess.run(
            command,
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            timeout=settings.training_timeout_seconds,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise RetrainError(
            f"local retrain did not finish within {settings.training_timeout_seconds:.0f} s"
        ) from error
    except OSError as error:
        raise RetrainError(f"cannot start the local retrain: {error}") from error
    output = completed.stdout.decode("utf-8", errors="replace")
    if completed.returncode != 0:
        raise RetrainError(f"local retrain failed with exit code {completed.returncode}")
    try:
        summary: dict[str, Any] = json.loads(output)
    except ValueError:
        summary = {"output": output.strip()[-2000:]}
    keep = ("status", "version", "promoted", "reason", "production_version", "metrics")
    return {key: summary[key] for key in keep if key in summary} or summary

"""Realised quality: the feedback labels joined with the predictions they label, per
served version, beside the held-out figures of that version's manifest.

A step of every drift run (``monitoring/job.py``; ``quality_enabled`` turns it off).
The predictions are the inference-log rows whose timestamp is in
the quality window (``quality_window_hours`` up to ``window_end``); the labels are
those stored from the window's first day to now, read and made one per request id by
``core/feedback.py`` (the training job's reader and rule: the first label wins, unless
a later one is an admin overwrite, and then the last overwrite wins). Labels arrive
late, so each run counts what is there:

- **matched**: a label whose request id is a prediction of the window, counted for
  the version that served that row (the log records it), never for the version in
  production now: a promotion during the window splits the labels between versions;
- **pending**: a prediction of the window without a label yet;
- **duplicate**: a label for an id that already had one, ignored by the rule above
  (counted for the version of the id's row when it has one);
- **unknown**: a label whose id was issued in the window (its time is in the id,
  ``core/request_ids.py``), or has no issue time (an admin label's own id), and has
  no logged prediction;
- **ambiguous**: an id logged by two versions (never guessed: left out);
- **outside the window**: a label of a prediction made before or after it (not
  counted anywhere else).

The figures (accuracy, precision, recall, F1 and ROC-AUC from Evidently's
classification metrics; the Brier score and the confusion matrix, which Evidently's
metrics do not give as values, from numpy) are computed on each version's matched
labels with the version's own threshold, the one its predictions were made with.
The production version's quality decayed when it has at least ``quality_min_labels``
matched labels and one of the :data:`JUDGED` figures is worse than its manifest's by
more than ``quality_tolerance``; that can start a retrain (``monitoring/job.py``),
and the pushed figures, tolerance and minimum drive the alert rules, so the job and
the alerts judge by the same settings.
"""

from __future__ import annotations

import io
import logging
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from core import layout, partitions, request_ids
from core.errors import RegistryError
from core.feedback import accepted_labels, read_labels
from core.registry import Registry
from core.storage import Storage
from monitoring.drift import Window, to_utc_timestamps
from monitoring.errors import MonitoringError
from monitoring.settings import MonitoringSettings

if TYPE_CHECKING:
    from evidently.core.report import Snapshot

log = logging.getLogger(__name__)

FIGURES: tuple[str, ...] = ("accuracy", "precision", "recall", "f1", "roc_auc", "brier")
"""The figures measured, named as the manifest's held-out metrics (training/model.py)."""
JUDGED: tuple[str, ...] = ("accuracy", "f1", "roc_auc", "brier")
"""The figures a decay is judged on. Precision and recall trade against each other
through the threshold (F1 weighs both); each figure judged is one more chance of a
false alarm from sampling noise."""
HIGHER_IS_WORSE = frozenset({"brier"})

# Type tags of Evidently 0.7's metric configs: how results are found in a snapshot.
EVIDENTLY_FIGURES = {
    "evidently:metric_v2:Accuracy": "accuracy",
    "evidently:metric_v2:Precision": "precision",
    "evidently:metric_v2:Recall": "recall",
    "evidently:metric_v2:F1Score": "f1",
    "evidently:metric_v2:RocAuc": "roc_auc",
}
_TARGET = "label"
_LOG_COLUMNS = (
    layout.REQUEST_ID,
    layout.TIMESTAMP,
    layout.MODEL_VERSION,
    layout.PROBABILITY,
)


@dataclass(frozen=True)
class VersionQuality:
    """One served version's labels and figures."""

    version: str
    served: int
    """Predictions of the window this version made."""
    matched: int
    duplicate: int
    threshold: float | None
    figures: dict[str, float | None]
    """Realised figures (empty without a matched label)."""
    confusion_matrix: list[list[int]] | None
    """[[true 0 predicted 0, true 0 predicted 1], [true 1 ..., ...]], as manifests have it."""
    manifest: dict[str, float | None] | None
    """The manifest's held-out figures; None when the version's manifest is unreadable."""
    decayed: list[str] = field(default_factory=list)
    """Judged figures worse than the manifest's by more than the tolerance (judged
    only with enough labels)."""

    @property
    def pending(self) -> int:
        return self.served - self.matched

    def to_dict(self) -> dict[str, Any]:
        return {
            "served": self.served,
            "matched": self.matched,
            "pending": self.pending,
            "duplicate": self.duplicate,
            "threshold": self.threshold,
            "figures": self.figures,
            "confusion_matrix": self.confusion_matrix,
            "manifest": self.manifest,
            "decayed": self.decayed,
        }


@dataclass(frozen=True)
class QualityRun:
    """What :func:`measure_quality` returns: the summary (JSON), the Evidently
    snapshot of each version with matched labels, and the decay verdict."""

    summary: dict[str, Any]
    snapshots: dict[str, Snapshot]
    """version -> snapshot of its matched labels (the workspace can store them)."""
    decay: str | None
    """Why the production version's quality decayed; None when it did not (or could
    not be judged)."""


@dataclass
class _LogRead:
    served: Counter[str]
    rows: pd.DataFrame


def _read_log_rows(window: Window, wanted: pa.Array, data: bytes) -> _LogRead:
    """One inference-log file: how many of its rows each version served in the
    window, and the window's rows whose request id has a label."""
    parquet = pq.ParquetFile(io.BytesIO(data))
    missing = set(_LOG_COLUMNS) - set(parquet.schema_arrow.names)
    if missing:
        raise ValueError(f"missing column(s) {sorted(missing)}")
    table = parquet.read(columns=list(_LOG_COLUMNS))
    try:
        stamps = to_utc_timestamps(table[layout.TIMESTAMP].to_pandas())
    except TypeError as error:
        raise ValueError(f"unreadable timestamps ({error})") from error
    in_window = pa.array(((stamps >= window.start) & (stamps < window.end)).to_numpy(dtype=bool))
    # Counted by arrow: a compacted part has a million rows, and as many Python strings
    # would cost seconds and hundreds of MB for a handful of distinct versions.
    counts = pc.value_counts(table[layout.MODEL_VERSION].filter(in_window))
    served = Counter[str]({str(item["values"]): int(item["counts"]) for item in counts.to_pylist()})
    labelled = pc.and_(in_window, pc.is_in(table[layout.REQUEST_ID], value_set=wanted)).fill_null(
        False
    )
    rows = table.filter(labelled).to_pandas()
    return _LogRead(served, rows)


def measure_quality(
    settings: MonitoringSettings,
    *,
    registry: Registry,
    log_storage: Storage,
    production_version: str | None,
    now: datetime,
) -> QualityRun:
    """One quality measurement over the quality window ending at ``window_end`` (or
    ``now``)."""
    window = Window.ending(settings.window_end or now, settings.quality_window_hours)
    last_label_day = max(now, window.end).date()
    label_days = [
        window.start.date() + timedelta(days=n)
        for n in range((last_label_day - window.start.date()).days + 1)
    ]
    stored = read_labels(log_storage, label_days)
    labels = stored.frame
    if labels.empty:
        labels = pd.DataFrame(
            {
                layout.REQUEST_ID: pd.Series(dtype=object),
                layout.RECEIVED_AT: pd.Series(dtype="datetime64[us, UTC]"),
                layout.LABEL: pd.Series(dtype="int64"),
            }
        )
    extra_labels = labels.groupby(layout.REQUEST_ID).size() - 1
    accepted = accepted_labels(labels)[[layout.REQUEST_ID, layout.LABEL]]
    issued = pd.Series(
        [request_ids.issued_at(str(rid)) for rid in accepted[layout.REQUEST_ID]],
        index=accepted.index,
        dtype=object,
    )
    undated = issued.isna()
    # A row is timestamped within LOGGED_WITHIN of its id's issue: an id issued that
    # long before the window may still have its row in it.
    earliest = window.start - request_ids.LOGGED_WITHIN
    candidate = undated | issued.map(lambda t: t is not None and earliest <= t < window.end)
    candidates = accepted[candidate.to_numpy(dtype=bool)]

    wanted = pa.array(candidates[layout.REQUEST_ID].astype(str).tolist(), pa.string())
    predictions = _read_predictions(log_storage, window, wanted)
    served, rows = predictions.served, predictions.rows
    versions_of_id = rows.groupby(layout.REQUEST_ID)[layout.MODEL_VERSION].nunique()
    ambiguous_ids = set(versions_of_id[versions_of_id > 1].index)
    # The same row logged twice (a retried flush) is one prediction.
    rows = rows[~rows[layout.REQUEST_ID].isin(ambiguous_ids)].drop_duplicates(
        layout.REQUEST_ID, keep="first"
    )
    joined = candidates.merge(rows, on=layout.REQUEST_ID, how="inner")
    logged_ids = set(rows[layout.REQUEST_ID]) | ambiguous_ids
    not_logged = ~candidates[layout.REQUEST_ID].isin(logged_ids)
    candidate_issued = issued[candidate.to_numpy(dtype=bool)]
    in_window_issue = candidate_issued.map(lambda t: t is None or t >= window.start)
    unknown = int((not_logged & in_window_issue.to_numpy(dtype=bool)).sum())
    ambiguous = int(candidates[layout.REQUEST_ID].isin(ambiguous_ids).sum())
    matched_total = len(joined)
    outside = len(accepted) - matched_total - unknown - ambiguous
    if unknown:
        log.warning("labels for request ids without a logged prediction", extra={"rows": unknown})

    duplicates = (
        joined[layout.REQUEST_ID]
        .map(extra_labels)
        .fillna(0)
        .groupby(joined[layout.MODEL_VERSION])
        .sum()
    )
    results: dict[str, VersionQuality] = {}
    snapshots: dict[str, Snapshot] = {}
    for version in sorted(served):
        results[version], snapshot = _version_quality(
            settings,
            registry,
            version,
            joined[joined[layout.MODEL_VERSION] == version],
            served=served[version],
            duplicate=int(duplicates.get(version, 0)),
        )
        if snapshot is not None:
            snapshots[version] = snapshot

    decay = None
    production = results.get(production_version or "")
    if production is not None and production.decayed:
        decay = (
            f"version {production.version}, {production.matched} labels: "
            + ", ".join(
                f"{name} {production.figures[name]:.3f} vs {(production.manifest or {})[name]:.3f}"
                " held out"
                for name in production.decayed
            )
            + f" (tolerance {settings.quality_tolerance})"
        )
    summary: dict[str, Any] = {
        "window": window.to_dict(),
        "production_version": production_version,
        "min_labels": settings.quality_min_labels,
        "tolerance": settings.quality_tolerance,
        "judged": list(JUDGED),
        "labels": {
            "read": len(labels),
            "duplicate": int(extra_labels.sum()),
            "matched": matched_total,
            "unknown": unknown,
            "ambiguous": ambiguous,
            "outside_window": outside,
        },
        "files": {
            "labels": stored.files,
            "labels_unreadable": stored.unreadable_files,
            "inference_logs": predictions.files,
            "inference_logs_unreadable": len(predictions.unreadable),
        },
        "versions": {version: quality.to_dict() for version, quality in results.items()},
        "decay": decay,
    }
    return QualityRun(summary, snapshots, decay)


@dataclass(frozen=True)
class _Predictions:
    served: Counter[str]
    """Predictions of the window per version."""
    rows: pd.DataFrame
    """The window's predictions whose request id has a label."""
    files: int
    unreadable: list[str]


def _read_predictions(storage: Storage, window: Window, wanted: pa.Array) -> _Predictions:
    """The window's days of inference logs, each as ``core/partitions.py`` resolves
    it, one file at a time: counts per version, and the labelled rows only."""
    served: Counter[str] = Counter()
    frames: list[pd.DataFrame] = []
    files, unreadable = 0, []
    for day in window.days():
        read = partitions.read_day(
            storage, layout.INFERENCE_LOG_PREFIX, day, partial(_read_log_rows, window, wanted)
        )
        files += read.files
        unreadable.extend(read.unreadable)
        for result in read.results:
            served.update(result.served)
            if len(result.rows):
                frames.append(result.rows)
    rows = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame({name: pd.Series(dtype=object) for name in _LOG_COLUMNS})
    )
    return _Predictions(served, rows, files, unreadable)


def _version_quality(
    settings: MonitoringSettings,
    registry: Registry,
    version: str,
    own: pd.DataFrame,
    *,
    served: int,
    duplicate: int,
) -> tuple[VersionQuality, Snapshot | None]:
    """One version's figures on its matched labels (``own``), beside its manifest's."""
    manifest, threshold = _manifest_figures(registry, version)
    figures: dict[str, float | None] = {}
    matrix, snapshot = None, None
    if len(own) and threshold is not None:
        labels = own[layout.LABEL].to_numpy(dtype=np.int64)
        probability = own[layout.PROBABILITY].to_numpy(dtype=np.float64)
        snapshot = run_report(labels, probability, threshold, version=version)
        figures = {**read_figures(snapshot.dict()), **numpy_figures(labels, probability)}
        matrix = confusion_matrix(labels, probability, threshold)
    quality = VersionQuality(
        version=version,
        served=served,
        matched=len(own),
        duplicate=duplicate,
        threshold=threshold,
        figures={name: figures.get(name) for name in FIGURES} if figures else {},
        confusion_matrix=matrix,
        manifest=manifest,
        decayed=(
            decayed_figures(figures, manifest, settings.quality_tolerance)
            if len(own) >= settings.quality_min_labels and manifest
            else []
        ),
    )
    return quality, snapshot


def _manifest_figures(
    registry: Registry, version: str
) -> tuple[dict[str, float | None] | None, float | None]:
    """The version's held-out figures and threshold; (None, None) when its manifest
    cannot be read (a deleted version: its labels are counted, not judged)."""
    try:
        manifest = registry.manifest(version)
    except RegistryError as error:
        log.warning(
            "no manifest for a served version", extra={"version": version, "error": str(error)}
        )
        return None, None
    metrics = manifest.get("metrics") or {}
    figures = {name: _number(metrics.get(name)) for name in FIGURES}
    return figures, float(manifest.get("threshold", 0.5))


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def decayed_figures(
    realised: Mapping[str, float | None],
    manifest: Mapping[str, float | None] | None,
    tolerance: float,
) -> list[str]:
    """The judged figures worse than the manifest's by more than ``tolerance``."""
    worse = []
    for name in JUDGED:
        live, held_out = realised.get(name), (manifest or {}).get(name)
        if live is None or held_out is None:
            continue
        if name in HIGHER_IS_WORSE:
            if live > held_out + tolerance:
                worse.append(name)
        elif live < held_out - tolerance:
            worse.append(name)
    return worse


def run_report(
    labels: np.ndarray, probability: np.ndarray, threshold: float, *, version: str
) -> Snapshot:
    """Evidently's classification metrics of one version's labelled predictions, at
    the version's threshold. ROC-AUC needs both classes among the labels."""
    from evidently import BinaryClassification, DataDefinition, Dataset, Report
    from evidently.metrics import Accuracy, F1Score, Precision, Recall, RocAuc

    frame = pd.DataFrame({_TARGET: labels, layout.PROBABILITY: probability})
    definition = DataDefinition(
        classification=[
            BinaryClassification(target=_TARGET, prediction_probas=layout.PROBABILITY, pos_label=1)
        ]
    )
    metrics: list[Any] = [
        Accuracy(probas_threshold=threshold),
        Precision(probas_threshold=threshold),
        Recall(probas_threshold=threshold),
        F1Score(probas_threshold=threshold),
    ]
    if len(np.unique(labels)) == 2:
        metrics.append(RocAuc(probas_threshold=threshold))
    report = Report(metrics, metadata={"model_version": version}, tags=["quality"])
    return report.run(current_data=Dataset.from_pandas(frame, data_definition=definition))


def read_figures(snapshot: Mapping[str, Any]) -> dict[str, float | None]:
    """The figures of ``Snapshot.dict()``, found by metric type."""
    figures: dict[str, float | None] = {}
    for metric in snapshot.get("metrics", []):
        name = EVIDENTLY_FIGURES.get(metric.get("config", {}).get("type"))
        if name is None:
            continue
        if name in figures:
            raise MonitoringError(f"Evidently snapshot has two {name} metrics")
        figures[name] = _number(metric.get("value"))
    return figures


def numpy_figures(labels: np.ndarray, probability: np.ndarray) -> dict[str, float | None]:
    """What Evidently's metrics do not give as a value: the Brier score."""
    return {"brier": float(np.mean((probability - labels) ** 2)) if len(labels) else None}


def confusion_matrix(
    labels: np.ndarray, probability: np.ndarray, threshold: float
) -> list[list[int]]:
    predicted = (probability >= threshold).astype(np.int64)
    return [
        [int(np.sum((labels == truth) & (predicted == guess))) for guess in (0, 1)]
        for truth in (0, 1)
    ]

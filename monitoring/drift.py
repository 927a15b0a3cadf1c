"""The drift comparison: the production model's reference sample against the rows the
scorer logged in a window, through an Evidently report.

Loading keeps memory bounded whatever the traffic: the window's files are read one at
a time, only the columns compared, and a uniform random sample of at most
``max_current_rows`` rows is kept as they stream by (each row gets a random key and
the smallest keys are kept, which is a uniform sample without replacement).

Results are read from the snapshot by metric type and column, never by position, and
each feature's verdict is the status of the test Evidently attached to its
``ValueDrift`` metric.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from core import contract, layout, partitions
from core.errors import ObjectNotFoundError
from core.registry import Registry
from core.storage import Storage
from monitoring.errors import MonitoringError, NoProductionModelError

if TYPE_CHECKING:
    from evidently import Report
    from evidently.core.report import Snapshot

log = logging.getLogger(__name__)

PROBABILITY = layout.PROBABILITY
PREDICTION = layout.PREDICTION
COMPARED_COLUMNS: tuple[str, ...] = (*contract.FEATURE_NAMES, PROBABILITY, PREDICTION)

# Type tags of Evidently 0.7's metric configs: how results are found in a snapshot.
DRIFTED_COLUMNS_COUNT = "evidently:metric_v2:DriftedColumnsCount"
VALUE_DRIFT = "evidently:metric_v2:ValueDrift"

# Unreadable files are counted in full; only the first few are named in the summary.
NAMED_UNREADABLE_FILES = 20
_SAMPLE_KEY = "__sample_key"


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    @classmethod
    def ending(cls, end: datetime | None, hours: float) -> Window:
        end = end or datetime.now(UTC)
        # A date-time without offset is UTC (as documented), not the machine's zone.
        end = end.replace(tzinfo=UTC) if end.tzinfo is None else end.astimezone(UTC)
        return cls(end - timedelta(hours=hours), end)

    def days(self) -> list[date]:
        day, last = self.start.date(), self.end.date()
        days = []
        while day <= last:
            days.append(day)
            day += timedelta(days=1)
        return days

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "hours": round((self.end - self.start).total_seconds() / 3600, 6),
        }


@dataclass
class LiveRows:
    """The window's rows (a sample when there were more than the cap)."""

    frame: pd.DataFrame
    rows_in_window: int
    files: int
    unreadable_files: list[str] = field(default_factory=list)


def load_window(storage: Storage, window: Window, *, max_rows: int, seed: int) -> LiveRows:
    """The inference-log rows whose timestamp is in ``[start, end)``, sampled down to
    ``max_rows``. Files that cannot be read as inference logs are skipped and named."""
    rng = np.random.default_rng(seed)
    keys: list[str] = []
    for day in window.days():
        # A compacted day reads as its parts plus any later raw file, never both forms.
        keys.extend(partitions.day_files(storage, layout.INFERENCE_LOG_PREFIX, day).keys)
    kept: pd.DataFrame | None = None
    in_window = 0
    unreadable: list[str] = []
    for key in keys:
        try:
            frame = _read_log_file(storage.read_bytes(key))
        # A file deleted between the listing and the read (retention) is skipped too;
        # any other storage failure fails the run, as the next read would fail as well.
        except (MonitoringError, ObjectNotFoundError) as error:
            unreadable.append(key)
            log.warning(
                "skipping unreadable inference log", extra={"key": key, "error": str(error)}
            )
            continue
        frame = frame[
            (frame[layout.TIMESTAMP] >= window.start) & (frame[layout.TIMESTAMP] < window.end)
        ]
        if frame.empty:
            continue
        in_window += len(frame)
        frame = frame.assign(**{_SAMPLE_KEY: rng.random(len(frame))})
        kept = frame if kept is None else pd.concat([kept, frame], ignore_index=True)
        if len(kept) > max_rows:
            kept = kept.nsmallest(max_rows, _SAMPLE_KEY)
    if kept is None:
        empty = pd.DataFrame({name: pd.Series(dtype=object) for name in COMPARED_COLUMNS})
        return LiveRows(empty, 0, len(keys), unreadable)
    kept = kept.sort_values(layout.TIMESTAMP, kind="stable").drop(columns=_SAMPLE_KEY)
    return LiveRows(kept.reset_index(drop=True), in_window, len(keys), unreadable)


def _read_log_file(data: bytes) -> pd.DataFrame:
    """One inference-log file, only the compared columns and the timestamp. A missing
    feature column becomes nulls (an older scorer may not log a newer feature); a
    missing timestamp, probability or prediction makes the file unusable."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(io.BytesIO(data))
        present = set(parquet.schema_arrow.names)
        missing = {layout.TIMESTAMP, PROBABILITY, PREDICTION} - present
        if missing:
            raise MonitoringError(f"missing column(s) {sorted(missing)}")
        # Only the compared columns are decoded (request ids, versions are not).
        wanted = [name for name in (layout.TIMESTAMP, *COMPARED_COLUMNS) if name in present]
        frame = parquet.read(columns=wanted).to_pandas()
    except (pa.ArrowException, OSError, ValueError) as error:
        raise MonitoringError(f"not a readable parquet file ({_one_line(error)})") from error
    for name in COMPARED_COLUMNS:
        if name not in frame.columns:
            frame[name] = None
    try:
        frame[layout.TIMESTAMP] = to_utc_timestamps(frame[layout.TIMESTAMP])
    except (ValueError, TypeError) as error:
        raise MonitoringError(f"unreadable timestamps ({_one_line(error)})") from error
    return frame


def to_utc_timestamps(values: pd.Series) -> pd.Series:
    """Timestamps as tz-aware UTC, whether they were logged as datetimes (naive ones
    are UTC), ISO 8601 strings or epoch seconds."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return pd.to_datetime(values, unit="s", utc=True)
    return pd.to_datetime(values, utc=True, format="ISO8601")


def load_reference(
    registry: Registry, version: str, *, max_rows: int, seed: int
) -> tuple[pd.DataFrame, int]:
    """The version's reference sample (checksum-verified) capped to ``max_rows``, and
    how many rows it had."""
    data = registry.read_file(version, layout.REFERENCE)
    frame = pd.read_parquet(io.BytesIO(data))
    missing = sorted(set(COMPARED_COLUMNS) - set(frame.columns))
    if missing:
        raise MonitoringError(
            f"model {registry.name} version {version}: {layout.REFERENCE} lacks {missing}"
        )
    available = len(frame)
    if available > max_rows:
        frame = frame.sample(n=max_rows, random_state=seed)
    return frame[list(COMPARED_COLUMNS)].reset_index(drop=True), available


def production_version(registry: Registry) -> str:
    version = registry.alias_version()
    if version is None:
        raise NoProductionModelError(
            f"model {registry.name} has no production version in {registry.storage.uri}: "
            "train and promote one first"
        )
    return version


# --- the comparison ------------------------------------------------------------------


def prepare(frame: pd.DataFrame) -> pd.DataFrame:
    """The compared columns with one representation on both sides: numbers as float64,
    categories as strings ("7", "2A") with None for missing. Without this a code read
    as 1 on one side and 1.0 on the other would be two categories, and drift."""
    prepared: dict[str, pd.Series] = {}
    for name in (*contract.NUMERICAL_FEATURES, PROBABILITY):
        prepared[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
    for name in (*contract.CATEGORICAL_FEATURES, PREDICTION):
        prepared[name] = _category_strings(frame[name])
    return pd.DataFrame(prepared, columns=list(COMPARED_COLUMNS))


def _category_strings(values: pd.Series) -> pd.Series:
    """7, 7.0 and "7" are the same code; "2A" stays "2A". Vectorised: this runs on
    every cell of both samples."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        numbers = pd.to_numeric(values, errors="coerce")
        present = numbers.notna()
        text = numbers.round().astype("Int64").astype("string")
    else:
        present = values.notna()
        text = values.astype("string").str.strip()
        # Numbers that arrived as text ("7.0") are the same codes as the numbers.
        text = text.str.replace(r"^(-?\d+)\.0+$", r"\1", regex=True)
    return text.astype(object).where(present, None)


def data_definition() -> Any:
    """Evidently's column types, from the feature contract."""
    from evidently import DataDefinition

    return DataDefinition(
        numerical_columns=[*contract.NUMERICAL_FEATURES, PROBABILITY],
        categorical_columns=[*contract.CATEGORICAL_FEATURES, PREDICTION],
    )


def empty_features(reference: pd.DataFrame, current: pd.DataFrame) -> list[str]:
    """Features without a single value on one side (a client that stopped sending an
    optional field). Evidently cannot compare them, and refuses the whole report."""
    return [
        name
        for name in contract.FEATURE_NAMES
        if not current[name].notna().any() or not reference[name].notna().any()
    ]


def _preset_class() -> type:
    """Evidently's DataDriftPreset, rendered from the widgets it already computed.

    The stock preset computes every column's drift twice for its metrics and tests
    (``DriftedColumnsCount`` and one ``ValueDrift`` per column), then a third time in
    ``render`` for a legacy table, throwing the ``ValueDrift`` widgets away: a quarter
    of the job's time. This subclass keeps the metrics, tests and the dataset-drift
    summary widget (a cache hit: ``DriftedColumnsCount`` computed the same legacy
    metric) and shows the per-feature ``ValueDrift`` widgets instead of recomputing.
    Built in a function: importing Evidently takes seconds, and only the drift job
    should pay for it.
    """
    from evidently.core.report import _default_input_data_generator
    from evidently.legacy.metrics import DatasetDriftMetric
    from evidently.presets import DataDriftPreset

    class TriageDataDriftPreset(DataDriftPreset):
        def render(self, context: Any, child_widgets: Any = None) -> list[Any]:
            summary = DatasetDriftMetric(
                columns=self.columns,
                drift_share=self.drift_share,
                stattest=self.method,
                cat_stattest=self.cat_method,
                num_stattest=self.num_method,
                text_stattest=self.text_method,
                per_column_stattest=self.per_column_method,
                stattest_threshold=self.threshold,
                cat_stattest_threshold=self.cat_threshold,
                num_stattest_threshold=self.num_threshold,
                text_stattest_threshold=self.text_threshold,
                per_column_stattest_threshold=self.per_column_threshold,
            )
            widgets = context.get_legacy_metric(summary, _default_input_data_generator, None)[1]
            return [*widgets, *(w for _, column in child_widgets or [] for w in column)]

    return TriageDataDriftPreset


def build_report(
    drift_share: float, column_threshold: float | None, columns: Sequence[str]
) -> Report:
    """Dataset drift over the contract's features (the preset, with its tests), plus
    prediction drift: the probability distribution and the predicted class mix, kept
    out of the preset so they never count in the share of drifted features."""
    from evidently import Report
    from evidently.metrics import ValueDrift

    preset = _preset_class()
    return Report(
        [
            preset(
                columns=list(columns),
                drift_share=drift_share,
                threshold=column_threshold,
            ),
            ValueDrift(column=PROBABILITY, threshold=column_threshold),
            ValueDrift(column=PREDICTION, threshold=column_threshold),
        ],
        include_tests=True,
    )


def run_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    drift_share: float,
    column_threshold: float | None,
    model_version: str,
) -> tuple[Snapshot, DriftResults]:
    """Runs the report and reads its results. Features empty on one side are left
    out of Evidently's comparison and count as drifted (a feature that vanished from
    the traffic changes what the model sees as surely as a shifted one)."""
    from evidently import Dataset

    definition = data_definition()
    prepared_reference, prepared_current = prepare(reference), prepare(current)
    empty = empty_features(prepared_reference, prepared_current)
    compared = [name for name in contract.FEATURE_NAMES if name not in empty]
    report = build_report(drift_share, column_threshold, compared)
    snapshot = report.run(
        current_data=Dataset.from_pandas(prepared_current, data_definition=definition),
        reference_data=Dataset.from_pandas(prepared_reference, data_definition=definition),
        metadata={"model_version": model_version},
    )
    return snapshot, extract_results(snapshot.dict(), drift_share, empty=empty)


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    kind: str
    method: str
    score: float
    threshold: float
    drifted: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "method": self.method,
            "score": _finite(self.score),
            "threshold": _finite(self.threshold),
            "drifted": self.drifted,
        }


@dataclass(frozen=True)
class DriftResults:
    dataset_drift: bool
    drift_share: float
    drifted_columns: int
    share_of_drifted_columns: float
    columns: dict[str, ColumnDrift]
    prediction: dict[str, ColumnDrift]
    tests_total: int
    tests_failed: int
    empty_features: tuple[str, ...] = ()


EMPTY_METHOD = "not compared: no value on one side"


def extract_results(
    snapshot: Mapping[str, Any], drift_share: float, *, empty: Sequence[str] = ()
) -> DriftResults:
    """The figures we use, from ``Snapshot.dict()``, found by metric type and column.
    ``empty`` features were left out of the report; they count as drifted."""
    compared = [name for name in contract.FEATURE_NAMES if name not in empty]
    metrics: Sequence[Mapping[str, Any]] = snapshot.get("metrics", [])
    tests: Sequence[Mapping[str, Any]] = snapshot.get("tests", [])
    failed_by_metric: dict[str, bool] = {}
    for test in tests:
        metric_id = test.get("metric_config", {}).get("metric_id")
        if metric_id is not None:
            failed = test.get("status") in ("FAIL", "ERROR")
            failed_by_metric[metric_id] = failed_by_metric.get(metric_id, False) or failed

    counts = [
        metric
        for metric in metrics
        if metric.get("config", {}).get("type") == DRIFTED_COLUMNS_COUNT
        and metric["config"].get("columns") == compared
    ]
    if len(counts) != 1:
        raise MonitoringError(
            f"Evidently snapshot has {len(counts)} DriftedColumnsCount metrics over the "
            "compared features, expected 1"
        )
    drifted_count = round(float(counts[0]["value"]["count"])) + len(empty)
    # Evidently's share is over the compared features; ours is over the contract.
    share = drifted_count / len(contract.FEATURE_NAMES)

    by_column: dict[str, ColumnDrift] = {}
    for metric in metrics:
        config = metric.get("config", {})
        if config.get("type") != VALUE_DRIFT:
            continue
        column = config["column"]
        metric_id = metric.get("id")
        if metric_id not in failed_by_metric:
            raise MonitoringError(f"Evidently snapshot has no drift test for column {column!r}")
        by_column[column] = ColumnDrift(
            column=column,
            kind=_kind(column),
            method=str(config.get("method")),
            score=float(metric["value"]),
            threshold=float(config.get("threshold")),
            drifted=failed_by_metric[metric_id],
        )
    for name in empty:
        by_column[name] = ColumnDrift(name, _kind(name), EMPTY_METHOD, math.nan, math.nan, True)
    missing = [name for name in COMPARED_COLUMNS if name not in by_column]
    if missing:
        raise MonitoringError(f"Evidently snapshot has no ValueDrift for {missing}")
    return DriftResults(
        dataset_drift=share >= drift_share,
        drift_share=drift_share,
        drifted_columns=drifted_count,
        share_of_drifted_columns=share,
        columns={name: by_column[name] for name in contract.FEATURE_NAMES},
        prediction={name: by_column[name] for name in (PROBABILITY, PREDICTION)},
        tests_total=len(tests),
        tests_failed=sum(1 for test in tests if test.get("status") in ("FAIL", "ERROR")),
        empty_features=tuple(empty),
    )


def prediction_stats(reference: pd.DataFrame, current: pd.DataFrame) -> dict[str, Any]:
    """Plain figures next to Evidently's verdicts: the prioritaire share of the
    predictions and the mean probability on each side."""

    def side(frame: pd.DataFrame) -> dict[str, float | None]:
        prediction = pd.to_numeric(frame[PREDICTION], errors="coerce")
        probability = pd.to_numeric(frame[PROBABILITY], errors="coerce")
        return {
            "prioritaire_share": _mean(prediction),
            "mean_probability": _mean(probability),
        }

    return {"reference": side(reference), "current": side(current)}


def _mean(values: pd.Series) -> float | None:
    values = values.dropna()
    return None if values.empty else float(values.mean())


def _kind(column: str) -> str:
    if column in contract.FEATURES_BY_NAME:
        return contract.FEATURES_BY_NAME[column].kind.value
    return "numerical" if column == PROBABILITY else "categorical"


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _one_line(value: object) -> str:
    return " ".join(str(value).split())


def drifted_features(results: DriftResults) -> list[str]:
    return [name for name, column in results.columns.items() if column.drifted]


def names(items: Iterable[str]) -> str:
    return ", ".join(items) or "none"

"""Helpers of the monitoring tests: a small real model with its reference sample in a
registry, and inference logs written exactly as the scorer writes them. A plain module
(import it as ``tests.monitoring.support``); the fixtures are in conftest.py."""

from __future__ import annotations

import io
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from core import contract, layout
from core.registry import Registry
from core.storage import Storage, open_storage
from core.tables import FeedbackLabel, feedback_parquet
from tools.simulate import contract_rows, synthetic_table
from training.model import ModelKind, build_pipeline, positive_probability, to_onnx
from training.train import reference_sample

MODEL_NAME = "accident-severity"
VERSION = "20260101t000000-testtest"
THRESHOLD = 0.5
TRAIN_ACCIDENTS = 8000
REFERENCE_ROWS = 5000


@dataclass(frozen=True)
class TrainedModel:
    """A registry with one promoted version (model + reference), and the pipeline to
    score live rows with the same model."""

    registry_uri: str
    pipeline: Any

    def probability(self, table: pd.DataFrame) -> np.ndarray:
        return positive_probability(self.pipeline, contract.encode_frame(table))


def publish_trained_model(root: Path) -> TrainedModel:
    table = synthetic_table(TRAIN_ACCIDENTS, seed=1)
    pipeline = build_pipeline(ModelKind.HIST_GRADIENT_BOOSTING, seed=0)
    features = contract.encode_frame(table)
    pipeline.fit(features, table[contract.TARGET].to_numpy(dtype=int))
    reference = reference_sample(
        table, positive_probability(pipeline, features), THRESHOLD, REFERENCE_ROWS, seed=0
    )
    model_bytes = io.BytesIO()
    joblib.dump(pipeline, model_bytes)
    reference_bytes = io.BytesIO()
    reference.to_parquet(reference_bytes, index=False)
    registry = Registry(open_storage(str(root)), MODEL_NAME)
    registry.publish(
        VERSION,
        {
            layout.MODEL_JOBLIB: model_bytes.getvalue(),
            # Only a servable version (with its ONNX twin) can be promoted.
            layout.MODEL_ONNX: to_onnx(pipeline),
            layout.REFERENCE: reference_bytes.getvalue(),
        },
        {
            "threshold": THRESHOLD,
            "contract_fingerprint": contract.contract_fingerprint(),
            "data": {"fingerprint": "test"},
        },
    )
    registry.promote(VERSION, reason="test")
    return TrainedModel(str(root), pipeline)


def _feature_type(feature: contract.Feature) -> pa.DataType:
    if feature.is_string_coded:
        return pa.string()
    if feature.kind is contract.Kind.NUMERICAL and not feature.integer:
        return pa.float64()
    return pa.int64()


# The scorer's inference-log schema: layout's columns, types from the contract.
INFERENCE_LOG_SCHEMA = pa.schema(
    [
        pa.field(layout.REQUEST_ID, pa.string()),
        pa.field(layout.TIMESTAMP, pa.timestamp("us", tz="UTC")),
        pa.field(layout.MODEL_VERSION, pa.string()),
        pa.field(layout.PROBABILITY, pa.float64()),
        pa.field(layout.PREDICTION, pa.int64()),
        *(pa.field(f.name, _feature_type(f)) for f in contract.FEATURES),
    ]
)
assert tuple(INFERENCE_LOG_SCHEMA.names) == layout.INFERENCE_LOG_COLUMNS


def inference_log_parquet(
    records: list[tuple[str, float, str, float, int, dict[str, Any]]],
) -> bytes:
    """One inference-log file: (request id, epoch seconds, version, probability,
    prediction, features) per row."""
    columns = {
        layout.REQUEST_ID: [r[0] for r in records],
        layout.TIMESTAMP: [datetime.fromtimestamp(r[1], UTC) for r in records],
        layout.MODEL_VERSION: [r[2] for r in records],
        layout.PROBABILITY: [r[3] for r in records],
        layout.PREDICTION: [r[4] for r in records],
        **{name: [r[5].get(name) for r in records] for name in contract.FEATURE_NAMES},
    }
    table = pa.Table.from_pydict(columns, schema=INFERENCE_LOG_SCHEMA)
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()


@dataclass(frozen=True)
class LiveRows:
    """Request bodies as the scorer validated them, and the model's probabilities."""

    features: list[dict[str, Any]]
    probability: np.ndarray


def live_rows(model: TrainedModel, rows: int, *, seed: int, drift: str | None = None) -> LiveRows:
    """Synthetic accidents through the real loader, scored by the model as the scorer
    scores a request (``encode_rows`` of the JSON body): what it would have logged."""
    # A few more accidents than rows: some lack a required feature and are left out,
    # as the scorer would refuse them.
    features, _ = contract_rows(synthetic_table(int(rows * 1.1) + 50, seed=seed, drift=drift))
    features = features[:rows]
    probability = positive_probability(model.pipeline, contract.encode_rows(features))
    return LiveRows(features, probability)


def write_inference_logs(
    storage: Storage,
    live: LiveRows,
    *,
    end: datetime,
    span: timedelta = timedelta(hours=1),
    files: int = 3,
    host: str = "scorer-0",
    version: str = VERSION,
) -> int:
    """Writes the rows as the scorer would, in ``files`` parquet files, with timestamps
    spread over ``[end - span, end)``. Returns the row count."""
    count = len(live.features)
    stamps = np.linspace((end - span).timestamp(), end.timestamp() - 1e-3, count)
    records = [
        (
            f"req-{host}-{i}",
            float(stamps[i]),
            version,
            float(live.probability[i]),
            int(live.probability[i] >= THRESHOLD),
            live.features[i],
        )
        for i in range(count)
    ]
    for part, chunk in enumerate(np.array_split(np.arange(count), files)):
        if len(chunk) == 0:
            continue
        flushed = datetime.fromtimestamp(float(stamps[chunk[-1]]), UTC) + timedelta(
            microseconds=part
        )
        key = layout.partitioned_key(layout.INFERENCE_LOG_PREFIX, flushed, host)
        storage.write_bytes(key, inference_log_parquet([records[i] for i in chunk]))
    return count


# --- realised quality: versions with held-out metrics, rows and labels by request id ---

OLD = "20251201t000000-oldoldol"
NEW = "20251215t000000-newnewne"


def issued_id(when: datetime) -> str:
    """An id in the scorer's format, issued at ``when`` (the MAC is not checked here)."""
    return f"{int(when.timestamp()):08x}" + secrets.token_hex(16)


def publish_version(registry_root: Any, version: str, metrics: dict[str, Any]) -> None:
    """A version with the session model's files and the given held-out metrics."""
    registry = Registry(open_storage(str(registry_root)), MODEL_NAME)
    files = {
        name: registry.read_file(VERSION, name)
        for name in (layout.MODEL_JOBLIB, layout.MODEL_ONNX, layout.REFERENCE)
    }
    registry.publish(
        version,
        files,
        {
            "threshold": THRESHOLD,
            "metrics": metrics,
            "contract_fingerprint": contract.contract_fingerprint(),
        },
    )


@dataclass
class Traffic:
    """Rows and labels written as the scorer writes them."""

    storage: Storage
    rows: list[tuple[str, float, str, float, int, dict[str, Any]]] = field(default_factory=list)

    def predict(self, when: datetime, version: str, probability: float) -> str:
        request_id = issued_id(when)
        self.rows.append(
            (request_id, when.timestamp(), version, probability, int(probability >= THRESHOLD), {})
        )
        return request_id

    def flush(self, host: str = "scorer-0") -> None:
        by_day: dict[Any, list[Any]] = {}
        for row in self.rows:
            by_day.setdefault(datetime.fromtimestamp(row[1], UTC).date(), []).append(row)
        for day, rows in by_day.items():
            written = datetime.fromtimestamp(max(r[1] for r in rows), UTC)
            key = layout.day_partition_key(layout.INFERENCE_LOG_PREFIX, day, written, host)
            self.storage.write_bytes(key, inference_log_parquet(rows))
        self.rows = []

    def label(
        self, received: datetime, labels: list[tuple[str, int]], *, overwrite: bool = False
    ) -> None:
        stored = [
            FeedbackLabel(rid, label, None, overwrite, received.timestamp() + n * 1e-3)
            for n, (rid, label) in enumerate(labels)
        ]
        key = layout.partitioned_key(layout.FEEDBACK_PREFIX, received, f"scorer-{received:%H%M%S}")
        self.storage.write_bytes(key, feedback_parquet(stored))


METRICS = {
    "accuracy": 0.8,
    "precision": 0.7,
    "recall": 0.6,
    "f1": 0.65,
    "roc_auc": 0.85,
    "brier": 0.15,
    "rows": 3000,
}

"""Parquet files the scorer writes: inference-log batches and feedback labels.

Column names come from ``core.layout`` (the training and drift jobs read them);
types come from the contract, so every file of both kinds agrees on them: integer
codes and counts as nullable int64, coordinates as float64, ``dep`` as a string.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import chain
from operator import itemgetter
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from core import contract, layout


@dataclass(frozen=True, slots=True)
class FeedbackLabel:
    request_id: str
    label: int
    features: Mapping[str, Any] | None
    overwrite: bool
    received_at: float
    """Epoch seconds."""


@dataclass(slots=True)
class LogChunk:
    """The rows one request scored, all with the same time, model and threshold.

    Not frozen, only because a frozen dataclass's ``__init__`` costs three times as
    much and one is made per request; nothing modifies a chunk after it is made."""

    request_ids: Sequence[str]
    timestamp: float
    """Epoch seconds."""
    model_version: str
    threshold: float
    probabilities: np.ndarray
    """float64, one per row; the prediction is ``probability >= threshold``, exactly
    as the response computed it."""
    features: np.ndarray
    """float32 (rows, features): the contract's encoding, as the model read it. Codes
    and counts decode exactly; ``dep`` decodes through the contract's order."""
    latitudes: Sequence[float | None]
    longitudes: Sequence[float | None]
    """Raw coordinates: float32 would round them (44.84 -> 44.84000015...)."""

    def __len__(self) -> int:
        return len(self.request_ids)

    def split(self, rows: int) -> tuple[LogChunk, LogChunk]:
        """The first ``rows`` rows, and the rest."""
        return self._slice(slice(None, rows)), self._slice(slice(rows, None))

    def _slice(self, part: slice) -> LogChunk:
        return replace(
            self,
            request_ids=self.request_ids[part],
            probabilities=self.probabilities[part],
            features=self.features[part],
            latitudes=self.latitudes[part],
            longitudes=self.longitudes[part],
        )


TIMESTAMP_TYPE = pa.timestamp("us", tz="UTC")


def _feature_type(feature: contract.Feature) -> pa.DataType:
    if feature.is_string_coded:
        return pa.string()
    if feature.kind is contract.Kind.NUMERICAL and not feature.integer:
        return pa.float64()
    return pa.int64()


FEATURE_FIELDS: tuple[pa.Field, ...] = tuple(
    pa.field(f.name, _feature_type(f), nullable=True) for f in contract.FEATURES
)

INFERENCE_LOG_SCHEMA = pa.schema(
    [
        pa.field(layout.REQUEST_ID, pa.string(), nullable=False),
        pa.field(layout.TIMESTAMP, TIMESTAMP_TYPE, nullable=False),
        pa.field(layout.MODEL_VERSION, pa.string(), nullable=False),
        pa.field(layout.PROBABILITY, pa.float64(), nullable=False),
        pa.field(layout.PREDICTION, pa.int64(), nullable=False),
        *FEATURE_FIELDS,
    ]
)

FEEDBACK_SCHEMA = pa.schema(
    [
        pa.field(layout.REQUEST_ID, pa.string(), nullable=False),
        pa.field(layout.RECEIVED_AT, TIMESTAMP_TYPE, nullable=False),
        pa.field(layout.LABEL, pa.int64(), nullable=False),
        pa.field(layout.OVERWRITE, pa.bool_(), nullable=False),
        *FEATURE_FIELDS,
    ]
)


def _epoch_microseconds(seconds: Sequence[float]) -> pa.Array:
    return pa.array([round(s * 1_000_000) for s in seconds], pa.int64()).cast(TIMESTAMP_TYPE)


_FEATURE_VALUES = itemgetter(*contract.FEATURE_NAMES)
_NO_FEATURES = (None,) * len(contract.FEATURE_NAMES)


def _feature_columns(rows: Sequence[Mapping[str, Any] | None]) -> list[pa.Array]:
    # One C-level tuple per row, then one transposition: a third of the time of a
    # per-column, per-row Python loop, and this runs for every scored row.
    values = [_NO_FEATURES if row is None else _FEATURE_VALUES(row) for row in rows]
    return [
        pa.array(column, field.type)
        for column, field in zip(zip(*values, strict=True), FEATURE_FIELDS, strict=True)
    ]


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


# Index -> code: the contract encodes a department as its position in DEPARTMENTS.
_DEPARTMENT_CODES = pa.array(list(contract.DEPARTMENTS), pa.string())
_LATITUDE = contract.FEATURE_NAMES.index("lat")
_LONGITUDE = contract.FEATURE_NAMES.index("long")


def _decoded_columns(
    matrix: np.ndarray, latitudes: list[Any], longitudes: list[Any]
) -> list[pa.Array]:
    """Raw feature columns back from the model's float32 matrix: codes and counts are
    small integers (exact in float32), NaN is "not filled"."""
    columns = []
    for index, field in enumerate(FEATURE_FIELDS):
        if index == _LATITUDE:
            columns.append(pa.array(latitudes, pa.float64()))
            continue
        if index == _LONGITUDE:
            columns.append(pa.array(longitudes, pa.float64()))
            continue
        values = matrix[:, index]
        missing = np.isnan(values)
        integers = np.where(missing, 0, values).astype(np.int64)
        if field.type == pa.string():
            # Decoded by arrow from the indices: no Python string per row.
            indices = pa.array(integers.astype(np.int32), pa.int32(), mask=missing)
            columns.append(_DEPARTMENT_CODES.take(indices))
        else:
            columns.append(pa.array(integers, pa.int64(), mask=missing))
    return columns


def _repeated_strings(values: list[str], lengths: list[int]) -> pa.Array:
    """``values[i]`` repeated ``lengths[i]`` times, built by arrow from indices into
    the few distinct values (one per model version), not from a string per row."""
    distinct = list(dict.fromkeys(values))
    position = {value: i for i, value in enumerate(distinct)}
    indices = np.repeat(np.array([position[v] for v in values], dtype=np.int32), lengths)
    return pa.array(distinct, pa.string()).take(pa.array(indices, pa.int32()))


def inference_log_parquet(chunks: Sequence[LogChunk]) -> bytes:
    """One parquet file of the rows of ``chunks``, in order; vectorised per column."""
    lengths = [len(chunk) for chunk in chunks]
    probabilities = np.concatenate([chunk.probabilities for chunk in chunks])
    thresholds = np.repeat([chunk.threshold for chunk in chunks], lengths)
    microseconds = np.repeat([round(chunk.timestamp * 1_000_000) for chunk in chunks], lengths)
    columns = [
        pa.array(list(chain.from_iterable(c.request_ids for c in chunks)), pa.string()),
        pa.array(microseconds.astype(np.int64), pa.int64()).cast(TIMESTAMP_TYPE),
        _repeated_strings([chunk.model_version for chunk in chunks], lengths),
        pa.array(probabilities, pa.float64()),
        pa.array((probabilities >= thresholds).astype(np.int64), pa.int64()),
        *_decoded_columns(
            np.concatenate([chunk.features for chunk in chunks]),
            list(chain.from_iterable(c.latitudes for c in chunks)),
            list(chain.from_iterable(c.longitudes for c in chunks)),
        ),
    ]
    return _parquet_bytes(pa.Table.from_arrays(columns, schema=INFERENCE_LOG_SCHEMA))


def feedback_parquet(labels: Sequence[FeedbackLabel]) -> bytes:
    """One parquet file of a group commit's labels, in arrival order."""
    columns = [
        pa.array([label.request_id for label in labels], pa.string()),
        _epoch_microseconds([label.received_at for label in labels]),
        pa.array([label.label for label in labels], pa.int64()),
        pa.array([label.overwrite for label in labels], pa.bool_()),
        *_feature_columns([label.features for label in labels]),
    ]
    return _parquet_bytes(pa.Table.from_arrays(columns, schema=FEEDBACK_SCHEMA))

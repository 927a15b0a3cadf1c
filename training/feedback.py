"""Labels sent to the scorer's ``/feedback`` endpoint, turned into training rows.

A feedback row carries a request id and the true label, and the features when the
caller sent them. Rows without features are completed from the inference log, which
holds every scored row under its request id: the id carries its issue time
(``core/request_ids.py``), so only that day's partitions are read (and the next
day's for an id issued in the last hour), never the whole history. Rows that can be
completed neither way (an admin label's own id, a row past the log's retention) are
counted and left out.

Labels are read from the last ``days`` days' partitions (all of them by default:
labels are the training data, and a compacted day is one file), each day read as
``core/partitions.py`` resolves it, compacted or not.

One label per request id, by the scorer's rule (``core/feedback.py``, which the drift
job's quality step reads with too): the first label received wins, unless a later one
is an explicit overwrite, and then the last overwrite wins. Every other label of the
id is ignored and counted.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import partial

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from core import contract, layout, partitions, request_ids
from core.feedback import accepted_labels, read_labels
from core.storage import Storage

log = logging.getLogger(__name__)

FEEDBACK_ID_PREFIX = "feedback:"
"""Accident ids of feedback rows, so they never collide with BAAC's Num_Acc."""


@dataclass(frozen=True)
class FeedbackRows:
    table: pd.DataFrame
    """One training row per accepted label that has features."""
    files: int
    unreadable_files: int
    unmatched_labels: int
    """Accepted labels left out: no features sent and no inference-log row."""
    ignored_labels: int = 0
    """Labels for an id that already had one (first wins) and were not overwrites."""

    @property
    def labels(self) -> int:
        """Distinct accepted labels that join the training data: what a guard against
        retraining on nothing new must count (not files, not raw rows)."""
        return len(self.table)


def label_days(storage: Storage, days: int | None, today: date) -> list[date]:
    """The feedback partitions to read: the last ``days`` days up to ``today``, or
    every one stored when ``days`` is None."""
    if days is None:
        return sorted(partitions.partition_days(storage, layout.FEEDBACK_PREFIX))
    return [today - timedelta(days=back) for back in reversed(range(days))]


def load_feedback(
    storage: Storage, *, days: int | None = None, today: date | None = None
) -> FeedbackRows:
    """The feedback labels of the last ``days`` days' partitions (all of them when
    None), as rows of the modelling table. A label without features gets them from the
    inference log, read only in the partitions of its request id's issue day."""
    today = today or datetime.now(UTC).date()
    stored = read_labels(storage, label_days(storage, days, today))
    files, unreadable = stored.files, stored.unreadable_files
    empty = pd.DataFrame(columns=[contract.ACCIDENT_ID, *contract.FEATURE_NAMES, contract.TARGET])
    if stored.frame.empty:
        return FeedbackRows(empty, files, unreadable, 0)
    feedback = stored.frame
    for name in contract.FEATURE_NAMES:
        if name not in feedback.columns:
            feedback[name] = None
    received = len(feedback)
    feedback = accepted_labels(feedback)
    ignored = received - len(feedback)
    if ignored:
        log.info("later labels of already labelled ids were ignored", extra={"rows": ignored})
    has_features = feedback[list(contract.FEATURE_NAMES)].notna().any(axis=1)
    complete = feedback[has_features]
    missing = feedback[~has_features][[layout.REQUEST_ID, layout.LABEL]]
    if len(missing):
        scored = logged_features(storage, missing[layout.REQUEST_ID])
        matched = missing.merge(scored, on=layout.REQUEST_ID, how="inner")
    else:
        matched = missing
    unmatched = len(missing) - len(matched)
    parts = [part for part in (complete, matched) if len(part)]
    if not parts:
        return FeedbackRows(empty, files, unreadable, unmatched, ignored)
    rows = pd.concat(parts, ignore_index=True)
    table = pd.DataFrame(
        {
            contract.ACCIDENT_ID: FEEDBACK_ID_PREFIX + rows[layout.REQUEST_ID].astype(str),
            **{name: rows[name] for name in contract.FEATURE_NAMES},
            contract.TARGET: rows[layout.LABEL].astype(int),
        }
    )
    if unmatched:
        log.warning("feedback labels without features were left out", extra={"rows": unmatched})
    return FeedbackRows(table.reset_index(drop=True), files, unreadable, unmatched, ignored)


def logged_features(storage: Storage, ids: Iterable[str]) -> pd.DataFrame:
    """The logged features of ``ids`` (request id and features, one row per id found),
    read from the partitions of their issue days only: what this costs follows the
    labels, not the history. Ids the scorer did not issue (an admin label's own) have
    no issue day and are not looked for."""
    wanted_by_day: dict[date, set[str]] = {}
    undated = 0
    for request_id in ids:
        days = request_ids.logged_days(request_id)
        undated += not days
        for day in days:
            wanted_by_day.setdefault(day, set()).add(request_id)
    if undated:
        log.info(
            "labels of ids the scorer did not issue have no log to look in", extra={"rows": undated}
        )
    columns = [layout.REQUEST_ID, *contract.FEATURE_NAMES]
    frames: list[pd.DataFrame] = []
    for day, wanted in sorted(wanted_by_day.items()):
        read = partitions.read_day(
            storage, layout.INFERENCE_LOG_PREFIX, day, partial(_rows_of, pa.array(sorted(wanted)))
        )
        frames.extend(frame for frame in read.results if len(frame))
    if not frames:
        return pd.DataFrame(columns=columns)
    found = pd.concat(frames, ignore_index=True)
    return found.drop_duplicates(layout.REQUEST_ID, keep="last")[columns]


def _rows_of(wanted: pa.Array, data: bytes) -> pd.DataFrame:
    """The rows of one inference-log file whose request id is wanted: the id column
    first, the features only when one matches (most files have none)."""
    parquet = pq.ParquetFile(io.BytesIO(data))
    mask = pc.is_in(parquet.read(columns=[layout.REQUEST_ID])[layout.REQUEST_ID], wanted)
    if not pc.any(mask).as_py():
        return pd.DataFrame()
    present = set(parquet.schema_arrow.names)
    frame = (
        parquet.read(
            columns=[layout.REQUEST_ID, *(n for n in contract.FEATURE_NAMES if n in present)]
        )
        .filter(mask)
        .to_pandas()
    )
    for name in contract.FEATURE_NAMES:
        if name not in frame.columns:
            frame[name] = None
    return frame

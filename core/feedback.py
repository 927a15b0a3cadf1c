"""Reading the feedback labels the scorer stores, and the one-label-per-id rule.

Shared by the training job (labels are training rows) and the drift job (labels
measure the served model's realised quality), so both read the same labels: a day's
partition as ``core/partitions.py`` resolves it, compacted or not, and one label per
request id by the scorer's rule, applied again here because replicas share no memory
(two of them may each have accepted a label for the same id): the first label
received wins, unless a later one is an explicit overwrite (sent with the admin key),
and then the last overwrite wins. Every other label of the id is ignored and counted.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from functools import partial

import pandas as pd

from core import layout, partitions
from core.storage import Storage


@dataclass(frozen=True)
class StoredLabels:
    frame: pd.DataFrame
    """Every stored label row of the days read, in file order (duplicates included)."""
    files: int
    unreadable_files: int


def _read_labels(columns: Sequence[str] | None, data: bytes) -> pd.DataFrame:
    return pd.read_parquet(io.BytesIO(data), columns=list(columns) if columns else None)


def read_labels(
    storage: Storage, days: Iterable[date], *, columns: Sequence[str] | None = None
) -> StoredLabels:
    """The label rows of ``days``' feedback partitions (only ``columns`` when given)."""
    frames: list[pd.DataFrame] = []
    files, unreadable = 0, 0
    for day in days:
        read = partitions.read_day(
            storage, layout.FEEDBACK_PREFIX, day, partial(_read_labels, columns)
        )
        frames.extend(read.results)
        files += read.files
        unreadable += len(read.unreadable)
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return StoredLabels(frame, files, unreadable)


def accepted_labels(feedback: pd.DataFrame) -> pd.DataFrame:
    """One row per request id: its first label, or its last overwrite if any."""
    if layout.OVERWRITE in feedback.columns:
        overwrite = feedback[layout.OVERWRITE].fillna(False).astype(bool)
    else:
        overwrite = pd.Series(False, index=feedback.index)
    ordered = feedback.assign(**{layout.OVERWRITE: overwrite}).sort_values(
        layout.RECEIVED_AT, kind="stable"
    )
    first = ordered.drop_duplicates(layout.REQUEST_ID, keep="first")
    overwrites = ordered[ordered[layout.OVERWRITE]].drop_duplicates(layout.REQUEST_ID, keep="last")
    kept = first[~first[layout.REQUEST_ID].isin(overwrites[layout.REQUEST_ID])]
    return pd.concat([kept, overwrites]).sort_values(layout.RECEIVED_AT, kind="stable")

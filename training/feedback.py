"""Labels sent to the scorer's ``/feedback`` endpoint, turned into training rows.

A feedback row carries a request id and the true label, and the features when the
caller sent them. Rows without features are completed from the inference log, which
holds every scored row under its request id. Rows that can be completed neither way
are counted and left out.

One label per request id, by the scorer's rule, applied here again because replicas
share no memory (two of them may each have accepted a label for the same id): the
first label received wins, unless a later one is an explicit overwrite (sent with the
admin key), and then the last overwrite wins. Every other label of the id is ignored
and counted.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

import pandas as pd

from core import contract, layout
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


def _read_parquet_files(storage: Storage, prefix: str) -> tuple[list[pd.DataFrame], int, int]:
    frames, unreadable = [], 0
    keys = [key for key in storage.list(prefix) if key.endswith(".parquet")]
    for key in keys:
        try:
            frames.append(pd.read_parquet(io.BytesIO(storage.read_bytes(key))))
        except (OSError, ValueError) as error:
            unreadable += 1
            log.warning("skipping unreadable file", extra={"key": key, "error": str(error)})
    return frames, len(keys), unreadable


def load_feedback(storage: Storage) -> FeedbackRows:
    """Every feedback label in the storage, as rows of the modelling table."""
    frames, files, unreadable = _read_parquet_files(storage, layout.FEEDBACK_PREFIX)
    empty = pd.DataFrame(columns=[contract.ACCIDENT_ID, *contract.FEATURE_NAMES, contract.TARGET])
    if not frames:
        return FeedbackRows(empty, files, unreadable, 0)
    feedback = pd.concat(frames, ignore_index=True)
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
        logged, _, _ = _read_parquet_files(storage, layout.INFERENCE_LOG_PREFIX)
        if logged:
            scored = pd.concat(logged, ignore_index=True).drop_duplicates(
                layout.REQUEST_ID, keep="last"
            )
            missing = missing.merge(
                scored[[layout.REQUEST_ID, *contract.FEATURE_NAMES]],
                on=layout.REQUEST_ID,
                how="left",
                indicator=True,
            )
            matched = missing[missing["_merge"] == "both"].drop(columns="_merge")
        else:
            matched = missing.iloc[0:0]
    else:
        matched = missing
    unmatched = len(missing) - len(matched) if len(missing) else 0
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

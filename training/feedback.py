"""Labels sent to the scorer's ``/feedback`` endpoint, turned into training rows.

A feedback row carries a request id and the true label, and the features when the
caller sent them. Rows without features are completed from the inference log, which
holds every scored row under its request id. Rows that can be completed neither way
are counted and left out.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

import pandas as pd

from training import contract, layout
from training.storage import Storage

log = logging.getLogger(__name__)

FEEDBACK_ID_PREFIX = "feedback:"
"""Accident ids of feedback rows, so they never collide with BAAC's Num_Acc."""


@dataclass(frozen=True)
class FeedbackRows:
    table: pd.DataFrame
    files: int
    unreadable_files: int
    unmatched_labels: int


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
    # The last label sent for a request wins: a correction replaces an earlier label.
    feedback = feedback.sort_values(layout.RECEIVED_AT).drop_duplicates(
        layout.REQUEST_ID, keep="last"
    )
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
        return FeedbackRows(empty, files, unreadable, unmatched)
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
    return FeedbackRows(table.reset_index(drop=True), files, unreadable, unmatched)

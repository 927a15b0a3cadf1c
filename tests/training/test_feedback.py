"""The training side's reader of feedback labels: one label per request id across
every replica's files (first wins, an explicit overwrite replaces it), and the count
of accepted labels a retraining guard can trust."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from core import contract, layout
from core.storage import FileStorage
from core.tables import FeedbackLabel, LogChunk, feedback_parquet, inference_log_parquet
from tests.factories import issued_ids
from training.feedback import load_feedback

ROW = contract.example_row()


def write_labels(storage: FileStorage, name: str, rows: list[dict[str, Any]]) -> None:
    """One feedback file, as one replica's group commit writes it."""
    frame = pd.DataFrame(
        [
            {
                layout.REQUEST_ID: row["id"],
                layout.RECEIVED_AT: pd.Timestamp(row["at"], unit="s", tz="UTC"),
                layout.LABEL: row["label"],
                **({layout.OVERWRITE: row["overwrite"]} if "overwrite" in row else {}),
                **ROW,
            }
            for row in rows
        ]
    )
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    storage.write_bytes(
        f"{layout.FEEDBACK_PREFIX}date=2026-12-06/{name}.parquet", buffer.getvalue()
    )


def labels_by_id(storage: FileStorage) -> dict[str, int]:
    table = load_feedback(storage).table
    ids = table[contract.ACCIDENT_ID].str.removeprefix("feedback:")
    return dict(zip(ids, table[contract.TARGET], strict=True))


def test_the_first_label_of_an_id_wins_across_replicas(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path)
    # Two replicas each accepted a label for "a" (neither knew of the other's).
    write_labels(storage, "pod-1", [{"id": "a", "at": 100, "label": 1, "overwrite": False}])
    write_labels(
        storage,
        "pod-2",
        [
            {"id": "a", "at": 101, "label": 0, "overwrite": False},
            {"id": "b", "at": 101, "label": 0, "overwrite": False},
        ],
    )
    rows = load_feedback(storage)
    assert labels_by_id(storage) == {"a": 1, "b": 0}
    assert rows.labels == 2
    assert rows.ignored_labels == 1


def test_the_last_overwrite_replaces_the_first_label(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path)
    write_labels(
        storage,
        "pod-1",
        [
            {"id": "a", "at": 100, "label": 1, "overwrite": False},
            {"id": "a", "at": 102, "label": 0, "overwrite": True},
            {"id": "a", "at": 103, "label": 1, "overwrite": False},
        ],
    )
    write_labels(storage, "pod-2", [{"id": "a", "at": 104, "label": 1, "overwrite": True}])
    write_labels(storage, "pod-3", [{"id": "a", "at": 101, "label": 0, "overwrite": False}])
    rows = load_feedback(storage)
    assert labels_by_id(storage) == {"a": 1}
    assert (rows.labels, rows.ignored_labels) == (1, 4)


def test_files_written_before_overwrites_existed_read_as_plain_labels(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path)
    write_labels(storage, "old-1", [{"id": "a", "at": 100, "label": 1}])
    write_labels(storage, "old-2", [{"id": "a", "at": 200, "label": 0}])
    assert labels_by_id(storage) == {"a": 1}


def test_many_labels_for_one_id_count_once(tmp_path: Path) -> None:
    """What let 1,487 made-up labels through the guard: the count is of distinct
    accepted labels, not of files or rows."""
    storage = FileStorage(tmp_path)
    for index in range(20):
        write_labels(storage, f"pod-{index}", [{"id": "same", "at": 100 + index, "label": 1}])
    rows = load_feedback(storage)
    assert rows.files == 20
    assert rows.labels == 1
    assert rows.ignored_labels == 19


class RecordingStorage(FileStorage):
    """A file storage that remembers which objects were read."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.read: list[str] = []

    def read_bytes(self, key: str) -> bytes:
        self.read.append(key)
        return super().read_bytes(key)


def log_rows(storage: FileStorage, ids: list[str], scored: datetime) -> None:
    """One inference-log file of ``ids``, scored at ``scored``, as the scorer writes it
    (partitioned by the rows' day), the ``nb_pedestrians`` of row i being i."""
    rows = [ROW | {"nb_pedestrians": index % 5} for index in range(len(ids))]
    chunk = LogChunk(
        request_ids=ids,
        timestamp=scored.timestamp(),
        model_version="v1",
        threshold=0.5,
        probabilities=pd.Series([0.5] * len(ids)).to_numpy(),
        features=contract.encode_rows(rows),
        latitudes=[row["lat"] for row in rows],
        longitudes=[row["long"] for row in rows],
    )
    key = layout.partitioned_key(layout.INFERENCE_LOG_PREFIX, scored, f"pod-{ids[0][:12]}")
    storage.write_bytes(key, inference_log_parquet([chunk]))


def label(storage: FileStorage, ids: list[str], received: datetime, **extra: Any) -> None:
    storage.write_bytes(
        layout.partitioned_key(layout.FEEDBACK_PREFIX, received, "pod"),
        feedback_parquet(
            [
                FeedbackLabel(rid, 1, extra.get("features"), False, received.timestamp())
                for rid in ids
            ]
        ),
    )


DAY = datetime(2026, 12, 6, 12, tzinfo=UTC)


def test_a_label_without_features_reads_only_the_log_of_its_ids_issue_day(
    tmp_path: Path,
) -> None:
    storage = RecordingStorage(tmp_path)
    # A month of history, 5 files a day; the labels are for ids of one day.
    for back in range(30):
        for hour in range(5):
            scored = DAY - timedelta(days=back, hours=hour)
            log_rows(storage, issued_ids(3, scored), scored)
    labelled_day = DAY - timedelta(days=4)
    ids = issued_ids(2, labelled_day)
    log_rows(storage, ids, labelled_day)
    label(storage, ids, DAY)
    rows = load_feedback(storage, today=DAY.date())
    assert rows.labels == 2 and rows.unmatched_labels == 0
    assert rows.table["nb_pedestrians"].tolist() == [0, 1]
    logs_read = {key for key in storage.read if key.startswith(layout.INFERENCE_LOG_PREFIX)}
    assert {layout.partition_date(key) for key in logs_read} == {"2026-12-02"}
    assert len(logs_read) == 6


def test_an_id_issued_just_before_midnight_is_found_in_the_next_days_log(
    tmp_path: Path,
) -> None:
    storage = RecordingStorage(tmp_path)
    issued = datetime(2026, 12, 5, 23, 59, 59, tzinfo=UTC)
    [late] = issued_ids(1, issued)
    log_rows(storage, [late], issued + timedelta(seconds=2))  # scored after midnight
    log_rows(storage, issued_ids(1, DAY - timedelta(days=3)), DAY - timedelta(days=3))
    label(storage, [late], DAY)
    rows = load_feedback(storage, today=DAY.date())
    assert rows.labels == 1
    logs_read = {key for key in storage.read if key.startswith(layout.INFERENCE_LOG_PREFIX)}
    assert {layout.partition_date(key) for key in logs_read} == {"2026-12-06"}


def test_labels_of_ids_the_scorer_did_not_issue_need_their_features(tmp_path: Path) -> None:
    storage = RecordingStorage(tmp_path)
    log_rows(storage, ["admin-7"], DAY)  # even logged under that id, it is not looked for
    label(storage, ["admin-7"], DAY)
    label(storage, ["admin-8"], DAY + timedelta(seconds=1), features=ROW)
    rows = load_feedback(storage, today=DAY.date())
    assert (rows.labels, rows.unmatched_labels) == (1, 1)
    assert rows.table[contract.ACCIDENT_ID].tolist() == ["feedback:admin-8"]
    assert not [key for key in storage.read if key.startswith(layout.INFERENCE_LOG_PREFIX)]


@pytest.mark.parametrize(("days", "expected"), [(None, 3), (7, 2), (1, 1)])
def test_labels_are_read_from_the_last_days_when_bounded(
    tmp_path: Path, days: int | None, expected: int
) -> None:
    storage = RecordingStorage(tmp_path)
    for back in (0, 5, 40):
        label(storage, [f"admin-{back}"], DAY - timedelta(days=back), features=ROW)
    rows = load_feedback(storage, days=days, today=DAY.date())
    assert rows.labels == expected
    oldest = DAY.date() - timedelta(days=(days or 100) - 1)
    assert all(
        date.fromisoformat(layout.partition_date(key) or "") >= oldest for key in storage.read
    )

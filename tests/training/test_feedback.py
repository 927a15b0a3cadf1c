"""The training side's reader of feedback labels: one label per request id across
every replica's files (first wins, an explicit overwrite replaces it), and the count
of accepted labels a retraining guard can trust."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pandas as pd

from core import contract, layout
from core.storage import FileStorage
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

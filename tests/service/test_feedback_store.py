"""The feedback store: group commit, bounded waiting, one label per id; and what it
writes is what the training job reads back."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from core import contract
from core.errors import StorageError
from core.storage import FileStorage, Storage, open_storage
from core.tables import FeedbackLabel
from service.errors import LabelConflictError, StorageUnavailableError
from service.feedback import FeedbackStore
from service.metrics import ScorerMetrics
from service.storage_executor import StorageExecutor
from tests.service.helpers import API_KEY, AUTH
from training.feedback import load_feedback

ROW = contract.example_row()


def test_training_reads_the_scorers_feedback(
    make_client: Callable[..., TestClient], tmp_path: Path
) -> None:
    logs = tmp_path / "logs"
    client = make_client(
        api_key=API_KEY, inference_log_uri=str(logs), inference_log_flush_seconds=0.05
    )
    scored = client.post("/predict", json={**ROW, "nb_pedestrians": 1}).json()["request_id"]
    batch = client.post("/predict/batch", json={"rows": [ROW, ROW]}).json()["request_id"]
    client.post("/feedback", json={"request_id": scored, "label": 1})
    client.post("/feedback", json={"request_id": f"{batch}-1", "label": 0})
    client.post("/feedback", json={"label": 1, "features": {**ROW, "dep": "2B"}}, headers=AUTH)
    # Issued (row 5 of a 2-row batch is in no inference log), so accepted, not matched.
    client.post("/feedback", json={"request_id": f"{batch}-5", "label": 1})
    # Leaving the client flushes the inference log, as a shutdown would.
    client.__exit__(None, None, None)

    rows = load_feedback(open_storage(str(logs)))
    assert rows.unmatched_labels == 1
    assert rows.labels == 3
    table = rows.table.set_index(contract.ACCIDENT_ID)
    assert len(table) == 3
    assert table.loc[f"feedback:{scored}", "nb_pedestrians"] == 1
    assert table.loc[f"feedback:{scored}", contract.TARGET] == 1
    assert table.loc[f"feedback:{batch}-1", contract.TARGET] == 0
    assert "2B" in set(table["dep"])


class GatedStorage(FileStorage):
    """Writes wait until ``gate`` opens (a storage that is slow for as long as the
    test wants), and fail while ``down`` is set."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.gate = threading.Event()
        self.down = threading.Event()
        self.writes = 0

    def write_bytes(self, key: str, data: bytes, *, content_type: str | None = None) -> None:
        self.writes += 1
        assert self.gate.wait(30), "test never opened the gate"
        if self.down.is_set():
            raise StorageError(f"{self.url_for(key)}: connection refused")
        super().write_bytes(key, data, content_type=content_type)


def make_store(storage: Storage, **overrides: Any) -> FeedbackStore:
    executor = StorageExecutor(2)
    executor.start()
    values: dict[str, Any] = {
        "host": "pod-a",
        "batch_seconds": 0.0,
        "max_pending": 100,
        "wait_seconds": 30.0,
        "remembered_ids": 1000,
    }
    values.update(overrides)
    return FeedbackStore(storage, ScorerMetrics(), executor, **values)


def label(request_id: str, value: int = 1, *, overwrite: bool = False) -> FeedbackLabel:
    return FeedbackLabel(request_id, value, None, overwrite, time.time())


async def until(predicate: Callable[[], bool]) -> None:
    for _ in range(3000):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


def test_labels_waiting_for_a_write_share_the_next_file(tmp_path: Path) -> None:
    """Group commit: while one file is written, the labels that arrive wait together
    and go into one file; each request returns only once its own file is stored."""
    storage = GatedStorage(tmp_path)

    async def scenario() -> None:
        store = make_store(storage)
        store.start()
        first = asyncio.create_task(store.store(label("a")))
        await until(lambda: store.writing)
        rest = [asyncio.create_task(store.store(label(f"b{i}"))) for i in range(20)]
        await asyncio.sleep(0.05)
        assert not first.done() and not any(task.done() for task in rest)
        storage.gate.set()
        await asyncio.gather(first, *rest)
        assert store.files_written == 2
        await store.close()

    asyncio.run(scenario())
    files = sorted(tmp_path.joinpath("feedback").rglob("*.parquet"))
    sizes = sorted(len(pd.read_parquet(file)) for file in files)
    assert sizes == [1, 20]
    assert storage.writes == 2


def test_a_failed_write_answers_every_waiting_label_503_and_frees_their_ids(
    tmp_path: Path,
) -> None:
    storage = GatedStorage(tmp_path)
    storage.down.set()

    async def scenario() -> None:
        store = make_store(storage, batch_seconds=0.05)
        store.start()
        tasks = [asyncio.create_task(store.store(label(f"id{i}"))) for i in range(3)]
        storage.gate.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(r, StorageUnavailableError) for r in results), results
        assert all("NOT stored" in str(r) for r in results)
        storage.down.clear()
        await store.store(label("id0"))  # a retry is not a second label
        await store.close()

    asyncio.run(scenario())


def test_a_stuck_storage_gets_503_at_once_and_the_waiting_bound_holds(tmp_path: Path) -> None:
    storage = GatedStorage(tmp_path)

    async def scenario() -> None:
        store = make_store(storage, max_pending=3, wait_seconds=0.2)
        store.start()
        stuck = asyncio.create_task(store.store(label("a")))
        await until(lambda: store.writing)
        queued = [asyncio.create_task(store.store(label(f"q{i}"))) for i in range(2)]
        await asyncio.sleep(0)
        with pytest.raises(StorageUnavailableError, match="already waiting"):
            await store.store(label("over"))
        # Nobody waits longer than wait_seconds for a storage that does not answer...
        for task in (stuck, *queued):
            with pytest.raises(StorageUnavailableError, match="did not confirm"):
                await task
        # ...and once the write is stuck that long, new labels are refused at once.
        with pytest.raises(StorageUnavailableError, match="not answering"):
            await store.store(label("late"))
        # Until its write settles, a label of the same id is neither stored twice nor lost.
        with pytest.raises(StorageUnavailableError, match="being stored"):
            await store.store(label("a"))
        storage.gate.set()
        await until(lambda: not store.writing)
        with pytest.raises(LabelConflictError, match="first one wins"):
            await store.store(label("a", 0))
        await store.store(label("a", 0, overwrite=True))
        await store.close()

    asyncio.run(scenario())

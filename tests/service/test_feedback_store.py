"""Feedback written by the scorer is what the training job reads back."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient

from training import contract
from training.feedback import load_feedback
from training.storage import open_storage

ROW = contract.example_row()


def test_training_reads_the_scorers_feedback(
    make_client: Callable[..., TestClient], tmp_path: Path
) -> None:
    logs = tmp_path / "logs"
    client = make_client(inference_log_uri=str(logs), inference_log_flush_seconds=0.05)
    scored = client.post("/predict", json={**ROW, "nb_pedestrians": 1}).json()["request_id"]
    batch = client.post("/predict/batch", json={"rows": [ROW, ROW]}).json()["request_id"]
    client.post("/feedback", json={"request_id": scored, "label": 1})
    client.post("/feedback", json={"request_id": f"{batch}-1", "label": 0})
    client.post("/feedback", json={"label": 1, "features": {**ROW, "dep": "2B"}})
    client.post("/feedback", json={"request_id": "never-scored", "label": 1})
    # Leaving the client flushes the inference log, as a shutdown would.
    client.__exit__(None, None, None)

    rows = load_feedback(open_storage(str(logs)))
    assert rows.unmatched_labels == 1
    table = rows.table.set_index(contract.ACCIDENT_ID)
    assert len(table) == 3
    assert table.loc[f"feedback:{scored}", "nb_pedestrians"] == 1
    assert table.loc[f"feedback:{scored}", contract.TARGET] == 1
    assert table.loc[f"feedback:{batch}-1", contract.TARGET] == 0
    assert "2B" in set(table["dep"])

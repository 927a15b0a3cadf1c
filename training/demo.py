"""The data half of the local demo: synthesize BAAC-format tables, build the
modelling dataset and train a first model into a local registry."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

from training.dataset import build_dataset
from training.synthetic import synthesize
from training.train import TrainingSettings, train

log = logging.getLogger(__name__)


def run_demo(workdir: Path, *, accidents: int) -> dict[str, Any]:
    raw = workdir / "raw"
    synthesize(raw, accidents=accidents, seed=42, year=2021)
    dataset_summary = build_dataset(raw, workdir / "dataset")
    training_summary = train(
        TrainingSettings(raw_uri=str(raw), registry_uri=str(workdir / "registry"), force=True)
    )
    result = {"dataset": dataset_summary, "training": training_summary}
    json.dump(result, sys.stdout, indent=2, default=str)
    print()
    return result

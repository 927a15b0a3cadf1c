"""Wall time and peak RSS of ``python -m training train`` on the default synthetic
2021-size data, then the published model's size, load time and single-row
``predict_proba`` latency as the scorer calls it.

Targets on the 2-core machine: train under 60 s and 2 GB; model under 10 MB, load
under 1 s, single-row prediction under 1 ms.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from measure import run_step

from core import contract, layout
from core.registry import Registry
from core.storage import FileStorage
from training.synthetic import synthesize
from training.train import DEFAULT_MODEL_NAME


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accidents", type=int, default=56_000)
    parser.add_argument("--model-kind", default="hist-gradient-boosting")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        raw, registry_root = Path(folder, "raw"), Path(folder, "registry")
        synthesize(raw, accidents=args.accidents, seed=42, year=2021)
        train = run_step(
            [
                sys.executable, "-m", "training", "--log-level", "WARNING", "train",
                "--raw", str(raw), "--registry", str(registry_root),
                "--model-kind", args.model_kind,
            ]
        )  # fmt: skip
        summary = json.loads(train.stdout)

        registry = Registry(FileStorage(registry_root), DEFAULT_MODEL_NAME)
        manifest = registry.manifest(summary["version"])
        loads = []
        for _ in range(5):
            started = time.perf_counter()
            model = registry.load(summary["version"])
            loads.append(time.perf_counter() - started)
        rows = contract.encode_rows(
            [contract.example_row() | {"hour": h % 24, "vma": 30 + h % 100} for h in range(2000)]
        )
        timings = []
        for i in range(len(rows)):
            started = time.perf_counter()
            model.predict_proba(rows[i : i + 1])
            timings.append((time.perf_counter() - started) * 1000)
        timings.sort()

    size_mb = manifest["files"][layout.MODEL_ONNX]["bytes"] / 1e6
    print(f"model kind             {args.model_kind} (served with {model.runtime})")
    print(f"rows train/test        {summary['rows']['train']:,} / {summary['rows']['test']:,}")
    print(f"held-out ROC-AUC       {summary['metrics']['roc_auc']:.3f}")
    print(f"train wall time        {train.seconds:.1f} s   (target < 60 s)")
    print(f"train peak RSS         {train.peak_rss_mb:,.0f} MB   (target < 2,000 MB)")
    print(f"served model size      {size_mb:.2f} MB (ONNX)   (target < 10 MB)")
    print(
        f"pipeline size          {manifest['files'][layout.MODEL_JOBLIB]['bytes'] / 1e6:.2f} MB"
        " (joblib)"
    )
    print(f"load time (median)     {statistics.median(loads) * 1000:.1f} ms   (target < 1 s)")
    print(
        f"1-row predict_proba    p50 {statistics.median(timings) * 1000:.1f} µs, "
        f"p99 {timings[int(len(timings) * 0.99) - 1] * 1000:.1f} µs   (target < 1 ms)"
    )


if __name__ == "__main__":
    main()

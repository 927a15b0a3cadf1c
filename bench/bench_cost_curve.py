"""Cost curve of the Jobs, to size their resources: wall time, CPU time and peak RSS of

- the data build (synthesize + ``python -m training build``) and of
  ``python -m training train`` (default model, local registry) for 1, 3 and 5 years of
  BAAC-size synthetic data (56,000 accidents a year, each year in its own ONISR layout);
- the drift job (``python -m monitoring drift``) with 10k, 100k and 1M live rows in its
  24 h window, against the 50,000-row reference of a production model that
  bench_drift.py publishes. The job keeps a uniform sample of ``max_current_rows``
  (50,000 by default) of the window as the rows stream by.

Every step runs in a fresh child process, so each peak RSS is that step's own.

    .venv/bin/python bench/bench_cost_curve.py                      # the full curve
    .venv/bin/python bench/bench_cost_curve.py --years 1 --rows 10000   # smoke check
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from bench_drift import END, VERSION, build_registry, run_job
from measure import Step, run_step
from monitoring.simulate import contract_rows, synthetic_table

from core import contract, layout, tables
from core.storage import open_storage
from monitoring.settings import MonitoringSettings
from training.model import positive_probability

ACCIDENTS_PER_YEAR = 56_000
LAST_YEAR = 2023
LIVE_FILES = 100
"""Files per window whatever its rows, so the curve shows rows, not file count."""
LIVE_POOL_ACCIDENTS = 60_000
"""Distinct synthetic rows the live windows are drawn from (with replacement)."""
HEADROOM = 1.5
"""Memory limit = largest peak RSS x this: allocator and arrow pool variance, and
real BAAC files carry more text than the synthetic ones."""
MIB = 1024 * 1024


def data_and_training(years: int, accidents: int) -> dict[str, Any]:
    """Synthesize ``years`` years (ending at LAST_YEAR), build the table, train on it."""
    python = [sys.executable, "-m", "training", "--log-level", "WARNING"]
    with tempfile.TemporaryDirectory(prefix="bench-curve-") as folder:
        raw, dataset, registry = (Path(folder, name) for name in ("raw", "dataset", "registry"))
        synthesized = [
            run_step(
                [
                    *python,
                    "synthesize",
                    "--out",
                    str(raw),
                    "--accidents",
                    str(accidents),
                    "--seed",
                    str(year),
                    "--year",
                    str(year),
                ]
            )
            for year in range(LAST_YEAR - years + 1, LAST_YEAR + 1)
        ]
        raw_mb = sum(p.stat().st_size for p in raw.iterdir()) / 1e6
        build = run_step([*python, "build", "--raw", str(raw), "--out", str(dataset)])
        rows = json.loads(build.stdout)["rows"]
        train = run_step([*python, "train", "--raw", str(raw), "--registry", str(registry)])
        trained = json.loads(train.stdout)
    return {
        "years": years,
        "accidents": years * accidents,
        "raw_csv_mb": round(raw_mb, 1),
        "rows_train": rows["train"],
        "rows_test": rows["test"],
        "synthesize": _figures(*synthesized),
        "build": _figures(build),
        "data_build": _figures(*synthesized, build),
        "train": _figures(train),
        "roc_auc": round(trained["metrics"]["roc_auc"], 3),
    }


def _figures(*steps: Step) -> dict[str, float]:
    """Steps run one after the other: times add up, the peak is the largest."""
    seconds = sum(s.seconds for s in steps)
    cpu = sum(s.cpu_seconds for s in steps)
    return {
        "seconds": round(seconds, 1),
        "cpu_seconds": round(cpu, 1),
        "cores": round(cpu / seconds, 2),
        "peak_rss_mb": round(max(s.peak_rss_mb for s in steps)),
    }


def _cell(figures: dict[str, float]) -> str:
    return (
        f"{figures['seconds']:>6.1f} s ({figures['cpu_seconds']:>5.1f} s CPU)"
        f" {figures['peak_rss_mb']:>6,} MB"
    )


class LivePool:
    """Scored rows drawn from once per window: the contract's float32 encoding as the
    scorer logs it, the raw coordinates and the model's probabilities."""

    def __init__(self, pipeline: Any, *, seed: int) -> None:
        rows, _ = contract_rows(synthetic_table(LIVE_POOL_ACCIDENTS, seed=seed))
        self.features = contract.encode_rows(rows)
        self.latitudes = np.array([row.get("lat") for row in rows], dtype=object)
        self.longitudes = np.array([row.get("long") for row in rows], dtype=object)
        self.probabilities = positive_probability(pipeline, self.features)

    def write_window(self, root: Path, rows: int, *, seed: int, version: str) -> None:
        """``rows`` rows in LIVE_FILES inference-log files over the 23 h before END,
        written with the scorer's own writer (core.tables)."""
        storage = open_storage(str(root))
        rng = np.random.default_rng(seed)
        start = (END - timedelta(hours=23)).timestamp()
        step = 23 * 3600 / LIVE_FILES
        written = 0
        for part, indices in enumerate(np.array_split(np.arange(rows), LIVE_FILES)):
            picked = rng.integers(0, len(self.probabilities), indices.size)
            flushed = start + part * step
            chunk = tables.LogChunk(
                request_ids=[f"curve-{i}" for i in indices],
                timestamp=flushed,
                model_version=version,
                threshold=0.5,
                probabilities=self.probabilities[picked],
                features=self.features[picked],
                latitudes=self.latitudes[picked].tolist(),
                longitudes=self.longitudes[picked].tolist(),
            )
            key = layout.partitioned_key(
                layout.INFERENCE_LOG_PREFIX, datetime.fromtimestamp(flushed, UTC), "bench"
            )
            storage.write_bytes(key, tables.inference_log_parquet([chunk]))
            written += indices.size
        assert written == rows


def drift_curve(live_rows: Sequence[int]) -> list[dict[str, Any]]:
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-curve-drift-") as folder:
        registry = Path(folder, "registry")
        pipeline, _ = build_registry(registry)
        pool = LivePool(pipeline, seed=2)
        for index, rows in enumerate(live_rows):
            live = Path(folder, f"live-{rows}")
            pool.write_window(live, rows, seed=index, version=VERSION)
            step, summary = run_job(registry, live, END)
            results.append(
                {
                    "live_rows": rows,
                    "compared_rows": summary["rows"]["current"],
                    "reference_rows": summary["rows"]["reference"],
                    "status": summary["status"],
                    **_figures(step),
                }
            )
    return results


def mebibytes_up(mb: float, multiple: int = 256) -> int:
    """A peak RSS (ru_maxrss / 1024: MiB) rounded up to a multiple of ``multiple`` MiB."""
    return math.ceil(mb / multiple) * multiple


def sizing(typical_mb: float, largest_mb: float) -> dict[str, str]:
    return {
        "memory_request": f"{mebibytes_up(typical_mb)}Mi",
        "memory_limit": f"{mebibytes_up(largest_mb * HEADROOM)}Mi",
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--years", type=int, nargs="*", default=[1, 3, 5])
    parser.add_argument("--rows", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--accidents", type=int, default=ACCIDENTS_PER_YEAR, help="per year")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    # The data-quality summary of the live pool's table build is not a figure.
    logging.basicConfig(level=logging.ERROR)

    settings = MonitoringSettings()
    print(
        f"measured on {os.cpu_count()} cores, load average "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} (a shared machine: times are "
        "pessimistic, peak RSS is not affected)",
        flush=True,
    )
    training = []
    for years in args.years:
        print(f"... {years} year(s) of {args.accidents:,} accidents", flush=True)
        training.append(data_and_training(years, args.accidents))
    print(f"... drift job on {', '.join(f'{r:,}' for r in args.rows)} live rows", flush=True)
    drift = drift_curve(args.rows)

    print()
    print(
        "years  accidents  raw CSV | data build (synthesize + build)  | train"
        "                              | ROC-AUC"
    )
    for t in training:
        d, tr = t["data_build"], t["train"]
        print(
            f"{t['years']:>5}  {t['accidents']:>9,}  {t['raw_csv_mb']:>5.0f} MB"
            f" | {_cell(d)} | {_cell(tr)}"
            f" | {t['roc_auc']:.3f}"
        )
    print()
    print(
        f"drift job (sample of at most {settings.max_current_rows:,} live rows vs "
        f"{settings.max_reference_rows:,} reference rows)"
    )
    print("live rows  compared | time                        peak RSS")
    for r in drift:
        print(f"{r['live_rows']:>9,}  {r['compared_rows']:>8,} | {_cell(r)}")

    train_peaks = [t["train"]["peak_rss_mb"] for t in training] + [
        t["data_build"]["peak_rss_mb"] for t in training
    ]
    capped = [r for r in drift if r["live_rows"] >= settings.max_current_rows] or drift[-1:]
    resources = {
        "headroom": HEADROOM,
        # Request: the default case (the chart trains on one year; a window past the
        # sample cap costs what the cap allows); limit: the largest case x HEADROOM.
        "training": sizing(training[0]["train"]["peak_rss_mb"], max(train_peaks)),
        "drift": sizing(capped[0]["peak_rss_mb"], max(r["peak_rss_mb"] for r in drift)),
    }
    print()
    print(
        f"Job memory that follows (rounded up to 256Mi): request = peak of the default case "
        f"({args.years[0]} year(s); a window at the sample cap), limit = largest peak x {HEADROOM}"
    )
    for job, values in (("training", resources["training"]), ("drift", resources["drift"])):
        request, limit = values["memory_request"], values["memory_limit"]
        print(f"  {job:<9} request {request:>7}  limit {limit:>7}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "cpu_count": os.cpu_count(),
                    "load_average": os.getloadavg(),
                    "max_current_rows": settings.max_current_rows,
                    "max_reference_rows": settings.max_reference_rows,
                    "training": training,
                    "drift": drift,
                    "resources": resources,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()

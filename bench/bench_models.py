"""RandomForest (the reference projects' model) against HistGradientBoosting, on
synthetic BAAC-format data: held-out quality, artifact size, load time and single-row
latency, through scikit-learn and through the ONNX twin the scorer serves.

Prints a markdown table (the one in the README). Synthetic data: the figures compare
the two models, they say nothing about real accidents.
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from pathlib import Path

import joblib
import numpy as np

from training import contract
from training.baac import read_raw
from training.dataset import build_table, split_table
from training.model import ModelKind, build_pipeline, evaluate, positive_probability, to_onnx
from training.registry import onnx_session
from training.synthetic import synthesize


def single_row_latency_ms(predict, rows: np.ndarray) -> tuple[float, float]:
    """Median and p99 over distinct rows: the same row every time would stay in cache
    and flatter deep trees."""
    timings = []
    for i in range(len(rows)):
        row = rows[i : i + 1]
        started = time.perf_counter()
        predict(row)
        timings.append((time.perf_counter() - started) * 1000)
    timings.sort()
    return statistics.median(timings), timings[int(len(timings) * 0.99) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accidents", type=int, default=56_000)
    parser.add_argument("--latency-rows", type=int, default=1_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        synthesize(Path(folder), accidents=args.accidents, seed=42, year=2021)
        table = build_table(read_raw(Path(folder)))
    train, test = split_table(table, test_size=0.3, seed=42)
    x_train, y_train = contract.encode_frame(train), train[contract.TARGET].to_numpy(int)
    x_test, y_test = contract.encode_frame(test), test[contract.TARGET].to_numpy(int)
    latency_rows = x_test[: args.latency_rows]

    header = (
        "| model | accuracy | ROC-AUC | F1 | fit s | joblib MB | ONNX MB | load joblib s "
        "| load ONNX s | 1-row sklearn ms (p50/p99) | 1-row ONNX ms (p50/p99) |"
    )
    print(f"synthetic data: {len(train):,} training rows, {len(test):,} held-out rows\n")
    print(header)
    print("|---" * 11 + "|")
    for kind in (ModelKind.RANDOM_FOREST, ModelKind.HIST_GRADIENT_BOOSTING):
        pipeline = build_pipeline(kind, seed=42)
        started = time.perf_counter()
        pipeline.fit(x_train, y_train)
        fit_s = time.perf_counter() - started
        metrics = evaluate(y_test, positive_probability(pipeline, x_test), 0.5)
        buffer = io.BytesIO()
        joblib.dump(pipeline, buffer, compress=3)
        joblib_bytes = buffer.getvalue()
        onnx_bytes = to_onnx(pipeline)
        started = time.perf_counter()
        joblib.load(io.BytesIO(joblib_bytes))
        load_joblib_s = time.perf_counter() - started
        started = time.perf_counter()
        session = onnx_session(onnx_bytes)
        load_onnx_s = time.perf_counter() - started
        sk_p50, sk_p99 = single_row_latency_ms(pipeline.predict_proba, latency_rows)
        onnx_p50, onnx_p99 = single_row_latency_ms(
            lambda row, s=session: s.run(["probabilities"], {"features": row}), latency_rows
        )
        print(
            f"| {kind.value} | {metrics['accuracy']:.3f} | {metrics['roc_auc']:.3f} "
            f"| {metrics['f1']:.3f} | {fit_s:.1f} | {len(joblib_bytes) / 1e6:.1f} "
            f"| {len(onnx_bytes) / 1e6:.1f} | {load_joblib_s:.2f} | {load_onnx_s:.3f} "
            f"| {sk_p50:.2f} / {sk_p99:.2f} | {onnx_p50:.3f} / {onnx_p99:.3f} |"
        )


if __name__ == "__main__":
    main()

"""The default model against RandomForest (the reference projects' model), logistic
regression and the majority class: quality on synthetic data, cross-validated on the
real BAAC samples, and train-on-earlier-years on the real samples; then size, load
time and single-row latency of the servable ones.

Every model is judged as the training job judges it: the threshold is chosen on
out-of-fold probabilities of its training rows from the cost ratio (a missed
prioritaire costs three over-triages), then accuracy, F1 and recall are measured at
that threshold on rows it never saw; ROC-AUC, Brier and ECE need no threshold.

Prints markdown tables (those of the README). Synthetic figures compare models, they
say nothing about real accidents; the real samples are about 1,300 accidents, the
first rows of five yearly files: enough to rank models roughly, far too few to
judge one.
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

from core import contract
from core.registry import onnx_session
from training import decision, split
from training.baac import read_raw
from training.dataset import build_table, split_table
from training.model import ModelKind, build_pipeline, evaluate, positive_probability, to_onnx
from training.synthetic import synthesize
from training.train import out_of_fold_probability

SAMPLES = Path(__file__).resolve().parents[1] / ".." / "shared" / "baac-samples"
COST_RATIO = 3.0
SEED = 42
KINDS = (
    ModelKind.HIST_GRADIENT_BOOSTING,
    ModelKind.RANDOM_FOREST,
    ModelKind.LOGISTIC_REGRESSION,
    ModelKind.MAJORITY,
)
SERVABLE = KINDS[:3]


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


def fit_and_judge(kind: ModelKind, train: pd.DataFrame, test: pd.DataFrame) -> dict[str, Any]:
    """What the training job does: out-of-fold threshold, fit on every training row,
    probabilities of the held-out rows."""
    x_train, y_train = contract.encode_frame(train), train[contract.TARGET].to_numpy(int)
    validation = out_of_fold_probability(
        kind,
        x_train,
        y_train,
        train[contract.ACCIDENT_ID],
        salt=split.salt_for(SEED),
        fold_count=3,
        seed=SEED,
    )
    threshold = decision.choose_threshold(y_train, validation, COST_RATIO)["threshold"]
    pipeline = build_pipeline(kind, seed=SEED)
    started = time.perf_counter()
    pipeline.fit(x_train, y_train)
    fit_seconds = time.perf_counter() - started
    probability = positive_probability(pipeline, contract.encode_frame(test))
    return {
        "pipeline": pipeline,
        "threshold": threshold,
        "probability": probability,
        "labels": test[contract.TARGET].to_numpy(int),
        "fit_seconds": fit_seconds,
    }


def quality_row(
    name: str,
    labels: np.ndarray,
    probability: np.ndarray,
    threshold: Any,
    roc_auc: float | None = None,
) -> str:
    """``threshold`` is one value, or one per row when pooled over folds; then
    ``roc_auc`` is the mean over folds, as ranks from different models do not pool."""
    thresholds = np.broadcast_to(np.asarray(threshold, dtype=float), probability.shape)
    predicted = (probability >= thresholds).astype(float)
    # evaluate() thresholds the values it is given: 0/1 predictions at 0.5 give the
    # metrics at each row's own threshold; ROC-AUC, Brier and ECE use probabilities.
    at_threshold = evaluate(labels, predicted, 0.5)
    ranking = evaluate(labels, probability, 0.5)
    if roc_auc is not None:
        ranking["roc_auc"] = roc_auc
    shown = f"{float(np.mean(thresholds)):.3f}"
    if np.ptp(thresholds) > 0:
        shown = f"{thresholds.min():.3f}–{thresholds.max():.3f}"
    return (
        f"| {name} | {shown} | {at_threshold['accuracy']:.3f} | {ranking['roc_auc']:.3f} "
        f"| {at_threshold['f1']:.3f} | {ranking['brier']:.3f} | {ranking['ece']:.3f} "
        f"| {at_threshold['recall']:.3f} | {at_threshold['precision']:.3f} |"
    )


QUALITY_HEADER = (
    "| model | threshold | accuracy | ROC-AUC | F1 | Brier | ECE | recall | precision |\n"
    "|---|---|---|---|---|---|---|---|---|"
)


def synthetic_section(accidents: int, latency_rows: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        synthesize(Path(folder), accidents=accidents, seed=SEED, year=2021)
        table = build_table(read_raw(Path(folder)))
    train, test = split_table(table, test_size=0.3, seed=SEED)
    print(
        f"### Synthetic data: {len(train):,} training rows, {len(test):,} held-out rows\n\n"
        f"{QUALITY_HEADER}"
    )
    judged = {kind: fit_and_judge(kind, train, test) for kind in KINDS}
    for kind, result in judged.items():
        print(quality_row(kind.value, result["labels"], result["probability"], result["threshold"]))

    x_latency = contract.encode_frame(test)[:latency_rows]
    print(
        "\n| model | fit s | joblib MB | ONNX MB | load joblib s | load ONNX s "
        "| 1-row sklearn ms (p50/p99) | 1-row ONNX ms (p50/p99) |\n|---" + "|---" * 7 + "|"
    )
    for kind in SERVABLE:
        pipeline = judged[kind]["pipeline"]
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
        sk_p50, sk_p99 = single_row_latency_ms(pipeline.predict_proba, x_latency)
        onnx_p50, onnx_p99 = single_row_latency_ms(
            lambda row, s=session: s.run(["probabilities"], {"features": row}), x_latency
        )
        print(
            f"| {kind.value} | {judged[kind]['fit_seconds']:.1f} "
            f"| {len(joblib_bytes) / 1e6:.1f} | {len(onnx_bytes) / 1e6:.1f} "
            f"| {load_joblib_s:.2f} | {load_onnx_s:.3f} "
            f"| {sk_p50:.2f} / {sk_p99:.2f} | {onnx_p50:.3f} / {onnx_p99:.3f} |"
        )


def real_section(samples: Path, folds: int) -> None:
    years = sorted(p.name for p in samples.iterdir() if p.is_dir())
    by_year = {int(y): build_table(read_raw(samples / y)) for y in years}
    table = pd.concat(by_year.values(), ignore_index=True)
    share = table[contract.TARGET].mean()
    print(
        f"\n### Real BAAC samples: {len(table):,} accidents ({', '.join(years)}; "
        f"{share:.1%} prioritaire), {folds}-fold cross-validation grouped by accident "
        "(ROC-AUC: mean of the folds; the other columns pool the folds' predictions)\n\n"
        f"{QUALITY_HEADER}"
    )
    fold = split.folds(table[contract.ACCIDENT_ID], "bench-outer", folds)
    for kind in KINDS:
        labels, probabilities, thresholds, aucs = [], [], [], []
        for index in range(folds):
            result = fit_and_judge(kind, table[fold != index], table[fold == index])
            labels.append(result["labels"])
            probabilities.append(result["probability"])
            thresholds.append(np.full(len(result["labels"]), result["threshold"]))
            aucs.append(evaluate(result["labels"], result["probability"], 0.5)["roc_auc"])
        print(
            quality_row(
                f"{kind.value} (fold ROC-AUC {min(aucs):.3f}–{max(aucs):.3f})",
                np.concatenate(labels),
                np.concatenate(probabilities),
                np.concatenate(thresholds),
                roc_auc=float(np.mean(aucs)),
            )
        )

    latest = max(by_year)
    earlier = pd.concat([by_year[y] for y in by_year if y < latest], ignore_index=True)
    print(
        f"\n### Real BAAC samples by year: trained on {sorted(y for y in by_year if y < latest)} "
        f"({len(earlier)} accidents), judged on {latest} ({len(by_year[latest])} accidents)\n\n"
        f"{QUALITY_HEADER}"
    )
    for kind in KINDS:
        result = fit_and_judge(kind, earlier, by_year[latest])
        print(quality_row(kind.value, result["labels"], result["probability"], result["threshold"]))

    print("\nROC-AUC of each year, trained on the years before it only:\n")
    print("| model | " + " | ".join(str(y) for y in sorted(by_year)[1:]) + " |")
    print("|---" * len(by_year) + "|")
    for kind in SERVABLE:
        cells = []
        for year in sorted(by_year)[1:]:
            past = pd.concat([by_year[y] for y in by_year if y < year], ignore_index=True)
            result = fit_and_judge(kind, past, by_year[year])
            cells.append(f"{evaluate(result['labels'], result['probability'], 0.5)['roc_auc']:.3f}")
        print(f"| {kind.value} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accidents", type=int, default=56_000)
    parser.add_argument("--latency-rows", type=int, default=1_000)
    parser.add_argument("--folds", type=int, default=5, help="folds on the real samples")
    parser.add_argument("--samples", type=Path, default=SAMPLES)
    args = parser.parse_args()
    synthetic_section(args.accidents, args.latency_rows)
    if args.samples.is_dir():
        real_section(args.samples.resolve(), args.folds)
    else:
        print(f"\n(real samples not found at {args.samples}: section skipped)")


if __name__ == "__main__":
    main()

"""How many feedback labels the realised-quality judgement needs: the sampling noise of
the judged figures (accuracy, F1, ROC-AUC, Brier) on n labelled predictions of a model
that did not change, and the share of draws where at least one of them looks worse
than the held-out figure by more than the tolerance (a false decay).

A gradient-boosting model is trained on synthetic accidents; its held-out figures are
measured on a large held-out set, then ``--draws`` random subsets of n rows of it are
judged as the drift job judges (``monitoring.quality.decayed_figures``). The figures
are in docs/drift.md, "Realised quality".

    .venv/bin/python bench/bench_quality_noise.py [--tolerance 0.05] [--draws 2000]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from sklearn.metrics import accuracy_score, brier_score_loss, f1_score, roc_auc_score

from core import contract
from monitoring.quality import JUDGED, decayed_figures
from tools.simulate import synthetic_table
from training.model import ModelKind, build_pipeline, positive_probability

THRESHOLD = 0.5


def figures(labels: np.ndarray, probability: np.ndarray) -> dict[str, float]:
    predicted = probability >= THRESHOLD
    return {
        "accuracy": float(accuracy_score(labels, predicted)),
        "f1": float(f1_score(labels, predicted)),
        "roc_auc": float(roc_auc_score(labels, probability)),
        "brier": float(brier_score_loss(labels, probability)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tolerance", type=float, default=0.05)
    parser.add_argument("--draws", type=int, default=2000)
    parser.add_argument("--sizes", default="100,250,500,1000,2000")
    args = parser.parse_args()
    train, held_out = synthetic_table(20_000, seed=1), synthetic_table(40_000, seed=2)
    pipeline = build_pipeline(ModelKind.HIST_GRADIENT_BOOSTING, seed=0)
    pipeline.fit(contract.encode_frame(train), train[contract.TARGET].to_numpy(dtype=int))
    probability = positive_probability(pipeline, contract.encode_frame(held_out))
    labels = held_out[contract.TARGET].to_numpy(dtype=int)
    manifest = figures(labels, probability)
    rng = np.random.default_rng(0)
    result: dict[str, object] = {"held_out": manifest, "tolerance": args.tolerance}
    for size in (int(n) for n in args.sizes.split(",")):
        draws = []
        false_decays = 0
        for _ in range(args.draws):
            chosen = rng.choice(len(labels), size, replace=False)
            measured = figures(labels[chosen], probability[chosen])
            draws.append(measured)
            false_decays += bool(decayed_figures(measured, manifest, args.tolerance))
        result[str(size)] = {
            "sd": {name: round(float(np.std([d[name] for d in draws])), 4) for name in JUDGED},
            "false_decay_share": round(false_decays / args.draws, 4),
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

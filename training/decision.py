"""From probabilities to decisions: the threshold chosen from the cost of each kind
of error, and the confidence tiers measured on rows the model did not train on.

Both are chosen on out-of-fold probabilities of the training side (every training
row predicted by a model that did not see it), never on the held-out rows that judge
the model, and stored with their rationale in the manifest; the scorer serves them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.isotonic import IsotonicRegression

TIER_NAMES: tuple[str, str, str] = ("high", "medium", "low")
"""Also the scorer's tier names and metric labels (service.metrics.TIERS)."""

# Candidate thresholds sit between two hundredths: a RandomForest of 100 trees gives
# probabilities in hundredths, and a threshold equal to one of them would let float32
# rounding in the ONNX twin flip the label of every row that sits on it.
_CANDIDATES = np.round(np.arange(0.005, 1.0, 0.01), 3)


def choose_threshold(
    labels: np.ndarray, probability: np.ndarray, missed_cost_ratio: float
) -> dict[str, Any]:
    """The threshold with the lowest total cost on validation rows, a missed
    prioritaire costing ``missed_cost_ratio`` over-triages. On calibrated
    probabilities the optimum is 1 / (1 + ratio); choosing it on the data also
    corrects a model whose probabilities are not calibrated."""
    positives = labels == 1
    costs = []
    for threshold in _CANDIDATES:
        flagged = probability >= threshold
        missed = int((positives & ~flagged).sum())
        over = int((~positives & flagged).sum())
        costs.append(missed_cost_ratio * missed + over)
    best = int(np.argmin(costs))  # the lowest threshold among equal costs: recall first
    return {
        **fixed_threshold(labels, probability, float(_CANDIDATES[best])),
        "method": "lowest cost on out-of-fold probabilities of the training rows",
        "missed_prioritaire_cost_ratio": missed_cost_ratio,
        "cost_per_row": costs[best] / max(len(labels), 1),
    }


def fixed_threshold(
    labels: np.ndarray, probability: np.ndarray, threshold: float
) -> dict[str, Any]:
    """What ``threshold`` does on the validation rows."""
    flagged = probability >= threshold
    positives = labels == 1
    true_positive = int((positives & flagged).sum())
    return {
        "threshold": threshold,
        "method": "fixed by the threshold setting",
        "validation_rows": len(labels),
        "recall": true_positive / max(int(positives.sum()), 1),
        "precision": true_positive / max(int(flagged.sum()), 1),
        "flagged_share": float(flagged.mean()) if len(labels) else 0.0,
    }


def confidence_bands(
    labels: np.ndarray,
    probability: np.ndarray,
    threshold: float,
    high: float,
    medium: float,
) -> dict[str, Any]:
    """Tiers by how often the predicted label turned out right.

    An isotonic fit of the labels on the validation probabilities gives the
    calibrated probability of prioritaire at each raw probability; a row's chance of
    being right is that value when it is flagged, one minus it otherwise. The tier
    edges are where this chance crosses ``high`` and ``medium``; six bands result
    (high, medium, low below the threshold; low, medium, high above), stored as raw
    probability edges so the scorer needs no calibration model, only a lookup.
    """
    calibrated = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
    calibrated.fit(probability, labels)
    grid = np.unique(np.concatenate([probability, [0.0, threshold, 1.0]]))
    value = calibrated.predict(grid)
    below, above = grid < threshold, grid >= threshold

    def upper_edge(level: float) -> float:
        # Below the threshold, right means negative: 1 - calibrated, which falls
        # as the raw probability rises; the band ends at the first grid point where
        # it drops below the level.
        failing = below & (1 - value < level)
        return float(grid[failing][0]) if failing.any() else threshold

    def lower_edge(level: float) -> float:
        passing = above & (value >= level)
        # Never reached: an edge just above 1 leaves the band empty.
        return float(grid[passing][0]) if passing.any() else float(np.nextafter(1.0, 2.0))

    edges = [
        upper_edge(high),
        upper_edge(medium),
        threshold,
        lower_edge(medium),
        lower_edge(high),
    ]
    # Keep them ordered when a level is never reached on one side (empty bands).
    edges[1] = max(edges[1], edges[0])
    edges[4] = max(edges[4], edges[3])
    tiers = ["high", "medium", "low", "low", "medium", "high"]
    return {
        "method": "isotonic calibration of out-of-fold probabilities; a tier is the "
        "chance that the predicted label is right",
        "levels": {"high": high, "medium": medium},
        "edges": edges,
        "tiers": tiers,
        "validation": tier_precision(labels, probability, threshold, edges, tiers),
    }


def band_index(probability: np.ndarray, edges: list[float]) -> np.ndarray:
    """The band of each probability; a probability equal to an edge belongs to the
    band above it, as a probability equal to the threshold is flagged."""
    return np.searchsorted(np.asarray(edges), probability, side="right")


def tier_precision(
    labels: np.ndarray,
    probability: np.ndarray,
    threshold: float,
    edges: list[float],
    tiers: list[str],
) -> dict[str, dict[str, Any]]:
    """Per tier: rows, share of rows, and the share whose predicted label is right."""
    names = np.asarray(tiers)[band_index(probability, edges)]
    right = (probability >= threshold).astype(int) == labels
    measured: dict[str, dict[str, Any]] = {}
    for name in TIER_NAMES:
        members = names == name
        count = int(members.sum())
        measured[name] = {
            "rows": count,
            "share": count / max(len(labels), 1),
            "precision": float(right[members].mean()) if count else None,
        }
    return measured

"""The model: one scikit-learn Pipeline over the contract's encoded matrix, its
evaluation, and its compiled (ONNX) twin for the scorer."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    brier_score_loss,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from core import contract
from training.settings import ModelKind

log = logging.getLogger(__name__)

# BAAC's own "not filled" code: a missing category stays a category of its own, which
# trees can use, instead of being replaced by the most frequent code.
MISSING_CATEGORY = -1.0

ONNX_TOLERANCE = 1e-4
"""Largest probability difference allowed between the pipeline and its ONNX twin on
the held-out rows before the ONNX file is published."""


CALIBRATION_BINS = 10
"""Equal-width probability bins of the expected calibration error (ECE)."""


def build_pipeline(kind: ModelKind, *, seed: int = 42) -> Pipeline:
    """Imputation is the only preprocessing of the tree models: the contract already
    encodes every feature as a number, and trees need no scaling or one-hot encoding.
    The linear model needs both."""
    if kind is ModelKind.LOGISTIC_REGRESSION:
        return _linear_pipeline(seed)
    imputer = ColumnTransformer(
        [
            (
                "numerical",
                SimpleImputer(strategy="median"),
                list(contract.numerical_columns_indices()),
            ),
            (
                "categorical",
                SimpleImputer(strategy="constant", fill_value=MISSING_CATEGORY),
                list(contract.categorical_columns_indices()),
            ),
        ]
    )
    classifier: Any
    if kind is ModelKind.HIST_GRADIENT_BOOSTING:
        classifier = HistGradientBoostingClassifier(
            max_iter=300,
            learning_rate=0.1,
            max_leaf_nodes=31,
            early_stopping=True,
            validation_fraction=0.1,
            n_iter_no_change=20,
            random_state=seed,
        )
    elif kind is ModelKind.MAJORITY:
        classifier = DummyClassifier(strategy="prior")
    else:
        # The reference projects' model; n_jobs=1 because a thread pool started per
        # single-row call costs more than the prediction itself.
        classifier = RandomForestClassifier(random_state=seed, n_jobs=1)
    return Pipeline([("impute", imputer), ("classifier", classifier)])


def _linear_pipeline(seed: int) -> Pipeline:
    encode = ColumnTransformer(
        [
            (
                "numerical",
                Pipeline(
                    [("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]
                ),
                list(contract.numerical_columns_indices()),
            ),
            (
                "categorical",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="constant", fill_value=MISSING_CATEGORY)),
                        ("one_hot", OneHotEncoder(handle_unknown="ignore")),
                    ]
                ),
                list(contract.categorical_columns_indices()),
            ),
        ]
    )
    classifier = LogisticRegression(max_iter=1000, random_state=seed)
    return Pipeline([("impute", encode), ("classifier", classifier)])


def positive_probability(pipeline: Pipeline, features: np.ndarray) -> np.ndarray:
    return np.asarray(pipeline.predict_proba(features)[:, 1], dtype=np.float64)


def evaluate(labels: np.ndarray, probability: np.ndarray, threshold: float) -> dict[str, Any]:
    """The held-out metrics stored in every manifest."""
    predicted = (probability >= threshold).astype(int)
    matrix = confusion_matrix(labels, predicted, labels=[0, 1])
    both_classes = len(np.unique(labels)) == 2
    return {
        "rows": len(labels),
        "accuracy": float(accuracy_score(labels, predicted)),
        "precision": float(precision_score(labels, predicted, zero_division=0)),
        "recall": float(recall_score(labels, predicted, zero_division=0)),
        "f1": float(f1_score(labels, predicted, zero_division=0)),
        "roc_auc": float(roc_auc_score(labels, probability)) if both_classes else None,
        "brier": float(brier_score_loss(labels, probability)) if len(labels) else None,
        "ece": expected_calibration_error(labels, probability),
        "confusion_matrix": {
            "labels": [0, 1],
            "rows_true_columns_predicted": matrix.tolist(),
        },
        "threshold": threshold,
    }


def expected_calibration_error(labels: np.ndarray, probability: np.ndarray) -> float | None:
    """Mean gap between predicted probability and observed prioritaire share over
    equal-width bins, weighted by rows: how far a probability is from a frequency."""
    if not len(labels):
        return None
    bins = np.minimum((probability * CALIBRATION_BINS).astype(int), CALIBRATION_BINS - 1)
    gap = 0.0
    for index in np.unique(bins):
        members = bins == index
        gap += members.sum() * abs(float(probability[members].mean() - labels[members].mean()))
    return gap / len(labels)


def to_onnx(pipeline: Pipeline) -> bytes:
    """Compiles the pipeline for the scorer: float32 input, a plain probability array
    output (no ZipMap), so onnxruntime needs no Python post-processing."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    with _integer_list_attributes():
        onnx_model = convert_sklearn(
            pipeline,
            initial_types=[("features", FloatTensorType([None, len(contract.FEATURES)]))],
            options={id(pipeline.named_steps["classifier"]): {"zipmap": False}},
            target_opset={"": 17, "ai.onnx.ml": 3},
        )
    return bytes(onnx_model.SerializeToString())


@contextmanager
def _integer_list_attributes() -> Iterator[None]:
    """skl2onnx 1.20 passes Python booleans in the integer-list attribute
    ``nodes_missing_value_tracks_true`` of HistGradientBoosting trees, which onnx
    rejects ("Expected an int, got a boolean"). Casting them to 0/1 keeps the meaning;
    the patch is undone on exit so nothing else sees it."""
    from skl2onnx.common._container import ModelComponentContainer

    original = ModelComponentContainer.add_node

    def add_node(self: Any, *args: Any, **attributes: Any) -> Any:
        for key, value in attributes.items():
            if isinstance(value, list) and any(isinstance(v, bool | np.bool_) for v in value):
                attributes[key] = [int(v) for v in value]
        return original(self, *args, **attributes)

    ModelComponentContainer.add_node = add_node
    try:
        yield
    finally:
        ModelComponentContainer.add_node = original


def onnx_probability(onnx_bytes: bytes, features: np.ndarray) -> np.ndarray:
    """Positive-class probability computed by onnxruntime, as the scorer computes it."""
    from core.registry import onnx_session

    outputs = onnx_session(onnx_bytes).run(["probabilities"], {"features": features})
    return np.asarray(outputs[0][:, 1], dtype=np.float64)

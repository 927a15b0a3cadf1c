"""Scoring helpers: the batch encoder's agreement with the contract, and the tiers."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest

from core import contract
from service.schemas import AccidentFeatures, feature_row
from service.scoring import ConfidenceBands, ConfidenceTiers, encode_batch, encode_one


def random_row(rng: random.Random) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for feature in contract.FEATURES:
        if not feature.required and rng.random() < 0.2:
            row[feature.name] = None
        elif feature.codes:
            row[feature.name] = rng.choice(list(feature.codes))
        elif feature.integer:
            assert feature.minimum is not None and feature.maximum is not None
            row[feature.name] = rng.randint(int(feature.minimum), int(feature.maximum))
        else:
            assert feature.minimum is not None and feature.maximum is not None
            row[feature.name] = rng.uniform(feature.minimum, feature.maximum)
    return row


def test_batch_encoder_agrees_with_the_contract() -> None:
    rng = random.Random(7)
    rows = [feature_row(AccidentFeatures.model_validate(random_row(rng))) for _ in range(500)]
    expected = contract.encode_rows(rows)
    actual = encode_batch(rows)
    assert actual.dtype == np.float32
    np.testing.assert_array_equal(actual, expected)


def test_single_row_encoder_agrees_with_the_contract() -> None:
    rng = random.Random(8)
    for _ in range(300):
        row = feature_row(AccidentFeatures.model_validate(random_row(rng)))
        actual = encode_one(row)
        assert actual.dtype == np.float32
        np.testing.assert_array_equal(actual, contract.encode_rows([row]))
        np.testing.assert_array_equal(encode_batch([row]), actual)


@pytest.mark.parametrize(
    ("probability", "threshold", "tier"),
    [
        (0.95, 0.5, "high"),
        (0.8, 0.5, "high"),
        (0.2, 0.5, "high"),
        (0.79, 0.5, "medium"),
        (0.65, 0.5, "medium"),
        (0.35, 0.5, "medium"),
        (0.64, 0.5, "low"),
        (0.5, 0.5, "low"),
        (0.36, 0.5, "low"),
        (0.05, 0.3, "medium"),
        (0.2, 0.3, "low"),
        (0.0, 0.3, "high"),
    ],
)
def test_tiers_measure_the_distance_to_the_threshold(
    probability: float, threshold: float, tier: str
) -> None:
    tiers = ConfidenceTiers(high_margin=0.3, medium_margin=0.15)
    names = ("high", "medium", "low")
    assert names[tiers.index(probability, threshold)] == tier
    vector = tiers.indices(np.array([probability]), threshold)
    assert names[int(vector[0])] == tier


@pytest.mark.parametrize(
    "record",
    [
        None,
        {"edges": [0.3, 0.2], "tiers": ["high", "medium", "low"]},
        {"edges": [0.3], "tiers": ["high"]},
        {"edges": [0.3], "tiers": ["high", "unheard-of"]},
        {"tiers": ["high"]},
    ],
)
def test_unusable_manifest_tiers_fall_back_to_the_margins(record: Any) -> None:
    assert ConfidenceBands.from_manifest({"tiers": record}) is None


def test_bands_put_an_edge_value_in_the_band_above() -> None:
    bands = ConfidenceBands.from_manifest(
        {"tiers": {"edges": [0.2, 0.5], "tiers": ["high", "low", "medium"]}}
    )
    assert bands is not None
    names = ("high", "medium", "low")
    probabilities = np.array([0.0, 0.2, 0.49, 0.5, 1.0])
    expected = ["high", "low", "low", "medium", "medium"]
    assert [names[bands.index(float(p), 0.5)] for p in probabilities] == expected
    assert [names[int(i)] for i in bands.indices(probabilities, 0.5)] == expected

"""Threshold and tiers on probabilities whose truth is known: calibrated by construction."""

import numpy as np
import pytest

from training.decision import band_index, choose_threshold, confidence_bands


@pytest.fixture(scope="module")
def calibrated():
    rng = np.random.default_rng(0)
    probability = rng.uniform(0, 1, 200_000)
    labels = (rng.uniform(0, 1, probability.size) < probability).astype(int)
    return labels, probability


@pytest.mark.parametrize(("ratio", "expected"), [(3.0, 0.25), (1.0, 0.5), (9.0, 0.1)])
def test_threshold_is_the_bayes_one_on_calibrated_probabilities(calibrated, ratio, expected):
    labels, probability = calibrated
    choice = choose_threshold(labels, probability, ratio)
    assert choice["threshold"] == pytest.approx(expected, abs=0.02)
    assert choice["missed_prioritaire_cost_ratio"] == ratio
    assert choice["validation_rows"] == labels.size


def test_tiers_follow_the_chance_of_being_right(calibrated):
    labels, probability = calibrated
    bands = confidence_bands(labels, probability, 0.5, high=0.8, medium=0.65)
    # Calibrated: below the threshold a row is right with chance 1 - p, above with p.
    assert bands["edges"] == pytest.approx([0.2, 0.35, 0.5, 0.65, 0.8], abs=0.02)
    assert bands["tiers"] == ["high", "medium", "low", "low", "medium", "high"]
    measured = bands["validation"]
    assert measured["high"]["precision"] == pytest.approx(0.9, abs=0.01)
    assert measured["medium"]["precision"] == pytest.approx(0.725, abs=0.01)
    assert measured["low"]["precision"] == pytest.approx(0.575, abs=0.01)


def test_a_level_never_reached_leaves_its_band_empty():
    # Falling labels as the probability rises: the isotonic fit pools them all at 0.5,
    # a coin flip on both sides of the threshold.
    labels = np.array([1, 0, 1, 0, 1, 0])
    probability = np.array([0.4, 0.45, 0.5, 0.55, 0.6, 0.65])
    bands = confidence_bands(labels, probability, 0.5, high=0.8, medium=0.65)
    assert bands["edges"] == sorted(bands["edges"])
    assert bands["validation"]["high"]["rows"] == bands["validation"]["medium"]["rows"] == 0
    assert bands["validation"]["low"]["rows"] == 6
    assert (band_index(np.array([1.0]), bands["edges"]) < 5).all(), "not even at 1.0"

import math

import numpy as np
import pandas as pd
import pytest

from core import contract


def test_feature_names_are_unique_and_split_by_kind():
    assert len(set(contract.FEATURE_NAMES)) == len(contract.FEATURE_NAMES)
    assert set(contract.NUMERICAL_FEATURES) | set(contract.CATEGORICAL_FEATURES) == set(
        contract.FEATURE_NAMES
    )
    assert not set(contract.NUMERICAL_FEATURES) & set(contract.CATEGORICAL_FEATURES)


def test_categorical_features_have_codes_and_numerical_ones_ranges():
    for feature in contract.FEATURES:
        if feature.kind is contract.Kind.CATEGORICAL:
            assert feature.codes, feature.name
            assert -1 not in feature.codes, f"{feature.name}: -1 means missing, not a code"
        else:
            assert feature.minimum is not None and feature.maximum is not None, feature.name


def test_example_row_is_valid():
    assert contract.invalid_values(contract.example_row()) == []


def test_departments_use_corsica_codes_not_20():
    assert "2A" in contract.DEPARTMENTS and "2B" in contract.DEPARTMENTS
    assert "20" not in contract.DEPARTMENTS
    assert "971" in contract.DEPARTMENTS


def test_invalid_values_names_each_problem():
    row = contract.example_row() | {"any_unhelmeted": 4, "vma": 300, "colour": "red"}
    del row["nb_pedestrians"]
    problems = contract.invalid_values(row)
    assert "unknown field 'colour'" in problems
    assert "'nb_pedestrians' is required" in problems
    assert "'any_unhelmeted' has invalid value 4" in problems
    assert "'vma' has invalid value 300" in problems


def test_encode_rows_and_encode_frame_agree():
    rows = [
        contract.example_row(),
        {name: None for name in contract.FEATURE_NAMES} | {"dep": "2A", "hour": 3},
    ]
    by_rows = contract.encode_rows(rows)
    by_frame = contract.encode_frame(pd.DataFrame(rows))
    assert by_rows.dtype == np.float32 and by_rows.shape == (2, len(contract.FEATURES))
    np.testing.assert_array_equal(by_rows, by_frame)
    dep_column = contract.FEATURE_NAMES.index("dep")
    assert by_rows[1, dep_column] == list(contract.DEPARTMENTS).index("2A")
    assert math.isnan(by_rows[1, contract.FEATURE_NAMES.index("any_unhelmeted")])


def test_unknown_department_encodes_as_missing():
    feature = contract.FEATURES_BY_NAME["dep"]
    assert math.isnan(contract.encode_value(feature, "20"))


def test_fingerprint_is_stable_and_changes_with_the_contract(monkeypatch):
    first = contract.contract_fingerprint()
    assert first == contract.contract_fingerprint()
    monkeypatch.setattr(contract, "CONTRACT_VERSION", "changed")
    assert contract.contract_fingerprint() != first


@pytest.mark.parametrize("value", [True, "3", float("nan")])
def test_numerical_feature_rejects_non_numbers(value):
    assert not contract.FEATURES_BY_NAME["vma"].is_valid(value)

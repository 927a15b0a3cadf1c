"""The split: stable when data is added or removed, by year for real data."""

import pandas as pd
import pytest

from core import contract
from training.baac import read_raw
from training.dataset import build_table, split_table
from training.errors import TrainingError
from training.split import SplitMethod, SplitRule, apply_rule, folds, make_rule, stratification


def _ids(table: pd.DataFrame) -> set[str]:
    return set(table[contract.ACCIDENT_ID].astype(str))


@pytest.fixture(scope="module")
def real_table(baac_samples):
    years = sorted(p.name for p in baac_samples.iterdir() if p.is_dir())
    tables = {year: build_table(read_raw(baac_samples / year)) for year in years}
    return tables


def test_adding_a_year_never_moves_a_held_out_accident_into_training(real_table):
    earlier = pd.concat([real_table[y] for y in ("2019", "2020", "2021")], ignore_index=True)
    later = pd.concat([earlier, real_table["2023"]], ignore_index=True)
    train_before, test_before = split_table(earlier, 0.3, 42)
    train_after, test_after = split_table(later, 0.3, 42)
    assert _ids(test_before) <= _ids(test_after)
    assert not _ids(test_before) & _ids(train_after)
    assert _ids(train_before) <= _ids(train_after)


def test_removing_an_accident_moves_no_other(real_table):
    table = pd.concat(real_table.values(), ignore_index=True)
    train, test = split_table(table, 0.3, 42)
    gone = test[contract.ACCIDENT_ID].iloc[0]
    train_after, test_after = split_table(table[table[contract.ACCIDENT_ID] != gone], 0.3, 42)
    assert _ids(test_after) == _ids(test) - {str(gone)}
    assert _ids(train_after) == _ids(train)


def test_split_is_row_order_free_and_the_salt_matters(real_table):
    table = pd.concat(real_table.values(), ignore_index=True)
    _, test = split_table(table, 0.3, 42)
    _, shuffled = split_table(table.sample(frac=1, random_state=5), 0.3, 42)
    _, other_salt = split_table(table, 0.3, 43)
    assert _ids(shuffled) == _ids(test)
    assert _ids(other_salt) != _ids(test)
    share = len(test) / len(table)
    assert 0.25 < share < 0.35, "1,320 accidents: the hash gives about the asked share"


def test_year_split_holds_out_the_latest_year(real_table):
    table = pd.concat(real_table.values(), ignore_index=True)
    rule = make_rule(table, SplitMethod.YEAR, 0.3, 42)
    assert rule.held_out_years == (2024,)
    train, test = apply_rule(table, rule)
    assert set(test["year"]) == {2024} and 2024 not in set(train["year"])
    again = SplitRule.from_manifest(rule.as_manifest())
    assert again == rule


def test_year_split_needs_two_years(real_table):
    with pytest.raises(TrainingError, match="at least two years"):
        make_rule(real_table["2019"], SplitMethod.YEAR, 0.3, 42)


def test_a_manifest_without_a_usable_split_gives_no_rule():
    assert SplitRule.from_manifest(None) is None
    assert SplitRule.from_manifest({"seed": 42, "test_size": 0.3}) is None
    recorded = make_rule(pd.DataFrame(), SplitMethod.HASH, 0.3, 42).as_manifest()
    assert SplitRule.from_manifest(recorded) == SplitRule(SplitMethod.HASH, recorded["salt"], 0.3)


def test_folds_group_accidents_and_stratification_is_reported():
    ids = pd.Series([f"2021{i:08d}" for i in range(3000)] * 2)
    fold = folds(ids, "s", 3)
    assert set(fold) == {0, 1, 2}
    assert (fold[:3000] == fold[3000:]).all(), "every row of an accident in one fold"
    table = pd.DataFrame({contract.ACCIDENT_ID: ids, contract.TARGET: [0, 1] * 3000})
    train, test = split_table(table, 0.3, 42)
    report = stratification(train, test)
    assert report["within_chance"] is True
    assert abs(report["difference"]) <= 3 * report["standard_error"]

"""Modelling table, split, fingerprint and the atomic dataset build."""

from __future__ import annotations

import datetime as dt
import json
import math
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core import contract
from training import baac, dataset
from training.errors import BaacFormatError, TrainingError
from training.synthetic import synthesize

# Share of accidents with someone killed or hospitalised, from
# /work/shared/baac-samples/README.md. In 2021 one person has grav -1 and nobody else
# of their accident was severely hurt: that accident gets no label (the README counted
# it as not severe), and 109 of the 253 others are prioritaire.
SAMPLE_SHARES = {2019: 0.476, 2020: 0.383, 2021: 109 / 253, 2023: 0.371, 2024: 0.350}
SAMPLE_ACCIDENTS = {2019: 267, 2020: 269, 2021: 253, 2023: 264, 2024: 266}


def _raw(folder: Path) -> list[baac.RawYear]:
    return baac.read_raw(folder)


# --- the table from real samples ----------------------------------------------------


@pytest.mark.parametrize("year", sorted(SAMPLE_ACCIDENTS))
def test_every_sample_year_builds(baac_samples: Path, year: int) -> None:
    table = dataset.build_table(_raw(baac_samples / str(year)))
    assert len(table) == SAMPLE_ACCIDENTS[year]
    assert table[contract.ACCIDENT_ID].is_unique
    assert table[contract.ACCIDENT_ID].is_monotonic_increasing
    assert (table["year"] == year).all()
    assert table[contract.TARGET].mean() == pytest.approx(SAMPLE_SHARES[year], abs=0.001)
    assert table["lat"].dtype == "float64" and table["long"].dtype == "float64"
    assert table["lat"].between(-90, 90).all() and table["long"].between(-180, 180).all()
    assert table["nb_victim"].ge(1).all() and table["nb_vehicules"].ge(1).all()
    counts = ["nb_pedestrians", "nb_cycles", "nb_motorcycles", "nb_heavy_vehicles"]
    assert table[counts].notna().all().all(), "every vehicle and person is counted"
    assert (table["nb_pedestrians"] <= table["nb_victim"]).all()
    assert (table[counts[1:]].sum(axis=1) <= table["nb_vehicules"]).all()
    assert (table["oldest_age"].dropna() >= table["youngest_age"].dropna()).all()
    _assert_contract_shape(table)


def test_samples_together_keep_corsica_and_overseas(baac_samples: Path) -> None:
    table = dataset.build_table(_raw(baac_samples))
    assert len(table) == sum(SAMPLE_ACCIDENTS.values())
    assert {"2A", "2B", "02", "971", "974"} <= set(table["dep"].dropna())
    assert table["dep"].isna().sum() == 0


def test_samples_quality_counts(baac_samples: Path) -> None:
    built = dataset.assemble(_raw(baac_samples))
    quality = built.quality()
    # 2019 lists accident 201900000191's front passenger twice, row for row.
    assert quality["duplicate_rows_removed"] == {"usagers": 1, "vehicules": 0}
    assert quality["grav"] == {"missing": 1, "invalid": 0}
    assert quality["dropped_accidents"]["grav_unknown"]["count"] == 1
    assert quality["usagers_without_vehicle"] == 0
    twice = built.table.set_index(contract.ACCIDENT_ID).loc["201900000191"]
    assert twice["nb_victim"] == 4.0, "the duplicated passenger counts once"


def _assert_contract_shape(table: pd.DataFrame) -> None:
    assert list(table.columns) == list(dataset.OUTPUT_COLUMNS)
    assert table[contract.TARGET].dtype == "int64"
    assert set(table[contract.TARGET]) <= {0, 1}
    for feature in contract.FEATURES:
        values = table[feature.name]
        if feature.name == "dep":
            assert values.dtype == object
            assert all(v is None or v in contract.DEPARTMENTS for v in values)
            continue
        assert values.dtype == "float64", feature.name
        present = values.dropna()
        if feature.kind is contract.Kind.CATEGORICAL:
            assert present.isin([float(c) for c in feature.codes]).all(), feature.name
        else:
            if feature.minimum is not None:
                assert (present >= feature.minimum).all(), feature.name
            if feature.maximum is not None:
                assert (present <= feature.maximum).all(), feature.name


# --- the table from a tiny year, value by value ------------------------------------


def test_tiny_year_features(tmp_path: Path, tiny_year) -> None:
    tiny_year(2021).write(tmp_path)
    built = dataset.assemble(_raw(tmp_path))
    table = built.table.set_index(contract.ACCIDENT_ID)
    _assert_contract_shape(built.table)
    assert built.dropped == {"no_usagers": 0, "grav_unknown": 1}
    assert list(table.index) == ["202100000001", "202100000002", "202100000003"]

    first = table.loc["202100000001"]
    # A car (driver born 1980, passenger born 2001, both belted) and a motorcycle.
    assert (first["nb_pedestrians"], first["nb_cycles"]) == (0.0, 0.0)
    assert (first["nb_motorcycles"], first["nb_heavy_vehicles"]) == (1.0, 0.0)
    assert (first["oldest_age"], first["youngest_age"]) == (41.0, 20.0)
    assert (first["any_unrestrained"], first["any_unhelmeted"]) == (0.0, 0.0)
    assert (first["catr"], first["circ"], first["vma"]) == (3.0, 2.0, 80.0)
    assert first["dep"] == "2A"
    assert first["lat"] == pytest.approx(41.9267) and first["long"] == pytest.approx(8.7369)
    assert first["weekday"] == dt.date(2021, 11, 30).weekday()
    assert (first["hour"], first["mois"], first["agg_"]) == (8.0, 11.0, 1.0)
    assert (first["nb_victim"], first["nb_vehicules"]) == (2.0, 2.0)
    assert first[contract.TARGET] == 1, "the hospitalised passenger, listed second"

    pedestrian = table.loc["202100000002"]
    assert pedestrian["nb_pedestrians"] == 1.0
    assert (pedestrian["oldest_age"], pedestrian["youngest_age"]) == (81.0, 46.0)
    assert pedestrian["any_unrestrained"] == 0.0, "a pedestrian wears no seat belt"
    assert math.isnan(pedestrian["vma"])
    assert pedestrian["situ"] == 4.0 and pedestrian["dep"] == "2B"
    assert pedestrian[contract.TARGET] == 1

    slight = table.loc["202100000003"]
    assert math.isnan(slight["oldest_age"]) and math.isnan(slight["youngest_age"])
    assert math.isnan(slight["atm"])
    assert slight["long"] == pytest.approx(-0.5792) and slight["hour"] == 23.0
    assert slight[contract.TARGET] == 0


@pytest.mark.parametrize(
    ("table_name", "row", "column", "value", "feature", "expected"),
    [
        # An impossible age is that person's unknown age: the driver's 41 remains.
        ("usagers", 1, "an_nais", "1900", "oldest_age", 41.0),  # 121 years old
        ("usagers", 1, "an_nais", "2022", "youngest_age", 41.0),  # born after
        ("usagers", 1, "secu1", "0", "any_unrestrained", 1.0),
        ("usagers", 1, "secu1", "8", "any_unrestrained", math.nan),  # undeterminable
        ("usagers", 1, "secu1", " -1", "any_unrestrained", math.nan),
        ("usagers", 1, "catu", "3", "nb_pedestrians", 1.0),
        ("vehicules", 1, "catv", "80", "nb_cycles", 1.0),
        ("vehicules", 1, "catv", "80", "nb_motorcycles", 0.0),
        ("vehicules", 1, "catv", "37", "nb_heavy_vehicles", 1.0),
        ("vehicules", 0, "catv", "37", "any_unrestrained", 0.0),  # a bus passenger
        ("lieux", 0, "vma", "300", "vma", math.nan),
        ("lieux", 0, "vma", "130", "vma", 130.0),
        ("caracteristiques", 0, "lat", "95,1", "lat", math.nan),
        ("caracteristiques", 0, "long", "-181", "long", math.nan),
        ("caracteristiques", 0, "dep", "20", "dep", None),
        ("caracteristiques", 0, "dep", "2", "dep", "02"),
        ("caracteristiques", 0, "jour", "31", "weekday", math.nan),  # 31 November
        ("caracteristiques", 0, "hrmn", "1530", "hour", 15.0),
        ("caracteristiques", 0, "hrmn", "5", "hour", 0.0),
        ("caracteristiques", 0, "hrmn", "24:10", "hour", math.nan),
        ("caracteristiques", 0, "agg", "3", "agg_", math.nan),
    ],
)
def test_values_and_out_of_contract_values(
    tmp_path: Path, tiny_year, table_name, row, column, value, feature, expected
) -> None:
    tiny = tiny_year(2021).set(table_name, row, column, value)
    tiny.write(tmp_path)
    table = dataset.build_table(_raw(tmp_path)).set_index(contract.ACCIDENT_ID)
    result = table.loc[tiny.ids[0], feature]
    if isinstance(expected, float) and math.isnan(expected):
        assert math.isnan(result)
    else:
        assert result == expected


@pytest.mark.parametrize(
    ("secu", "expected"),
    [
        (("0", " -1", " -1"), 1.0),
        (("6", "2", " -1"), 0.0),  # gloves then helmet
        (("2", " -1", " -1"), 0.0),
        (("8", " -1", " -1"), math.nan),
    ],
)
def test_unhelmeted_rider_found_in_any_safety_column(
    tmp_path: Path, tiny_year, secu: tuple[str, str, str], expected: float
) -> None:
    tiny = tiny_year(2021)
    tiny.set("vehicules", 3, "catv", "33")  # accident 3: a motorcycle
    for column, value in zip(("secu1", "secu2", "secu3"), secu, strict=True):
        tiny.set("usagers", 4, column, value)
    tiny.write(tmp_path)
    table = dataset.build_table(_raw(tmp_path)).set_index(contract.ACCIDENT_ID)
    result = table.loc[tiny.ids[2], "any_unhelmeted"]
    assert math.isnan(result) if math.isnan(expected) else result == expected
    assert table.loc[tiny.ids[2], "any_unrestrained"] == 0.0, "a rider wears no belt"


def test_vehicle_falls_back_on_num_veh(tmp_path: Path, tiny_year) -> None:
    tiny = tiny_year(2021)
    tiny.set("usagers", 1, "id_vehicule", "")  # the passenger of accident 1
    tiny.set("usagers", 1, "num_veh", "B01")  # ... now on the motorcycle
    tiny.write(tmp_path)
    built = dataset.assemble(_raw(tmp_path))
    table = built.table.set_index(contract.ACCIDENT_ID)
    assert table.loc[tiny.ids[0], "any_unhelmeted"] == 1.0  # secu1 1: a belt, no helmet
    assert built.usagers_without_vehicle == 0


def test_person_whose_vehicle_is_unknown_is_counted(tmp_path: Path, tiny_year) -> None:
    tiny = tiny_year(2021)
    tiny.set("usagers", 4, "id_vehicule", "999").set("usagers", 4, "num_veh", "Z09")
    tiny.write(tmp_path)
    built = dataset.assemble(_raw(tmp_path))
    assert built.usagers_without_vehicle == 1
    slight = built.table.set_index(contract.ACCIDENT_ID).loc[tiny.ids[2]]
    # Belted or not, in a car or on a motorcycle: nobody can say.
    assert math.isnan(slight["any_unrestrained"]) and math.isnan(slight["any_unhelmeted"])
    assert slight["nb_victim"] == 1.0 and slight[contract.TARGET] == 0


def test_duplicate_rows_count_once_and_are_counted(tmp_path: Path, tiny_year) -> None:
    tiny = tiny_year(2021)
    for table_name in ("usagers", "vehicules"):
        _header, rows = tiny.tables[table_name]
        rows.insert(0, list(rows[0]))  # accident 1's driver and car, written twice
    tiny.write(tmp_path)
    built = dataset.assemble(_raw(tmp_path))
    first = built.table.set_index(contract.ACCIDENT_ID).loc[tiny.ids[0]]
    assert (first["nb_victim"], first["nb_vehicules"]) == (2.0, 2.0)
    assert built.duplicate_rows == {"usagers": 1, "vehicules": 1}
    assert built.quality()["duplicate_rows_removed"] == {"usagers": 1, "vehicules": 1}


def test_no_feature_depends_on_who_was_hurt(tmp_path: Path, tiny_year) -> None:
    tiny_year(2021).write(tmp_path / "passenger")
    # The same accident 1, but the driver hospitalised and the passenger unharmed.
    swapped = tiny_year(2021).set("usagers", 0, "grav", "3").set("usagers", 1, "grav", "1")
    swapped.write(tmp_path / "driver")
    first = dataset.build_table(_raw(tmp_path / "passenger"))
    second = dataset.build_table(_raw(tmp_path / "driver"))
    pd.testing.assert_frame_equal(first, second)


def test_any_killed_or_hospitalised_person_makes_it_prioritaire(tmp_path: Path, tiny_year) -> None:
    tiny = tiny_year(2021)
    tiny.set("usagers", 0, "grav", "2").set("usagers", 1, "grav", "4")  # the driver killed
    tiny.write(tmp_path)
    table = dataset.build_table(_raw(tmp_path)).set_index(contract.ACCIDENT_ID)
    assert table.loc[tiny.ids[0], contract.TARGET] == 1


@pytest.mark.parametrize(("grav", "kind"), [(" -1", "missing"), ("7", "invalid")])
def test_unknown_grav_without_a_known_severe_victim_gets_no_label(
    tmp_path: Path, tiny_year, grav: str, kind: str
) -> None:
    tiny = tiny_year(2021)
    tiny.set("usagers", 1, "grav", "4")  # accident 1: nobody else is severe...
    tiny.set("usagers", 0, "grav", grav)  # ... and the driver's grav is unknown
    tiny.set("usagers", 2, "grav", grav)  # accident 2: the pedestrian was killed
    tiny.write(tmp_path)
    built = dataset.assemble(_raw(tmp_path))
    table = built.table.set_index(contract.ACCIDENT_ID)
    assert tiny.ids[0] not in table.index, "could be prioritaire: not labelled 0"
    assert table.loc[tiny.ids[1], contract.TARGET] == 1, "a known death decides"
    assert built.dropped == {"no_usagers": 0, "grav_unknown": 2}  # and accident 4
    expected = {"missing": 1, "invalid": 0}  # accident 4's driver
    expected[kind] += 2
    assert built.grav == expected


def test_accident_without_usagers_is_dropped(tmp_path: Path, tiny_year) -> None:
    tiny = tiny_year(2021)
    _header, rows = tiny.tables["usagers"]
    del rows[4]  # the only person of accident 3
    tiny.write(tmp_path)
    built = dataset.assemble(_raw(tmp_path))
    assert built.dropped == {"no_usagers": 1, "grav_unknown": 1}
    assert tiny.ids[2] not in set(built.table[contract.ACCIDENT_ID])


def test_same_year_twice_is_refused(tmp_path: Path, tiny_year) -> None:
    tiny_year(2021).write(tmp_path / "a")
    tiny_year(2021).write(tmp_path / "b")
    years = _raw(tmp_path / "a") + _raw(tmp_path / "b")
    with pytest.raises(BaacFormatError, match="is also in"):
        dataset.build_table(years)


# --- row order never matters --------------------------------------------------------


def _shuffled_copy(source: Path, target: Path, seed: int) -> None:
    """Every BAAC file under ``source`` with its data lines in a random order."""
    rng = random.Random(seed)
    for path in sorted(source.rglob("*.csv")):
        lines = path.read_bytes().splitlines()
        header, rows = lines[0], [line for line in lines[1:] if line]
        rng.shuffle(rows)
        copy = target / path.relative_to(source)
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_bytes(b"\n".join([header, *rows]) + b"\n")


def _assert_same_build(raw: Path, tmp_path: Path) -> None:
    reference = dataset.build_dataset(raw, tmp_path / "reference")
    for seed in (1, 2):
        shuffled = tmp_path / f"shuffled-{seed}"
        _shuffled_copy(raw, shuffled, seed)
        summary = dataset.build_dataset(shuffled, tmp_path / f"build-{seed}")
        assert summary["fingerprint"] == reference["fingerprint"]
        assert summary["quality"] == reference["quality"]
        assert summary["missing_values"] == reference["missing_values"]
        for name in (dataset.TRAIN_FILE, dataset.TEST_FILE):
            pd.testing.assert_frame_equal(
                pd.read_parquet(tmp_path / f"build-{seed}" / name),
                pd.read_parquet(tmp_path / "reference" / name),
            )


def test_shuffled_real_samples_build_the_same_dataset(tmp_path: Path, baac_samples: Path) -> None:
    _assert_same_build(baac_samples, tmp_path)


def test_shuffled_synthetic_tables_build_the_same_dataset(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    for year in (2021, 2023):  # 2023: several lieux rows per accident
        synthesize(raw, accidents=2_000, seed=year, year=year)
    # Rows written twice and a person whose vehicle is missing, shuffled with the rest.
    usagers = raw / "usagers-2021.csv"
    lines = usagers.read_bytes().splitlines()
    usagers.write_bytes(b"\n".join([*lines, lines[1], lines[7]]) + b"\n")
    vehicules = raw / "vehicules-2023.csv"
    lines = vehicules.read_bytes().splitlines()
    vehicules.write_bytes(b"\n".join([*lines[:5], *lines[6:], lines[2]]) + b"\n")
    _assert_same_build(raw, tmp_path)
    quality = json.loads((tmp_path / "reference" / dataset.SUMMARY_FILE).read_text())["quality"]
    assert quality["duplicate_rows_removed"] == {"usagers": 2, "vehicules": 1}
    assert quality["usagers_without_vehicle"] >= 1


# --- split --------------------------------------------------------------------------


def _labelled(n: int, share: float, repeats: int = 1) -> pd.DataFrame:
    ids = [f"2021{i:08d}" for i in range(n)]
    target = [1 if i < n * share else 0 for i in range(n)]
    frame = pd.DataFrame({contract.ACCIDENT_ID: ids, contract.TARGET: target, "row": 0})
    copies = [frame.assign(row=r) for r in range(repeats)]
    return pd.concat(copies, ignore_index=True)


def test_split_is_grouped_deterministic_and_near_the_class_mix() -> None:
    table = _labelled(1000, 0.37, repeats=3)
    train, test = dataset.split_table(table, test_size=0.3, seed=7)
    train_ids, test_ids = set(train[contract.ACCIDENT_ID]), set(test[contract.ACCIDENT_ID])
    assert not train_ids & test_ids, "an accident is on one side only"
    assert len(train) + len(test) == len(table)
    # A hash decides, not a draw of exactly 30% per class: close to the share and
    # to the class mix, within chance.
    assert 250 <= len(test_ids) <= 350
    # Every row of an accident follows it.
    assert test.groupby(contract.ACCIDENT_ID).size().eq(3).all()
    assert test[contract.TARGET].mean() == pytest.approx(0.37, abs=0.06)
    assert train[contract.TARGET].mean() == pytest.approx(0.37, abs=0.03)

    _, again_test = dataset.split_table(table.sample(frac=1, random_state=3), 0.3, 7)
    assert set(again_test[contract.ACCIDENT_ID]) == test_ids, "row order does not matter"
    _, other_test = dataset.split_table(table, 0.3, seed=8)
    assert set(other_test[contract.ACCIDENT_ID]) != test_ids


def test_split_mixed_labels_in_one_accident_stay_together() -> None:
    table = _labelled(50, 0.5, repeats=2)
    table.loc[len(table) - 1, contract.TARGET] = 1  # a feedback row disagreeing
    train, test = dataset.split_table(table, 0.3, 1)
    assert not set(train[contract.ACCIDENT_ID]) & set(test[contract.ACCIDENT_ID])


@pytest.mark.parametrize("size", [0, 1, -0.1, 1.5])
def test_split_rejects_bad_test_size(size: float) -> None:
    with pytest.raises(ValueError, match="test_size"):
        dataset.split_table(_labelled(10, 0.5), test_size=size)


# --- fingerprint --------------------------------------------------------------------


def test_fingerprint_ignores_row_and_column_order(tmp_path: Path, tiny_year) -> None:
    tiny_year(2021).write(tmp_path)
    table = dataset.build_table(_raw(tmp_path))
    reference = dataset.data_fingerprint(table)
    shuffled = table.sample(frac=1, random_state=0)[list(reversed(table.columns))]
    assert dataset.data_fingerprint(shuffled) == reference
    assert dataset.data_fingerprint(table.copy()) == reference
    assert len(reference) == 64 and int(reference, 16) >= 0


def test_fingerprint_follows_values_not_dtypes(tmp_path: Path, tiny_year) -> None:
    tiny_year(2021).write(tmp_path)
    table = dataset.build_table(_raw(tmp_path))
    reference = dataset.data_fingerprint(table)
    as_int = table.assign(year=table["year"].astype("Int64"))
    assert dataset.data_fingerprint(as_int) == reference
    changed = table.copy()
    changed.loc[0, "vma"] = 90.0
    assert dataset.data_fingerprint(changed) != reference
    missing = table.copy()
    missing.loc[0, "dep"] = None
    assert dataset.data_fingerprint(missing) != reference


def test_fingerprint_of_rows_without_unique_ids(tmp_path: Path, tiny_year) -> None:
    # Feedback rows appended to BAAC accidents: no accident id, extra columns of
    # other types. The digest must still ignore row order.
    tiny_year(2021).write(tmp_path)
    table = dataset.build_table(_raw(tmp_path))
    feedback = table.head(2).assign(
        **{contract.ACCIDENT_ID: None},
        received_at=pd.Timestamp("2026-01-02T03:04:05Z"),
        note=["ok", 3],
    )
    combined = pd.concat([table, feedback, feedback.iloc[:1]], ignore_index=True)
    reference = dataset.data_fingerprint(combined)
    assert dataset.data_fingerprint(combined.iloc[::-1]) == reference
    assert dataset.data_fingerprint(combined.iloc[:-1]) != reference


# --- the dataset build --------------------------------------------------------------


def test_build_dataset_writes_train_test_and_summary(tmp_path: Path, tiny_year) -> None:
    raw = tmp_path / "raw"
    tiny_year(2021).write(raw)
    tiny_year(2023).write(raw)
    out = tmp_path / "datasets" / "v1"
    summary = dataset.build_dataset(raw, out, seed=3, test_size=0.5)

    assert sorted(p.name for p in out.iterdir()) == [
        "summary.json",
        "test.parquet",
        "train.parquet",
    ]
    assert json.loads((out / "summary.json").read_text()) == summary
    train = pd.read_parquet(out / "train.parquet")
    test = pd.read_parquet(out / "test.parquet")
    assert list(train.columns) == list(dataset.OUTPUT_COLUMNS)
    assert train["dep"].dtype == object and train["vma"].dtype == "float64"
    assert summary["rows"] == {"total": 6, "train": len(train), "test": len(test)}
    assert summary["years"] == [2021, 2023]
    assert summary["class_balance"]["total"] == {"0": 2, "1": 4, "share_1": round(4 / 6, 4)}
    assert summary["quality"]["dropped_accidents"]["grav_unknown"]["count"] == 2
    assert summary["quality"]["grav"] == {"missing": 2, "invalid": 0}
    assert summary["missing_values"]["vma"] == 2
    assert set(summary["missing_values"]) == set(contract.FEATURE_NAMES)
    assert summary["source"] == str(raw.resolve())
    full = pd.concat([train, test], ignore_index=True)
    assert summary["fingerprint"] == dataset.data_fingerprint(full)
    # No staging folder left next to the build.
    assert [p.name for p in out.parent.iterdir()] == ["v1"]


def test_build_is_reproducible(tmp_path: Path, baac_samples: Path) -> None:
    first = dataset.build_dataset(baac_samples, tmp_path / "a")
    second = dataset.build_dataset(baac_samples, tmp_path / "b")
    assert first == second
    assert first["rows"]["total"] == sum(SAMPLE_ACCIDENTS.values())
    assert first["rows"]["test"] == pytest.approx(0.3 * first["rows"]["total"], abs=30)
    for year, share in SAMPLE_SHARES.items():
        assert first["per_year"][str(year)]["share_prioritaire"] == pytest.approx(share, abs=0.001)
    a = pd.read_parquet(tmp_path / "a" / "test.parquet")
    b = pd.read_parquet(tmp_path / "b" / "test.parquet")
    pd.testing.assert_frame_equal(a, b)


def test_rebuild_replaces_previous_build(tmp_path: Path, tiny_year) -> None:
    raw = tmp_path / "raw"
    tiny_year(2021).write(raw)
    out = tmp_path / "out"
    dataset.build_dataset(raw, out)
    (out / "stale.txt").write_text("from an older build")
    tiny_year(2023).write(raw)
    summary = dataset.build_dataset(raw, out)
    assert summary["years"] == [2021, 2023]
    assert not (out / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "raw"]


def test_refuses_to_replace_a_folder_that_is_not_a_build(tmp_path: Path, tiny_year) -> None:
    raw = tmp_path / "raw"
    tiny_year(2021).write(raw)
    with pytest.raises(TrainingError, match="refusing to replace"):
        dataset.build_dataset(raw, raw)
    assert len(list(raw.iterdir())) == 4


def _previous_build(tmp_path: Path, tiny_year) -> tuple[Path, Path, dict[str, bytes]]:
    raw = tmp_path / "raw"
    tiny_year(2021).write(raw)
    out = tmp_path / "out"
    dataset.build_dataset(raw, out)
    return raw, out, {p.name: p.read_bytes() for p in out.iterdir()}


@pytest.mark.parametrize(
    "damage",
    ["missing_table", "comma", "missing_column", "header_only", "truncated", "old_year"],
)
def test_bad_input_names_the_file_and_writes_nothing(tmp_path: Path, tiny_year, damage) -> None:
    raw = tmp_path / "raw"
    tiny = tiny_year(2016 if damage == "old_year" else 2021)
    if damage == "missing_column":
        tiny.drop_column("caracteristiques", "lat")
    paths = tiny.write(raw)
    target = paths["usagers"] if damage != "missing_column" else paths["caracteristiques"]
    if damage == "missing_table":
        target.unlink()
        target = raw
    elif damage == "comma":
        target.write_text(tiny.text("usagers", sep=","))
    elif damage == "header_only":
        target.write_text(tiny.text("usagers").splitlines()[0])
    elif damage == "truncated":
        target.write_text(tiny.text("usagers")[:-12])
    elif damage == "old_year":
        target = paths["caracteristiques"]
    out = tmp_path / "out"
    with pytest.raises(BaacFormatError) as caught:
        dataset.build_dataset(raw, out)
    message = str(caught.value)
    assert str(target) in message and "\n" not in message
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]


def test_bad_input_keeps_the_previous_build(tmp_path: Path, tiny_year) -> None:
    raw, out, before = _previous_build(tmp_path, tiny_year)
    (raw / "lieux-2021.csv").write_text("")
    with pytest.raises(BaacFormatError, match="empty file"):
        dataset.build_dataset(raw, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_failure_while_writing_keeps_the_previous_build(
    tmp_path: Path, tiny_year, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw, out, before = _previous_build(tmp_path, tiny_year)
    tiny_year(2023).write(raw)
    real_to_parquet = pd.DataFrame.to_parquet

    def failing_to_parquet(self: pd.DataFrame, path, *args, **kwargs):
        if Path(path).name == dataset.TEST_FILE:
            raise OSError("disk full")
        return real_to_parquet(self, path, *args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_parquet", failing_to_parquet)
    with pytest.raises(OSError, match="disk full"):
        dataset.build_dataset(raw, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "raw"]


def test_table_of_no_usable_accident_is_refused(tmp_path: Path, tiny_year) -> None:
    tiny = tiny_year(2021)
    for row in range(6):
        tiny.set("usagers", row, "grav", " -1")
    tiny.write(tmp_path / "raw")
    with pytest.raises(TrainingError, match="no accident with a known severity"):
        dataset.build_dataset(tmp_path / "raw", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_numeric_columns_have_no_nullable_dtypes(tmp_path: Path, tiny_year) -> None:
    tiny_year(2021).write(tmp_path)
    table = dataset.build_table(_raw(tmp_path))
    assert not any(isinstance(t, pd.api.extensions.ExtensionDtype) for t in table.dtypes)
    assert np.isnan(table["vma"]).sum() == 1

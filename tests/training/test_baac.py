"""BAAC reader: real samples of every year, each known quirk, and every bad input."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import pandas as pd
import pytest

from core import contract
from training import baac
from training.errors import BaacFormatError

# Row counts of the real extracts, from /work/shared/baac-samples/README.md.
SAMPLE_ROWS = {
    2019: (267, 267, 615, 449),
    2020: (269, 269, 591, 457),
    2021: (254, 254, 622, 426),
    2023: (264, 336, 584, 446),
    2024: (266, 341, 628, 447),
}


# --- real samples -------------------------------------------------------------------


@pytest.mark.parametrize("year", sorted(SAMPLE_ROWS))
def test_reads_every_sample_year(baac_samples: Path, year: int) -> None:
    files = baac.find_year_files(baac_samples / str(year))[year]
    raw = baac.read_year(files, year)
    accidents, _lieux_rows, persons, vehicles = SAMPLE_ROWS[year]

    assert len(raw.caracteristiques) == accidents
    # One lieux row per accident is kept, even from 2023 on.
    assert len(raw.lieux) == accidents
    assert raw.lieux[contract.ACCIDENT_ID].is_unique
    assert len(raw.usagers) == persons
    assert len(raw.vehicules) == vehicles
    assert raw.caracteristiques[contract.ACCIDENT_ID].is_unique
    assert set(raw.usagers[contract.ACCIDENT_ID]) <= set(raw.caracteristiques[contract.ACCIDENT_ID])

    carac = raw.caracteristiques
    assert carac["lat"].dtype == "float64" and carac["long"].dtype == "float64"
    assert carac["lat"].between(-90, 90).all() and carac["long"].between(-180, 180).all()
    assert carac["dep"].dropna().isin(list(contract.DEPARTMENTS)).all()
    assert carac["dep"].notna().all()
    assert str(raw.usagers["grav"].dtype) == "Int64"
    assert carac["hrmn"].str.fullmatch(r"\d\d:\d\d").all()
    # Ids lost their thousands separators, whatever the space and the encoding.
    assert raw.usagers["id_vehicule"].str.fullmatch(r"\d+").all()
    assert raw.vehicules["id_vehicule"].str.fullmatch(r"\d+").all()
    # " -1" is missing, never a code.
    assert not (raw.usagers["grav"] == -1).any()
    assert not (raw.lieux["vma"] == -1).any()


def test_sample_quirks_are_repaired(baac_samples: Path) -> None:
    years = {y.year: y for y in baac.read_raw(baac_samples)}
    assert sorted(years) == sorted(SAMPLE_ROWS)
    # 2019 writes "2" for the Aisne: normalised to the contract's "02".
    dep_2019 = years[2019].caracteristiques["dep"]
    assert "02" in set(dep_2019) and "2" not in set(dep_2019)
    # Corsica survives as 2A/2B.
    all_deps = pd.concat([y.caracteristiques["dep"] for y in years.values()])
    assert {"2A", "2B"} <= set(all_deps)
    # The double-encoded 2021 copy is repaired: no "Ã" left, accents back.
    adr_2021 = years[2021].caracteristiques["adr"].dropna()
    assert not adr_2021.str.contains("Ã|Â").any()
    assert adr_2021.str.contains("è").any()
    assert years[2021].usagers["id_vehicule"].iloc[0] == "201764"
    # 2023 usagers carry id_usager, earlier years do not.
    assert "id_usager" in years[2023].usagers and "id_usager" not in years[2021].usagers
    # Of the several lieux rows of a 2023 accident, the main road is kept.
    first = years[2023].lieux.iloc[0]
    assert first[contract.ACCIDENT_ID] == "202300000001" and first["voie"] == "RUE DE RIVOLI"


# --- quirks, one tiny year each -----------------------------------------------------


def _read(folder: Path, year: int) -> baac.RawYear:
    (raw,) = [y for y in baac.read_raw(folder) if y.year == year]
    return raw


def test_tiny_year_converts_values(tmp_path: Path, tiny_year) -> None:
    tiny_year(2021).write(tmp_path)
    raw = _read(tmp_path, 2021)
    carac = raw.caracteristiques
    assert list(carac[contract.ACCIDENT_ID]) == [f"20210000000{n}" for n in range(1, 5)]
    assert list(carac["dep"]) == ["2A", "2B", "33", "75"]
    assert carac.loc[2, "long"] == pytest.approx(-0.5792)
    assert pd.isna(carac.loc[2, "atm"])
    assert str(carac["atm"].dtype) == "Int64"
    assert carac.loc[0, "adr"] == "Route de l'Église"
    assert raw.lieux.loc[0, "larrout"] == pytest.approx(5.5)
    assert pd.isna(raw.lieux.loc[1, "vma"])
    usagers = raw.usagers
    assert usagers.loc[0, "id_vehicule"] == "201764"
    assert pd.isna(usagers.loc[4, "sexe"]) and pd.isna(usagers.loc[4, "an_nais"])
    assert usagers.loc[3, "actp"] == "B"
    assert pd.isna(usagers.loc[0, "actp"])


def test_2022_layout_accident_id_and_misspelt_name(tmp_path: Path, tiny_year) -> None:
    tiny_year(2022).write(
        tmp_path,
        names={"caracteristiques": "carcteristiques-2022.csv"},
        key_column="Accident_Id",
    )
    raw = _read(tmp_path, 2022)
    assert raw.files["caracteristiques"].name == "carcteristiques-2022.csv"
    assert contract.ACCIDENT_ID in raw.caracteristiques
    assert raw.caracteristiques[contract.ACCIDENT_ID].iloc[0] == "202200000001"


def test_2023_layout_id_usager_and_several_lieux_rows(tmp_path: Path, tiny_year) -> None:
    tiny_year(2023).write(tmp_path, names={"caracteristiques": "caract-2023.csv"})
    raw = _read(tmp_path, 2023)
    assert raw.usagers["id_usager"].iloc[0] == "203851180"
    assert len(raw.lieux) == 4
    # The departmental road at 80 km/h, not the 30 km/h "RUE DE LA GARE" (catr 4).
    assert raw.lieux.loc[0, "voie"] == "D81"


@pytest.mark.parametrize("order", [[0, 1, 2], [2, 1, 0], [1, 2, 0]])
def test_main_lieux_row_depends_on_content_not_order(order: list[int]) -> None:
    rows = pd.DataFrame(
        {
            contract.ACCIDENT_ID: ["1", "1", "1"],
            "catr": pd.array([4, 3, 3], dtype="Int64"),
            "vma": pd.array([50, 80, pd.NA], dtype="Int64"),
            "voie": ["RUE", "D81", "D81 BIS"],
        }
    )
    kept = baac.main_lieux(rows.iloc[order])
    assert kept["voie"].tolist() == ["D81"]  # highest road class, then fastest


def test_2024_capitalised_underscore_name(tmp_path: Path, tiny_year) -> None:
    tiny_year(2024).write(tmp_path, names={"caracteristiques": "Caract_2024.csv"})
    assert len(_read(tmp_path, 2024).caracteristiques) == 4


def test_bare_empty_fields_2020(tmp_path: Path, tiny_year) -> None:
    paths = tiny_year(2020).write(tmp_path, bare_empty=True)
    assert ';;"' in paths["lieux"].read_text() and paths["vehicules"].read_text().count(";\n")
    raw = _read(tmp_path, 2020)
    assert pd.isna(raw.lieux.loc[0, "lartpc"])
    assert pd.isna(raw.vehicules.loc[0, "occutc"])
    assert pd.isna(raw.usagers.loc[4, "an_nais"])


@pytest.mark.parametrize("encoding", ["cp1252", "latin-1", "double"])
def test_encodings_are_decoded_or_repaired(tmp_path: Path, tiny_year, encoding: str) -> None:
    tiny_year(2021).write(tmp_path, encoding=encoding)
    raw = _read(tmp_path, 2021)
    assert raw.caracteristiques.loc[1, "adr"] == "Rue des Pèlerins"
    assert raw.lieux.loc[1, "voie"] == "RUE DES PÈLERINS"
    assert raw.usagers.loc[0, "id_vehicule"] == "201764"


def test_mixed_mojibake_is_repaired_per_sequence(tmp_path: Path, tiny_year) -> None:
    # One damaged value in an otherwise clean UTF-8 file: the whole text does not
    # round-trip, each damaged sequence does.
    tiny_year(2021).set("caracteristiques", 1, "adr", "Rue des PÃ¨lerins").write(tmp_path)
    adr = _read(tmp_path, 2021).caracteristiques["adr"]
    assert list(adr.iloc[:2]) == ["Route de l'Église", "Rue des Pèlerins"]


@pytest.mark.parametrize(
    ("raw_id", "expected"),
    [("201 764", "201764"), (f"201{chr(0xA0)}764", "201764"), ("201\u202f764", "201764")],
)
def test_thousands_separators_in_ids(tmp_path: Path, tiny_year, raw_id: str, expected: str) -> None:
    tiny = tiny_year(2021).set("usagers", 0, "id_vehicule", raw_id)
    tiny.write(tmp_path)
    assert _read(tmp_path, 2021).usagers.loc[0, "id_vehicule"] == expected


@pytest.mark.parametrize(
    ("hrmn", "expected"),
    [("08:05", "08:05"), ("8:05", "08:05"), ("1530", "15:30"), ("5", "00:05"),
     ("0930", "09:30"), ("25:00", None), ("12:75", None), ("", None), (" -1", None)],
)  # fmt: skip
def test_hrmn_layouts(hrmn: str, expected: str | None) -> None:
    result = baac.normalise_hrmn(pd.Series([hrmn], dtype="object")).iloc[0]
    assert result == expected
    hour = baac.hour_from_hrmn(pd.Series([hrmn], dtype="object")).iloc[0]
    assert (math.isnan(hour) and expected is None) or hour == int(expected[:2])


@pytest.mark.parametrize(
    ("dep", "expected"),
    [("2", "02"), ("02", "02"), ("2A", "2A"), ("2b", "2B"), (" 75", "75"), ("971", "971"),
     ("20", None), ("590", None), (" -1", None), ("", None)],
)  # fmt: skip
def test_department_codes(dep: str, expected: str | None) -> None:
    assert baac.normalise_departments(pd.Series([dep], dtype="object")).iloc[0] == expected


def test_files_of_several_years_side_by_side_and_in_subfolders(tmp_path: Path, tiny_year) -> None:
    tiny_year(2020).write(tmp_path)
    tiny_year(2021).write(tmp_path)
    # A subfolder named after the year lends its year to names without one.
    tiny_year(2023).write(
        tmp_path / "2023",
        names={t: f"{t}.csv" for t in baac.TABLES} | {"caracteristiques": "caract.csv"},
    )
    (tmp_path / "README.md").write_text("not a table")
    (tmp_path / "vehicules-immatricules-baac-2021.csv").write_text("other table")
    found = baac.find_year_files(tmp_path)
    assert sorted(found) == [2020, 2021, 2023]
    assert found[2021]["vehicules"].name == "vehicules-2021.csv"
    assert found[2023]["caracteristiques"].name == "caract.csv"
    assert [y.year for y in baac.read_raw(tmp_path)] == [2020, 2021, 2023]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("caracteristiques-2019.csv", ("caracteristiques", 2019)),
        ("carcteristiques-2022.csv", ("caracteristiques", 2022)),
        ("caract-2023.csv", ("caracteristiques", 2023)),
        ("Caract_2024.csv", ("caracteristiques", 2024)),
        ("caractéristiques_2020.csv", ("caracteristiques", 2020)),
        ("lieux-2021.csv", ("lieux", 2021)),
        ("usagers-2022 (1).csv", ("usagers", 2022)),
        ("vehicules.csv", ("vehicules", None)),
        ("vehicules-immatricules-baac-2023.csv", None),
        ("usagers-2021.xlsx", None),
        ("description-2021.csv", None),
    ],
)
def test_classify_name(name: str, expected: tuple[str, int | None] | None) -> None:
    assert baac.classify_name(name) == expected


# --- bad input ----------------------------------------------------------------------


def _assert_one_line_naming(error: BaacFormatError, path: Path, words: str) -> None:
    message = str(error)
    assert "\n" not in message
    assert str(path) in message
    assert words in message


def test_missing_table(tmp_path: Path, tiny_year) -> None:
    paths = tiny_year(2021).write(tmp_path)
    paths["usagers"].unlink()
    with pytest.raises(BaacFormatError) as caught:
        baac.read_raw(tmp_path)
    _assert_one_line_naming(caught.value, tmp_path, "missing the usagers table of 2021")


def test_comma_separated_file(tmp_path: Path, tiny_year) -> None:
    tiny = tiny_year(2021)
    paths = tiny.write(tmp_path)
    paths["lieux"].write_text(tiny.text("lieux", sep=","))
    with pytest.raises(BaacFormatError) as caught:
        baac.read_raw(tmp_path)
    _assert_one_line_naming(caught.value, paths["lieux"], "expected ';'-separated BAAC table")


@pytest.mark.parametrize("damage", ["utf-16", "gzip", "binary"])
def test_undecodable_file(tmp_path: Path, tiny_year, damage: str) -> None:
    tiny = tiny_year(2021)
    paths = tiny.write(tmp_path)
    text = tiny.text("usagers")
    data = {
        "utf-16": text.encode("utf-16"),
        "gzip": gzip.compress(text.encode("utf-8")),
        "binary": bytes(range(256)) * 4,
    }[damage]
    paths["usagers"].write_bytes(data)
    with pytest.raises(BaacFormatError) as caught:
        baac.read_raw(tmp_path)
    _assert_one_line_naming(caught.value, paths["usagers"], "cannot decode")


def test_missing_required_columns(tmp_path: Path, tiny_year) -> None:
    paths = tiny_year(2021).drop_column("usagers", "grav").write(tmp_path)
    with pytest.raises(BaacFormatError) as caught:
        baac.read_raw(tmp_path)
    _assert_one_line_naming(caught.value, paths["usagers"], "missing required columns grav")


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", "empty file"),
        (b"  \n\n", "empty file"),
        (b'"Num_Acc";"catr";"voie"\n', "missing required columns"),
    ],
)
def test_empty_or_headless_files(tmp_path: Path, tiny_year, content: bytes, words: str) -> None:
    paths = tiny_year(2021).write(tmp_path)
    paths["lieux"].write_bytes(content)
    with pytest.raises(BaacFormatError) as caught:
        baac.read_raw(tmp_path)
    _assert_one_line_naming(caught.value, paths["lieux"], words)


def test_header_only(tmp_path: Path, tiny_year) -> None:
    tiny = tiny_year(2021)
    paths = tiny.write(tmp_path)
    paths["vehicules"].write_text(tiny.text("vehicules").splitlines()[0] + "\n")
    with pytest.raises(BaacFormatError) as caught:
        baac.read_raw(tmp_path)
    _assert_one_line_naming(caught.value, paths["vehicules"], "no data rows (header only)")


@pytest.mark.parametrize("cut", ["fields", "quote"])
def test_truncated_last_line(tmp_path: Path, tiny_year, cut: str) -> None:
    tiny = tiny_year(2021)
    paths = tiny.write(tmp_path)
    text = tiny.text("usagers").rstrip("\n")
    # Cut the file in the middle of its last line: fewer fields, or an open quote.
    cut_at = text.rindex(";") if cut == "fields" else text.rindex('"')
    paths["usagers"].write_text(text[:cut_at] + "\n")
    with pytest.raises(BaacFormatError) as caught:
        baac.read_raw(tmp_path)
    _assert_one_line_naming(caught.value, paths["usagers"], "malformed row")
    if cut == "fields":
        assert "at line 7" in str(caught.value)


def test_row_with_too_many_fields(tmp_path: Path, tiny_year) -> None:
    tiny = tiny_year(2021)
    paths = tiny.write(tmp_path)
    paths["caracteristiques"].write_text(tiny.text("caracteristiques") + '"x";' * 16 + '"x"\n')
    with pytest.raises(BaacFormatError) as caught:
        baac.read_raw(tmp_path)
    _assert_one_line_naming(caught.value, paths["caracteristiques"], "malformed row at line 6")


def test_unknown_year_layout(tmp_path: Path, tiny_year) -> None:
    paths = tiny_year(2016).write(tmp_path)
    with pytest.raises(BaacFormatError) as caught:
        baac.read_raw(tmp_path)
    _assert_one_line_naming(caught.value, paths["caracteristiques"], "unknown year layout")


def test_duplicate_accident_ids(tmp_path: Path, tiny_year) -> None:
    paths = tiny_year(2021).set("caracteristiques", 1, "Num_Acc", "202100000001").write(tmp_path)
    with pytest.raises(BaacFormatError) as caught:
        baac.read_raw(tmp_path)
    _assert_one_line_naming(caught.value, paths["caracteristiques"], "appears more than once")


def test_two_files_for_one_table(tmp_path: Path, tiny_year) -> None:
    tiny_year(2021).write(tmp_path)
    tiny_year(2021).write(tmp_path / "copy")
    with pytest.raises(BaacFormatError) as caught:
        baac.read_raw(tmp_path)
    assert "second caracteristiques file for 2021" in str(caught.value)


def test_no_tables_or_no_folder(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("nothing here")
    with pytest.raises(BaacFormatError, match="no BAAC tables found"):
        baac.read_raw(tmp_path)
    with pytest.raises(BaacFormatError, match="folder does not exist"):
        baac.read_raw(tmp_path / "absent")

"""The synthetic BAAC generator: the files look like the published ones, the same
arguments give the same bytes, the severity mix is 2021's, drifts move what they
claim to move, and the real loader and a simple model can use the data."""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits

from core import contract
from training.baac import read_raw
from training.dataset import build_table
from training.synthetic import GRAV_TARGET, TABLES, DriftKind, synthesize

SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "baac-samples"
SAMPLE_YEARS = sorted(int(p.name) for p in SAMPLES.glob("20[0-9][0-9]")) if SAMPLES.is_dir() else []
ALL_YEARS = (2019, 2020, 2021, 2022, 2023, 2024)
TWO_WHEELERS = {"1", "2", "30", "31", "32", "33", "34", "41", "42", "43", "50", "60", "80"}


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep=";", dtype=str, keep_default_na=False, encoding="utf-8")


def _sample_file(year: int, table: str) -> Path:
    return SAMPLES / str(year) / f"{table}-{year}.csv"


def _sample_text(year: int, table: str) -> str:
    text = _sample_file(year, table).read_text(encoding="utf-8")
    # The 2021 copy was saved double-encoded by a download script; the official file
    # is clean UTF-8, which is what the generator writes.
    return text.encode("latin-1").decode("utf-8") if year == 2021 else text


@pytest.fixture(scope="module")
def generate(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., dict[str, Path]]:
    """synthesize() into a fresh folder, each distinct call done once per module."""
    done: dict[tuple[object, ...], dict[str, Path]] = {}

    def run(**kwargs: object) -> dict[str, Path]:
        key = tuple(sorted(kwargs.items()))
        if key not in done:
            done[key] = synthesize(tmp_path_factory.mktemp("baac"), **kwargs)
        return done[key]

    return run


# --- files and format --------------------------------------------------------------


@pytest.mark.parametrize("year", ALL_YEARS)
def test_writes_the_four_tables_under_their_published_names(generate, year):
    files = generate(accidents=50, year=year)
    assert set(files) == set(TABLES)
    caracteristiques = "carcteristiques" if year == 2022 else "caracteristiques"
    assert files["caracteristiques"].name == f"{caracteristiques}-{year}.csv"
    for table in ("lieux", "usagers", "vehicules"):
        assert files[table].name == f"{table}-{year}.csv"
    assert sorted(p.name for p in files["lieux"].parent.iterdir()) == sorted(
        p.name for p in files.values()
    ), "no temporary file may be left behind"


def test_same_arguments_give_identical_bytes_and_another_seed_does_not(tmp_path):
    first = synthesize(tmp_path / "a", accidents=2_000, seed=3)
    again = synthesize(tmp_path / "b", accidents=2_000, seed=3)
    other = synthesize(tmp_path / "c", accidents=2_000, seed=4)
    for table in TABLES:
        assert first[table].read_bytes() == again[table].read_bytes(), table
        assert first[table].read_bytes() != other[table].read_bytes(), table


def test_drifted_data_is_deterministic_too(tmp_path):
    first = synthesize(tmp_path / "a", accidents=500, seed=3, drift=DriftKind.TWO_WHEELERS)
    again = synthesize(tmp_path / "b", accidents=500, seed=3, drift=DriftKind.TWO_WHEELERS)
    assert all(first[t].read_bytes() == again[t].read_bytes() for t in TABLES)


# The sha256 of every file of one small generated year per layout (2019 to 2025, the
# last reusing 2024's), with and without each drift kind: a change of the generator's
# code that is meant to keep its output must keep these. They change only with an
# intended change of the data (a new distribution, a format fix) or with a numpy
# release that changes its random streams; then record the new ones and say why.
FINGERPRINTS: dict[tuple[int, str | None], dict[str, str]] = {
    (2019, None): {
        "caracteristiques": "81fede58a04f4086c0f6d5d202a40ebb2cd3af414e915169268e50c9f4d56bb1",
        "lieux": "6940e2c6edb0dc470dcc1cbee4af40bec1cd5674b9e4b112cb7be864f416235d",
        "usagers": "84605a71b7bf4a76b5d20711a4f2e52edc02be92fd6e2bd47ee698dc7fb923fc",
        "vehicules": "c186fa2122bfd45235d29de34b5030d3b4cc3d7af237ae523f6bae5d7f96e553",
    },
    (2020, "two-wheelers"): {
        "caracteristiques": "bf7f4f889fc7539174cfc792a426ea0baa0aa716aa6aa4252a75ec74e9a8e302",
        "lieux": "cded10ac384ef14bd8a38df4a0780afe649b76bd5ad035cd112e1668b4793f7e",
        "usagers": "81be56df60c79d5bcfd6041e8d92e44d09b78ee8d6e8c6d5ebfa2a5281b06c8a",
        "vehicules": "f8b51623bb7fa203ddb9996b1f646bddfc72bd0d31dbd12d6c644e3467c2c444",
    },
    (2021, None): {
        "caracteristiques": "007b7b3c609163986e9a214fac11e5c86d2a03b03685c6a0ad530fd6d3c7e18f",
        "lieux": "660530f0e8bbab6d56ced3b96461b2bddc86cc1488e09430177502533321761d",
        "usagers": "35c6357abc577a47f6012fc6576ed9ff777e931c7e85798f9b2b2c7187b0774a",
        "vehicules": "305bafebbb45b18c1c9c62353d22dd66ba4859eb355d0db48f721f9786ea9c5b",
    },
    (2022, "bad-weather"): {
        "caracteristiques": "e6e579e4c843434c6be7875039f407aef00520027f7fa16fe2c91b8a28e61f9a",
        "lieux": "ac18b8918da2866a4674908fd23185a6bcc84de740c70c073beecc004457ec96",
        "usagers": "12df368566756e5336ffab0a0a0ea026603b6b643ba39737ff55bbaca3daaff0",
        "vehicules": "7dd08c0322b92fcc732db4efe3ab44bfd7a51b501ac848d734d01b16d0063a60",
    },
    (2023, "night-rural"): {
        "caracteristiques": "b81330fc03ad4913cf92281eb4fc5bfea52a7a1db2ff2e96b74dc9652d4e4fe6",
        "lieux": "b8b224fc2f574e49c683c102e00ae3f5c998078fccb8a9124fce726544fea3a3",
        "usagers": "b113429a601a88ed693b144a77bf49b96e036e64e1b7b8a28cd88d99e68f95b0",
        "vehicules": "aacb94c7809c4711e7fb942a22006984b7fa0d70d50e15047a9f3f144daf6e9d",
    },
    (2024, "older-victims"): {
        "caracteristiques": "d5023a5c54553fe1625f988408d58f2b52b6cd4eefc1e8e4a0451d45e5383232",
        "lieux": "c82370085efe617fce864e9534088424b107c6df3e060c9c93b602c837ab4b74",
        "usagers": "dcc7d9e7abcdb5155d452119244bc07adc6b8b7d68cc7997cc53f4eaf016c17a",
        "vehicules": "76dac3201cd9617db689b9173ae9805690c6f6d06fdf25bef2ece3e1f3e43648",
    },
    (2025, None): {
        "caracteristiques": "04e085e2d26d59943528aecdda7ef746556448c61ab29aee956d351e81efca70",
        "lieux": "55c4340f569e4e66f5aa489fb2a6dcc875078f628a7c49f0e3b7e9a68e16edfe",
        "usagers": "34beee194bb9634f91839c88c539ab93b4366ecc4a23aabb225429cc3ddd4079",
        "vehicules": "59fc8ea843c051a2ed7dd7ed1b83546fbb3e41d1e52002d9cd73774d0af06285",
    },
}


@pytest.mark.parametrize(("year", "drift"), list(FINGERPRINTS))
def test_output_is_byte_identical_to_the_recorded_fingerprint(tmp_path, year, drift):
    files = synthesize(tmp_path, accidents=1500, seed=11, year=year, drift=drift)
    digests = {
        table: hashlib.sha256(path.read_bytes()).hexdigest() for table, path in files.items()
    }
    assert digests == FINGERPRINTS[(year, drift)]


def test_an_existing_file_is_replaced(tmp_path):
    (tmp_path / "lieux-2021.csv").write_text("stale")
    files = synthesize(tmp_path, accidents=20)
    assert files["lieux"].read_text(encoding="utf-8").startswith('"Num_Acc";"catr"')


@pytest.mark.parametrize(("kwargs", "message"), [({"year": 2018}, "2019"), ({"accidents": 0}, "1")])
def test_refuses_what_it_cannot_generate(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        synthesize(tmp_path, **kwargs)
    assert not any(tmp_path.iterdir())


@pytest.mark.skipif(not SAMPLE_YEARS, reason="no real BAAC samples next to the repository")
@pytest.mark.parametrize("year", SAMPLE_YEARS or [0])
def test_headers_are_those_of_the_real_files(generate, year):
    files = generate(accidents=50, year=year)
    for table in TABLES:
        real = _sample_file(year, table).read_bytes().split(b"\n", 1)[0]
        assert files[table].read_bytes().split(b"\n", 1)[0] == real, table


def _fields(line: str) -> list[str]:
    return line.split(";")


@pytest.mark.parametrize("year", ALL_YEARS)
def test_every_field_is_quoted_and_2020_leaves_empty_ones_bare(generate, year):
    files = generate(accidents=300, year=year)
    for table in TABLES:
        text = files[table].read_text(encoding="utf-8")
        assert text.endswith("\n") and "\r" not in text
        lines = text.splitlines()
        width = len(_fields(lines[0]))
        for line in lines:
            fields = _fields(line)
            assert len(fields) == width, line
            for field in fields:
                if year == 2020:
                    assert field == "" or re.fullmatch(r'"[^"]+"', field), line
                else:
                    assert re.fullmatch(r'"[^"]*"', field), line
    lieux = files["lieux"].read_text(encoding="utf-8")
    if year == 2020:
        assert '""' not in lieux and ";;" in lieux
    else:
        assert ';"";' in lieux  # lartpc is empty and quoted


def _shape(value: str) -> str:
    """A value's shape: digit runs become 9, letter runs A (``" -0,96"`` -> ``" -9,9"``)."""
    return re.sub(r"[^\W\d_]+", "A", re.sub(r"\d+", "9", value))


# The samples are a few hundred rows: codes they happen not to contain are fine.
_SHAPES_ABSENT_FROM_SMALL_SAMPLES = {" -9", "", "A"}


@pytest.mark.skipif(not SAMPLE_YEARS, reason="no real BAAC samples next to the repository")
@pytest.mark.parametrize("year", SAMPLE_YEARS or [0])
def test_every_value_has_a_shape_the_real_files_have(generate, year):
    """Sentinels with their leading space, decimal commas and their number of
    decimals, zero-padding, non-breaking thousands separators, N/A, (1)... per column."""
    files = generate(accidents=2_000, year=year)
    for table in TABLES:
        real = pd.read_csv(
            io.StringIO(_sample_text(year, table)), sep=";", dtype=str, keep_default_na=False
        )
        synthetic = _read(files[table])
        for column in real.columns.drop(["adr", "voie"], errors="ignore"):
            allowed = set(real[column].map(_shape)) | _SHAPES_ABSENT_FROM_SMALL_SAMPLES
            unknown = set(synthetic[column].map(_shape)) - allowed
            assert not unknown, f"{table}.{column}: {unknown} never seen in {year}"


def test_identifiers_and_codes_follow_the_published_conventions(generate):
    files = generate(accidents=2_000, year=2019)
    carac = _read(files["caracteristiques"])
    assert carac["Num_Acc"].iloc[0] == "201900000001"
    assert carac["Num_Acc"].is_unique
    assert set(carac["mois"]) <= {str(m) for m in range(1, 13)}  # no zero before 2021
    assert {"2A", "2B"} & set(carac["dep"]) and {"971", "974"} & set(carac["dep"])
    assert "02" not in set(carac["dep"]) and "2" in set(carac["dep"])  # 2019 drops the zero
    pairs = zip(carac["dep"], carac["com"], strict=True)
    assert all(com.startswith(dep.zfill(2)) and len(com) == 5 for dep, com in pairs)
    assert carac["hrmn"].str.fullmatch(r"\d\d:\d\d").all()
    assert carac["lat"].str.fullmatch(r"( -)?\d+,\d{7}").all()

    vehicules = _read(files["vehicules"])
    assert vehicules["id_vehicule"].str.fullmatch(r"\d{1,3}(\u00a0\d{3})*").all()
    assert vehicules["id_vehicule"].is_unique
    assert set(vehicules["num_veh"]) >= {"A01", "B01", "C01"}


def test_2022_uses_its_own_key_name_and_has_user_ids(generate):
    files = generate(accidents=200, year=2022)
    assert _read(files["caracteristiques"]).columns[0] == "Accident_Id"
    usagers = _read(files["usagers"])
    assert list(usagers.columns[:3]) == ["Num_Acc", "id_usager", "id_vehicule"]
    assert usagers["id_usager"].is_unique


def test_several_lieux_rows_per_accident_from_2023_only(generate):
    for year, expected in ((2021, (1.0, 1.0)), (2023, (1.15, 1.4))):
        files = generate(accidents=2_000, year=year)
        rows = len(_read(files["lieux"])) / len(_read(files["caracteristiques"]))
        assert expected[0] <= rows <= expected[1], year


# --- content -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tables_2021(generate) -> dict[str, pd.DataFrame]:
    files = generate(accidents=20_000, seed=11)
    return {table: _read(path) for table, path in files.items()}


def test_person_level_severity_mix_is_2021s(tables_2021):
    grav = tables_2021["usagers"]["grav"].str.strip().astype(int)
    shares = grav.value_counts(normalize=True)
    for code, target in GRAV_TARGET.items():
        assert shares.get(code, 0.0) == pytest.approx(target, abs=0.015), code


def test_sizes_and_links_are_those_of_a_baac_year(tables_2021):
    carac, usagers, vehicules = (
        tables_2021[t] for t in ("caracteristiques", "usagers", "vehicules")
    )
    accidents = len(carac)
    assert len(usagers) / accidents == pytest.approx(2.3, abs=0.1)
    assert len(vehicules) / accidents == pytest.approx(1.73, abs=0.05)
    assert 0.6 <= (carac["agg"] == "2").mean() <= 0.72
    assert (carac["lum"] == "1").mean() > 0.6
    # Every person points at a vehicle of their own accident, pedestrians included.
    known = set(zip(vehicules["Num_Acc"], vehicules["id_vehicule"], strict=True))
    assert set(zip(usagers["Num_Acc"], usagers["id_vehicule"], strict=True)) <= known
    pedestrians = usagers[usagers["catu"] == "3"]
    assert len(pedestrians) > 0 and (pedestrians["place"] == "10").all()
    # A BAAC accident has at least one injured person.
    grav = usagers["grav"].astype(int)
    assert grav.isin([2, 3, 4]).groupby(usagers["Num_Acc"]).any().all()
    catv = vehicules["catv"].value_counts(normalize=True)
    assert catv.index[0] == "7" and catv["7"] > 0.5
    vma = tables_2021["lieux"]["vma"].value_counts()
    assert list(vma.index[:2]) == ["50", "80"]


def test_severity_follows_its_causes(tables_2021):
    usagers, vehicules = tables_2021["usagers"], tables_2021["vehicules"]
    persons = usagers.merge(vehicules[["id_vehicule", "catv"]], on="id_vehicule")
    severe = persons["grav"].isin(["2", "3"])

    def rate(mask: pd.Series) -> float:
        return float(severe[mask].mean())

    car_driver = (persons["catv"] == "7") & (persons["catu"] == "1")
    assert rate(persons["catu"] == "3") > 2 * rate(car_driver)
    assert rate(persons["catv"].isin(["33", "34"]) & (persons["catu"] == "1")) > 2 * rate(
        car_driver
    )
    age = 2021 - pd.to_numeric(persons["an_nais"], errors="coerce")
    assert rate(car_driver & (age >= 75)) > rate(car_driver & age.between(25, 50))
    assert rate(car_driver & (persons["secu1"] == "0")) > rate(
        car_driver & (persons["secu1"] == "1")
    )


# --- drift -----------------------------------------------------------------------------


def _night(t: dict[str, pd.DataFrame]) -> float:
    hour = t["caracteristiques"]["hrmn"].str[:2].astype(int)
    return float(((hour >= 21) | (hour < 6)).mean())


def _rural(t: dict[str, pd.DataFrame]) -> float:
    return float((t["caracteristiques"]["agg"] == "1").mean())


def _two_wheelers(t: dict[str, pd.DataFrame]) -> float:
    return float(t["vehicules"]["catv"].isin(TWO_WHEELERS).mean())


def _median_age(t: dict[str, pd.DataFrame]) -> float:
    return float((2021 - pd.to_numeric(t["usagers"]["an_nais"], errors="coerce")).median())


def _bad_weather(t: dict[str, pd.DataFrame]) -> float:
    return float((t["caracteristiques"]["atm"] != "1").mean())


DRIFT_EXPECTATIONS = {
    DriftKind.NIGHT_RURAL: [(_night, 0.15), (_rural, 0.1)],
    DriftKind.TWO_WHEELERS: [(_two_wheelers, 0.2)],
    DriftKind.OLDER_VICTIMS: [(_median_age, 8.0)],
    DriftKind.WEATHER: [(_bad_weather, 0.25)],
}


def test_every_drift_kind_has_an_expectation():
    assert set(DRIFT_EXPECTATIONS) == set(DriftKind)


@pytest.mark.parametrize("drift", list(DriftKind))
def test_drift_moves_the_intended_columns_and_only_those(generate, drift):
    def load(**kwargs: object) -> dict[str, pd.DataFrame]:
        return {t: _read(p) for t, p in generate(accidents=5_000, seed=5, **kwargs).items()}

    base, drifted = load(), load(drift=drift)
    for measure, minimum_rise in DRIFT_EXPECTATIONS[drift]:
        assert measure(drifted) - measure(base) >= minimum_rise, measure.__name__
    untouched = [
        m for kind, checks in DRIFT_EXPECTATIONS.items() if kind is not drift for m, _ in checks
    ]
    for measure in untouched:
        if drift is DriftKind.OLDER_VICTIMS and measure in (_two_wheelers, _night):
            continue  # an older population also rides less and drives less at night
        assert abs(measure(drifted) - measure(base)) < max(0.05, 0.1 * abs(measure(base))), (
            measure.__name__
        )


def test_drift_accepts_its_string_value(tmp_path):
    files = synthesize(tmp_path, accidents=100, drift="night-rural")
    assert files["caracteristiques"].exists()


# --- the real loader and a model -----------------------------------------------------


def _valid(table: pd.DataFrame) -> None:
    assert contract.TARGET in table
    for feature in contract.FEATURES:
        values = table[feature.name].dropna()
        bad = [v for v in values.unique() if not feature.is_valid(_python(v))]
        assert not bad, f"{feature.name}: {bad[:5]}"


def _python(value: object) -> object:
    return value.item() if isinstance(value, np.generic) else value


@pytest.mark.parametrize("year", ALL_YEARS)
def test_the_real_loader_reads_every_year(generate, year):
    files = generate(accidents=300, year=year)
    table = build_table(read_raw(files["lieux"].parent))
    assert len(table) == 300
    assert 0.2 < table[contract.TARGET].mean() < 0.5
    _valid(table)


@pytest.mark.parametrize("drift", list(DriftKind))
def test_drifted_data_stays_valid_baac(generate, drift):
    files = generate(accidents=1_000, seed=5, drift=drift)
    table = build_table(read_raw(files["lieux"].parent))
    assert len(table) == 1_000
    _valid(table)


def test_a_simple_model_learns_the_severity(generate):
    table = build_table(read_raw(generate(accidents=5_000, seed=21)["lieux"].parent))
    features, target = contract.encode_frame(table), table[contract.TARGET].to_numpy()
    cut = 3_500
    # One thread: on a busy runner OpenMP's threads fight and the fit takes many times
    # as long.
    with threadpool_limits(1):
        model = HistGradientBoostingClassifier(random_state=0).fit(features[:cut], target[:cut])
    auc = roc_auc_score(target[cut:], model.predict_proba(features[cut:])[:, 1])
    assert auc > 0.7


@pytest.mark.slow
def test_default_size_matches_a_2021_year(tmp_path):
    files = synthesize(tmp_path)
    carac, usagers = _read(files["caracteristiques"]), _read(files["usagers"])
    assert len(carac) == 56_000
    assert len(usagers) == pytest.approx(129_000, rel=0.03)
    grav = usagers["grav"].astype(int)
    for code, target in GRAV_TARGET.items():
        assert (grav == code).mean() == pytest.approx(target, abs=0.005)
    prioritaire = grav.isin([2, 3]).groupby(usagers["Num_Acc"]).any().mean()
    assert 0.3 < prioritaire < 0.4

"""Build the modelling table from BAAC years, split it, and write a dataset build.

One row per accident, described by its most severely hurt person (killed, then
hospitalised, then slightly injured, then unharmed), that person's vehicle, the place
and the circumstances. The target says whether that person was killed or
hospitalised: the accidents a triage should send resources to first.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from training import baac, contract, split
from training.errors import BaacFormatError, TrainingError

logger = logging.getLogger(__name__)

TRAIN_FILE = "train.parquet"
TEST_FILE = "test.parquet"
SUMMARY_FILE = "summary.json"
YEAR = "year"

OUTPUT_COLUMNS: tuple[str, ...] = (
    contract.ACCIDENT_ID,
    YEAR,
    *contract.FEATURE_NAMES,
    contract.TARGET,
)

# Rank of each grav code from most to least severe: killed (2), hospitalised (3),
# slightly injured (4), unharmed (1). Missing grav ranks after all of them.
_SEVERITY_RANK: dict[int, int] = {2: 0, 3: 1, 4: 2, 1: 3}
_MISSING_RANK = len(_SEVERITY_RANK)
_PRIORITY_GRAV = (2, 3)
_PEDESTRIAN_CATU = 3
_PEDESTRIAN_PLACE = 10

DROP_REASONS: dict[str, str] = {
    "no_usagers": "no usagers row names the accident, so it has no target",
    "all_grav_missing": "every person of the accident has grav missing (-1), so no target",
}


@dataclass(frozen=True)
class TableBuild:
    """The modelling table and what was left out of it."""

    table: pd.DataFrame
    dropped: dict[str, int] = field(default_factory=dict)
    """Accidents dropped, by reason (keys of :data:`DROP_REASONS`)."""
    orphan_rows: dict[str, int] = field(default_factory=dict)
    """Rows of lieux/usagers/vehicules whose accident is not in caracteristiques."""


def build_table(years: list[baac.RawYear]) -> pd.DataFrame:
    """The modelling table: :data:`OUTPUT_COLUMNS`, one row per accident."""
    return assemble(years).table


def assemble(years: Sequence[baac.RawYear]) -> TableBuild:
    """:func:`build_table` with the counts of what was dropped, for the summary."""
    if not years:
        raise TrainingError("no BAAC year to build a table from")
    carac = _concat([y.caracteristiques.assign(**{YEAR: y.year}) for y in years])
    _check_unique_accidents(carac, years)
    usagers = _concat([y.usagers for y in years])
    vehicules = _concat([y.vehicules for y in years])
    lieux = _concat([y.lieux for y in years]).drop_duplicates(contract.ACCIDENT_ID)

    key = contract.ACCIDENT_ID
    known = carac[key]
    orphan_rows = {
        name: int((~frame[key].isin(known)).sum())
        for name, frame in (("lieux", lieux), ("usagers", usagers), ("vehicules", vehicules))
    }

    # Keys are unique on the right of every merge by construction (checked
    # caracteristiques ids, drop_duplicates elsewhere): no costly validate= needed.
    worst = _worst_person(usagers)
    table = carac.merge(worst, on=key, how="left")
    table = table.merge(_vehicle_of(worst, vehicules), on=key, how="left")
    table = table.merge(lieux[[key, "catr", "circ", "surf", "situ", "vma"]], on=key, how="left")
    table["nb_victim"] = table[key].map(usagers.groupby(key).size())
    table["nb_vehicules"] = table[key].map(vehicules.groupby(key).size())

    no_usagers = table["nb_victim"].isna()
    all_missing = ~no_usagers & (table["_rank"] == _MISSING_RANK)
    dropped = {"no_usagers": int(no_usagers.sum()), "all_grav_missing": int(all_missing.sum())}
    table = table.loc[~(no_usagers | all_missing)].reset_index(drop=True)
    if any(dropped.values()):
        logger.info("dropped accidents: %s", dropped)

    result = _features(table)
    return TableBuild(table=result, dropped=dropped, orphan_rows=orphan_rows)


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0].copy()


def _check_unique_accidents(carac: pd.DataFrame, years: Sequence[baac.RawYear]) -> None:
    duplicated = carac[contract.ACCIDENT_ID].duplicated(keep=False)
    if not duplicated.any():
        return
    first = carac.loc[duplicated, contract.ACCIDENT_ID].iloc[0]
    in_years = carac.loc[carac[contract.ACCIDENT_ID] == first, YEAR].tolist()
    files = {y.year: y.files.get("caracteristiques", Path()) for y in years}
    raise BaacFormatError(
        files[in_years[-1]],
        f"accident id {first} is also in {files[in_years[0]]}: the same year read twice?",
    )


def _worst_person(usagers: pd.DataFrame) -> pd.DataFrame:
    """The most severely hurt person of each accident, the first in file order
    among equals, with the rank of their grav."""
    rank = usagers["grav"].map(_SEVERITY_RANK).fillna(_MISSING_RANK).astype("int64")
    columns = [contract.ACCIDENT_ID, "grav", "place", "catu", "sexe", "secu1", "an_nais"]
    persons = usagers[columns].assign(
        id_vehicule=usagers.get("id_vehicule"),
        num_veh=usagers["num_veh"],
        _rank=rank,
    )
    # A stable sort on the rank alone keeps file order among equals, and
    # drop_duplicates then keeps the first row of each accident: no string sort needed.
    ordered = persons.sort_values("_rank", kind="stable")
    return ordered.drop_duplicates(contract.ACCIDENT_ID, keep="first")


def _vehicle_of(worst: pd.DataFrame, vehicules: pd.DataFrame) -> pd.DataFrame:
    """catv/obsm/motor of the vehicle of each worst-hurt person.

    Matched on ``id_vehicule`` (unique in the whole year), else on ``num_veh``
    within the accident (``A01``, ``B01``), for rows whose id is missing or unknown.
    For a pedestrian, BAAC records the vehicle that hit them.
    """
    key = contract.ACCIDENT_ID
    wanted = ["catv", "obsm", "motor"]
    persons = worst[[key, "id_vehicule", "num_veh"]].reset_index(drop=True)
    result = persons[[key]].copy()
    for column in wanted:
        result[column] = pd.Series(pd.NA, index=result.index, dtype="Int64")
    matched = pd.Series(False, index=result.index)
    for join in ("id_vehicule", "num_veh"):
        if join not in vehicules:
            continue
        candidates = vehicules.dropna(subset=[join]).drop_duplicates([key, join])
        found = persons[[key, join]].merge(
            candidates[[key, join, *wanted]], on=[key, join], how="left", indicator=True
        )
        use = (found["_merge"] == "both") & ~matched
        for column in wanted:
            result.loc[use, column] = found.loc[use, column]
        matched |= use
    return result


def _features(table: pd.DataFrame) -> pd.DataFrame:
    """Contract features from the joined columns: codes outside the contract and
    values outside its ranges become missing."""
    an = pd.to_numeric(table["an"], errors="coerce").fillna(table[YEAR]).astype("float64")
    derived: dict[str, pd.Series] = {
        "victim_age": an - pd.to_numeric(table["an_nais"], errors="coerce").astype("float64"),
        "hour": baac.hour_from_hrmn(table["hrmn"]),
        "weekday": _weekday(an, table["mois"], table["jour"]),
        "agg_": table["agg"],
    }
    place = pd.to_numeric(table["place"], errors="coerce").astype("float64")
    # The dictionary codes a pedestrian's place as 10; fill it when the form left it
    # empty, since catu already says the person was on foot.
    is_pedestrian = pd.to_numeric(table["catu"], errors="coerce") == _PEDESTRIAN_CATU
    derived["place"] = place.mask(place.isna() & is_pedestrian, float(_PEDESTRIAN_PLACE))

    out: dict[str, pd.Series] = {
        contract.ACCIDENT_ID: table[contract.ACCIDENT_ID].astype("object"),
        YEAR: table[YEAR].astype("int64"),
    }
    for feature in contract.FEATURES:
        values = derived.get(feature.name, table.get(feature.name))
        if values is None:
            raise TrainingError(f"no column for contract feature {feature.name!r}")
        out[feature.name] = _conform(feature, values)
    grav = pd.to_numeric(table["grav"], errors="coerce")
    out[contract.TARGET] = grav.isin(_PRIORITY_GRAV).astype("int64")
    return pd.DataFrame(out, columns=list(OUTPUT_COLUMNS))


def _weekday(an: pd.Series, mois: pd.Series, jour: pd.Series) -> pd.Series:
    parts = pd.DataFrame(
        {
            "year": an,
            "month": pd.to_numeric(mois, errors="coerce").astype("float64"),
            "day": pd.to_numeric(jour, errors="coerce").astype("float64"),
        }
    )
    complete = parts.notna().all(axis=1)
    weekday = pd.Series(np.nan, index=parts.index, dtype="float64")
    if complete.any():
        # errors="coerce" turns impossible dates (31 February) into NaT.
        dates = pd.to_datetime(parts.loc[complete].astype("int64"), errors="coerce")
        weekday.loc[complete] = dates.dt.weekday.astype("float64")
    return weekday


def _conform(feature: contract.Feature, values: pd.Series) -> pd.Series:
    if feature.name == "dep":
        dep = baac.normalise_departments(values)
        return dep.astype("object").where(dep.notna(), None)
    numbers = pd.to_numeric(values, errors="coerce").astype("float64")
    if feature.kind is contract.Kind.CATEGORICAL:
        allowed = [float(code) for code in feature.codes]
        return numbers.where(numbers.isin(allowed))
    if feature.minimum is not None:
        numbers = numbers.where(numbers >= feature.minimum)
    if feature.maximum is not None:
        numbers = numbers.where(numbers <= feature.maximum)
    return numbers


# --- split --------------------------------------------------------------------------


def split_table(
    table: pd.DataFrame, test_size: float = 0.3, seed: int = 42
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train and test tables: an accident is held out when the hash of its id salted
    with ``seed`` falls below ``test_size`` (:mod:`training.split`).

    Every row of an accident goes to the same side, the answer for one accident never
    depends on the others (adding a year or removing an accident moves nobody else
    across the split) nor on row order. The class mix is not forced: the summary
    reports it (``split.stratification``).
    """
    rule = split.make_rule(table, split.SplitMethod.HASH, test_size, seed)
    return split.apply_rule(table, rule)


# --- fingerprint --------------------------------------------------------------------


def data_fingerprint(table: pd.DataFrame) -> str:
    """sha256 of a canonical serialisation of ``table``.

    Independent of row order and column order: columns are taken in name order and
    rows sorted by accident id, or by their whole content when ids repeat or are
    missing (feedback rows appended to BAAC accidents). Numbers are hashed as
    little-endian float64, so an Int64 ``7`` and a float ``7.0`` agree and the
    digest is the same on every platform; anything else as JSON text, where a
    missing value is ``null``.
    """
    columns = sorted(table.columns, key=str)
    ordered = table.iloc[_canonical_order(table, columns)]
    digest = hashlib.sha256()
    names = [str(c) for c in columns]
    digest.update(json.dumps({"columns": names, "rows": len(ordered)}).encode("utf-8"))
    for column, name in zip(columns, names, strict=True):
        values = ordered[column]
        digest.update(b"\x00" + name.encode("utf-8") + b"\x00")
        if _is_number(values):
            digest.update(_canonical_numbers(values).astype("<f8").tobytes())
        else:
            digest.update(json.dumps(_texts(values), ensure_ascii=False).encode("utf-8"))
    return digest.hexdigest()


def _is_number(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)


def _canonical_numbers(values: pd.Series) -> np.ndarray:
    numbers = values.astype("float64").to_numpy(dtype="float64", na_value=np.nan)
    # One NaN bit pattern and no negative zero: equal tables, equal bytes.
    return np.where(np.isnan(numbers), np.nan, numbers + 0.0)


def _texts(values: pd.Series) -> list[str | None]:
    return [None if pd.isna(v) else str(v) for v in values.tolist()]


def _canonical_order(table: pd.DataFrame, columns: list[Any]) -> np.ndarray:
    key = contract.ACCIDENT_ID
    if key in table.columns:
        ids = table[key]
        if ids.notna().all() and not ids.duplicated().any():
            return np.argsort(ids.astype(str).to_numpy(dtype=object), kind="stable")
    # Rare path (repeated or missing ids): sort on a text rendering of whole rows,
    # which orders any mix of types, accident id first.
    by_name = dict(table.items())
    first = [key] if key in by_name else []
    parts: list[pd.Series] = []
    for column in first + [c for c in columns if c != key]:
        values = by_name[column]
        if _is_number(values):
            text = _canonical_numbers(values).astype(str)
        else:
            text = np.array([json.dumps(v, ensure_ascii=False) for v in _texts(values)], object)
        parts.append(pd.Series(text, index=table.index, dtype=object))
    if not parts:
        return np.arange(len(table))
    rows = parts[0]
    if len(parts) > 1:
        rows = rows.str.cat(pd.concat(parts[1:], axis=1), sep="\x1f")
    return np.argsort(rows.to_numpy(dtype=object), kind="stable")


# --- dataset build ------------------------------------------------------------------


def build_dataset(
    raw_folder: Path, out_folder: Path, *, seed: int = 42, test_size: float = 0.3
) -> dict[str, Any]:
    """Read ``raw_folder``, build and split the table, write ``out_folder``.

    ``out_folder`` receives ``train.parquet``, ``test.parquet`` and
    ``summary.json``. They are written in a temporary sibling folder that is
    renamed into place at the end, replacing a previous build only then: a failure
    leaves the previous build (or nothing) behind, never a mix.
    """
    raw_folder, out_folder = Path(raw_folder), Path(out_folder)
    if not 0 < test_size < 1:
        raise ValueError(f"test_size must be between 0 and 1, got {test_size}")
    _check_replaceable(out_folder)
    years = baac.read_raw(raw_folder)
    built = assemble(years)
    if built.table.empty:
        raise TrainingError(f"{raw_folder}: no accident with a known severity to build from")
    train, test = split_table(built.table, test_size=test_size, seed=seed)
    summary = _summary(built, train, test, years, raw_folder, seed=seed, test_size=test_size)
    _write_build(out_folder, train, test, summary)
    logger.info(
        "dataset %s: %d accidents (%d train, %d test), fingerprint %s",
        out_folder,
        len(built.table),
        len(train),
        len(test),
        summary["fingerprint"][:12],
    )
    return summary


def _class_balance(table: pd.DataFrame) -> dict[str, Any]:
    positives = int(table[contract.TARGET].sum())
    total = len(table)
    return {
        "0": total - positives,
        "1": positives,
        "share_1": round(positives / total, 4) if total else None,
    }


def _summary(
    built: TableBuild,
    train: pd.DataFrame,
    test: pd.DataFrame,
    years: Sequence[baac.RawYear],
    source: Path,
    *,
    seed: int,
    test_size: float,
) -> dict[str, Any]:
    # table_rows counts rows as read, after lieux was cut to one row per accident.
    table = built.table
    per_year = {
        str(year): {"accidents": len(group), "share_prioritaire": _class_balance(group)["share_1"]}
        for year, group in table.groupby(YEAR, sort=True)
    }
    return {
        "source": str(source.resolve()),
        "years": [y.year for y in years],
        "files": {str(y.year): {t: str(p) for t, p in y.files.items()} for y in years},
        "table_rows": {str(k): v for k, v in baac.describe(years).items()},
        "rows": {"total": len(table), "train": len(train), "test": len(test)},
        "per_year": per_year,
        "class_balance": {
            "total": _class_balance(table),
            "train": _class_balance(train),
            "test": _class_balance(test),
        },
        "missing_values": {name: int(table[name].isna().sum()) for name in contract.FEATURE_NAMES},
        "dropped_accidents": {
            reason: {"count": count, "why": DROP_REASONS[reason]}
            for reason, count in built.dropped.items()
        },
        "orphan_rows": built.orphan_rows,
        "split": {
            **split.make_rule(table, split.SplitMethod.HASH, test_size, seed).as_manifest(),
            "stratification": split.stratification(train, test),
        },
        "fingerprint": data_fingerprint(table),
        "contract_version": contract.CONTRACT_VERSION,
        "contract_fingerprint": contract.contract_fingerprint(),
        "columns": list(OUTPUT_COLUMNS),
    }


def _check_replaceable(out_folder: Path) -> None:
    """Refuse to replace anything but an empty folder or a previous build: the
    rename at the end would otherwise delete someone's unrelated files."""
    if not out_folder.exists():
        return
    if not out_folder.is_dir():
        raise TrainingError(f"{out_folder}: exists and is not a folder")
    if any(out_folder.iterdir()) and not (out_folder / SUMMARY_FILE).is_file():
        raise TrainingError(
            f"{out_folder}: refusing to replace a non-empty folder that is not a dataset "
            f"build (no {SUMMARY_FILE})"
        )


def _write_build(
    out_folder: Path, train: pd.DataFrame, test: pd.DataFrame, summary: dict[str, Any]
) -> None:
    out_folder.parent.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:12]
    staging = out_folder.with_name(f".{out_folder.name}.tmp-{tag}")
    previous = out_folder.with_name(f".{out_folder.name}.old-{tag}")
    staging.mkdir()
    try:
        train.to_parquet(staging / TRAIN_FILE, index=False)
        test.to_parquet(staging / TEST_FILE, index=False)
        (staging / SUMMARY_FILE).write_text(
            json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        for name in (TRAIN_FILE, TEST_FILE, SUMMARY_FILE):
            _fsync(staging / name)
        # Two renames, not one: POSIX cannot atomically swap two folders. If the
        # second rename fails, the previous build is put back.
        if out_folder.exists():
            out_folder.rename(previous)
            try:
                staging.rename(out_folder)
            except BaseException:
                previous.rename(out_folder)
                raise
            shutil.rmtree(previous, ignore_errors=True)
        else:
            staging.rename(out_folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

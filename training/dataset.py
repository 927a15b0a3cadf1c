"""Build the modelling table from BAAC years, split it, and write a dataset build.

One row per accident, described by what a caller reporting it can say: the place,
the circumstances, and who and what is involved (how many people, pedestrians,
cycles, motorcycles and heavy vehicles, the oldest and the youngest person, anyone
without a seat belt or a helmet). Nothing is chosen by the outcome. The target says
whether anyone was killed or hospitalised: the accidents a triage should send
resources to first.

The build is deterministic and loud: the same rows in any file order give the same
table, and what it repaired or left out (exact duplicate rows, persons whose vehicle
is unknown, missing or invalid ``grav``, dropped accidents) is counted in
:meth:`TableBuild.quality`.
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
from pandas.core.groupby import SeriesGroupBy

from core import contract
from training import baac, split
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

_VALID_GRAV = (1, 2, 3, 4)
_PRIORITY_GRAV = (2, 3)
_PEDESTRIAN_CATU = 3
_OCCUPANT_CATU = (1, 2)
_NO_EQUIPMENT = 0
_HELMET = 2
_UNDETERMINABLE = 8
_SAFETY_COLUMNS = ("secu1", "secu2", "secu3")
_TWO_WHEELER_CATV = (*contract.CYCLE_CATV, *contract.MOTORCYCLE_CATV)
_LIEUX_FEATURES = ("catr", "circ", "surf", "situ", "vma")
_AGE = contract.FEATURES_BY_NAME["oldest_age"]

DROP_REASONS: dict[str, str] = {
    "no_usagers": "no usagers row names the accident, so it has no target",
    "grav_unknown": "nobody is known to be killed or hospitalised and someone's grav is "
    "missing or invalid, so the target could be 1: no label rather than a wrong 0",
}


@dataclass(frozen=True)
class TableBuild:
    """The modelling table and what the build repaired or left out."""

    table: pd.DataFrame
    dropped: dict[str, int] = field(default_factory=dict)
    """Accidents dropped, by reason (keys of :data:`DROP_REASONS`)."""
    orphan_rows: dict[str, int] = field(default_factory=dict)
    """Rows of lieux/usagers/vehicules whose accident is not in caracteristiques."""
    duplicate_rows: dict[str, int] = field(default_factory=dict)
    """Exact duplicate usagers and vehicules rows, removed before counting anything."""
    usagers_without_vehicle: int = 0
    """Persons whose vehicle matches no vehicules row (by id_vehicule or num_veh)."""
    grav: dict[str, int] = field(default_factory=dict)
    """Persons whose ``grav`` is missing (-1 or empty) or not a BAAC code."""

    def quality(self) -> dict[str, Any]:
        """The counts, for the build summary and the model manifest."""
        return {
            "duplicate_rows_removed": dict(self.duplicate_rows),
            "usagers_without_vehicle": self.usagers_without_vehicle,
            "grav": dict(self.grav),
            "dropped_accidents": {
                reason: {"count": count, "why": DROP_REASONS[reason]}
                for reason, count in self.dropped.items()
            },
            "orphan_rows": dict(self.orphan_rows),
        }


def build_table(years: list[baac.RawYear]) -> pd.DataFrame:
    """The modelling table: :data:`OUTPUT_COLUMNS`, one row per accident."""
    return assemble(years).table


def assemble(years: Sequence[baac.RawYear]) -> TableBuild:
    """:func:`build_table` with the counts of what was repaired or dropped.

    Rows come out sorted by accident id, and every choice among rows (which lieux
    row, which vehicle a person is in) depends on their content only.
    """
    if not years:
        raise TrainingError("no BAAC year to build a table from")
    key = contract.ACCIDENT_ID
    carac = _concat([y.caracteristiques.assign(**{YEAR: y.year}) for y in years])
    _check_unique_accidents(carac, years)
    usagers, duplicate_usagers = _without_duplicates(_concat([y.usagers for y in years]))
    vehicules, duplicate_vehicules = _without_duplicates(_concat([y.vehicules for y in years]))
    lieux = baac.main_lieux(_concat([y.lieux for y in years]))

    known = carac[key]
    orphan_rows = {
        name: int((~frame[key].isin(known)).sum())
        for name, frame in (("lieux", lieux), ("usagers", usagers), ("vehicules", vehicules))
    }
    catv, matched = _vehicle_category(usagers, vehicules)
    grav = _number(usagers["grav"])
    grav_counts = {
        "missing": int(grav.isna().sum()),
        "invalid": int((grav.notna() & ~grav.isin(_VALID_GRAV)).sum()),
    }

    # Keys are unique on the right of every merge by construction (checked
    # caracteristiques ids, one row per accident elsewhere): no costly validate=.
    table = carac.merge(lieux[[key, *_LIEUX_FEATURES]], on=key, how="left")
    table = table.merge(_people(usagers, catv, _accident_years(carac)), on=key, how="left")
    table = table.merge(_vehicle_counts(vehicules), on=key, how="left")

    no_usagers = table["nb_victim"].isna()
    unknown = ~no_usagers & table[contract.TARGET].isna()
    dropped = {"no_usagers": int(no_usagers.sum()), "grav_unknown": int(unknown.sum())}
    table = table.loc[~(no_usagers | unknown)].sort_values(key).reset_index(drop=True)

    build = TableBuild(
        table=_features(table),
        dropped=dropped,
        orphan_rows=orphan_rows,
        duplicate_rows={"usagers": duplicate_usagers, "vehicules": duplicate_vehicules},
        usagers_without_vehicle=int((~matched).sum()),
        grav=grav_counts,
    )
    counts: dict[str, dict[str, int]] = {
        "dropped_accidents": dropped,
        "duplicate_rows_removed": build.duplicate_rows,
        "usagers_without_vehicle": {"usagers": build.usagers_without_vehicle},
        "grav": grav_counts,
        "orphan_rows": orphan_rows,
    }
    if any(any(by_kind.values()) for by_kind in counts.values()):
        logger.warning("data build repaired or left out rows: %s", counts)
    return build


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0].copy()


def _number(values: pd.Series) -> pd.Series:
    return pd.to_numeric(values, errors="coerce").astype("float64")


def _without_duplicates(frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """``frame`` without exact duplicate rows, and how many were removed.

    A duplicated row would count a person or a vehicle twice. Identical rows are
    one row written twice: even before id_usager (2023), two people of the same
    vehicle share no seat, birth year, sex and equipment all at once.
    """
    unique = frame.drop_duplicates().reset_index(drop=True)
    return unique, len(frame) - len(unique)


def _check_unique_accidents(carac: pd.DataFrame, years: Sequence[baac.RawYear]) -> None:
    duplicated = carac[contract.ACCIDENT_ID].duplicated(keep=False)
    if not duplicated.any():
        return
    first = carac.loc[duplicated, contract.ACCIDENT_ID].sort_values().iloc[0]
    in_years = carac.loc[carac[contract.ACCIDENT_ID] == first, YEAR].tolist()
    files = {y.year: y.files.get("caracteristiques", Path()) for y in years}
    raise BaacFormatError(
        files[in_years[-1]],
        f"accident id {first} is also in {files[in_years[0]]}: the same year read twice?",
    )


def _accident_years(carac: pd.DataFrame) -> pd.Series:
    """The year of each accident (``an``, else the file's year), by accident id."""
    an = _number(carac["an"]).fillna(carac[YEAR].astype("float64"))
    return pd.Series(an.to_numpy(), index=carac[contract.ACCIDENT_ID].to_numpy())


def _vehicle_category(
    usagers: pd.DataFrame, vehicules: pd.DataFrame
) -> tuple[pd.Series, pd.Series]:
    """catv of each person's vehicle (NaN when unknown) and whether it was found.

    Matched on ``id_vehicule`` (unique in the whole year), else on ``num_veh``
    within the accident (``A01``, ``B01``), for rows whose id is missing or unknown.
    For a pedestrian, BAAC records the vehicle that hit them.
    """
    key = contract.ACCIDENT_ID
    catv = pd.Series(np.nan, index=usagers.index, dtype="float64")
    matched = pd.Series(False, index=usagers.index)
    for join in ("id_vehicule", "num_veh"):
        if join not in vehicules or join not in usagers:
            continue
        # Should two rows share a key, the choice depends on their content only.
        candidates = baac.in_content_order(vehicules.dropna(subset=[join]), first=(key, join))
        candidates = candidates.drop_duplicates([key, join])
        found = usagers[[key, join]].merge(
            candidates[[key, join, "catv"]], on=[key, join], how="left", indicator=True
        )
        use = (found["_merge"] == "both").to_numpy() & ~matched.to_numpy()
        catv[use] = _number(found["catv"]).to_numpy()[use]
        matched |= use
    return catv, matched


def _people(usagers: pd.DataFrame, catv: pd.Series, years: pd.Series) -> pd.DataFrame:
    """Per accident: counts, ages and safety flags of everyone involved, and the
    target. Aggregates over every person, so no person is singled out."""
    key = contract.ACCIDENT_ID
    catu = _number(usagers["catu"])
    age = years.reindex(usagers[key].to_numpy()).to_numpy() - _number(usagers["an_nais"])
    # An impossible age is that person's unknown age, not the oldest's.
    age = age.where(age.between(_AGE.minimum or 0, _AGE.maximum or np.inf))
    safety = {
        column: _number(usagers[column]) if column in usagers else pd.Series(np.nan, usagers.index)
        for column in _SAFETY_COLUMNS
    }
    secu1 = safety["secu1"]
    determined = secu1.notna() & (secu1 != _UNDETERMINABLE)
    occupant = catu.isin(_OCCUPANT_CATU)
    vehicle_unknown = occupant & catv.isna()
    two_wheeler = occupant & catv.isin(_TWO_WHEELER_CATV)
    restrainable = (
        occupant & catv.notna() & ~catv.isin((*_TWO_WHEELER_CATV, *contract.PUBLIC_TRANSPORT_CATV))
    )
    helmet = pd.concat([s == _HELMET for s in safety.values()], axis=1).any(axis=1)
    unhelmeted = _flag(
        yes=two_wheeler & ~helmet & determined,
        unknown=(two_wheeler & ~helmet & ~determined) | vehicle_unknown,
    )
    unrestrained = _flag(
        yes=restrainable & (secu1 == _NO_EQUIPMENT),
        unknown=(restrainable & ~determined) | vehicle_unknown,
    )
    grav = _number(usagers["grav"])
    severe = _flag(yes=grav.isin(_PRIORITY_GRAV), unknown=~grav.isin(_VALID_GRAV))

    groups = pd.DataFrame(
        {
            key: usagers[key].to_numpy(),
            "pedestrian": (catu == _PEDESTRIAN_CATU).to_numpy(),
            "age": age.to_numpy(),
            "any_unhelmeted": unhelmeted.to_numpy(),
            "any_unrestrained": unrestrained.to_numpy(),
            contract.TARGET: severe.to_numpy(),
        }
    ).groupby(key, sort=False)
    return pd.DataFrame(
        {
            "nb_victim": groups.size().astype("float64"),
            "nb_pedestrians": groups["pedestrian"].sum().astype("float64"),
            "oldest_age": groups["age"].max(),
            "youngest_age": groups["age"].min(),
            "any_unhelmeted": _any(groups["any_unhelmeted"]),
            "any_unrestrained": _any(groups["any_unrestrained"]),
            contract.TARGET: _any(groups[contract.TARGET]),
        }
    ).reset_index(names=key)


def _flag(yes: pd.Series, unknown: pd.Series) -> pd.Series:
    """1 for yes, NaN when it cannot be told, else 0."""
    return pd.Series(np.where(yes, 1.0, np.where(unknown, np.nan, 0.0)), index=yes.index)


def _any(flags: SeriesGroupBy) -> pd.Series:
    """Per group: 1 when any flag is 1, else NaN when any is unknown, else 0."""
    some = flags.max()  # NaNs skipped: 1 if any 1, 0 if only 0s, NaN if only NaNs
    unknown = flags.count() < flags.size()
    return some.where((some == 1) | ~unknown)


def _vehicle_counts(vehicules: pd.DataFrame) -> pd.DataFrame:
    key = contract.ACCIDENT_ID
    catv = _number(vehicules["catv"])
    groups = pd.DataFrame(
        {
            key: vehicules[key].to_numpy(),
            "nb_cycles": catv.isin(contract.CYCLE_CATV).to_numpy(),
            "nb_motorcycles": catv.isin(contract.MOTORCYCLE_CATV).to_numpy(),
            "nb_heavy_vehicles": catv.isin(contract.HEAVY_CATV).to_numpy(),
        }
    ).groupby(key, sort=False)
    counts = groups.sum().astype("float64")
    counts["nb_vehicules"] = groups.size().astype("float64")
    return counts.reset_index(names=key)


def _features(table: pd.DataFrame) -> pd.DataFrame:
    """Contract features from the joined columns: codes outside the contract and
    values outside its ranges become missing."""
    an = _number(table["an"]).fillna(table[YEAR].astype("float64"))
    derived: dict[str, pd.Series] = {
        "hour": baac.hour_from_hrmn(table["hrmn"]),
        "weekday": _weekday(an, table["mois"], table["jour"]),
        "agg_": table["agg"],
    }
    out: dict[str, pd.Series] = {
        contract.ACCIDENT_ID: table[contract.ACCIDENT_ID].astype("object"),
        YEAR: table[YEAR].astype("int64"),
    }
    for feature in contract.FEATURES:
        values = derived.get(feature.name, table.get(feature.name))
        if values is None:
            raise TrainingError(f"no column for contract feature {feature.name!r}")
        out[feature.name] = _conform(feature, values)
    out[contract.TARGET] = table[contract.TARGET].astype("int64")
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
    # table_rows counts rows as read, after lieux was cut to one row per accident and
    # before exact duplicates were removed (quality counts those).
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
        "quality": built.quality(),
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

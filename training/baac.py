"""Read the four yearly BAAC tables (caracteristiques, lieux, usagers, vehicules).

The official files changed shape from year to year; this module absorbs every known
difference so the dataset build sees one layout:

* file names: ``caracteristiques-2019.csv``, ``carcteristiques-2022.csv`` (sic),
  ``caract-2023.csv``, ``Caract_2024.csv``; files of one or several years side by
  side, or in year subfolders;
* the key column: ``Num_Acc``, or ``Accident_Id`` in the 2022 caracteristiques file;
* ``id_usager`` in usagers from 2023 on;
* text: UTF-8, Latin-1/cp1252, and UTF-8 that was decoded as Latin-1 and saved again
  (the 2021 copy in circulation: ``Ã¨`` for ``è``), which is repaired;
* ``;`` separator, fields quoted or bare empty (2020), values with leading spaces
  (``" -1"``), comma decimals, thousands separators (spaces, non-breaking spaces)
  inside ids, ``-1`` as "not filled";
* ``hrmn`` as ``HH:MM`` (older ``HHMM`` integers tolerated), ``dep`` without its
  leading zero in 2019 (``"2"``), Corsica as 2A/2B;
* several ``lieux`` rows per accident from 2023 on.

Anything else is a :class:`~core.errors.BaacFormatError` naming the file and the
problem on one line.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from core import contract
from training.errors import BaacFormatError

logger = logging.getLogger(__name__)

TABLES: tuple[str, ...] = ("caracteristiques", "lieux", "usagers", "vehicules")

FIRST_SUPPORTED_YEAR = 2019
"""Before 2019 the tables use another coding (``dep`` as ``590``, two-digit ``an``,
``secu`` instead of ``secu1``...): they are refused rather than misread."""

_REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "caracteristiques": (
        contract.ACCIDENT_ID,
        "jour",
        "mois",
        "an",
        "hrmn",
        "lum",
        "dep",
        "agg",
        "int",
        "atm",
        "col",
        "lat",
        "long",
    ),
    "lieux": (contract.ACCIDENT_ID, "catr", "circ", "surf", "situ", "vma"),
    "usagers": (
        contract.ACCIDENT_ID,
        "num_veh",
        "place",
        "catu",
        "grav",
        "sexe",
        "an_nais",
        "secu1",
    ),
    "vehicules": (contract.ACCIDENT_ID, "num_veh", "catv", "obsm", "motor"),
}

_KEY_ALIASES = frozenset({"num_acc", "accident_id"})

# Columns holding integer codes or counts in the 2019+ data dictionary.
_INTEGER_COLUMNS = frozenset(
    {
        "jour",
        "mois",
        "an",
        "lum",
        "agg",
        "int",
        "atm",
        "col",
        "catr",
        "v1",
        "circ",
        "nbv",
        "vosp",
        "prof",
        "plan",
        "surf",
        "infra",
        "situ",
        "vma",
        "place",
        "catu",
        "grav",
        "sexe",
        "an_nais",
        "trajet",
        "secu1",
        "secu2",
        "secu3",
        "locp",
        "etatp",
        "senc",
        "catv",
        "obs",
        "obsm",
        "choc",
        "manv",
        "motor",
        "occutc",
    }
)
_FLOAT_COLUMNS = frozenset({"lat", "long", "lartpc", "larrout"})
# Ids carry thousands separators ("201 764", with a normal or non-breaking space).
_ID_COLUMNS = frozenset({contract.ACCIDENT_ID, "id_vehicule", "id_usager"})

# A UTF-8 multi-byte sequence read as Latin-1: a lead byte then continuation bytes.
_MOJIBAKE = re.compile(
    r"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}"
)
# Control characters never appear in a text CSV: their presence means binary content
# (a zip, UTF-16) or a wrong guess of the encoding.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_YEAR_IN_NAME = re.compile(r"(?<!\d)((?:19|20)\d\d)(?!\d)")
_HHMM = re.compile(r"(\d{1,2}):(\d{1,2})(?::\d{1,2})?")
_PACKED_HHMM = re.compile(r"\d{1,4}")
_INTEGER = re.compile(r"[+-]?\d+")
_DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


@dataclass(frozen=True, eq=False)  # eq would compare DataFrames, which is ambiguous
class RawYear:
    """The four tables of one year, converted (see :func:`read_year`)."""

    year: int
    caracteristiques: pd.DataFrame
    lieux: pd.DataFrame
    usagers: pd.DataFrame
    vehicules: pd.DataFrame
    files: dict[str, Path]


# --- finding the files --------------------------------------------------------------


def classify_name(name: str) -> tuple[str, int | None] | None:
    """The table a BAAC file name holds and the year it names, or None.

    Matches on the prefix, accents and case ignored, because the official names
    drift (``carcteristiques``, ``caract``, ``Caract_``). The registered-vehicles
    table (``vehicules-immatricules-baac-*``) is another table and never matches.
    """
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    if not plain.endswith(".csv") or "immatricul" in plain:
        return None
    table: str | None = None
    if plain.startswith(("carac", "carct")):
        table = "caracteristiques"
    else:
        table = next((t for t in TABLES[1:] if plain.startswith(t)), None)
    if table is None:
        return None
    match = _YEAR_IN_NAME.search(plain)
    return table, int(match.group(1)) if match else None


def find_year_files(folder: Path) -> dict[int, dict[str, Path]]:
    """BAAC tables under ``folder``, by year then table.

    Files may sit in ``folder`` itself (one or several years side by side) or one
    level down in subfolders (``2019/``); a file whose name has no year takes the
    year of its subfolder. Two files for the same table and year are an error:
    silently picking one would hide a stale or duplicated download.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise BaacFormatError(folder, "folder does not exist")
    candidates: list[tuple[Path, int | None]] = [(p, None) for p in sorted(folder.iterdir())]
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        sub_year = int(sub.name) if re.fullmatch(r"(19|20)\d\d", sub.name) else None
        candidates.extend((p, sub_year) for p in sorted(sub.iterdir()))
    found: dict[int, dict[str, Path]] = {}
    for path, folder_year in candidates:
        if not path.is_file():
            continue
        kind = classify_name(path.name)
        if kind is None:
            continue
        table, name_year = kind
        year = name_year if name_year is not None else folder_year
        if year is None:
            logger.warning("ignoring %s: no year in its name or folder", path)
            continue
        tables = found.setdefault(year, {})
        if table in tables:
            raise BaacFormatError(
                path, f"second {table} file for {year} (also {tables[table]}); keep one"
            )
        tables[table] = path
    return dict(sorted(found.items()))


# --- reading one table --------------------------------------------------------------


def _decode(path: Path, data: bytes) -> str:
    if not data.strip():
        raise BaacFormatError(path, "empty file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Older official files were Latin-1 / cp1252; cp1252 first for its € and
        # quotes, Latin-1 as the catch-all that decodes any byte.
        try:
            text = data.decode("cp1252")
        except UnicodeDecodeError:
            text = data.decode("latin-1")
    text = _repair_mojibake(text)
    bad = _CONTROL.search(text)
    if bad:
        raise BaacFormatError(
            path,
            f"cannot decode as UTF-8 or Latin-1 text (control character {bad.group()!r} "
            f"at offset {bad.start()}; binary, compressed or UTF-16 file?)",
        )
    return text


def _repair_mojibake(text: str) -> str:
    """Undo UTF-8 bytes decoded as Latin-1 then saved again as UTF-8 (``Ã¨``).

    The whole text is tried first: it round-trips only when every non-ASCII
    character is part of such a sequence, which is the case of a file damaged as
    a whole. Otherwise each sequence is repaired on its own, leaving genuine
    Latin-1 characters alone.
    """
    if not _MOJIBAKE.search(text):
        return text
    try:
        return text.encode("latin-1").decode("utf-8")
    except UnicodeError:
        pass

    def fix(match: re.Match[str]) -> str:
        try:
            return match.group().encode("latin-1").decode("utf-8")
        except UnicodeError:
            return match.group()

    return _MOJIBAKE.sub(fix, text)


def _normalise_column(name: str) -> str:
    column = name.strip().strip('"').strip().lower()
    return contract.ACCIDENT_ID if column in _KEY_ALIASES else column


def _header(path: Path, text: str) -> list[str]:
    end = text.find("\n")
    first_line = (text if end < 0 else text[:end]).rstrip("\r")
    if ";" not in first_line:
        found = next((sep for sep in (",", "\t", "|") if sep in first_line), None)
        detail = f", found {found!r}" if found else ""
        raise BaacFormatError(path, f"expected ';'-separated BAAC table{detail}")
    names = [_normalise_column(n) for n in next(csv.reader([first_line], delimiter=";"))]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise BaacFormatError(path, f"duplicate columns in header: {', '.join(duplicated)}")
    return names


def _parse(path: Path, text: str, names: list[str]) -> pd.DataFrame:
    # Quotes come in pairs, escaped ones included ("" inside a value): an odd count
    # is a field left open, which pyarrow would read as a value running to the end.
    if text.count('"') % 2:
        raise BaacFormatError(path, "malformed row: unterminated quoted field (truncated file?)")
    # pyarrow, not pandas: pandas pads a short (truncated) row with empty strings
    # when empty strings are kept as values, while pyarrow refuses it.
    try:
        table = pacsv.read_csv(
            io.BytesIO(text.encode("utf-8")),
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=1),
            parse_options=pacsv.ParseOptions(
                delimiter=";", quote_char='"', double_quote=True, newlines_in_values=True
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowException) as exc:
        raise BaacFormatError(path, _describe_parse_error(text, str(exc))) from None
    if table.num_rows == 0:
        raise BaacFormatError(path, "no data rows (header only)")
    return table.to_pandas()


def _describe_parse_error(text: str, message: str) -> str:
    detail = message.replace("CSV parse error: ", "").splitlines()[0]
    expected, _, row = detail.partition(": ")
    line = ""
    if row:
        position = text.find(row)
        if position >= 0:
            line = f" at line {text.count(chr(10), 0, position) + 1}"
    return f"malformed row{line}: {expected or detail} (truncated or corrupted file?)"


def read_table(path: Path, table: str) -> pd.DataFrame:
    """One BAAC table, every value a string, columns normalised, not converted."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BaacFormatError(path, f"cannot read file: {exc.strerror or exc}") from None
    text = _decode(path, data)
    names = _header(path, text)
    missing = [c for c in _REQUIRED_COLUMNS[table] if c not in names]
    if missing:
        raise BaacFormatError(
            path,
            f"missing required columns {', '.join(missing)} for a {table} table "
            f"(header: {', '.join(names)})",
        )
    return _parse(path, text, names)


# --- converting values --------------------------------------------------------------
#
# A 2021-size year holds about 4 million values, but a code column has a few dozen
# distinct ones: each conversion runs once per distinct value (pd.factorize) and
# the results are mapped back with one vectorised take.


def _per_unique(
    series: pd.Series,
    convert: Callable[[Any], Any],
    dtype: pd.api.extensions.ExtensionDtype | np.dtype[Any] | None = None,
) -> pd.Series:
    """``convert`` applied to each distinct value of ``series``; ``dtype`` None keeps
    Python objects (None for missing)."""
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    # One extra slot for missing inputs: their code is -1, which indexes the last slot.
    converted = pd.Series([convert(value) for value in uniques.tolist()] + [None], dtype=object)
    if dtype is not None:
        converted = converted.astype(dtype)
    return pd.Series(converted.array.take(codes, allow_fill=False), index=series.index)


def _text(value: Any) -> str | None:
    """Stripped text; None for empty values and the ``-1`` "not filled" sentinel."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip()
    return None if text in ("", "-1") else text


def _integer(value: Any) -> int | None:
    text = _text(value)
    if text is None:
        return None
    text = "".join(text.split())
    if _INTEGER.fullmatch(text):
        number = int(text)
    else:
        # "3.0" is a code written as a float; "2.5" is not a code, and is dropped
        # rather than truncated.
        decimal = _float(text)
        if decimal is None or not decimal.is_integer():
            return None
        number = int(decimal)
    return None if number == -1 else number


def _float(value: Any) -> float | None:
    text = _text(value)
    if text is None:
        return None
    text = "".join(text.split()).replace(",", ".")
    if not _DECIMAL.fullmatch(text):
        return None
    return float(text)


def _department(value: Any) -> str | None:
    text = _text(value)
    if text is None:
        return None
    code = text.upper()
    if len(code) == 1 and code.isdigit():
        code = "0" + code
    return code if code in contract.DEPARTMENTS else None


def _hrmn(value: Any) -> str | None:
    text = _text(value)
    if text is None:
        return None
    match = _HHMM.fullmatch(text)
    if match:
        hours, minutes = int(match.group(1)), int(match.group(2))
    elif _PACKED_HHMM.fullmatch(text):
        hours, minutes = divmod(int(text), 100)
    else:
        return None
    if not (0 <= hours <= 23 and 0 <= minutes <= 59):
        return None
    return f"{hours:02d}:{minutes:02d}"


def _ids(series: pd.Series) -> pd.Series:
    # Ids are mostly distinct, so converting distinct values saves nothing: pyarrow's
    # vectorised regex does the work. \pZ catches the non-breaking and narrow
    # spaces that RE2's \s leaves out.
    text = pa.array(series.astype("object").where(series.notna(), ""), type=pa.string())
    stripped = pc.replace_substring_regex(text, pattern=r"[\s\pZ]+", replacement="")
    cleaned = pd.Series(stripped.to_pandas(), index=series.index, dtype="object")
    return cleaned.where(~cleaned.isin(["", "-1"]), None)


def normalise_departments(series: pd.Series) -> pd.Series:
    """INSEE department codes as the contract spells them; None when unknown.

    2019 wrote ``"2"`` for ``"02"``; anything not in the contract's list (such as
    ``"20"`` for a Corsica that split in 1976) becomes missing.
    """
    return _per_unique(series, _department)


def normalise_hrmn(series: pd.Series) -> pd.Series:
    """``HH:MM`` strings; None when missing or not a time of day.

    Before 2019 ``hrmn`` was an integer ``HHMM`` (``1530``, ``5`` for 00:05),
    which is tolerated here.
    """
    return _per_unique(series, _hrmn)


def hour_from_hrmn(series: pd.Series) -> pd.Series:
    """Hour of day (float, NaN when unknown) from an ``hrmn`` column in any layout."""

    def hour(value: Any) -> float:
        hhmm = _hrmn(value)
        return float(hhmm[:2]) if hhmm else math.nan

    return _per_unique(series, hour, np.dtype("float64"))


def convert_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Typed copy of a string table: ids without separators, Int64 codes, float
    coordinates and widths, normalised ``dep`` and ``hrmn``, other text stripped
    with None for missing."""
    converted: dict[str, pd.Series] = {}
    for column in frame.columns:
        values = frame[column]
        if column in _ID_COLUMNS:
            converted[column] = _ids(values)
        elif column in _INTEGER_COLUMNS:
            converted[column] = _per_unique(values, _integer, pd.Int64Dtype())
        elif column in _FLOAT_COLUMNS:
            converted[column] = _per_unique(values, _float, np.dtype("float64"))
        elif column == "dep":
            converted[column] = normalise_departments(values)
        elif column == "hrmn":
            converted[column] = normalise_hrmn(values)
        else:
            converted[column] = _per_unique(values, _text)
    return pd.DataFrame(converted, index=frame.index)


# --- one year -----------------------------------------------------------------------


def read_year(files: dict[str, Path], year: int) -> RawYear:
    """Read and convert the four tables of ``year``.

    ``lieux`` is cut to one row per accident by :func:`main_lieux`. From 2023 an
    accident has one row per road involved (1.27 on average) and no field says
    which is the main one; file order is no answer either, since a reordered copy
    of the same file must build the same dataset.
    """
    missing = [t for t in TABLES if t not in files]
    if missing:
        where = next(iter(files.values())).parent if files else Path()
        raise BaacFormatError(
            where,
            f"missing the {', '.join(missing)} table{'s' if len(missing) > 1 else ''} of {year} "
            f"(expected files like {missing[0]}-{year}.csv)",
        )
    if year < FIRST_SUPPORTED_YEAR:
        raise BaacFormatError(
            files["caracteristiques"],
            f"unknown year layout: {year} predates the 2019 coding this loader reads",
        )
    tables = {t: convert_table(read_table(files[t], t)) for t in TABLES}

    carac = tables["caracteristiques"]
    _check_keys(files["caracteristiques"], carac)
    duplicated = carac[contract.ACCIDENT_ID].duplicated()
    if duplicated.any():
        first = carac.loc[duplicated, contract.ACCIDENT_ID].iloc[0]
        raise BaacFormatError(
            files["caracteristiques"],
            f"accident id {first} appears more than once ({int(duplicated.sum())} repeats)",
        )
    for table in TABLES[1:]:
        _check_keys(files[table], tables[table])

    lieux = tables["lieux"]
    kept = main_lieux(lieux)
    if len(kept) < len(lieux):
        logger.info(
            "%s: kept the main lieux row of each accident (%d extra rows dropped)",
            files["lieux"],
            len(lieux) - len(kept),
        )
    tables["lieux"] = kept

    known = set(carac[contract.ACCIDENT_ID])
    for table in TABLES[1:]:
        orphans = int((~tables[table][contract.ACCIDENT_ID].isin(known)).sum())
        if orphans:
            logger.warning(
                "%s: %d rows name an accident absent from %s",
                files[table],
                orphans,
                files["caracteristiques"].name,
            )
    return RawYear(
        year=year,
        caracteristiques=carac,
        lieux=tables["lieux"],
        usagers=tables["usagers"],
        vehicules=tables["vehicules"],
        files=dict(files),
    )


def in_content_order(
    frame: pd.DataFrame, first: Sequence[str] = (), descending: Sequence[str] = ()
) -> pd.DataFrame:
    """``frame`` sorted on the columns ``first``, then on every other column, missing
    values last: an order that depends only on the rows' content, so that keeping
    the first row of a group never depends on the order of the file."""
    columns = [*first, *(c for c in frame.columns if c not in first)]
    ordered = frame.sort_values(
        columns,
        ascending=[c not in descending for c in columns],
        na_position="last",
        kind="stable",
    )
    return ordered.reset_index(drop=True)


def main_lieux(lieux: pd.DataFrame) -> pd.DataFrame:
    """One ``lieux`` row per accident: the road of the highest category (lowest
    ``catr`` code: motorway, then national road...), then the highest speed limit,
    then the rest of the row's content.

    In the 2023-2024 samples the rows of an accident always share ``catr`` and
    ``vma`` differs in about one in ten of them: the fastest road is the one where
    the energy, hence the severity, is likely to come from.
    """
    ordered = in_content_order(lieux, first=("catr", "vma"), descending=("vma",))
    kept = ordered.drop_duplicates(contract.ACCIDENT_ID, keep="first")
    return kept.sort_values(contract.ACCIDENT_ID, kind="stable").reset_index(drop=True)


def _check_keys(path: Path, frame: pd.DataFrame) -> None:
    missing = frame[contract.ACCIDENT_ID].isna()
    if missing.any():
        row = int(np.flatnonzero(missing.to_numpy())[0])
        raise BaacFormatError(path, f"empty accident id on line {row + 2}")


def read_raw(folder: Path) -> list[RawYear]:
    """Every year found under ``folder``, oldest first."""
    found = find_year_files(Path(folder))
    if not found:
        raise BaacFormatError(
            folder,
            "no BAAC tables found (expected files like caracteristiques-2021.csv, "
            "lieux-2021.csv, usagers-2021.csv, vehicules-2021.csv)",
        )
    years = [read_year(files, year) for year, files in found.items()]
    logger.info(
        "read %s: %s",
        folder,
        ", ".join(f"{y.year} ({len(y.caracteristiques)} accidents)" for y in years),
    )
    return years


def describe(years: Iterable[RawYear]) -> dict[int, dict[str, int]]:
    """Row counts per year and table, for logs and summaries."""
    return {y.year: {t: len(getattr(y, t)) for t in TABLES} for y in years}

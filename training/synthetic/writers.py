"""The writers that turn a generated population into the bytes of caracteristiques,
lieux, vehicules and usagers, in the format of a year (``layouts.py`` says what
differs from year to year).

Formatting draws (street names, road numbers, kilometre posts...) come from their own
random stream, so the population does not depend on the year's layout.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from training.synthetic import distributions as dist
from training.synthetic.layouts import Layout
from training.synthetic.population import (
    Accidents,
    FloatArray,
    IntArray,
    ObjArray,
    Persons,
    Population,
    Vehicles,
    draw,
    unfilled,
)

TABLES: tuple[str, ...] = ("caracteristiques", "lieux", "usagers", "vehicules")

_NBSP = "\u00a0"

# --- headers, exactly as published ------------------------------------------------

_CARAC_COLUMNS = (
    "jour", "mois", "an", "hrmn", "lum", "dep", "com", "agg", "int", "atm", "col", "adr",
    "lat", "long",
)  # fmt: skip
_LIEUX_COLUMNS = (
    "Num_Acc", "catr", "voie", "v1", "v2", "circ", "nbv", "vosp", "prof", "pr", "pr1",
    "plan", "lartpc", "larrout", "surf", "infra", "situ", "vma",
)  # fmt: skip
_VEHICULES_COLUMNS = (
    "Num_Acc", "id_vehicule", "num_veh", "senc", "catv", "obs", "obsm", "choc", "manv",
    "motor", "occutc",
)  # fmt: skip
_USAGERS_TAIL = (
    "id_vehicule", "num_veh", "place", "catu", "grav", "sexe", "an_nais", "trajet", "secu1",
    "secu2", "secu3", "locp", "actp", "etatp",
)  # fmt: skip


def _codes(values: IntArray, layout: Layout) -> list[str]:
    """Integer codes as quoted fields: -1 with a leading space, empty, letters."""
    uniques, inverse = np.unique(values, return_inverse=True)
    special = {-1: " -1", dist.EMPTY: "", dist.ACTP_A: "A", dist.ACTP_B: "B"}
    return _pick(_text([special.get(int(v), str(int(v))) for v in uniques], layout), inverse)


def _pick(fields: Sequence[str], index: IntArray) -> list[str]:
    """``fields[i]`` for each ``i`` of ``index``, without a Python loop."""
    return list(np.array(fields, dtype=object)[index].tolist())


def _text(values: Sequence[str] | ObjArray, layout: Layout) -> list[str]:
    """Quoted fields; 2020 leaves empty ones bare."""
    items = values.tolist() if isinstance(values, np.ndarray) else values
    if layout.bare_empty:
        return [f'"{v}"' if v else "" for v in items]
    return [f'"{v}"' for v in items]


def _strings(values: NDArray[Any]) -> ObjArray:
    return np.asarray(values).astype(str).astype(object)


def _grouped_ids(values: IntArray) -> ObjArray:
    """Identifiers with a non-breaking space every three digits (``155 680 557``)."""
    millions, thousands, units = values // 1_000_000, (values // 1000) % 1000, values % 1000
    pad3 = np.array([f"{i:03d}" for i in range(1000)], dtype=object)
    full = _strings(millions) + _NBSP + pad3[thousands] + _NBSP + pad3[units]
    short = _strings(thousands) + _NBSP + pad3[units]
    return np.where(millions > 0, full, np.where(thousands > 0, short, _strings(units)))


def _coordinates(values: FloatArray, decimals: int) -> ObjArray:
    """Decimal comma, fixed decimals, and the leading space before a minus sign."""
    # Officers' GPS gives 5 or 6 decimals; the file pads them to the year's width.
    scaled = np.rint(np.abs(np.round(values, 6)) * 10**decimals).astype(np.int64)
    whole, fraction = np.divmod(scaled, 10**decimals)
    text = np.strings.add(
        np.strings.add(whole.astype(str), ","), np.strings.zfill(fraction.astype(str), decimals)
    )
    return np.where(values < 0, np.strings.add(" -", text), text).astype(object)


def _streets(rng: np.random.Generator, size: int) -> tuple[ObjArray, ObjArray]:
    """(adr, voie) for streets: the address as typed by the officer, in one of three
    styles, and the street as the lieux table names it."""
    pairs = [(kind, name) for kind in _STREET_KINDS for name in _STREET_NAMES]
    upper = np.array([f"{kind} {name}" for kind, name in pairs], dtype=object)
    title = np.array([_title(f"{kind} {name}") for kind, name in pairs], dtype=object)
    official = np.array([f"{name} ({kind})" for kind, name in pairs], dtype=object)
    pick = rng.integers(0, len(pairs), size)
    style = rng.integers(0, 3, size)
    numbered = _strings(rng.integers(1, 200, size)) + " " + title[pick]
    adr = np.select([style == 0, style == 1], [upper[pick], title[pick]], numbered)
    return adr, official[pick]


def _title(text: str) -> str:
    words = text.title().replace("L'É", "l'É").split(" ")
    small = {"De", "Du", "Des", "La", "Le"}
    return " ".join(w.lower() if i and w in small else w for i, w in enumerate(words))


_STREET_NAMES = (
    "VICTOR HUGO", "JEAN JAURÈS", "DE LA RÉPUBLIQUE", "DU GÉNÉRAL LECLERC", "PASTEUR",
    "GAMBETTA", "DE PARIS", "DE LA GARE", "DES ÉCOLES", "DE L'ÉGLISE", "DU GÉNÉRAL DE GAULLE",
    "JULES FERRY", "DU MARÉCHAL FOCH", "CARNOT", "DE LA PAIX", "DES LILAS", "DU MOULIN",
    "NATIONALE", "DE LA LIBÉRATION", "SAINT-MARTIN", "DES PRÉS", "DU 8 MAI 1945",
    "ÉMILE ZOLA", "DE VERDUN", "DE LA LIBERTÉ", "ANATOLE FRANCE", "HENRI BARBUSSE",
    "DU CHÂTEAU", "DES TILLEULS", "FRANÇOIS MITTERRAND", "GABRIEL PÉRI", "DE LA MAIRIE",
)  # fmt: skip
_STREET_KINDS = (
    "RUE", "RUE", "RUE", "AVENUE", "AVENUE", "BOULEVARD", "CHEMIN", "ROUTE", "PLACE",
    "ALLÉE", "IMPASSE", "QUAI",
)  # fmt: skip


def _render(header: Sequence[str], columns: Sequence[Sequence[str]]) -> bytes:
    """The file: quoted header, ``;``-separated quoted fields, LF line ends."""
    head = ";".join(f'"{name}"' for name in header)
    rows = map(";".join, zip(*columns, strict=True))
    return ("\n".join([head, *rows]) + "\n").encode("utf-8")


@dataclass(frozen=True)
class _Roads:
    """The road of each accident, as caracteristiques.adr and lieux.voie spell it."""

    number: ObjArray
    """Road number for motorways, national and departmental roads."""
    adr: ObjArray
    street: ObjArray
    """Street name (``VICTOR HUGO (RUE)``) for the other roads."""


def _roads(rng: np.random.Generator, catr: IntArray) -> _Roads:
    n = catr.size
    number = _strings(
        np.select(
            [catr == 1, catr == 2],
            [rng.integers(1, 90, n), rng.integers(1, 200, n)],
            np.minimum(rng.geometric(0.006, n), 1500),
        )
    )
    road = np.select(
        [catr == 1, catr == 2],
        ["A" + number, np.where(rng.random(n) < 0.5, "RN" + number, "N" + number)],
        np.where(rng.random(n) < 0.5, "D" + number, "RD " + number),
    )
    street_adr, street = _streets(rng, n)
    adr = np.where(np.isin(catr, (1, 2, 3)), road, street_adr)
    return _Roads(number=number, adr=adr, street=street)


def _format_caracteristiques(
    accidents: Accidents, layout: Layout, num_acc: list[str], roads: _Roads
) -> bytes:
    n = len(num_acc)
    codes = dist.DEPARTMENT_CODES
    dep = np.array(codes, dtype=object)[accidents.dep]
    overseas = np.array([len(code) == 3 for code in codes])[accidents.dep]
    # Communes are the department code and a number: 3 digits in mainland France,
    # 2 overseas (97411).
    pad2 = np.array([f"{i:02d}" for i in range(100)], dtype=object)
    pad3 = np.array([f"{i:03d}" for i in range(1000)], dtype=object)
    com = dep + np.where(overseas, pad2[accidents.com % 100], pad3[accidents.com % 1000])
    if not layout.pad_dep:
        written = np.array([code.removeprefix("0") for code in codes], dtype=object)
        dep = written[accidents.dep]
    months = [f"{m:02d}" if layout.pad_month else str(m) for m in range(13)]
    clock = [f"{h:02d}:{m:02d}" for h in range(24) for m in range(60)]
    columns = [
        num_acc,
        _codes(accidents.jour, layout),
        _pick(_text(months, layout), accidents.mois),
        _text([str(layout.year)] * n, layout),
        _pick(_text(clock, layout), accidents.hour * 60 + accidents.minute),
        _codes(accidents.lum, layout),
        _text(dep, layout),
        _text(com, layout),
        _codes(accidents.agg, layout),
        _codes(accidents.intersection, layout),
        _codes(accidents.atm, layout),
        _codes(accidents.col, layout),
        _text(roads.adr, layout),
        _text(_coordinates(accidents.lat, layout.coord_decimals), layout),
        _text(_coordinates(accidents.long, layout.coord_decimals), layout),
    ]
    return _render((layout.key, *_CARAC_COLUMNS), columns)


def _format_lieux(
    rng: np.random.Generator,
    accidents: Accidents,
    layout: Layout,
    num_acc: list[str],
    roads: _Roads,
) -> bytes:
    n = len(num_acc)
    catr = accidents.catr
    route = np.isin(catr, (1, 2, 3))
    number = roads.number
    if layout.several_lieux:
        prefix = np.select([catr == 1, catr == 2], ["A", "N"], "D")
        number = np.where(rng.random(n) < 0.4, prefix + number, number)
    voie = np.where(route, number, roads.street)
    # Kilometre posts exist on numbered roads; elsewhere they are 0 or not given.
    pr_known = route & (rng.random(n) < 0.85)
    pr = np.where(pr_known, _strings(np.minimum(rng.geometric(0.04, n) - 1, 400)), "0")
    pr1 = np.where(pr_known, _strings(rng.integers(0, 20, n) * 50), "0")
    not_given = (~pr_known) & (rng.random(n) < 0.55)
    pr = np.where(not_given, layout.pr_unknown, pr)
    pr1 = np.where(not_given, layout.pr_unknown, pr1)
    if layout.legacy_blanks:
        v1 = np.where(rng.random(n) < 0.24, dist.EMPTY, 0)
        letter = np.array(["D", "A", "E", "N"], dtype=object)[rng.integers(0, 4, n)]
        v2 = np.where(rng.random(n) < 0.9, "", letter)
        lartpc = np.where(rng.random(n) < 0.015, 0, dist.EMPTY)
        # 2019 wrote widths through a float, artefacts included ("5.79999999999999982").
        widths = [f"{w:.18g}" for w in (7.0, 6.0, 5.8, 4.8, 6.5, 10.0)]
        width = np.array(widths, dtype=object)[rng.integers(0, len(widths), n)]
        larrout = np.where(rng.random(n) < 0.02, width, "")
    else:
        v1 = np.where(rng.random(n) < 0.21, -1, np.where(rng.random(n) < 0.01, 2, 0))
        letter = np.array(["D", "A", "E", "N", "B", "R"], dtype=object)[rng.integers(0, 6, n)]
        v2 = np.where(rng.random(n) < 0.93, "N/A", letter)
        lartpc = np.full(n, dist.EMPTY)
        filled_share = 0.28 if layout.several_lieux else 0.04
        decimetres = draw(rng, dist.LARROUT_MODERN, n)
        larrout = np.where(rng.random(n) < filled_share, _decimetres(decimetres), " -1")
    columns = {
        "Num_Acc": num_acc,
        "catr": _codes(catr, layout),
        "voie": _text(voie, layout),
        "v1": _codes(v1, layout),
        "v2": _text(v2, layout),
        "circ": _codes(accidents.circ, layout),
        "nbv": _codes(accidents.nbv, layout),
        "vosp": _codes(accidents.vosp, layout),
        "prof": _codes(accidents.prof, layout),
        "pr": _text(pr, layout),
        "pr1": _text(pr1, layout),
        "plan": _codes(accidents.plan, layout),
        "lartpc": _codes(lartpc, layout),
        "larrout": _text(larrout, layout),
        "surf": _codes(accidents.surf, layout),
        "infra": _codes(accidents.infra, layout),
        "situ": _codes(accidents.situ, layout),
        "vma": _codes(accidents.vma, layout),
    }
    if layout.several_lieux:
        _add_crossing_roads(rng, accidents, layout, columns)
    return _render(_LIEUX_COLUMNS, [columns[name] for name in _LIEUX_COLUMNS])


def _decimetres(values: IntArray) -> ObjArray:
    whole, tenth = np.divmod(values, 10)
    return np.where(tenth == 0, _strings(whole), _strings(whole) + "," + _strings(tenth))


def _add_crossing_roads(
    rng: np.random.Generator,
    accidents: Accidents,
    layout: Layout,
    columns: dict[str, list[str]],
) -> None:
    """From 2023 an accident at a crossing lists each road: repeat the row for the
    crossing street of most intersection accidents (about 1.27 rows per accident)."""
    n = len(columns["Num_Acc"])
    extra = (accidents.intersection > 1) & (rng.random(n) < 0.7)
    repeat = 1 + extra.astype(np.int64)
    second = np.zeros(int(repeat.sum()), bool)
    second[np.cumsum(repeat)[extra] - 1] = True
    _, crossing = _streets(rng, int(second.sum()))
    for name, column in columns.items():
        repeated = np.repeat(np.array(column, dtype=object), repeat)
        if name == "voie":
            repeated[second] = _text(crossing, layout)
        elif name == "catr":
            repeated[second] = _codes(np.full(int(second.sum()), 4), layout)
        columns[name] = list(repeated.tolist())


def _format_vehicules(
    vehicles: Vehicles, layout: Layout, num_acc: list[str], vehicle_ids: list[str]
) -> bytes:
    columns = [
        _pick(num_acc, vehicles.accident),
        vehicle_ids,
        _text(_vehicle_numbers(vehicles), layout),
        *(_codes(getattr(vehicles, name), layout) for name in _VEHICULES_COLUMNS[3:]),
    ]
    return _render(_VEHICULES_COLUMNS, columns)


def _format_usagers(
    rng: np.random.Generator,
    persons: Persons,
    vehicles: Vehicles,
    layout: Layout,
    num_acc: list[str],
    vehicle_ids: list[str],
    grav: IntArray,
) -> bytes:
    p_veh = persons.vehicle
    size = p_veh.size
    rate = layout.unfilled_rate
    fields = {
        "place": persons.place,
        "catu": persons.catu,
        "grav": grav,
        "sexe": unfilled(rng, persons.sexe, rate if layout.year >= 2021 else 0.0),
        "an_nais": np.where(rng.random(size) < rate * 1.2, dist.EMPTY, layout.year - persons.age),
        "trajet": persons.trajet,
        "secu1": unfilled(rng, persons.secu1, rate * 0.5),
        **{name: getattr(persons, name) for name in ("secu2", "secu3", "locp", "actp", "etatp")},
    }
    header = ["Num_Acc", *(["id_usager"] if layout.id_usager else []), *_USAGERS_TAIL]
    columns = [_pick(num_acc, persons.accident)]
    if layout.id_usager:
        columns.append(_text(_grouped_ids(layout.first_user_id + np.arange(size)), layout))
    columns += [
        _pick(vehicle_ids, p_veh),
        _pick(_text(_vehicle_numbers(vehicles), layout), p_veh),
        *(_codes(fields[name], layout) for name in _USAGERS_TAIL[2:]),
    ]
    return _render(header, columns)


def _vehicle_numbers(vehicles: Vehicles) -> ObjArray:
    letters = np.array([chr(ord("A") + i) + "01" for i in range(26)], dtype=object)
    return np.where(vehicles.fled, "Z01", letters[np.minimum(vehicles.rank, 25)])


# --- writing -----------------------------------------------------------------------


def format_tables(
    population: Population, grav: IntArray, layout: Layout, *, seed: int
) -> dict[str, bytes]:
    """The content of each of the year's four files, keyed as :data:`TABLES`."""
    accidents, vehicles, persons = population.accidents, population.vehicles, population.persons
    # Formatting draws (street names, road numbers...) use their own stream, so the
    # population does not depend on the year's layout.
    format_rng = np.random.default_rng([seed, 1])
    roads = _roads(format_rng, accidents.catr)
    numbers = layout.year * 100_000_000 + 1 + np.arange(accidents.catr.size)
    num_acc = _text(_strings(numbers), layout)
    vehicle_ids = _text(
        _grouped_ids(layout.first_vehicle_id + np.arange(vehicles.accident.size)), layout
    )
    return {
        "caracteristiques": _format_caracteristiques(accidents, layout, num_acc, roads),
        "lieux": _format_lieux(format_rng, accidents, layout, num_acc, roads),
        "vehicules": _format_vehicules(vehicles, layout, num_acc, vehicle_ids),
        "usagers": _format_usagers(
            format_rng, persons, vehicles, layout, num_acc, vehicle_ids, grav
        ),
    }


def write_atomically(path: Path, data: bytes) -> None:
    with tempfile.NamedTemporaryFile(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False
    ) as handle:
        handle.write(data)
        temporary = Path(handle.name)
    try:
        temporary.chmod(0o644)
        temporary.replace(path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise

"""Fixtures for the BAAC reader, dataset build and download tests.

``TinyYear`` writes a four-accident BAAC year in the original file format, with
switches for each known quirk, so each test states the quirk it exercises instead
of relying on an opaque fixture file.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import pytest

SAMPLES = Path(__file__).resolve().parents[2] / ".." / "shared" / "baac-samples"
NBSP = "\xa0"

# The original headers, 2019-2022 layout (2023+ inserts id_usager in usagers).
# fmt: off
_CARAC_HEADER = ["Num_Acc", "jour", "mois", "an", "hrmn", "lum", "dep", "com", "agg", "int",
                 "atm", "col", "adr", "lat", "long"]
_LIEUX_HEADER = ["Num_Acc", "catr", "voie", "v1", "v2", "circ", "nbv", "vosp", "prof", "pr",
                 "pr1", "plan", "lartpc", "larrout", "surf", "infra", "situ", "vma"]
_USAGERS_HEADER = ["Num_Acc", "id_vehicule", "num_veh", "place", "catu", "grav", "sexe",
                   "an_nais", "trajet", "secu1", "secu2", "secu3", "locp", "actp", "etatp"]
_VEHICULES_HEADER = ["Num_Acc", "id_vehicule", "num_veh", "senc", "catv", "obs", "obsm", "choc",
                     "manv", "motor", "occutc"]
# fmt: on


class TinyYear:
    """Four accidents of ``year``, in the raw text form of the official files.

    1. two persons in one car: the passenger (place 2, born 2001) hospitalised
       -> prioritaire; Corse-du-Sud (2A); two vehicles.
    2. a pedestrian (place 10, born 1940) killed by a van (catv 10); Haute-Corse
       (2B); vma " -1".
    3. one driver slightly hurt, sexe " -1", an_nais empty, motor " -1", atm " -1",
       negative longitude " -0,5792000" -> not prioritaire.
    4. every grav " -1" -> dropped by the dataset build.
    """

    def __init__(self, year: int) -> None:
        self.year = year
        y = str(year)
        self.ids = [f"{y}0000000{n}" for n in range(1, 5)]
        a1, a2, a3, a4 = self.ids
        # fmt: off
        carac = [
            [a1, "30", "11", y, "08:05", "1", "2A", "2A004", "1", "1", "1", "3",
             "Route de l'Église", "41,9267000", "8,7369000"],
            [a2, "12", "07", y, "17:45", "5", "2B", "2B033", "2", "3", "2", "6",
             "Rue des Pèlerins", "42,6970000", "9,4500000"],
            [a3, "1", "1", y, "23:59", "3", "33", "33063", "1", "1", " -1", "1",
             "N/A", "44,8378000", " -0,5792000"],
            [a4, "15", "6", y, "12:00", "1", "75", "75101", "2", "1", "1", "7",
             "Avenue d'Italie", "48,8566000", "2,3522000"],
        ]
        lieux = [
            [a1, "3", "D81", "0", "N/A", "2", "2", "0", "1", "(1)", "(1)", "1", "", "5,5",
             "1", "0", "1", "80"],
            [a2, "4", "RUE DES PÈLERINS", "0", "", "1", "1", "0", "1", " -1", " -1", "1", "",
             " -1", "2", "0", "4", " -1"],
            [a3, "1", "A63", "0", "", "3", "3", "0", "1", "12", "300", "1", "", "", "1", "0",
             "1", "130"],
            [a4, "4", "AVENUE D'ITALIE", "0", "", "2", "2", "0", "1", " -1", " -1", "1", "",
             " -1", "1", "0", "1", "50"],
        ]
        usagers = [
            [a1, f"201{NBSP}764", "A01", "1", "1", "1", "1", "1980", "5", "1", "0", " -1",
             " -1", " -1", " -1"],
            [a1, f"201{NBSP}764", "A01", "2", "2", "3", "2", "2001", "5", "1", "0", " -1",
             " -1", " -1", " -1"],
            [a2, f"201{NBSP}765", "A01", "1", "1", "1", "1", "1975", "1", "1", "0", " -1",
             " -1", " -1", " -1"],
            [a2, f"201{NBSP}765", "A01", "10", "3", "2", "2", "1940", "5", "0", " -1", " -1",
             "2", "B", "1"],
            [a3, f"201{NBSP}766", "A01", "1", "1", "4", " -1", "", "0", "1", "0", " -1",
             " -1", " -1", " -1"],
            [a4, f"201{NBSP}767", "A01", "1", "1", " -1", "1", "1990", "0", "1", "0", " -1",
             " -1", " -1", " -1"],
        ]
        vehicules = [
            [a1, f"201{NBSP}764", "A01", "1", "7", "0", "2", "1", "1", "1", ""],
            [a1, f"201{NBSP}768", "B01", "1", "33", "0", "2", "3", "15", "1", ""],
            [a2, f"201{NBSP}765", "A01", "1", "10", "0", "1", "1", "1", "1", ""],
            [a3, f"201{NBSP}766", "A01", "2", "7", "1", "0", "3", "1", " -1", ""],
            [a4, f"201{NBSP}767", "A01", "1", "7", "0", "2", "1", "1", "1", ""],
        ]
        # fmt: on
        self.tables: dict[str, tuple[list[str], list[list[str]]]] = {
            "caracteristiques": (list(_CARAC_HEADER), carac),
            "lieux": (list(_LIEUX_HEADER), lieux),
            "usagers": (list(_USAGERS_HEADER), usagers),
            "vehicules": (list(_VEHICULES_HEADER), vehicules),
        }
        if year >= 2023:
            self._add_2023_layout()

    def _add_2023_layout(self) -> None:
        header, rows = self.tables["usagers"]
        header.insert(1, "id_usager")
        for n, row in enumerate(rows):
            row.insert(1, f"203 851 {180 + n}")
        # Since 2023 an accident has one lieux row per road: the first is kept.
        rows = self.tables["lieux"][1]
        extra = copy.deepcopy(rows[0])
        extra[1], extra[2], extra[-1] = "4", "RUE DE LA GARE", "30"
        rows.insert(1, extra)

    def set(self, table: str, row: int, column: str, value: str) -> TinyYear:
        header, rows = self.tables[table]
        rows[row][header.index(column)] = value
        return self

    def drop_column(self, table: str, column: str) -> TinyYear:
        header, rows = self.tables[table]
        index = header.index(column)
        del header[index]
        for row in rows:
            del row[index]
        return self

    def text(
        self, table: str, *, key_column: str = "Num_Acc", bare_empty: bool = False, sep: str = ";"
    ) -> str:
        header, rows = self.tables[table]
        header = [key_column if name == "Num_Acc" else name for name in header]

        def field(value: str) -> str:
            if bare_empty and value == "":
                return ""
            return '"' + value.replace('"', '""') + '"'

        lines = [sep.join(field(v) for v in line) for line in [header, *rows]]
        return "\n".join(lines) + "\n"

    def write(
        self,
        folder: Path,
        *,
        names: dict[str, str] | None = None,
        key_column: str = "Num_Acc",
        bare_empty: bool = False,
        encoding: str = "utf-8",
    ) -> dict[str, Path]:
        """Write the four files; ``encoding`` is a codec name or ``"double"`` for
        UTF-8 bytes decoded as Latin-1 and saved again as UTF-8 (the 2021 copy)."""
        folder.mkdir(parents=True, exist_ok=True)
        paths: dict[str, Path] = {}
        for table in self.tables:
            name = (names or {}).get(table, f"{table}-{self.year}.csv")
            text = self.text(
                table,
                key_column=key_column if table == "caracteristiques" else "Num_Acc",
                bare_empty=bare_empty,
            )
            if encoding == "double":
                data = text.encode("utf-8").decode("latin-1").encode("utf-8")
            else:
                data = text.encode(encoding)
            path = folder / name
            path.write_bytes(data)
            paths[table] = path
        return paths


@pytest.fixture
def tiny_year() -> Callable[[int], TinyYear]:
    return TinyYear


@pytest.fixture(scope="session")
def baac_samples() -> Path:
    """The real BAAC extracts shared next to the repository."""
    if not SAMPLES.is_dir():
        pytest.skip(f"real BAAC samples not found at {SAMPLES.resolve()}")
    return SAMPLES.resolve()

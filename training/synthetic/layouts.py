"""The format of each year's BAAC files, as ONISR published them: file names, the
join key's name, quoting of empty fields, decimal widths, padding, sentinels and
identifier ranges. ``writers.py`` writes a population in one of them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Layout:
    """How one year's files are written. Years after the newest known one reuse its
    layout."""

    year: int
    caracteristiques_file: str
    key: str
    """Name of the join key in caracteristiques (``Accident_Id`` in 2022)."""
    id_usager: bool
    bare_empty: bool
    """2020 writes empty fields as nothing instead of ``""``."""
    coord_decimals: int
    pad_month: bool
    pad_dep: bool
    """2019 writes department 02 as ``2`` (the commune code keeps its zero)."""
    pr_unknown: str
    several_lieux: bool
    """From 2023, an accident may have several lieux rows."""
    legacy_blanks: bool
    """2019 leaves v1, v2, larrout empty where later years write -1 or N/A."""
    unfilled_rate: float
    """How often person fields (sex, birth year, safety equipment) are not filled."""
    first_vehicle_id: int
    first_user_id: int

    @property
    def files(self) -> dict[str, str]:
        return {
            "caracteristiques": self.caracteristiques_file,
            "lieux": f"lieux-{self.year}.csv",
            "usagers": f"usagers-{self.year}.csv",
            "vehicules": f"vehicules-{self.year}.csv",
        }


def year_layout(year: int) -> Layout:
    if year < 2019:
        raise ValueError(f"year {year}: only the 2019+ BAAC format is generated")
    modern = year >= 2023
    # Identifier ranges are those of the published files (2022's is an assumption);
    # later years continue from 2024's.
    vehicle_ids = {2019: 138_300_000, 2020: 154_700_000, 2021: 200_000, 2022: 813_000}
    user_ids = {2022: 1_000_000, 2023: 203_851_000}
    return Layout(
        year=year,
        caracteristiques_file=(
            "carcteristiques-2022.csv" if year == 2022 else f"caracteristiques-{year}.csv"
        ),
        key="Accident_Id" if year == 2022 else "Num_Acc",
        id_usager=year >= 2022,
        bare_empty=year == 2020,
        coord_decimals={2019: 7, 2020: 7, 2021: 10, 2022: 10}.get(year, 8),
        pad_month=year >= 2021,
        pad_dep=year >= 2020,
        pr_unknown=" -1" if modern else "(1)",
        several_lieux=modern,
        legacy_blanks=year == 2019,
        unfilled_rate=0.003 if year <= 2020 else 0.02,
        first_vehicle_id=vehicle_ids.get(year, 155_680_000 + 101_000 * (year - 2023)),
        first_user_id=user_ids.get(year, 203_851_000 + 137_000 * (year - 2023)),
    )

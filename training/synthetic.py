"""Synthetic BAAC data, written in the original file format of a given year.

The four tables (caracteristiques, lieux, vehicules, usagers) are generated with
marginals close to the published ones and written exactly as ONISR publishes them for
``year`` (headers, quoting, separators, sentinels, decimal commas, non-breaking
thousands separators), so the real loader is what runs on them, quirks included. The
2021 files are written as ONISR published them (clean UTF-8), not double-encoded like
some copies found in the wild.

Severity comes from a latent score per person (vulnerability of the road user, speed
limit, road type, darkness, collision type, fixed obstacle, missing safety equipment,
age) plus noise, cut into ``grav`` at thresholds calibrated so that the person-level
mix matches 2021. A ``drift`` switch changes the generating distributions themselves.
``docs/synthetic-data.md`` describes the model; the data is synthetic and must never be
presented as real.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
from numpy.typing import NDArray

log = logging.getLogger(__name__)

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
ObjArray = NDArray[np.object_]
Table = tuple[tuple[int, float], ...]
"""A discrete distribution: (code, relative weight) pairs."""


class DriftKind(StrEnum):
    """Ways the generating distributions can move away from the 2021-like default."""

    NIGHT_RURAL = "night-rural"
    """More night-time accidents, more of them out of town, on faster roads."""
    TWO_WHEELERS = "two-wheelers"
    """Many more motorcycles, scooters, bicycles and personal transporters (EDP)."""
    OLDER_VICTIMS = "older-victims"
    """Every age distribution shifted up, more elderly pedestrians and drivers, and
    what comes with them: more pedestrians, fewer two-wheelers, more daytime."""
    WEATHER = "bad-weather"
    """Rain, fog and snow much more frequent, wet and icy roads, winter months."""


TABLES: tuple[str, ...] = ("caracteristiques", "lieux", "usagers", "vehicules")

GRAV_TARGET: Mapping[int, float] = MappingProxyType({1: 0.427, 2: 0.025, 3: 0.148, 4: 0.400})
"""Person-level ``grav`` mix of the whole 2021 year (129,188 persons): 1 unharmed,
2 killed, 3 hospitalised, 4 slightly injured."""

_NBSP = "\u00a0"
_EMPTY = -1_000_000
"""Code for a field left empty (``""``, or nothing at all in 2020)."""

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


@dataclass(frozen=True)
class _Layout:
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


def _layout(year: int) -> _Layout:
    if year < 2019:
        raise ValueError(f"year {year}: only the 2019+ BAAC format is generated")
    modern = year >= 2023
    # Identifier ranges are those of the published files (2022's is an assumption);
    # later years continue from 2024's.
    vehicle_ids = {2019: 138_300_000, 2020: 154_700_000, 2021: 200_000, 2022: 813_000}
    user_ids = {2022: 1_000_000, 2023: 203_851_000}
    return _Layout(
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


# --- departments: code, relative accident count, centre, spread, urban share, communes

_DEPARTMENT_ROWS: tuple[tuple[str, float, float, float, float, float, int, int], ...] = (
    ("01", 320, 46.10, 5.35, 0.25, 0.55, 1, 450),
    ("02", 250, 49.55, 3.55, 0.30, 0.50, 1, 800),
    ("03", 200, 46.35, 3.20, 0.30, 0.50, 1, 320),
    ("04", 150, 44.10, 6.25, 0.30, 0.45, 1, 245),
    ("05", 150, 44.65, 6.30, 0.25, 0.45, 1, 180),
    ("06", 1700, 43.75, 7.15, 0.12, 0.80, 1, 165),
    ("07", 200, 44.75, 4.40, 0.25, 0.45, 1, 340),
    ("08", 150, 49.60, 4.65, 0.25, 0.50, 1, 450),
    ("09", 90, 42.95, 1.50, 0.20, 0.45, 1, 330),
    ("10", 200, 48.30, 4.15, 0.25, 0.50, 1, 430),
    ("11", 250, 43.10, 2.40, 0.25, 0.50, 1, 440),
    ("12", 200, 44.30, 2.65, 0.30, 0.40, 1, 300),
    ("13", 3800, 43.45, 5.20, 0.15, 0.80, 1, 120),
    ("14", 400, 49.10, -0.35, 0.25, 0.60, 1, 700),
    ("15", 90, 45.05, 2.65, 0.25, 0.40, 1, 260),
    ("16", 200, 45.70, 0.20, 0.25, 0.50, 1, 400),
    ("17", 450, 45.75, -0.75, 0.30, 0.55, 1, 470),
    ("18", 180, 47.05, 2.50, 0.30, 0.45, 1, 290),
    ("19", 130, 45.35, 1.90, 0.25, 0.45, 1, 290),
    ("21", 350, 47.40, 4.75, 0.30, 0.55, 1, 700),
    ("22", 250, 48.45, -2.85, 0.25, 0.50, 1, 360),
    ("23", 70, 46.10, 2.00, 0.25, 0.40, 1, 260),
    ("24", 220, 45.10, 0.75, 0.35, 0.45, 1, 560),
    ("25", 300, 47.15, 6.35, 0.25, 0.55, 1, 590),
    ("26", 300, 44.70, 5.15, 0.30, 0.55, 1, 370),
    ("27", 300, 49.10, 1.00, 0.25, 0.50, 1, 680),
    ("28", 230, 48.40, 1.35, 0.25, 0.50, 1, 400),
    ("29", 450, 48.25, -4.05, 0.30, 0.55, 1, 300),
    ("2A", 150, 41.85, 8.95, 0.20, 0.55, 1, 365),
    ("2B", 150, 42.40, 9.20, 0.20, 0.55, 1, 365),
    ("30", 700, 43.95, 4.20, 0.25, 0.60, 1, 360),
    ("31", 1300, 43.50, 1.35, 0.20, 0.72, 1, 590),
    ("32", 100, 43.70, 0.45, 0.25, 0.40, 1, 470),
    ("33", 1700, 44.85, -0.60, 0.25, 0.70, 1, 560),
    ("34", 1200, 43.60, 3.60, 0.25, 0.70, 1, 345),
    ("35", 600, 48.15, -1.65, 0.25, 0.60, 1, 360),
    ("36", 120, 46.80, 1.55, 0.30, 0.45, 1, 250),
    ("37", 350, 47.25, 0.70, 0.25, 0.60, 1, 280),
    ("38", 900, 45.25, 5.60, 0.30, 0.65, 1, 540),
    ("39", 150, 46.75, 5.70, 0.30, 0.45, 1, 580),
    ("40", 300, 43.95, -0.80, 0.30, 0.50, 1, 330),
    ("41", 180, 47.60, 1.40, 0.30, 0.45, 1, 300),
    ("42", 500, 45.70, 4.20, 0.25, 0.65, 1, 330),
    ("43", 130, 45.10, 3.80, 0.25, 0.45, 1, 260),
    ("44", 900, 47.35, -1.70, 0.25, 0.65, 1, 240),
    ("45", 400, 47.90, 2.30, 0.30, 0.55, 1, 330),
    ("46", 100, 44.60, 1.60, 0.25, 0.40, 1, 340),
    ("47", 200, 44.35, 0.45, 0.25, 0.45, 1, 320),
    ("48", 50, 44.50, 3.50, 0.20, 0.35, 1, 180),
    ("49", 450, 47.40, -0.55, 0.30, 0.55, 1, 370),
    ("50", 250, 49.10, -1.30, 0.30, 0.50, 1, 600),
    ("51", 350, 48.95, 4.20, 0.30, 0.55, 1, 620),
    ("52", 100, 48.10, 5.20, 0.30, 0.45, 1, 430),
    ("53", 150, 48.15, -0.65, 0.25, 0.45, 1, 240),
    ("54", 400, 48.80, 6.15, 0.25, 0.60, 1, 590),
    ("55", 100, 49.00, 5.40, 0.30, 0.45, 1, 500),
    ("56", 400, 47.85, -2.80, 0.25, 0.55, 1, 250),
    ("57", 600, 49.05, 6.65, 0.30, 0.60, 1, 730),
    ("58", 120, 47.10, 3.50, 0.30, 0.45, 1, 310),
    ("59", 1500, 50.45, 3.20, 0.25, 0.75, 1, 660),
    ("60", 450, 49.40, 2.45, 0.25, 0.55, 1, 690),
    ("61", 150, 48.60, 0.10, 0.25, 0.45, 1, 390),
    ("62", 700, 50.50, 2.30, 0.25, 0.60, 1, 890),
    ("63", 450, 45.70, 3.15, 0.30, 0.60, 1, 460),
    ("64", 700, 43.25, -0.75, 0.30, 0.60, 1, 545),
    ("65", 150, 43.05, 0.15, 0.25, 0.50, 1, 470),
    ("66", 450, 42.60, 2.60, 0.20, 0.65, 1, 225),
    ("67", 800, 48.65, 7.55, 0.25, 0.70, 1, 560),
    ("68", 500, 47.85, 7.25, 0.25, 0.65, 1, 380),
    ("69", 2200, 45.80, 4.75, 0.15, 0.80, 1, 300),
    ("70", 120, 47.65, 6.10, 0.25, 0.45, 1, 545),
    ("71", 300, 46.65, 4.55, 0.30, 0.50, 1, 570),
    ("72", 300, 48.00, 0.20, 0.25, 0.55, 1, 380),
    ("73", 400, 45.50, 6.40, 0.25, 0.55, 1, 300),
    ("74", 800, 46.00, 6.40, 0.20, 0.60, 1, 300),
    ("75", 4800, 48.86, 2.35, 0.025, 0.998, 101, 120),
    ("76", 700, 49.65, 1.00, 0.25, 0.65, 1, 760),
    ("77", 1100, 48.60, 2.95, 0.25, 0.60, 1, 530),
    ("78", 1000, 48.80, 1.85, 0.20, 0.70, 1, 690),
    ("79", 200, 46.55, -0.30, 0.30, 0.45, 1, 330),
    ("80", 300, 49.95, 2.30, 0.30, 0.55, 1, 800),
    ("81", 250, 43.80, 2.15, 0.25, 0.50, 1, 330),
    ("82", 150, 44.05, 1.30, 0.20, 0.45, 1, 200),
    ("83", 1000, 43.45, 6.20, 0.25, 0.70, 1, 155),
    ("84", 600, 44.00, 5.15, 0.20, 0.65, 1, 155),
    ("85", 400, 46.65, -1.30, 0.30, 0.50, 1, 300),
    ("86", 250, 46.55, 0.45, 0.30, 0.50, 1, 300),
    ("87", 250, 45.90, 1.25, 0.25, 0.60, 1, 210),
    ("88", 200, 48.20, 6.40, 0.25, 0.50, 1, 520),
    ("89", 200, 47.85, 3.55, 0.30, 0.50, 1, 450),
    ("90", 100, 47.65, 6.90, 0.08, 0.65, 1, 100),
    ("91", 1200, 48.50, 2.25, 0.12, 0.75, 1, 690),
    ("92", 1900, 48.85, 2.25, 0.04, 0.97, 1, 78),
    ("93", 2200, 48.91, 2.48, 0.04, 0.97, 1, 78),
    ("94", 1900, 48.78, 2.47, 0.04, 0.97, 1, 81),
    ("95", 1100, 49.05, 2.20, 0.12, 0.75, 1, 690),
    ("971", 500, 16.20, -61.55, 0.10, 0.65, 1, 34),
    ("972", 500, 14.65, -61.00, 0.08, 0.65, 1, 34),
    ("973", 250, 4.90, -52.40, 0.15, 0.70, 1, 62),
    ("974", 900, -21.10, 55.50, 0.10, 0.65, 1, 24),
    ("975", 5, 46.80, -56.20, 0.02, 0.80, 1, 2),
    ("976", 150, -12.80, 45.15, 0.05, 0.65, 1, 17),
    ("977", 20, 17.90, -62.83, 0.01, 0.80, 1, 1),
    ("978", 40, 18.07, -63.05, 0.02, 0.80, 1, 1),
    ("986", 5, -13.30, -176.20, 0.02, 0.70, 11, 13),
    ("987", 300, -17.60, -149.50, 0.05, 0.70, 11, 58),
    ("988", 400, -22.20, 166.45, 0.08, 0.70, 1, 33),
)  # fmt: skip

# --- distributions (codes and meanings: BAAC data dictionary) -------------------------

# Hourly share of accidents: morning and evening rush hours, few at night.
_HOUR_WEIGHTS = (
    1.6, 1.3, 1.1, 0.9, 0.8, 1.3, 2.2, 4.3, 5.6, 4.3, 4.3, 5.0,
    5.5, 5.3, 5.8, 6.6, 7.4, 8.3, 8.0, 6.2, 4.3, 3.3, 2.6, 2.2,
)  # fmt: skip
_MONTH_WEIGHTS = (7.2, 7.0, 7.8, 7.5, 8.5, 9.5, 9.0, 7.8, 9.5, 9.2, 8.0, 7.5)
_WEEKDAY_WEIGHTS = (1.0, 1.0, 1.0, 1.05, 1.15, 1.05, 0.85)  # Monday ... Sunday

_ATM: Table = (
    (1, 78.5), (2, 10.5), (3, 2.2), (4, 0.4), (5, 0.6), (6, 0.4), (7, 2.2), (8, 4.5),
    (9, 0.5), (-1, 0.2),
)  # fmt: skip
# Night lighting: street lights in town, darkness out of town.
_LUM_NIGHT_URBAN: Table = ((5, 85), (4, 4), (3, 11))
_LUM_NIGHT_RURAL: Table = ((3, 78), (5, 18), (4, 4))
_INT_URBAN: Table = (
    (1, 55), (2, 13), (3, 15), (4, 2.5), (5, 0.8), (6, 6), (7, 1.5), (8, 0.1), (9, 6),
)  # fmt: skip
_INT_RURAL: Table = (
    (1, 80), (2, 5), (3, 7), (4, 2), (5, 0.3), (6, 3.5), (7, 0.2), (8, 0.3), (9, 2),
)  # fmt: skip
_CATR_URBAN: Table = ((4, 62), (3, 22), (7, 7), (2, 3), (1, 2), (6, 1.5), (5, 0.5), (9, 2))
_CATR_RURAL: Table = ((3, 58), (1, 17), (2, 10), (4, 10), (9, 2), (5, 1), (6, 1), (7, 1))
_VMA_MOTORWAY: Table = ((130, 45), (110, 30), (90, 13), (70, 8), (50, 4))
_VMA_URBAN: Table = (
    (50, 72), (30, 17), (70, 4), (20, 2), (40, 2), (80, 2), (90, 0.5), (10, 0.3), (5, 0.2),
)  # fmt: skip
_VMA_RURAL: Table = (
    (80, 50), (90, 13), (70, 14), (50, 14), (110, 5), (30, 2), (60, 1), (40, 1),
)  # fmt: skip
# The per-department urban shares are those of their town centres; out-of-town roads
# add this much, for about two accidents in three in town overall.
_RURAL_ODDS = 1.3
# Accident kinds: a pedestrian is hit, one vehicle alone, or several vehicles.
_PEDESTRIAN, _SINGLE, _MULTI = 0, 1, 2
_KIND_URBAN: Table = ((_PEDESTRIAN, 17), (_SINGLE, 20), (_MULTI, 63))
_KIND_RURAL: Table = ((_PEDESTRIAN, 4), (_SINGLE, 40), (_MULTI, 56))
_MULTI_VEHICLES: Table = ((2, 87), (3, 10), (4, 2.3), (5, 0.5), (6, 0.2))
_COL_PEDESTRIAN: Table = ((6, 90), (7, 5), (3, 5))
_COL_SINGLE: Table = ((6, 70), (7, 30))
_COL_TWO: Table = ((1, 15), (2, 20), (3, 55), (6, 10), (-1, 0.5))
_COL_CHAIN: Table = ((4, 35), (5, 40), (1, 5), (2, 10), (3, 10))

_CATV_MULTI: Table = (
    (7, 62), (10, 6.5), (33, 6.5), (1, 5), (2, 2.5), (30, 2.5), (31, 2), (32, 2), (34, 1),
    (50, 2), (60, 0.3), (80, 1.2), (13, 0.3), (14, 0.7), (15, 0.4), (16, 0.1), (17, 0.8),
    (37, 0.6), (38, 0.3), (40, 0.2), (39, 0.05), (3, 0.4), (20, 0.1), (21, 0.2), (35, 0.05),
    (36, 0.2), (41, 0.05), (42, 0.1), (43, 0.2), (99, 0.8), (0, 0.2),
)  # fmt: skip
_TWO_WHEELERS = (1, 2, 30, 31, 32, 33, 34, 41, 42, 43, 50, 60, 80)
_HEAVY = (13, 14, 15, 16, 17, 37, 38, 39, 40)
_PUBLIC_TRANSPORT = (37, 38, 39, 40)
_RIDERS = (2, 30, 31, 32, 33, 34, 35, 36, 41, 42, 43)
_CYCLES = (1, 50, 60, 80)
_HUMAN_POWERED = (1, 60)
_ELECTRIC_LIGHT = (50, 80)
# Alone on the road, riders lose control far more often than car drivers; the vehicle
# that hits a pedestrian is mostly a car, van or bus.
_CATV_SINGLE_FACTORS: Mapping[int, float] = MappingProxyType(
    {**dict.fromkeys(_TWO_WHEELERS, 1.6), **dict.fromkeys(_HEAVY, 0.5)}
)
_CATV_PEDESTRIAN_FACTORS: Mapping[int, float] = MappingProxyType(
    {**dict.fromkeys(_TWO_WHEELERS, 0.5), 7: 1.1, 10: 1.2, 37: 2.5, 38: 1.5, 40: 2.0}
)

_OBS_NONE: Table = (
    (0, 95), (1, 1), (2, 0.5), (3, 0.5), (4, 0.5), (6, 0.5), (12, 0.5), (13, 0.5),
    (16, 0.5), (14, 0.5), (-1, 0.1),
)  # fmt: skip
_OBS_SINGLE_URBAN: Table = (
    (0, 38), (1, 10), (2, 3), (3, 3), (4, 3), (5, 1), (6, 7), (7, 4), (8, 5), (9, 4),
    (10, 0.5), (11, 2), (12, 7), (13, 3), (14, 3), (15, 3), (16, 3), (17, 0.5),
)  # fmt: skip
_OBS_SINGLE_RURAL: Table = (
    (0, 22), (1, 2), (2, 14), (3, 6), (4, 4), (5, 2), (6, 4), (7, 2), (8, 3), (9, 0.5),
    (10, 1), (11, 0.5), (12, 1), (13, 20), (14, 2), (15, 1), (16, 14), (17, 1.5),
)  # fmt: skip
_OBSM_MULTI: Table = ((2, 92), (0, 5), (1, 1), (9, 2))
_OBSM_PEDESTRIAN: Table = ((1, 95), (0, 2), (9, 3))
_OBSM_SINGLE: Table = ((0, 88), (6, 5), (5, 1), (9, 4), (4, 0.3), (-1, 0.5))
_CHOC_ANY: Table = (
    (1, 37), (2, 13), (3, 16), (4, 9), (5, 4), (6, 3), (7, 5), (8, 6), (9, 3), (0, 4),
    (-1, 0.3),
)  # fmt: skip
_CHOC_FRONT: Table = ((1, 70), (2, 12), (3, 15), (9, 3))
_CHOC_REAR: Table = ((4, 80), (5, 10), (6, 10))
_MANV: Table = (
    (1, 42), (2, 10), (15, 8), (0, 6), (13, 4.5), (26, 4), (17, 3), (19, 3), (9, 3),
    (16, 2.5), (23, 2.5), (21, 2), (14, 1.5), (12, 1), (11, 1), (3, 1), (5, 1), (10, 1),
    (4, 0.5), (18, 0.5), (20, 0.5), (22, 0.5), (24, 0.5), (25, 0.5), (6, 0.3), (7, 0.3),
    (8, 0.2), (-1, 0.5),
)  # fmt: skip
_SENC: Table = ((1, 45), (2, 34), (3, 13), (0, 7), (-1, 1))
_MOTOR_FUEL: Table = ((1, 86), (2, 4.5), (3, 2.5), (0, 5), (6, 1), (4, 0.2), (-1, 0.8))
_MOTOR_HUMAN: Table = ((5, 90), (0, 5), (-1, 3), (6, 2))
_MOTOR_ELECTRIC: Table = ((3, 85), (0, 10), (6, 5))

_CIRC_MOTORWAY: Table = ((3, 90), (1, 5), (-1, 5))
_CIRC_OTHER: Table = ((2, 68), (1, 15), (3, 9), (4, 0.5), (-1, 7.5))
_NBV_MOTORWAY: Table = ((2, 35), (3, 25), (4, 20), (6, 10), (5, 3), (8, 3), (-1, 4))
_NBV_OTHER: Table = ((2, 70), (1, 10), (3, 6), (4, 8), (0, 3), (5, 1), (6, 1), (-1, 1))
_VOSP: Table = ((0, 85), (1, 3), (2, 4), (3, 4), (-1, 4))
_PROF: Table = ((1, 80), (2, 16), (3, 2), (4, 1.5), (-1, 0.5))
_PLAN: Table = ((1, 79), (2, 9), (3, 10), (4, 1.5), (-1, 0.5))
_INFRA: Table = (
    (0, 78), (5, 7), (9, 5), (2, 2.5), (3, 2), (6, 2), (1, 1), (4, 0.5), (8, 1), (7, 0.2),
    (-1, 0.8),
)  # fmt: skip
_SITU_URBAN: Table = ((1, 82), (3, 3), (4, 5), (5, 3), (8, 5), (2, 0.3), (6, 1.5), (-1, 0.2))
_SITU_RURAL: Table = ((1, 84), (3, 11), (4, 0.5), (5, 0.5), (8, 2), (2, 1.5), (6, 0.5))
_SURF_DRY: Table = ((1, 93), (2, 5), (9, 1), (8, 0.5), (6, 0.5))
_SURF_RAIN: Table = ((2, 88), (3, 5), (1, 5), (4, 1), (6, 1))
_SURF_SNOW: Table = ((5, 50), (7, 30), (2, 20))
_SURF_OTHER: Table = ((1, 60), (2, 38), (7, 2))
_LARROUT_MODERN: Table = (
    (_EMPTY, 0), (70, 30), (55, 17), (50, 10), (135, 7), (100, 6), (60, 5), (40, 8),
    (105, 5), (30, 3), (140, 4), (35, 2), (175, 2), (0, 3),
)  # fmt: skip
"""Width in decimetres, written with a decimal comma (55 -> ``5,5``)."""

_TRAJET: Table = ((0, 22), (1, 13), (2, 3), (3, 3), (4, 7), (5, 42), (9, 8), (-1, 2))
_PASSENGER_PLACE_CAR: Table = ((2, 55), (3, 17), (4, 18), (5, 6), (6, 4))
_PASSENGER_PLACE_BUS: Table = ((7, 25), (8, 25), (9, 20), (2, 10), (3, 10), (4, 10))
_SECU1_CAR: Table = ((1, 88), (0, 3), (8, 7), (9, 0.5), (-1, 1.5))
_SECU1_CHILD: Table = ((3, 70), (1, 25), (0, 3), (8, 2))
_SECU1_RIDER: Table = ((2, 88), (0, 4), (8, 5), (5, 1), (6, 1), (7, 0.5), (-1, 0.5))
_SECU1_CYCLIST: Table = ((2, 35), (0, 45), (8, 14), (4, 5), (9, 1))
_SECU1_PEDESTRIAN: Table = ((0, 72), (8, 16), (4, 1), (9, 1), (-1, 10))
_SECU2_CAR: Table = ((-1, 50), (0, 42), (8, 8))
_SECU2_RIDER: Table = ((6, 45), (0, 20), (-1, 20), (8, 10), (5, 3), (7, 2))
_SECU2_OTHER: Table = ((-1, 55), (0, 33), (4, 5), (8, 7))
_SECU3: Table = ((-1, 97), (0, 1.5), (9, 1), (8, 0.5))
_LOCP: Table = ((1, 10), (2, 10), (3, 35), (4, 10), (5, 15), (6, 5), (8, 2), (9, 8), (0, 5))
_ACTP_A, _ACTP_B = 100, 101  # the two letter codes
_ACTP: Table = (
    (1, 12), (2, 8), (3, 55), (4, 4), (5, 4), (6, 1), (9, 8), (_ACTP_A, 2), (_ACTP_B, 6),
)  # fmt: skip
_ETATP: Table = ((1, 75), (2, 18), (3, 5), (-1, 2))

# --- the latent severity model ------------------------------------------------------

# Mass class of each vehicle category: the lighter party of a collision takes the
# energy. Pedestrians are one class below bicycles.
_MASS: Mapping[int, float] = MappingProxyType(
    {
        **dict.fromkeys((1, 50, 60, 80), 0.0),
        **dict.fromkeys((2, 30, 31, 32, 33, 34, 35, 36, 41, 42, 43), 1.0),
        **dict.fromkeys((0, 3, 7, 99), 2.0),
        10: 2.5,
        **dict.fromkeys((20, 21), 3.0),
        **dict.fromkeys((13, 14, 15, 16, 17, 37, 38), 4.0),
        **dict.fromkeys((39, 40), 5.0),
    }
)
_PEDESTRIAN_MASS = -1.0
_CRUSH = 0.4
"""Severity added per mass class the other party has over the person's own vehicle."""
# Own protection: unprotected riders high, car occupants the reference, heavy vehicles
# and public transport well protected.
_VULNERABILITY: Mapping[int, float] = MappingProxyType(
    {
        **{1: 0.9, 80: 1.0, 50: 0.9, 60: 0.8},
        **{2: 0.9, 30: 0.9, 31: 1.1, 32: 1.0, 33: 1.4, 34: 1.2, 41: 1.0, 42: 1.1, 43: 1.3},
        **{35: 0.8, 36: 0.9, 3: 0.1, 7: 0.0, 0: 0.0, 99: 0.2, 10: -0.1, 20: -0.3, 21: 0.3},
        **{13: -0.9, 14: -1.1, 15: -1.1, 16: -1.0, 17: -1.1, 37: -1.4, 38: -1.2},
        **{39: -2.0, 40: -1.8},
    }
)
_PEDESTRIAN_VULNERABILITY = 1.3
_SPEED_PER_KMH = 0.03
"""Severity per km/h of speed limit above 50."""
_CATR_EFFECT: Mapping[int, float] = MappingProxyType({1: -1.2, 2: 0.1, 3: 0.2})
_RURAL_EFFECT = 0.5
_LUM_EFFECT: Mapping[int, float] = MappingProxyType({2: 0.15, 3: 0.5, 4: 0.25, 5: 0.1})
_SMALL_HOURS_EFFECT = 0.2
_ATM_EFFECT: Mapping[int, float] = MappingProxyType(
    {2: -0.1, 3: -0.15, 4: -0.2, 5: 0.3, 6: 0.1, 7: 0.1}
)
_COL_EFFECT: Mapping[int, float] = MappingProxyType(
    {1: 0.8, 2: -0.6, 4: -0.5, 5: 0.1, 6: 0.2, 7: 0.4}
)
_OBS_EFFECT: Mapping[int, float] = MappingProxyType(
    {1: -0.2, 2: 1.0, 3: 0.1, 4: 0.1, 5: 0.1, 6: 0.7, 7: 0.5, 8: 0.6, 10: 0.5, 13: 0.4,
     16: 0.3, 17: 0.4}
)  # fmt: skip
_OBSM_EFFECT: Mapping[int, float] = MappingProxyType({4: 1.5, 6: 0.2})
_NO_BELT_EFFECT = 1.0
_NO_HELMET_EFFECT = 1.2
_NO_CYCLE_HELMET_EFFECT = 0.3
_AGE_EFFECT_PER_YEAR = 0.035
"""Severity per year of age above 55: the same impact hurts an older body more."""
_CHILD_EFFECT = -0.3
_MALE_EFFECT = 0.1
_REAR_SEAT_EFFECT = -0.15
_ACCIDENT_NOISE = 0.35
_PERSON_NOISE = 0.9


@dataclass(frozen=True)
class _Params:
    """The knobs a drift turns: factors applied to the base distributions."""

    hour_factors: Mapping[int, float]
    month_factors: Mapping[int, float]
    rural_odds: float
    catr_rural_factors: Mapping[int, float]
    vma_rural_factors: Mapping[int, float]
    catv_factors: Mapping[int, float]
    atm_factors: Mapping[int, float]
    age_shift: float
    elderly_factor: float
    pedestrian_factor: float


def _params(drift: DriftKind | None) -> _Params:
    base = _Params(
        hour_factors={},
        month_factors={},
        rural_odds=1.0,
        catr_rural_factors={},
        vma_rural_factors={},
        catv_factors={},
        atm_factors={},
        age_shift=0.0,
        elderly_factor=1.0,
        pedestrian_factor=1.0,
    )
    if drift is DriftKind.NIGHT_RURAL:
        return replace(
            base,
            hour_factors=dict.fromkeys((*range(21, 24), *range(0, 6)), 4.0),
            rural_odds=3.0,
            catr_rural_factors={1: 1.5, 2: 1.8, 4: 0.5},
            vma_rural_factors={90: 2.5, 110: 2.0, 50: 0.5, 70: 0.7},
        )
    if drift is DriftKind.TWO_WHEELERS:
        return replace(base, catv_factors={**dict.fromkeys(_TWO_WHEELERS, 3.0), 50: 5.0, 7: 0.7})
    if drift is DriftKind.OLDER_VICTIMS:
        # An older population also walks more, rides less and drives in daytime.
        return replace(
            base,
            age_shift=12.0,
            elderly_factor=2.5,
            pedestrian_factor=1.6,
            hour_factors=dict.fromkeys(range(9, 17), 1.5),
            catv_factors=dict.fromkeys(_TWO_WHEELERS, 0.6),
        )
    if drift is DriftKind.WEATHER:
        return replace(
            base,
            atm_factors={1: 0.45, 2: 3.0, 3: 4.0, 4: 6.0, 5: 5.0, 6: 3.0, 8: 2.0},
            month_factors={1: 2.0, 2: 2.0, 11: 1.8, 12: 2.0, 6: 0.6, 7: 0.5, 8: 0.5},
        )
    return base


# --- drawing helpers ------------------------------------------------------------------


def _draw(
    rng: np.random.Generator,
    table: Table,
    size: int,
    factors: Mapping[int, float] | None = None,
) -> IntArray:
    codes = np.array([code for code, _ in table], dtype=np.int64)
    weights = np.array([w * (factors or {}).get(c, 1.0) for c, w in table], dtype=np.float64)
    return codes[rng.choice(codes.size, size=size, p=weights / weights.sum())]


def _draw_where(
    rng: np.random.Generator,
    out: IntArray,
    mask: BoolArray,
    table: Table,
    factors: Mapping[int, float] | None = None,
) -> None:
    """Fill ``out[mask]`` from ``table``: one draw per conditional group."""
    out[mask] = _draw(rng, table, int(mask.sum()), factors)


def _lookup(values: IntArray, mapping: Mapping[int, float], default: float = 0.0) -> FloatArray:
    uniques, inverse = np.unique(values, return_inverse=True)
    table = np.array([mapping.get(int(v), default) for v in uniques], dtype=np.float64)
    return table[inverse]


def _unfilled(rng: np.random.Generator, values: IntArray, rate: float) -> IntArray:
    """Replace a share ``rate`` of the values by BAAC's "not filled" sentinel, -1."""
    return np.where(rng.random(values.size) < rate, -1, values)


def _group_max(values: FloatArray, starts: IntArray) -> FloatArray:
    return np.maximum.reduceat(values, starts)


# --- the population -------------------------------------------------------------------


@dataclass
class _Population:
    """Every generated column, as arrays, before formatting. Vehicles and persons are
    sorted by accident, which is the order they are written in."""

    arrays: dict[str, Any]
    score: FloatArray
    person_start: IntArray
    """Index of each accident's first person (every accident has at least one)."""


def _generate(rng: np.random.Generator, n: int, year: int, params: _Params) -> _Population:
    a = _accidents(rng, n, year, params)
    _vehicles(rng, a, params)
    _persons(rng, a, year, params)
    score = _severity_score(rng, a)
    person_start = np.searchsorted(a["p_acc"], np.arange(n))
    return _Population(arrays=a, score=score, person_start=person_start)


def _accidents(rng: np.random.Generator, n: int, year: int, params: _Params) -> dict[str, Any]:
    """caracteristiques and lieux: where, when, the road, and what kind of accident."""
    a: dict[str, Any] = {}
    dep_codes = [row[0] for row in _DEPARTMENT_ROWS]
    dep_table = np.array([row[1:] for row in _DEPARTMENT_ROWS], dtype=np.float64)
    weights, lat0, lon0, spread, p_urban, com_lo, com_hi = dep_table.T

    # Where: the department, then a point around its centre and a commune in it.
    dep = rng.choice(len(dep_codes), size=n, p=weights / weights.sum())
    odds = p_urban[dep] / (1 - p_urban[dep]) / (params.rural_odds * _RURAL_ODDS)
    agg = np.where(rng.random(n) < odds / (1 + odds), 2, 1)
    rural = agg == 1
    a["dep"], a["dep_codes"], a["agg"] = dep, dep_codes, agg
    a["lat"] = lat0[dep] + rng.normal(0.0, 1.0, n) * spread[dep]
    a["long"] = lon0[dep] + rng.normal(0.0, 1.0, n) * spread[dep] * 1.4
    a["com"] = rng.integers(com_lo[dep].astype(np.int64), com_hi[dep].astype(np.int64) + 1)

    # When: a day weighted by month and weekday, an hour weighted by traffic.
    days = np.arange(f"{year}-01-01", f"{year + 1}-01-01", dtype="datetime64[D]")
    month = days.astype("datetime64[M]").astype(np.int64) % 12 + 1
    weekday = (days.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday
    month_w = np.array(
        [w * params.month_factors.get(m, 1.0) for m, w in enumerate(_MONTH_WEIGHTS, 1)]
    )
    day_w = month_w[month - 1] * np.array(_WEEKDAY_WEIGHTS)[weekday]
    doy = rng.choice(days.size, size=n, p=day_w / day_w.sum())
    a["mois"] = month[doy]
    a["jour"] = (days[doy] - days[doy].astype("datetime64[M]")).astype(np.int64) + 1
    hour_table = tuple((h, w) for h, w in enumerate(_HOUR_WEIGHTS))
    hour = _draw(rng, hour_table, n, params.hour_factors)
    # Officers round times to 5 minutes more often than not.
    minute = np.where(
        rng.random(n) < 0.7, rng.integers(0, 12, n) * 5, rng.integers(0, 60, n)
    ).astype(np.int64)
    a["hour"], a["minute"] = hour, minute

    # Light follows the sun (legal time, rough sunrise and sunset for mainland France).
    season = np.cos(2 * np.pi * (doy + 10) / 365.25)
    sunrise, sunset = 7.3 + 1.2 * season, 19.5 - 2.2 * season
    clock = hour + minute / 60
    twilight = (np.abs(clock - sunrise) < 0.3) | (np.abs(clock - sunset) < 0.3)
    daylight = (clock >= sunrise + 0.3) & (clock <= sunset - 0.3)
    lum = np.empty(n, np.int64)
    night = ~(twilight | daylight)
    lum[daylight], lum[twilight] = 1, 2
    _draw_where(rng, lum, night & ~rural, _LUM_NIGHT_URBAN)
    _draw_where(rng, lum, night & rural, _LUM_NIGHT_RURAL)
    a["lum"] = lum
    atm = _draw(rng, _ATM, n, params.atm_factors)
    a["atm"] = atm
    a["int"] = np.empty(n, np.int64)
    _draw_where(rng, a["int"], ~rural, _INT_URBAN)
    _draw_where(rng, a["int"], rural, _INT_RURAL)

    # The road.
    catr = np.empty(n, np.int64)
    _draw_where(rng, catr, ~rural, _CATR_URBAN)
    _draw_where(rng, catr, rural, _CATR_RURAL, params.catr_rural_factors)
    vma = np.empty(n, np.int64)
    motorway = catr == 1
    _draw_where(rng, vma, motorway, _VMA_MOTORWAY)
    _draw_where(rng, vma, ~motorway & ~rural, _VMA_URBAN)
    _draw_where(rng, vma, ~motorway & rural, _VMA_RURAL, params.vma_rural_factors)
    # The score reads the true limit; the file sometimes does not give it.
    a["catr"], a["vma_true"] = catr, vma
    a["vma"] = _unfilled(rng, vma, 0.02)
    a["circ"] = np.empty(n, np.int64)
    _draw_where(rng, a["circ"], motorway, _CIRC_MOTORWAY)
    _draw_where(rng, a["circ"], ~motorway, _CIRC_OTHER)
    a["nbv"] = np.empty(n, np.int64)
    _draw_where(rng, a["nbv"], motorway, _NBV_MOTORWAY)
    _draw_where(rng, a["nbv"], ~motorway, _NBV_OTHER)
    for column, table in (("vosp", _VOSP), ("prof", _PROF), ("plan", _PLAN), ("infra", _INFRA)):
        a[column] = _draw(rng, table, n)
    a["situ"] = np.empty(n, np.int64)
    _draw_where(rng, a["situ"], ~rural, _SITU_URBAN)
    _draw_where(rng, a["situ"], rural, _SITU_RURAL)
    surf = np.empty(n, np.int64)
    wet, snow = np.isin(atm, (2, 3)), atm == 4
    dry = np.isin(atm, (1, 7, 8, -1))
    _draw_where(rng, surf, dry, _SURF_DRY)
    _draw_where(rng, surf, wet, _SURF_RAIN)
    _draw_where(rng, surf, snow, _SURF_SNOW)
    _draw_where(rng, surf, ~(dry | wet | snow), _SURF_OTHER)
    a["surf"] = surf

    # What happened: the kind of accident sets the number of vehicles and the collision.
    kind = np.empty(n, np.int64)
    more_pedestrians = {_PEDESTRIAN: params.pedestrian_factor}
    _draw_where(rng, kind, ~rural, _KIND_URBAN, more_pedestrians)
    _draw_where(rng, kind, rural, _KIND_RURAL, more_pedestrians)
    nveh = np.ones(n, np.int64)
    multi = kind == _MULTI
    nveh[multi] = _draw(rng, _MULTI_VEHICLES, int(multi.sum()))
    pedestrian = kind == _PEDESTRIAN
    nveh[pedestrian] += rng.random(int(pedestrian.sum())) < 0.1
    col = np.empty(n, np.int64)
    _draw_where(rng, col, pedestrian, _COL_PEDESTRIAN)
    _draw_where(rng, col, kind == _SINGLE, _COL_SINGLE)
    _draw_where(rng, col, multi & (nveh == 2), _COL_TWO)
    _draw_where(rng, col, multi & (nveh > 2), _COL_CHAIN)
    a["kind"], a["nveh"], a["col"] = kind, nveh, col
    return a


def _vehicles(rng: np.random.Generator, a: dict[str, Any], params: _Params) -> None:
    """vehicules, grouped by accident in A01, B01... order."""
    kind, nveh, col, rural = a["kind"], a["nveh"], a["col"], a["agg"] == 1
    n = kind.size
    veh_start = np.concatenate(([0], np.cumsum(nveh)[:-1]))
    v_acc = np.repeat(np.arange(n), nveh)
    n_veh = int(v_acc.size)
    rank = np.arange(n_veh) - veh_start[v_acc]
    v_kind = kind[v_acc]
    v_rural = rural[v_acc]
    catv = np.empty(n_veh, np.int64)
    hitter = (v_kind == _PEDESTRIAN) & (rank == 0)
    alone = v_kind == _SINGLE
    others = ~(hitter | alone)
    _draw_where(rng, catv, hitter, _CATV_MULTI, _merge(_CATV_PEDESTRIAN_FACTORS, params))
    _draw_where(rng, catv, alone, _CATV_MULTI, _merge(_CATV_SINGLE_FACTORS, params))
    _draw_where(rng, catv, others, _CATV_MULTI, params.catv_factors)
    obs = np.empty(n_veh, np.int64)
    _draw_where(rng, obs, alone & ~v_rural, _OBS_SINGLE_URBAN)
    _draw_where(rng, obs, alone & v_rural, _OBS_SINGLE_RURAL)
    _draw_where(rng, obs, ~alone, _OBS_NONE)
    obsm = np.empty(n_veh, np.int64)
    _draw_where(rng, obsm, hitter, _OBSM_PEDESTRIAN)
    _draw_where(rng, obsm, alone, _OBSM_SINGLE)
    _draw_where(rng, obsm, others, _OBSM_MULTI)
    v_col = col[v_acc]
    choc = np.empty(n_veh, np.int64)
    front = (v_col == 1) | ((v_col == 2) & (rank == 0))
    rear = (v_col == 2) & (rank > 0)
    _draw_where(rng, choc, front, _CHOC_FRONT)
    _draw_where(rng, choc, rear, _CHOC_REAR)
    _draw_where(rng, choc, ~(front | rear), _CHOC_ANY)
    motor = np.empty(n_veh, np.int64)
    human, electric = np.isin(catv, _HUMAN_POWERED), np.isin(catv, _ELECTRIC_LIGHT)
    _draw_where(rng, motor, human, _MOTOR_HUMAN)
    _draw_where(rng, motor, electric, _MOTOR_ELECTRIC)
    _draw_where(rng, motor, ~(human | electric), _MOTOR_FUEL)
    public = np.isin(catv, _PUBLIC_TRANSPORT)
    occutc = np.where(public, 1 + rng.geometric(0.4, n_veh), _EMPTY)
    # A vehicle that drove off is recorded with no occupant, numbered Z01.
    fled = (v_kind == _MULTI) & (rank == nveh[v_acc] - 1) & (rng.random(n_veh) < 0.015)
    a |= {
        "veh_start": veh_start, "v_acc": v_acc, "rank": rank, "hitter": hitter, "catv": catv,
        "obs": obs, "obsm": obsm, "choc": choc, "motor": motor, "occutc": occutc, "fled": fled,
        "senc": _draw(rng, _SENC, n_veh), "manv": _draw(rng, _MANV, n_veh),
    }  # fmt: skip


def _persons(rng: np.random.Generator, a: dict[str, Any], year: int, params: _Params) -> None:
    """usagers: a driver per vehicle that stayed, its passengers, and the pedestrians,
    attached to the vehicle that hit them (always A01 here)."""
    catv, fled, hitter, v_acc = a["catv"], a["fled"], a["hitter"], a["v_acc"]
    n_veh = catv.size
    public = np.isin(catv, _PUBLIC_TRANSPORT)
    passenger_rate = np.select(
        [catv == 7, catv == 10, public, np.isin(catv, _HEAVY), np.isin(catv, (1, 50, 60, 80))],
        [0.34, 0.3, 1.5, 0.15, 0.01],
        0.07,
    )
    passengers = np.where(fled, 0, np.minimum(rng.poisson(passenger_rate), 8))
    pedestrians = np.where(hitter, rng.geometric(0.88, n_veh), 0)
    per_vehicle = np.where(fled, 0, 1) + passengers + pedestrians
    p_veh = np.repeat(np.arange(n_veh), per_vehicle)
    n_persons = int(p_veh.size)
    slot = np.arange(n_persons) - np.concatenate(([0], np.cumsum(per_vehicle)[:-1]))[p_veh]
    role = np.where(slot == 0, 0, np.where(slot <= passengers[p_veh], 1, 2))
    is_driver, is_passenger, is_pedestrian = role == 0, role == 1, role == 2
    p_acc = v_acc[p_veh]
    p_catv = catv[p_veh]
    a |= {"p_veh": p_veh, "p_acc": p_acc}

    place = np.ones(n_persons, np.int64)
    place[is_pedestrian] = 10
    car_passenger = is_passenger & ~np.isin(p_catv, (*_TWO_WHEELERS, *_PUBLIC_TRANSPORT))
    _draw_where(rng, place, car_passenger, _PASSENGER_PLACE_CAR)
    _draw_where(rng, place, is_passenger & np.isin(p_catv, _PUBLIC_TRANSPORT), _PASSENGER_PLACE_BUS)
    place[is_passenger & np.isin(p_catv, _TWO_WHEELERS)] = 2
    catu = np.where(is_driver, 1, np.where(is_passenger, 2, 3))
    male_share = np.select([is_driver, is_passenger], [0.74, 0.45], 0.5)
    sexe = np.where(rng.random(n_persons) < male_share, 1, 2)

    age = _ages(rng, role, p_catv, params)
    child = age < 10

    rider = np.isin(p_catv, _RIDERS) & ~is_pedestrian
    cyclist = np.isin(p_catv, _CYCLES) & ~is_pedestrian
    enclosed = ~(rider | cyclist | is_pedestrian)
    secu1 = np.empty(n_persons, np.int64)
    _draw_where(rng, secu1, enclosed & child, _SECU1_CHILD)
    _draw_where(rng, secu1, enclosed & ~child, _SECU1_CAR)
    _draw_where(rng, secu1, rider, _SECU1_RIDER)
    _draw_where(rng, secu1, cyclist, _SECU1_CYCLIST)
    _draw_where(rng, secu1, is_pedestrian, _SECU1_PEDESTRIAN)
    secu2 = np.empty(n_persons, np.int64)
    _draw_where(rng, secu2, enclosed, _SECU2_CAR)
    _draw_where(rng, secu2, rider, _SECU2_RIDER)
    _draw_where(rng, secu2, cyclist | is_pedestrian, _SECU2_OTHER)

    # Pedestrian-only fields are 0 or -1 for everyone else, in year-dependent shares.
    not_pedestrian_code = np.where(rng.random(n_persons) < _locp_zero_share(year), 0, -1)
    locp, actp, etatp = (np.where(is_pedestrian, 0, not_pedestrian_code) for _ in range(3))
    locp[is_pedestrian] = _draw(rng, _LOCP, int(is_pedestrian.sum()))
    actp[is_pedestrian] = _draw(rng, _ACTP, int(is_pedestrian.sum()))
    etatp[is_pedestrian] = _draw(rng, _ETATP, int(is_pedestrian.sum()))
    etatp[~is_pedestrian] = -1

    a |= {
        "rider": rider, "cyclist": cyclist, "enclosed": enclosed,
        "role": role, "place": place, "catu": catu, "sexe": sexe, "age": age,
        "secu1": secu1, "secu2": secu2, "secu3": _draw(rng, _SECU3, n_persons),
        "trajet": _draw(rng, _TRAJET, n_persons), "locp": locp, "actp": actp,
        "etatp": etatp,
    }  # fmt: skip


def _severity_score(rng: np.random.Generator, a: dict[str, Any]) -> FloatArray:
    """The latent severity of each person: what the accident, the vehicle and the
    person bring, plus noise shared by the accident and noise of the person."""
    accident_score = (
        _SPEED_PER_KMH * (a["vma_true"] - 50)
        + _lookup(a["catr"], _CATR_EFFECT)
        + _RURAL_EFFECT * (a["agg"] == 1)
        + _lookup(a["lum"], _LUM_EFFECT)
        + _SMALL_HOURS_EFFECT * (a["hour"] < 6)
        + _lookup(a["atm"], _ATM_EFFECT)
        + _lookup(a["col"], _COL_EFFECT)
        + rng.normal(0.0, _ACCIDENT_NOISE, a["agg"].size)
    )
    p_veh, pedestrian, age = a["p_veh"], a["role"] == 2, a["age"]
    mass = _lookup(a["catv"], _MASS, 2.0)
    other_mass = _other_party_mass(mass, a["veh_start"], a["v_acc"], a["nveh"])
    own_mass = np.where(pedestrian, _PEDESTRIAN_MASS, mass[p_veh])
    opponent = np.where(pedestrian, mass[p_veh], other_mass[p_veh])
    vehicle_score = (
        _lookup(a["catv"], _VULNERABILITY) + _lookup(a["obs"], _OBS_EFFECT)
        + _lookup(a["obsm"], _OBSM_EFFECT)
    )  # fmt: skip
    unprotected = a["secu1"] == 0
    person_score = (
        np.where(pedestrian, _PEDESTRIAN_VULNERABILITY, vehicle_score[p_veh])
        + _CRUSH * np.clip(opponent - own_mass, 0.0, None)
        + unprotected * a["enclosed"] * _NO_BELT_EFFECT
        + unprotected * a["rider"] * _NO_HELMET_EFFECT
        + unprotected * a["cyclist"] * _NO_CYCLE_HELMET_EFFECT
        + _AGE_EFFECT_PER_YEAR * np.clip(age - 55, 0, None)
        + _CHILD_EFFECT * (age < 10)
        + _MALE_EFFECT * (a["sexe"] == 1)
        + _REAR_SEAT_EFFECT * np.isin(a["place"], (3, 4, 5))
        + rng.logistic(0.0, _PERSON_NOISE, p_veh.size)
    )
    return np.asarray(accident_score[a["p_acc"]] + person_score, dtype=np.float64)


def _merge(factors: Mapping[int, float], params: _Params) -> dict[int, float]:
    merged = dict(factors)
    for code, factor in params.catv_factors.items():
        merged[code] = merged.get(code, 1.0) * factor
    return merged


def _locp_zero_share(year: int) -> float:
    # Share of non-pedestrians coded 0 rather than -1 in locp/actp, as in the samples.
    return {2019: 0.67, 2020: 0.55, 2021: 0.33, 2022: 0.4}.get(year, 0.45)


def _other_party_mass(
    mass: FloatArray, veh_start: IntArray, v_acc: IntArray, nveh: IntArray
) -> FloatArray:
    """For each vehicle, the heaviest other vehicle of its accident (-inf when alone)."""
    top = _group_max(mass, veh_start)
    at_top = mass == top[v_acc]
    top_count = np.add.reduceat(at_top.astype(np.int64), veh_start)
    second = _group_max(np.where(at_top, -np.inf, mass), veh_start)
    only_top = at_top & (top_count[v_acc] == 1)
    other = np.where(only_top, second[v_acc], top[v_acc])
    return np.where(nveh[v_acc] > 1, other, -np.inf)


def _ages(rng: np.random.Generator, role: IntArray, catv: IntArray, params: _Params) -> IntArray:
    """Age in the accident year, from mixtures by role and vehicle."""
    size = role.size
    young_adult = 18 + rng.gamma(1.5, 5.0, size)
    adult = rng.normal(48.0, 15.0, size)
    elderly = 65 + rng.gamma(1.5, 7.0, size)
    u = rng.random(size)
    elderly_share = min(0.1 * params.elderly_factor, 0.5)
    driver = np.where(u < 0.38, young_adult, np.where(u < 1 - elderly_share, adult, elderly))
    driver = np.maximum(driver, 18)
    small_rider = np.isin(catv, (2, 30, 41))
    driver = np.where(small_rider, 14 + rng.gamma(1.3, 8.0, size), driver)
    driver = np.where(np.isin(catv, (33, 34)), 20 + rng.gamma(3.0, 7.0, size), driver)
    driver = np.where(np.isin(catv, (1, 80)), 8 + rng.gamma(2.0, 18.0, size), driver)
    driver = np.where(np.isin(catv, (50, 60)), 12 + rng.gamma(2.0, 8.0, size), driver)
    passenger = np.where(
        u < 0.25,
        rng.uniform(0, 15, size),
        np.where(u < 0.65, 15 + rng.gamma(1.5, 6.0, size), adult),
    )
    # Children stay 22 % of the pedestrians who are not elderly, whatever that share is.
    pedestrian_elderly = min(0.35 * params.elderly_factor, 0.7)
    pedestrian = np.where(
        u < 0.22 * (1 - pedestrian_elderly) / 0.65,
        rng.uniform(2, 15, size),
        np.where(u < 1 - pedestrian_elderly, rng.uniform(15, 65, size), elderly),
    )
    age = np.select([role == 0, role == 1], [driver, passenger], pedestrian)
    return np.clip(np.rint(age + params.age_shift), 0, 99).astype(np.int64)


# --- calibration ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Thresholds:
    injured: float
    """Score above which a person who is not the worst hurt of the accident is injured."""
    hospitalised: float
    killed: float


def _calibrate(population: _Population) -> _Thresholds:
    """Cut points that give the 2021 person-level ``grav`` mix on this population.

    A BAAC accident has at least one injured person by definition, so the highest
    score of each accident is always injured; the unharmed share is then taken from
    the others only.
    """
    score, starts = population.score, population.person_start
    worst = _worst_of_accident(score, starts)
    total, others = score.size, score[~worst]
    unharmed_share_of_others = min(GRAV_TARGET[1] * total / max(others.size, 1), 1.0)
    injured = float(np.quantile(others, unharmed_share_of_others)) if others.size else -np.inf
    severe = GRAV_TARGET[2] + GRAV_TARGET[3]
    hospitalised = max(float(np.quantile(score, 1 - severe)), injured)
    killed = float(np.quantile(score, 1 - GRAV_TARGET[2]))
    return _Thresholds(injured=injured, hospitalised=hospitalised, killed=killed)


def _worst_of_accident(score: FloatArray, starts: IntArray) -> BoolArray:
    accident = np.repeat(np.arange(starts.size), np.diff(np.append(starts, score.size)))
    top = _group_max(score, starts)[accident]
    is_top = score == top
    # Ties are vanishingly rare with continuous noise; keep only the first.
    first_top = np.zeros(score.size, bool)
    first_index = np.maximum.reduceat(np.where(is_top, -np.arange(score.size), -score.size), starts)
    first_top[-first_index] = True
    return first_top


def _grav(population: _Population, cut: _Thresholds) -> IntArray:
    score = population.score
    injured = (score >= cut.injured) | _worst_of_accident(score, population.person_start)
    return np.select(
        [score >= cut.killed, score >= cut.hospitalised, injured], [2, 3, 4], 1
    ).astype(np.int64)


# --- formatting ------------------------------------------------------------------------


def _codes(values: IntArray, layout: _Layout) -> list[str]:
    """Integer codes as quoted fields: -1 with a leading space, empty, letters."""
    uniques, inverse = np.unique(values, return_inverse=True)
    special = {-1: " -1", _EMPTY: "", _ACTP_A: "A", _ACTP_B: "B"}
    return _pick(_text([special.get(int(v), str(int(v))) for v in uniques], layout), inverse)


def _pick(fields: Sequence[str], index: IntArray) -> list[str]:
    """``fields[i]`` for each ``i`` of ``index``, without a Python loop."""
    return list(np.array(fields, dtype=object)[index].tolist())


def _text(values: Sequence[str] | ObjArray, layout: _Layout) -> list[str]:
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
    a: dict[str, Any], layout: _Layout, num_acc: list[str], roads: _Roads
) -> bytes:
    n = len(num_acc)
    codes = a["dep_codes"]
    dep = np.array(codes, dtype=object)[a["dep"]]
    overseas = np.array([len(code) == 3 for code in codes])[a["dep"]]
    # Communes are the department code and a number: 3 digits in mainland France,
    # 2 overseas (97411).
    pad2 = np.array([f"{i:02d}" for i in range(100)], dtype=object)
    pad3 = np.array([f"{i:03d}" for i in range(1000)], dtype=object)
    com = dep + np.where(overseas, pad2[a["com"] % 100], pad3[a["com"] % 1000])
    if not layout.pad_dep:
        written = np.array([code.removeprefix("0") for code in codes], dtype=object)
        dep = written[a["dep"]]
    months = [f"{m:02d}" if layout.pad_month else str(m) for m in range(13)]
    clock = [f"{h:02d}:{m:02d}" for h in range(24) for m in range(60)]
    columns = [
        num_acc,
        _codes(a["jour"], layout),
        _pick(_text(months, layout), a["mois"]),
        _text([str(layout.year)] * n, layout),
        _pick(_text(clock, layout), a["hour"] * 60 + a["minute"]),
        _codes(a["lum"], layout),
        _text(dep, layout),
        _text(com, layout),
        _codes(a["agg"], layout),
        _codes(a["int"], layout),
        _codes(a["atm"], layout),
        _codes(a["col"], layout),
        _text(roads.adr, layout),
        _text(_coordinates(a["lat"], layout.coord_decimals), layout),
        _text(_coordinates(a["long"], layout.coord_decimals), layout),
    ]
    return _render((layout.key, *_CARAC_COLUMNS), columns)


def _format_lieux(
    rng: np.random.Generator, a: dict[str, Any], layout: _Layout, num_acc: list[str], roads: _Roads
) -> bytes:
    n = len(num_acc)
    catr = a["catr"]
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
        v1 = np.where(rng.random(n) < 0.24, _EMPTY, 0)
        letter = np.array(["D", "A", "E", "N"], dtype=object)[rng.integers(0, 4, n)]
        v2 = np.where(rng.random(n) < 0.9, "", letter)
        lartpc = np.where(rng.random(n) < 0.015, 0, _EMPTY)
        # 2019 wrote widths through a float, artefacts included ("5.79999999999999982").
        widths = [f"{w:.18g}" for w in (7.0, 6.0, 5.8, 4.8, 6.5, 10.0)]
        width = np.array(widths, dtype=object)[rng.integers(0, len(widths), n)]
        larrout = np.where(rng.random(n) < 0.02, width, "")
    else:
        v1 = np.where(rng.random(n) < 0.21, -1, np.where(rng.random(n) < 0.01, 2, 0))
        letter = np.array(["D", "A", "E", "N", "B", "R"], dtype=object)[rng.integers(0, 6, n)]
        v2 = np.where(rng.random(n) < 0.93, "N/A", letter)
        lartpc = np.full(n, _EMPTY)
        filled_share = 0.28 if layout.several_lieux else 0.04
        decimetres = _draw(rng, _LARROUT_MODERN, n)
        larrout = np.where(rng.random(n) < filled_share, _decimetres(decimetres), " -1")
    columns = {
        "Num_Acc": num_acc,
        "catr": _codes(catr, layout),
        "voie": _text(voie, layout),
        "v1": _codes(v1, layout),
        "v2": _text(v2, layout),
        "circ": _codes(a["circ"], layout),
        "nbv": _codes(a["nbv"], layout),
        "vosp": _codes(a["vosp"], layout),
        "prof": _codes(a["prof"], layout),
        "pr": _text(pr, layout),
        "pr1": _text(pr1, layout),
        "plan": _codes(a["plan"], layout),
        "lartpc": _codes(lartpc, layout),
        "larrout": _text(larrout, layout),
        "surf": _codes(a["surf"], layout),
        "infra": _codes(a["infra"], layout),
        "situ": _codes(a["situ"], layout),
        "vma": _codes(a["vma"], layout),
    }
    if layout.several_lieux:
        _add_crossing_roads(rng, a, layout, columns)
    return _render(_LIEUX_COLUMNS, [columns[name] for name in _LIEUX_COLUMNS])


def _decimetres(values: IntArray) -> ObjArray:
    whole, tenth = np.divmod(values, 10)
    return np.where(tenth == 0, _strings(whole), _strings(whole) + "," + _strings(tenth))


def _add_crossing_roads(
    rng: np.random.Generator, a: dict[str, Any], layout: _Layout, columns: dict[str, list[str]]
) -> None:
    """From 2023 an accident at a crossing lists each road: repeat the row for the
    crossing street of most intersection accidents (about 1.27 rows per accident)."""
    n = len(columns["Num_Acc"])
    extra = (a["int"] > 1) & (rng.random(n) < 0.7)
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
    a: dict[str, Any], layout: _Layout, num_acc: list[str], vehicle_ids: list[str]
) -> bytes:
    columns = [
        _pick(num_acc, a["v_acc"]),
        vehicle_ids,
        _text(_vehicle_numbers(a), layout),
        *(_codes(a[name], layout) for name in _VEHICULES_COLUMNS[3:]),
    ]
    return _render(_VEHICULES_COLUMNS, columns)


def _format_usagers(
    rng: np.random.Generator,
    a: dict[str, Any],
    layout: _Layout,
    num_acc: list[str],
    vehicle_ids: list[str],
    grav: IntArray,
) -> bytes:
    p_veh = a["p_veh"]
    size = p_veh.size
    rate = layout.unfilled_rate
    fields = {
        "place": a["place"],
        "catu": a["catu"],
        "grav": grav,
        "sexe": _unfilled(rng, a["sexe"], rate if layout.year >= 2021 else 0.0),
        "an_nais": np.where(rng.random(size) < rate * 1.2, _EMPTY, layout.year - a["age"]),
        "trajet": a["trajet"],
        "secu1": _unfilled(rng, a["secu1"], rate * 0.5),
        **{name: a[name] for name in ("secu2", "secu3", "locp", "actp", "etatp")},
    }
    header = ["Num_Acc", *(["id_usager"] if layout.id_usager else []), *_USAGERS_TAIL]
    columns = [_pick(num_acc, a["p_acc"])]
    if layout.id_usager:
        columns.append(_text(_grouped_ids(layout.first_user_id + np.arange(size)), layout))
    columns += [
        _pick(vehicle_ids, p_veh),
        _pick(_text(_vehicle_numbers(a), layout), p_veh),
        *(_codes(fields[name], layout) for name in _USAGERS_TAIL[2:]),
    ]
    return _render(header, columns)


def _vehicle_numbers(a: dict[str, Any]) -> ObjArray:
    letters = np.array([chr(ord("A") + i) + "01" for i in range(26)], dtype=object)
    return np.where(a["fled"], "Z01", letters[np.minimum(a["rank"], 25)])


# --- entry point -----------------------------------------------------------------------


def synthesize(
    out_dir: Path,
    *,
    accidents: int = 56_000,
    seed: int = 42,
    year: int = 2021,
    drift: DriftKind | None = None,
) -> dict[str, Path]:
    """Write the four BAAC tables of ``accidents`` synthetic accidents into ``out_dir``.

    The files use the names and the exact format ONISR published for ``year`` (2019
    or later; later years reuse 2024's layout). The same arguments always give
    byte-identical files. Each file appears atomically. Returns the path of each
    table, keyed ``caracteristiques``, ``lieux``, ``usagers``, ``vehicules``.
    """
    if accidents < 1:
        raise ValueError(f"accidents must be at least 1, got {accidents}")
    layout = _layout(year)
    drift = DriftKind(drift) if drift is not None else None
    population = _generate(np.random.default_rng(seed), accidents, year, _params(drift))
    # Thresholds always come from the undrifted population of the same seed and size,
    # so a drift towards riskier accidents shows up as more severe outcomes.
    reference = (
        population
        if drift is None
        else _generate(np.random.default_rng(seed), accidents, year, _params(None))
    )
    grav = _grav(population, _calibrate(reference))

    a = population.arrays
    # Formatting draws (street names, road numbers...) use their own stream, so the
    # population above does not depend on the year's layout.
    format_rng = np.random.default_rng([seed, 1])
    roads = _roads(format_rng, a["catr"])
    num_acc = _text(_strings(year * 100_000_000 + 1 + np.arange(accidents)), layout)
    vehicle_ids = _text(_grouped_ids(layout.first_vehicle_id + np.arange(a["v_acc"].size)), layout)
    contents = {
        "caracteristiques": _format_caracteristiques(a, layout, num_acc, roads),
        "lieux": _format_lieux(format_rng, a, layout, num_acc, roads),
        "vehicules": _format_vehicules(a, layout, num_acc, vehicle_ids),
        "usagers": _format_usagers(format_rng, a, layout, num_acc, vehicle_ids, grav),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {table: out_dir / name for table, name in layout.files.items()}
    for table in TABLES:
        _write_atomically(paths[table], contents[table])
    log.info(
        "synthetic BAAC tables written",
        extra={
            "folder": str(out_dir),
            "year": year,
            "seed": seed,
            "drift": drift.value if drift else None,
            "accidents": accidents,
            "vehicles": int(a["v_acc"].size),
            "persons": int(grav.size),
        },
    )
    return paths


def _write_atomically(path: Path, data: bytes) -> None:
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

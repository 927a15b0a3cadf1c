"""The distributions the synthetic generator draws from, as data: the departments,
the discrete distributions of every BAAC field (codes and meanings: the BAAC data
dictionary), the weights of the latent severity model, and what each drift kind turns.

Tables only, no drawing: ``population.py`` draws from them, ``writers.py`` formats the
result. ``docs/synthetic-data.md`` explains where the numbers come from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from types import MappingProxyType

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


GRAV_TARGET: Mapping[int, float] = MappingProxyType({1: 0.427, 2: 0.025, 3: 0.148, 4: 0.400})
"""Person-level ``grav`` mix of the whole 2021 year (129,188 persons): 1 unharmed,
2 killed, 3 hospitalised, 4 slightly injured."""

EMPTY = -1_000_000
"""Code for a field left empty (``""``, or nothing at all in 2020)."""

# --- departments: code, relative accident count, centre, spread, urban share, communes

DEPARTMENT_ROWS: tuple[tuple[str, float, float, float, float, float, int, int], ...] = (
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

DEPARTMENT_CODES: tuple[str, ...] = tuple(row[0] for row in DEPARTMENT_ROWS)

# --- distributions (codes and meanings: BAAC data dictionary) -------------------------

# Hourly share of accidents: morning and evening rush hours, few at night.
HOUR_WEIGHTS = (
    1.6, 1.3, 1.1, 0.9, 0.8, 1.3, 2.2, 4.3, 5.6, 4.3, 4.3, 5.0,
    5.5, 5.3, 5.8, 6.6, 7.4, 8.3, 8.0, 6.2, 4.3, 3.3, 2.6, 2.2,
)  # fmt: skip
MONTH_WEIGHTS = (7.2, 7.0, 7.8, 7.5, 8.5, 9.5, 9.0, 7.8, 9.5, 9.2, 8.0, 7.5)
WEEKDAY_WEIGHTS = (1.0, 1.0, 1.0, 1.05, 1.15, 1.05, 0.85)  # Monday ... Sunday

ATM: Table = (
    (1, 78.5), (2, 10.5), (3, 2.2), (4, 0.4), (5, 0.6), (6, 0.4), (7, 2.2), (8, 4.5),
    (9, 0.5), (-1, 0.2),
)  # fmt: skip
# Night lighting: street lights in town, darkness out of town.
LUM_NIGHT_URBAN: Table = ((5, 85), (4, 4), (3, 11))
LUM_NIGHT_RURAL: Table = ((3, 78), (5, 18), (4, 4))
INT_URBAN: Table = (
    (1, 55), (2, 13), (3, 15), (4, 2.5), (5, 0.8), (6, 6), (7, 1.5), (8, 0.1), (9, 6),
)  # fmt: skip
INT_RURAL: Table = (
    (1, 80), (2, 5), (3, 7), (4, 2), (5, 0.3), (6, 3.5), (7, 0.2), (8, 0.3), (9, 2),
)  # fmt: skip
CATR_URBAN: Table = ((4, 62), (3, 22), (7, 7), (2, 3), (1, 2), (6, 1.5), (5, 0.5), (9, 2))
CATR_RURAL: Table = ((3, 58), (1, 17), (2, 10), (4, 10), (9, 2), (5, 1), (6, 1), (7, 1))
VMA_MOTORWAY: Table = ((130, 45), (110, 30), (90, 13), (70, 8), (50, 4))
VMA_URBAN: Table = (
    (50, 72), (30, 17), (70, 4), (20, 2), (40, 2), (80, 2), (90, 0.5), (10, 0.3), (5, 0.2),
)  # fmt: skip
VMA_RURAL: Table = (
    (80, 50), (90, 13), (70, 14), (50, 14), (110, 5), (30, 2), (60, 1), (40, 1),
)  # fmt: skip
# The per-department urban shares are those of their town centres; out-of-town roads
# add this much, for about two accidents in three in town overall.
RURAL_ODDS = 1.3
# Accident kinds: a pedestrian is hit, one vehicle alone, or several vehicles.
PEDESTRIAN, SINGLE, MULTI = 0, 1, 2
KIND_URBAN: Table = ((PEDESTRIAN, 17), (SINGLE, 20), (MULTI, 63))
KIND_RURAL: Table = ((PEDESTRIAN, 4), (SINGLE, 40), (MULTI, 56))
MULTI_VEHICLES: Table = ((2, 87), (3, 10), (4, 2.3), (5, 0.5), (6, 0.2))
COL_PEDESTRIAN: Table = ((6, 90), (7, 5), (3, 5))
COL_SINGLE: Table = ((6, 70), (7, 30))
COL_TWO: Table = ((1, 15), (2, 20), (3, 55), (6, 10), (-1, 0.5))
COL_CHAIN: Table = ((4, 35), (5, 40), (1, 5), (2, 10), (3, 10))

CATV_MULTI: Table = (
    (7, 62), (10, 6.5), (33, 6.5), (1, 5), (2, 2.5), (30, 2.5), (31, 2), (32, 2), (34, 1),
    (50, 2), (60, 0.3), (80, 1.2), (13, 0.3), (14, 0.7), (15, 0.4), (16, 0.1), (17, 0.8),
    (37, 0.6), (38, 0.3), (40, 0.2), (39, 0.05), (3, 0.4), (20, 0.1), (21, 0.2), (35, 0.05),
    (36, 0.2), (41, 0.05), (42, 0.1), (43, 0.2), (99, 0.8), (0, 0.2),
)  # fmt: skip
TWO_WHEELERS = (1, 2, 30, 31, 32, 33, 34, 41, 42, 43, 50, 60, 80)
HEAVY = (13, 14, 15, 16, 17, 37, 38, 39, 40)
PUBLIC_TRANSPORT = (37, 38, 39, 40)
RIDERS = (2, 30, 31, 32, 33, 34, 35, 36, 41, 42, 43)
CYCLES = (1, 50, 60, 80)
HUMAN_POWERED = (1, 60)
ELECTRIC_LIGHT = (50, 80)
# Alone on the road, riders lose control far more often than car drivers; the vehicle
# that hits a pedestrian is mostly a car, van or bus.
CATV_SINGLE_FACTORS: Mapping[int, float] = MappingProxyType(
    {**dict.fromkeys(TWO_WHEELERS, 1.6), **dict.fromkeys(HEAVY, 0.5)}
)
CATV_PEDESTRIAN_FACTORS: Mapping[int, float] = MappingProxyType(
    {**dict.fromkeys(TWO_WHEELERS, 0.5), 7: 1.1, 10: 1.2, 37: 2.5, 38: 1.5, 40: 2.0}
)

OBS_NONE: Table = (
    (0, 95), (1, 1), (2, 0.5), (3, 0.5), (4, 0.5), (6, 0.5), (12, 0.5), (13, 0.5),
    (16, 0.5), (14, 0.5), (-1, 0.1),
)  # fmt: skip
OBS_SINGLE_URBAN: Table = (
    (0, 38), (1, 10), (2, 3), (3, 3), (4, 3), (5, 1), (6, 7), (7, 4), (8, 5), (9, 4),
    (10, 0.5), (11, 2), (12, 7), (13, 3), (14, 3), (15, 3), (16, 3), (17, 0.5),
)  # fmt: skip
OBS_SINGLE_RURAL: Table = (
    (0, 22), (1, 2), (2, 14), (3, 6), (4, 4), (5, 2), (6, 4), (7, 2), (8, 3), (9, 0.5),
    (10, 1), (11, 0.5), (12, 1), (13, 20), (14, 2), (15, 1), (16, 14), (17, 1.5),
)  # fmt: skip
OBSM_MULTI: Table = ((2, 92), (0, 5), (1, 1), (9, 2))
OBSM_PEDESTRIAN: Table = ((1, 95), (0, 2), (9, 3))
OBSM_SINGLE: Table = ((0, 88), (6, 5), (5, 1), (9, 4), (4, 0.3), (-1, 0.5))
CHOC_ANY: Table = (
    (1, 37), (2, 13), (3, 16), (4, 9), (5, 4), (6, 3), (7, 5), (8, 6), (9, 3), (0, 4),
    (-1, 0.3),
)  # fmt: skip
CHOC_FRONT: Table = ((1, 70), (2, 12), (3, 15), (9, 3))
CHOC_REAR: Table = ((4, 80), (5, 10), (6, 10))
MANV: Table = (
    (1, 42), (2, 10), (15, 8), (0, 6), (13, 4.5), (26, 4), (17, 3), (19, 3), (9, 3),
    (16, 2.5), (23, 2.5), (21, 2), (14, 1.5), (12, 1), (11, 1), (3, 1), (5, 1), (10, 1),
    (4, 0.5), (18, 0.5), (20, 0.5), (22, 0.5), (24, 0.5), (25, 0.5), (6, 0.3), (7, 0.3),
    (8, 0.2), (-1, 0.5),
)  # fmt: skip
SENC: Table = ((1, 45), (2, 34), (3, 13), (0, 7), (-1, 1))
MOTOR_FUEL: Table = ((1, 86), (2, 4.5), (3, 2.5), (0, 5), (6, 1), (4, 0.2), (-1, 0.8))
MOTOR_HUMAN: Table = ((5, 90), (0, 5), (-1, 3), (6, 2))
MOTOR_ELECTRIC: Table = ((3, 85), (0, 10), (6, 5))

CIRC_MOTORWAY: Table = ((3, 90), (1, 5), (-1, 5))
CIRC_OTHER: Table = ((2, 68), (1, 15), (3, 9), (4, 0.5), (-1, 7.5))
NBV_MOTORWAY: Table = ((2, 35), (3, 25), (4, 20), (6, 10), (5, 3), (8, 3), (-1, 4))
NBV_OTHER: Table = ((2, 70), (1, 10), (3, 6), (4, 8), (0, 3), (5, 1), (6, 1), (-1, 1))
VOSP: Table = ((0, 85), (1, 3), (2, 4), (3, 4), (-1, 4))
PROF: Table = ((1, 80), (2, 16), (3, 2), (4, 1.5), (-1, 0.5))
PLAN: Table = ((1, 79), (2, 9), (3, 10), (4, 1.5), (-1, 0.5))
INFRA: Table = (
    (0, 78), (5, 7), (9, 5), (2, 2.5), (3, 2), (6, 2), (1, 1), (4, 0.5), (8, 1), (7, 0.2),
    (-1, 0.8),
)  # fmt: skip
SITU_URBAN: Table = ((1, 82), (3, 3), (4, 5), (5, 3), (8, 5), (2, 0.3), (6, 1.5), (-1, 0.2))
SITU_RURAL: Table = ((1, 84), (3, 11), (4, 0.5), (5, 0.5), (8, 2), (2, 1.5), (6, 0.5))
SURF_DRY: Table = ((1, 93), (2, 5), (9, 1), (8, 0.5), (6, 0.5))
SURF_RAIN: Table = ((2, 88), (3, 5), (1, 5), (4, 1), (6, 1))
SURF_SNOW: Table = ((5, 50), (7, 30), (2, 20))
SURF_OTHER: Table = ((1, 60), (2, 38), (7, 2))
LARROUT_MODERN: Table = (
    (EMPTY, 0), (70, 30), (55, 17), (50, 10), (135, 7), (100, 6), (60, 5), (40, 8),
    (105, 5), (30, 3), (140, 4), (35, 2), (175, 2), (0, 3),
)  # fmt: skip
"""Width in decimetres, written with a decimal comma (55 -> ``5,5``)."""

TRAJET: Table = ((0, 22), (1, 13), (2, 3), (3, 3), (4, 7), (5, 42), (9, 8), (-1, 2))
PASSENGER_PLACE_CAR: Table = ((2, 55), (3, 17), (4, 18), (5, 6), (6, 4))
PASSENGER_PLACE_BUS: Table = ((7, 25), (8, 25), (9, 20), (2, 10), (3, 10), (4, 10))
SECU1_CAR: Table = ((1, 88), (0, 3), (8, 7), (9, 0.5), (-1, 1.5))
SECU1_CHILD: Table = ((3, 70), (1, 25), (0, 3), (8, 2))
SECU1_RIDER: Table = ((2, 88), (0, 4), (8, 5), (5, 1), (6, 1), (7, 0.5), (-1, 0.5))
SECU1_CYCLIST: Table = ((2, 35), (0, 45), (8, 14), (4, 5), (9, 1))
SECU1_PEDESTRIAN: Table = ((0, 72), (8, 16), (4, 1), (9, 1), (-1, 10))
SECU2_CAR: Table = ((-1, 50), (0, 42), (8, 8))
SECU2_RIDER: Table = ((6, 45), (0, 20), (-1, 20), (8, 10), (5, 3), (7, 2))
SECU2_OTHER: Table = ((-1, 55), (0, 33), (4, 5), (8, 7))
SECU3: Table = ((-1, 97), (0, 1.5), (9, 1), (8, 0.5))
LOCP: Table = ((1, 10), (2, 10), (3, 35), (4, 10), (5, 15), (6, 5), (8, 2), (9, 8), (0, 5))
ACTP_A, ACTP_B = 100, 101  # the two letter codes
ACTP: Table = (
    (1, 12), (2, 8), (3, 55), (4, 4), (5, 4), (6, 1), (9, 8), (ACTP_A, 2), (ACTP_B, 6),
)  # fmt: skip
ETATP: Table = ((1, 75), (2, 18), (3, 5), (-1, 2))

# --- the latent severity model ------------------------------------------------------

# Mass class of each vehicle category: the lighter party of a collision takes the
# energy. Pedestrians are one class below bicycles.
MASS: Mapping[int, float] = MappingProxyType(
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
PEDESTRIAN_MASS = -1.0
CRUSH = 0.4
"""Severity added per mass class the other party has over the person's own vehicle."""
# Own protection: unprotected riders high, car occupants the reference, heavy vehicles
# and public transport well protected.
VULNERABILITY: Mapping[int, float] = MappingProxyType(
    {
        **{1: 0.9, 80: 1.0, 50: 0.9, 60: 0.8},
        **{2: 0.9, 30: 0.9, 31: 1.1, 32: 1.0, 33: 1.4, 34: 1.2, 41: 1.0, 42: 1.1, 43: 1.3},
        **{35: 0.8, 36: 0.9, 3: 0.1, 7: 0.0, 0: 0.0, 99: 0.2, 10: -0.1, 20: -0.3, 21: 0.3},
        **{13: -0.9, 14: -1.1, 15: -1.1, 16: -1.0, 17: -1.1, 37: -1.4, 38: -1.2},
        **{39: -2.0, 40: -1.8},
    }
)
PEDESTRIAN_VULNERABILITY = 1.3
SPEED_PER_KMH = 0.03
"""Severity per km/h of speed limit above 50."""
CATR_EFFECT: Mapping[int, float] = MappingProxyType({1: -1.2, 2: 0.1, 3: 0.2})
RURAL_EFFECT = 0.5
LUM_EFFECT: Mapping[int, float] = MappingProxyType({2: 0.15, 3: 0.5, 4: 0.25, 5: 0.1})
SMALL_HOURS_EFFECT = 0.2
ATM_EFFECT: Mapping[int, float] = MappingProxyType(
    {2: -0.1, 3: -0.15, 4: -0.2, 5: 0.3, 6: 0.1, 7: 0.1}
)
COL_EFFECT: Mapping[int, float] = MappingProxyType(
    {1: 0.8, 2: -0.6, 4: -0.5, 5: 0.1, 6: 0.2, 7: 0.4}
)
OBS_EFFECT: Mapping[int, float] = MappingProxyType(
    {1: -0.2, 2: 1.0, 3: 0.1, 4: 0.1, 5: 0.1, 6: 0.7, 7: 0.5, 8: 0.6, 10: 0.5, 13: 0.4,
     16: 0.3, 17: 0.4}
)  # fmt: skip
OBSM_EFFECT: Mapping[int, float] = MappingProxyType({4: 1.5, 6: 0.2})
NO_BELT_EFFECT = 1.0
NO_HELMET_EFFECT = 1.2
NO_CYCLE_HELMET_EFFECT = 0.3
AGE_EFFECT_PER_YEAR = 0.035
"""Severity per year of age above 55: the same impact hurts an older body more."""
CHILD_EFFECT = -0.3
MALE_EFFECT = 0.1
REAR_SEAT_EFFECT = -0.15
ACCIDENT_NOISE = 0.35
PERSON_NOISE = 0.9


@dataclass(frozen=True)
class DriftParams:
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


def drift_params(drift: DriftKind | None) -> DriftParams:
    base = DriftParams(
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
        return replace(base, catv_factors={**dict.fromkeys(TWO_WHEELERS, 3.0), 50: 5.0, 7: 0.7})
    if drift is DriftKind.OLDER_VICTIMS:
        # An older population also walks more, rides less and drives in daytime.
        return replace(
            base,
            age_shift=12.0,
            elderly_factor=2.5,
            pedestrian_factor=1.6,
            hour_factors=dict.fromkeys(range(9, 17), 1.5),
            catv_factors=dict.fromkeys(TWO_WHEELERS, 0.6),
        )
    if drift is DriftKind.WEATHER:
        return replace(
            base,
            atm_factors={1: 0.45, 2: 3.0, 3: 4.0, 4: 6.0, 5: 5.0, 6: 3.0, 8: 2.0},
            month_factors={1: 2.0, 2: 2.0, 11: 1.8, 12: 2.0, 6: 0.6, 7: 0.5, 8: 0.5},
        )
    return base


# --- drawing helpers ------------------------------------------------------------------

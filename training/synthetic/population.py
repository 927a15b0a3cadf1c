"""The synthetic population: accidents, their vehicles and the persons involved, drawn
from ``distributions.py`` as typed records of arrays, then each person's latent
severity score, and the ``grav`` cut calibrated to the 2021 mix.

Nothing here knows a file format (``writers.py`` does). The order of the draws is part
of the output: the same seed gives the same population only if every draw happens in
the same order, so reorder nothing without meaning to change the data (the fingerprint
test in tests/training/test_synthetic.py says when it changed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from training.synthetic import distributions as dist
from training.synthetic.distributions import GRAV_TARGET, DriftParams, Table

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
ObjArray = NDArray[np.object_]


@dataclass(frozen=True)
class Accidents:
    """One row per accident: caracteristiques and lieux, and what kind of accident."""

    dep: IntArray
    """Index into ``distributions.DEPARTMENT_ROWS``."""
    agg: IntArray
    lat: FloatArray
    long: FloatArray
    com: IntArray
    """Commune number within the department."""
    mois: IntArray
    jour: IntArray
    hour: IntArray
    minute: IntArray
    lum: IntArray
    atm: IntArray
    intersection: IntArray
    """BAAC ``int``."""
    catr: IntArray
    vma_true: IntArray
    """The speed limit the severity score reads; ``vma`` is what the file says."""
    vma: IntArray
    circ: IntArray
    nbv: IntArray
    vosp: IntArray
    prof: IntArray
    plan: IntArray
    infra: IntArray
    situ: IntArray
    surf: IntArray
    kind: IntArray
    """``distributions.PEDESTRIAN``, ``SINGLE`` or ``MULTI``."""
    nveh: IntArray
    col: IntArray

    @property
    def rural(self) -> BoolArray:
        return np.asarray(self.agg == 1)


@dataclass(frozen=True)
class Vehicles:
    """One row per vehicle (vehicules), grouped by accident in A01, B01... order."""

    accident: IntArray
    """Index of the vehicle's accident."""
    first: IntArray
    """Per accident: index of its first vehicle."""
    rank: IntArray
    """0 for the accident's first vehicle, 1 for the second..."""
    hitter: BoolArray
    """The vehicle that hit the pedestrians of a pedestrian accident."""
    catv: IntArray
    obs: IntArray
    obsm: IntArray
    choc: IntArray
    motor: IntArray
    occutc: IntArray
    fled: BoolArray
    """Drove off: recorded with no occupant, numbered Z01."""
    senc: IntArray
    manv: IntArray


@dataclass(frozen=True)
class Persons:
    """One row per person (usagers), grouped by vehicle."""

    vehicle: IntArray
    accident: IntArray
    role: IntArray
    """0 driver, 1 passenger, 2 pedestrian."""
    place: IntArray
    catu: IntArray
    sexe: IntArray
    age: IntArray
    """Age in the accident year."""
    secu1: IntArray
    secu2: IntArray
    secu3: IntArray
    trajet: IntArray
    locp: IntArray
    actp: IntArray
    etatp: IntArray
    rider: BoolArray
    cyclist: BoolArray
    enclosed: BoolArray


@dataclass(frozen=True)
class Population:
    """Every generated record before formatting, and each person's latent score.
    Vehicles and persons are sorted by accident, the order they are written in."""

    accidents: Accidents
    vehicles: Vehicles
    persons: Persons
    score: FloatArray
    person_start: IntArray
    """Index of each accident's first person (every accident has at least one)."""


# --- drawing helpers ------------------------------------------------------------------


def draw(
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
    out[mask] = draw(rng, table, int(mask.sum()), factors)


def _conditional(
    rng: np.random.Generator,
    size: int,
    *groups: tuple[BoolArray, Table] | tuple[BoolArray, Table, Mapping[int, float] | None],
) -> IntArray:
    """An array drawn group by group, in the order given: ``(mask, table[, factors])``."""
    out = np.empty(size, np.int64)
    for group in groups:
        _draw_where(rng, out, *group)
    return out


def _lookup(values: IntArray, mapping: Mapping[int, float], default: float = 0.0) -> FloatArray:
    uniques, inverse = np.unique(values, return_inverse=True)
    table = np.array([mapping.get(int(v), default) for v in uniques], dtype=np.float64)
    return table[inverse]


def unfilled(rng: np.random.Generator, values: IntArray, rate: float) -> IntArray:
    """Replace a share ``rate`` of the values by BAAC's "not filled" sentinel, -1."""
    return np.where(rng.random(values.size) < rate, -1, values)


def _group_max(values: FloatArray, starts: IntArray) -> FloatArray:
    return np.maximum.reduceat(values, starts)


# --- the population -------------------------------------------------------------------


def generate(rng: np.random.Generator, n: int, year: int, params: DriftParams) -> Population:
    accidents = _accidents(rng, n, year, params)
    vehicles = _vehicles(rng, accidents, params)
    persons = _persons(rng, vehicles, year, params)
    score = _severity_score(rng, accidents, vehicles, persons)
    person_start = np.searchsorted(persons.accident, np.arange(n))
    return Population(accidents, vehicles, persons, score=score, person_start=person_start)


def _accidents(rng: np.random.Generator, n: int, year: int, params: DriftParams) -> Accidents:
    """caracteristiques and lieux: where, when, the road, and what kind of accident."""
    dep_table = np.array([row[1:] for row in dist.DEPARTMENT_ROWS], dtype=np.float64)
    weights, lat0, lon0, spread, p_urban, com_lo, com_hi = dep_table.T

    # Where: the department, then a point around its centre and a commune in it.
    dep = rng.choice(len(dist.DEPARTMENT_CODES), size=n, p=weights / weights.sum())
    odds = p_urban[dep] / (1 - p_urban[dep]) / (params.rural_odds * dist.RURAL_ODDS)
    agg = np.where(rng.random(n) < odds / (1 + odds), 2, 1)
    rural = agg == 1
    lat = lat0[dep] + rng.normal(0.0, 1.0, n) * spread[dep]
    long = lon0[dep] + rng.normal(0.0, 1.0, n) * spread[dep] * 1.4
    com = rng.integers(com_lo[dep].astype(np.int64), com_hi[dep].astype(np.int64) + 1)

    # When: a day weighted by month and weekday, an hour weighted by traffic.
    days = np.arange(f"{year}-01-01", f"{year + 1}-01-01", dtype="datetime64[D]")
    month = days.astype("datetime64[M]").astype(np.int64) % 12 + 1
    weekday = (days.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday
    month_w = np.array(
        [w * params.month_factors.get(m, 1.0) for m, w in enumerate(dist.MONTH_WEIGHTS, 1)]
    )
    day_w = month_w[month - 1] * np.array(dist.WEEKDAY_WEIGHTS)[weekday]
    doy = rng.choice(days.size, size=n, p=day_w / day_w.sum())
    mois = month[doy]
    jour = (days[doy] - days[doy].astype("datetime64[M]")).astype(np.int64) + 1
    hour_table = tuple((h, w) for h, w in enumerate(dist.HOUR_WEIGHTS))
    hour = draw(rng, hour_table, n, params.hour_factors)
    # Officers round times to 5 minutes more often than not.
    minute = np.where(
        rng.random(n) < 0.7, rng.integers(0, 12, n) * 5, rng.integers(0, 60, n)
    ).astype(np.int64)

    # Light follows the sun (legal time, rough sunrise and sunset for mainland France).
    season = np.cos(2 * np.pi * (doy + 10) / 365.25)
    sunrise, sunset = 7.3 + 1.2 * season, 19.5 - 2.2 * season
    clock = hour + minute / 60
    twilight = (np.abs(clock - sunrise) < 0.3) | (np.abs(clock - sunset) < 0.3)
    daylight = (clock >= sunrise + 0.3) & (clock <= sunset - 0.3)
    lum = np.empty(n, np.int64)
    night = ~(twilight | daylight)
    lum[daylight], lum[twilight] = 1, 2
    _draw_where(rng, lum, night & ~rural, dist.LUM_NIGHT_URBAN)
    _draw_where(rng, lum, night & rural, dist.LUM_NIGHT_RURAL)
    atm = draw(rng, dist.ATM, n, params.atm_factors)
    intersection = _conditional(rng, n, (~rural, dist.INT_URBAN), (rural, dist.INT_RURAL))

    # The road.
    catr = _conditional(
        rng, n, (~rural, dist.CATR_URBAN), (rural, dist.CATR_RURAL, params.catr_rural_factors)
    )
    motorway = catr == 1
    vma = _conditional(
        rng,
        n,
        (motorway, dist.VMA_MOTORWAY),
        (~motorway & ~rural, dist.VMA_URBAN),
        (~motorway & rural, dist.VMA_RURAL, params.vma_rural_factors),
    )
    # The score reads the true limit; the file sometimes does not give it.
    vma_written = unfilled(rng, vma, 0.02)
    circ = _conditional(rng, n, (motorway, dist.CIRC_MOTORWAY), (~motorway, dist.CIRC_OTHER))
    nbv = _conditional(rng, n, (motorway, dist.NBV_MOTORWAY), (~motorway, dist.NBV_OTHER))
    vosp, prof, plan, infra = (
        draw(rng, table, n) for table in (dist.VOSP, dist.PROF, dist.PLAN, dist.INFRA)
    )
    situ = _conditional(rng, n, (~rural, dist.SITU_URBAN), (rural, dist.SITU_RURAL))
    wet, snow = np.isin(atm, (2, 3)), atm == 4
    dry = np.isin(atm, (1, 7, 8, -1))
    surf = _conditional(
        rng,
        n,
        (dry, dist.SURF_DRY),
        (wet, dist.SURF_RAIN),
        (snow, dist.SURF_SNOW),
        (~(dry | wet | snow), dist.SURF_OTHER),
    )

    # What happened: the kind of accident sets the number of vehicles and the collision.
    more_pedestrians = {dist.PEDESTRIAN: params.pedestrian_factor}
    kind = _conditional(
        rng,
        n,
        (~rural, dist.KIND_URBAN, more_pedestrians),
        (rural, dist.KIND_RURAL, more_pedestrians),
    )
    nveh = np.ones(n, np.int64)
    multi = kind == dist.MULTI
    nveh[multi] = draw(rng, dist.MULTI_VEHICLES, int(multi.sum()))
    pedestrian = kind == dist.PEDESTRIAN
    nveh[pedestrian] += rng.random(int(pedestrian.sum())) < 0.1
    col = _conditional(
        rng,
        n,
        (pedestrian, dist.COL_PEDESTRIAN),
        (kind == dist.SINGLE, dist.COL_SINGLE),
        (multi & (nveh == 2), dist.COL_TWO),
        (multi & (nveh > 2), dist.COL_CHAIN),
    )
    return Accidents(
        dep=dep, agg=agg, lat=lat, long=long, com=com, mois=mois, jour=jour, hour=hour,
        minute=minute, lum=lum, atm=atm, intersection=intersection, catr=catr,
        vma_true=vma, vma=vma_written, circ=circ, nbv=nbv, vosp=vosp, prof=prof, plan=plan,
        infra=infra, situ=situ, surf=surf, kind=kind, nveh=nveh, col=col,
    )  # fmt: skip


def _vehicles(rng: np.random.Generator, accidents: Accidents, params: DriftParams) -> Vehicles:
    """vehicules, grouped by accident in A01, B01... order."""
    kind, nveh, col, rural = accidents.kind, accidents.nveh, accidents.col, accidents.rural
    n = kind.size
    first = np.concatenate(([0], np.cumsum(nveh)[:-1]))
    v_acc = np.repeat(np.arange(n), nveh)
    n_veh = int(v_acc.size)
    rank = np.arange(n_veh) - first[v_acc]
    v_kind = kind[v_acc]
    v_rural = rural[v_acc]
    hitter = (v_kind == dist.PEDESTRIAN) & (rank == 0)
    alone = v_kind == dist.SINGLE
    others = ~(hitter | alone)
    catv = _conditional(
        rng,
        n_veh,
        (hitter, dist.CATV_MULTI, _merge(dist.CATV_PEDESTRIAN_FACTORS, params)),
        (alone, dist.CATV_MULTI, _merge(dist.CATV_SINGLE_FACTORS, params)),
        (others, dist.CATV_MULTI, params.catv_factors),
    )
    obs = _conditional(
        rng,
        n_veh,
        (alone & ~v_rural, dist.OBS_SINGLE_URBAN),
        (alone & v_rural, dist.OBS_SINGLE_RURAL),
        (~alone, dist.OBS_NONE),
    )
    obsm = _conditional(
        rng,
        n_veh,
        (hitter, dist.OBSM_PEDESTRIAN),
        (alone, dist.OBSM_SINGLE),
        (others, dist.OBSM_MULTI),
    )
    v_col = col[v_acc]
    front = (v_col == 1) | ((v_col == 2) & (rank == 0))
    rear = (v_col == 2) & (rank > 0)
    choc = _conditional(
        rng,
        n_veh,
        (front, dist.CHOC_FRONT),
        (rear, dist.CHOC_REAR),
        (~(front | rear), dist.CHOC_ANY),
    )
    human, electric = np.isin(catv, dist.HUMAN_POWERED), np.isin(catv, dist.ELECTRIC_LIGHT)
    motor = _conditional(
        rng,
        n_veh,
        (human, dist.MOTOR_HUMAN),
        (electric, dist.MOTOR_ELECTRIC),
        (~(human | electric), dist.MOTOR_FUEL),
    )
    public = np.isin(catv, dist.PUBLIC_TRANSPORT)
    occutc = np.where(public, 1 + rng.geometric(0.4, n_veh), dist.EMPTY)
    # A vehicle that drove off is recorded with no occupant, numbered Z01.
    fled = (v_kind == dist.MULTI) & (rank == nveh[v_acc] - 1) & (rng.random(n_veh) < 0.015)
    senc = draw(rng, dist.SENC, n_veh)
    manv = draw(rng, dist.MANV, n_veh)
    return Vehicles(
        accident=v_acc, first=first, rank=rank, hitter=hitter, catv=catv, obs=obs, obsm=obsm,
        choc=choc, motor=motor, occutc=occutc, fled=fled, senc=senc, manv=manv,
    )  # fmt: skip


def _persons(
    rng: np.random.Generator, vehicles: Vehicles, year: int, params: DriftParams
) -> Persons:
    """usagers: a driver per vehicle that stayed, its passengers, and the pedestrians,
    attached to the vehicle that hit them (always A01 here)."""
    catv, fled, hitter = vehicles.catv, vehicles.fled, vehicles.hitter
    n_veh = catv.size
    public = np.isin(catv, dist.PUBLIC_TRANSPORT)
    passenger_rate = np.select(
        [catv == 7, catv == 10, public, np.isin(catv, dist.HEAVY), np.isin(catv, (1, 50, 60, 80))],
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
    p_catv = catv[p_veh]

    place = np.ones(n_persons, np.int64)
    place[is_pedestrian] = 10
    two_wheeler, bus = np.isin(p_catv, dist.TWO_WHEELERS), np.isin(p_catv, dist.PUBLIC_TRANSPORT)
    _draw_where(rng, place, is_passenger & ~(two_wheeler | bus), dist.PASSENGER_PLACE_CAR)
    _draw_where(rng, place, is_passenger & bus, dist.PASSENGER_PLACE_BUS)
    place[is_passenger & two_wheeler] = 2
    catu = np.where(is_driver, 1, np.where(is_passenger, 2, 3))
    male_share = np.select([is_driver, is_passenger], [0.74, 0.45], 0.5)
    sexe = np.where(rng.random(n_persons) < male_share, 1, 2)

    age = _ages(rng, role, p_catv, params)
    child = age < 10

    rider = np.isin(p_catv, dist.RIDERS) & ~is_pedestrian
    cyclist = np.isin(p_catv, dist.CYCLES) & ~is_pedestrian
    enclosed = ~(rider | cyclist | is_pedestrian)
    secu1 = _conditional(
        rng,
        n_persons,
        (enclosed & child, dist.SECU1_CHILD),
        (enclosed & ~child, dist.SECU1_CAR),
        (rider, dist.SECU1_RIDER),
        (cyclist, dist.SECU1_CYCLIST),
        (is_pedestrian, dist.SECU1_PEDESTRIAN),
    )
    secu2 = _conditional(
        rng,
        n_persons,
        (enclosed, dist.SECU2_CAR),
        (rider, dist.SECU2_RIDER),
        (cyclist | is_pedestrian, dist.SECU2_OTHER),
    )

    # Pedestrian-only fields are 0 or -1 for everyone else, in year-dependent shares.
    not_pedestrian_code = np.where(rng.random(n_persons) < _locp_zero_share(year), 0, -1)
    locp, actp, etatp = (np.where(is_pedestrian, 0, not_pedestrian_code) for _ in range(3))
    locp[is_pedestrian] = draw(rng, dist.LOCP, int(is_pedestrian.sum()))
    actp[is_pedestrian] = draw(rng, dist.ACTP, int(is_pedestrian.sum()))
    etatp[is_pedestrian] = draw(rng, dist.ETATP, int(is_pedestrian.sum()))
    etatp[~is_pedestrian] = -1
    secu3 = draw(rng, dist.SECU3, n_persons)
    trajet = draw(rng, dist.TRAJET, n_persons)
    return Persons(
        vehicle=p_veh, accident=vehicles.accident[p_veh], role=role, place=place, catu=catu,
        sexe=sexe, age=age, secu1=secu1, secu2=secu2, secu3=secu3, trajet=trajet, locp=locp,
        actp=actp, etatp=etatp, rider=rider, cyclist=cyclist, enclosed=enclosed,
    )  # fmt: skip


def _severity_score(
    rng: np.random.Generator, accidents: Accidents, vehicles: Vehicles, persons: Persons
) -> FloatArray:
    """The latent severity of each person: what the accident, the vehicle and the
    person bring, plus noise shared by the accident and noise of the person."""
    accident_score = (
        dist.SPEED_PER_KMH * (accidents.vma_true - 50)
        + _lookup(accidents.catr, dist.CATR_EFFECT)
        + dist.RURAL_EFFECT * accidents.rural
        + _lookup(accidents.lum, dist.LUM_EFFECT)
        + dist.SMALL_HOURS_EFFECT * (accidents.hour < 6)
        + _lookup(accidents.atm, dist.ATM_EFFECT)
        + _lookup(accidents.col, dist.COL_EFFECT)
        + rng.normal(0.0, dist.ACCIDENT_NOISE, accidents.agg.size)
    )
    p_veh, pedestrian, age = persons.vehicle, persons.role == 2, persons.age
    mass = _lookup(vehicles.catv, dist.MASS, 2.0)
    other_mass = _other_party_mass(mass, vehicles.first, vehicles.accident, accidents.nveh)
    own_mass = np.where(pedestrian, dist.PEDESTRIAN_MASS, mass[p_veh])
    opponent = np.where(pedestrian, mass[p_veh], other_mass[p_veh])
    vehicle_score = (
        _lookup(vehicles.catv, dist.VULNERABILITY) + _lookup(vehicles.obs, dist.OBS_EFFECT)
        + _lookup(vehicles.obsm, dist.OBSM_EFFECT)
    )  # fmt: skip
    unprotected = persons.secu1 == 0
    person_score = (
        np.where(pedestrian, dist.PEDESTRIAN_VULNERABILITY, vehicle_score[p_veh])
        + dist.CRUSH * np.clip(opponent - own_mass, 0.0, None)
        + unprotected * persons.enclosed * dist.NO_BELT_EFFECT
        + unprotected * persons.rider * dist.NO_HELMET_EFFECT
        + unprotected * persons.cyclist * dist.NO_CYCLE_HELMET_EFFECT
        + dist.AGE_EFFECT_PER_YEAR * np.clip(age - 55, 0, None)
        + dist.CHILD_EFFECT * (age < 10)
        + dist.MALE_EFFECT * (persons.sexe == 1)
        + dist.REAR_SEAT_EFFECT * np.isin(persons.place, (3, 4, 5))
        + rng.logistic(0.0, dist.PERSON_NOISE, p_veh.size)
    )
    return np.asarray(accident_score[persons.accident] + person_score, dtype=np.float64)


def _merge(factors: Mapping[int, float], params: DriftParams) -> dict[int, float]:
    merged = dict(factors)
    for code, factor in params.catv_factors.items():
        merged[code] = merged.get(code, 1.0) * factor
    return merged


def _locp_zero_share(year: int) -> float:
    # Share of non-pedestrians coded 0 rather than -1 in locp/actp, as in the samples.
    return {2019: 0.67, 2020: 0.55, 2021: 0.33, 2022: 0.4}.get(year, 0.45)


def _other_party_mass(
    mass: FloatArray, first: IntArray, v_acc: IntArray, nveh: IntArray
) -> FloatArray:
    """For each vehicle, the heaviest other vehicle of its accident (-inf when alone)."""
    top = _group_max(mass, first)
    at_top = mass == top[v_acc]
    top_count = np.add.reduceat(at_top.astype(np.int64), first)
    second = _group_max(np.where(at_top, -np.inf, mass), first)
    only_top = at_top & (top_count[v_acc] == 1)
    other = np.where(only_top, second[v_acc], top[v_acc])
    return np.where(nveh[v_acc] > 1, other, -np.inf)


def _ages(
    rng: np.random.Generator, role: IntArray, catv: IntArray, params: DriftParams
) -> IntArray:
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
class Thresholds:
    injured: float
    """Score above which a person who is not the worst hurt of the accident is injured."""
    hospitalised: float
    killed: float


def calibrate(population: Population) -> Thresholds:
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
    return Thresholds(injured=injured, hospitalised=hospitalised, killed=killed)


def _worst_of_accident(score: FloatArray, starts: IntArray) -> BoolArray:
    accident = np.repeat(np.arange(starts.size), np.diff(np.append(starts, score.size)))
    top = _group_max(score, starts)[accident]
    is_top = score == top
    # Ties are vanishingly rare with continuous noise; keep only the first.
    first_top = np.zeros(score.size, bool)
    first_index = np.maximum.reduceat(np.where(is_top, -np.arange(score.size), -score.size), starts)
    first_top[-first_index] = True
    return first_top


def grav(population: Population, cut: Thresholds) -> IntArray:
    score = population.score
    injured = (score >= cut.injured) | _worst_of_accident(score, population.person_start)
    return np.select(
        [score >= cut.killed, score >= cut.hospitalised, injured], [2, 3, 4], 1
    ).astype(np.int64)

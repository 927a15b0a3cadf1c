"""The feature contract: the single source of truth for what the model reads.

Training builds its modelling table from it, the scorer generates its request schema
from it, and the drift job builds Evidently's ``DataDefinition`` from it. Codes and
meanings come from the official BAAC data dictionary ("Description des bases de
données annuelles des accidents corporels de la circulation routière", ONISR, years
2019 and later). The BAAC sentinel ``-1`` ("non renseigné") is never a valid code
here: the loader turns it into a missing value.

Every choice that differs from the reference projects' 28 columns is documented in
``docs/feature-contract.md``.

This module depends on the standard library and numpy only, so every image can
import it.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

CONTRACT_VERSION = "2"
"""2: the worst-hurt person's attributes (chosen by the outcome) replaced by what a
caller can say about everyone involved; see docs/feature-contract.md."""

TARGET = "prioritaire"
"""Binary target column: 1 when a person of the accident was killed (grav 2) or
hospitalised (grav 3), 0 when every person's grav is known and none was."""

TARGET_LABELS: Mapping[int, str] = {0: "non-prioritaire", 1: "prioritaire"}

ACCIDENT_ID = "accident_id"
"""Join key of the four tables (``Num_Acc``, ``Accident_Id`` in 2022)."""


class Kind(StrEnum):
    NUMERICAL = "numerical"
    CATEGORICAL = "categorical"


@dataclass(frozen=True)
class Feature:
    """One model input: a raw BAAC column (or a value derived from raw columns)."""

    name: str
    kind: Kind
    source: str
    """BAAC table and column it comes from, or how it is derived."""
    description: str
    codes: Mapping[int, str] | Mapping[str, str] = field(default_factory=dict)
    """Allowed codes and their BAAC meaning (categorical features only)."""
    minimum: float | None = None
    maximum: float | None = None
    integer: bool = True
    required: bool = False
    """Required features must be present in a scoring request; the others may be
    null, which means "not filled", as BAAC's -1."""
    example: int | float | str | None = None

    @property
    def is_string_coded(self) -> bool:
        return any(isinstance(code, str) for code in self.codes)

    def is_valid(self, value: Any) -> bool:
        """Whether ``value`` is an allowed, non-missing value of this feature."""
        if self.kind is Kind.CATEGORICAL:
            return value in self.codes
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if math.isnan(value):
            return False
        if self.minimum is not None and value < self.minimum:
            return False
        return not (self.maximum is not None and value > self.maximum)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind.value,
            "source": self.source,
            "description": self.description,
            "codes": {str(code): meaning for code, meaning in self.codes.items()},
            "minimum": self.minimum,
            "maximum": self.maximum,
            "integer": self.integer,
            "required": self.required,
        }


def _departments() -> dict[str, str]:
    """INSEE department codes used by BAAC: metropolitan 01-95 with Corsica as 2A/2B
    (never 20), and the overseas departments and collectivities."""
    codes = {f"{n:02d}": "département métropolitain" for n in range(1, 96) if n != 20}
    codes["2A"] = "Corse-du-Sud"
    codes["2B"] = "Haute-Corse"
    overseas = {
        "971": "Guadeloupe",
        "972": "Martinique",
        "973": "Guyane",
        "974": "La Réunion",
        "975": "Saint-Pierre-et-Miquelon",
        "976": "Mayotte",
        "977": "Saint-Barthélemy",
        "978": "Saint-Martin",
        "986": "Wallis-et-Futuna",
        "987": "Polynésie française",
        "988": "Nouvelle-Calédonie",
    }
    codes.update(overseas)
    return dict(sorted(codes.items()))


DEPARTMENTS = _departments()

CATV_CODES: Mapping[int, str] = {
    0: "Indéterminable",
    1: "Bicyclette",
    2: "Cyclomoteur <50cm3",
    3: "Voiturette (quadricycle à moteur carrossé)",
    7: "VL seul",
    10: "VU seul 1,5T <= PTAC <= 3,5T",
    13: "PL seul 3,5T < PTCA <= 7,5T",
    14: "PL seul > 7,5T",
    15: "PL > 3,5T + remorque",
    16: "Tracteur routier seul",
    17: "Tracteur routier + semi-remorque",
    20: "Engin spécial",
    21: "Tracteur agricole",
    30: "Scooter < 50 cm3",
    31: "Motocyclette > 50 cm3 et <= 125 cm3",
    32: "Scooter > 50 cm3 et <= 125 cm3",
    33: "Motocyclette > 125 cm3",
    34: "Scooter > 125 cm3",
    35: "Quad léger <= 50 cm3",
    36: "Quad lourd > 50 cm3",
    37: "Autobus",
    38: "Autocar",
    39: "Train",
    40: "Tramway",
    41: "3RM <= 50 cm3",
    42: "3RM > 50 cm3 <= 125 cm3",
    43: "3RM > 125 cm3",
    50: "EDP à moteur",
    60: "EDP sans moteur",
    80: "VAE",
    99: "Autre véhicule",
}

# Groups of vehicle categories a caller can name ("a bike", "a motorbike", "a lorry"),
# counted per accident by the dataset build.
CYCLE_CATV: tuple[int, ...] = (1, 50, 60, 80)
"""Bicycles, e-bikes (VAE) and personal transporters with or without a motor (EDP)."""
MOTORCYCLE_CATV: tuple[int, ...] = (2, 30, 31, 32, 33, 34, 41, 42, 43)
"""Mopeds, scooters, motorcycles and motorised three-wheelers (3RM)."""
HEAVY_CATV: tuple[int, ...] = (13, 14, 15, 16, 17, 37, 38, 39, 40)
"""Lorries over 3.5 t, road tractors, buses, coaches, trains and trams."""
PUBLIC_TRANSPORT_CATV: tuple[int, ...] = (37, 38, 39, 40)
"""Buses, coaches, trains and trams: their passengers wear no seat belt."""

FEATURES: tuple[Feature, ...] = (
    # --- who and what is involved: what a caller can tell, never chosen by grav ---
    Feature(
        "nb_pedestrians",
        Kind.NUMERICAL,
        "derived: usagers rows with catu 3",
        "Nombre de piétons impliqués.",
        minimum=0,
        maximum=500,
        required=True,
        example=0,
    ),
    Feature(
        "nb_cycles",
        Kind.NUMERICAL,
        f"derived: vehicules rows with catv in {list(CYCLE_CATV)}",
        "Nombre de cycles impliqués: bicyclettes, VAE, EDP avec ou sans moteur (trottinettes).",
        minimum=0,
        maximum=500,
        required=True,
        example=0,
    ),
    Feature(
        "nb_motorcycles",
        Kind.NUMERICAL,
        f"derived: vehicules rows with catv in {list(MOTORCYCLE_CATV)}",
        "Nombre de deux- et trois-roues motorisés impliqués: cyclomoteurs, scooters, "
        "motocyclettes, 3RM.",
        minimum=0,
        maximum=500,
        required=True,
        example=0,
    ),
    Feature(
        "nb_heavy_vehicles",
        Kind.NUMERICAL,
        f"derived: vehicules rows with catv in {list(HEAVY_CATV)}",
        "Nombre de véhicules lourds impliqués: poids lourds, tracteurs routiers, "
        "autobus, autocars, trains, tramways.",
        minimum=0,
        maximum=500,
        required=True,
        example=0,
    ),
    Feature(
        "oldest_age",
        Kind.NUMERICAL,
        "derived: caracteristiques.an - min(usagers.an_nais)",
        "Âge de la personne impliquée la plus âgée, en années.",
        minimum=0,
        maximum=110,
        example=52,
    ),
    Feature(
        "youngest_age",
        Kind.NUMERICAL,
        "derived: caracteristiques.an - max(usagers.an_nais)",
        "Âge de la personne impliquée la plus jeune, en années.",
        minimum=0,
        maximum=110,
        example=27,
    ),
    Feature(
        "any_unrestrained",
        Kind.CATEGORICAL,
        "derived: usagers.secu1 0 for a driver or passenger of a vehicle that is neither "
        "a two-wheeler, a cycle nor public transport",
        "Un occupant d'un véhicule (ni deux-roues, ni cycle, ni transport en commun) "
        "sans aucun équipement de sécurité (ni ceinture, ni dispositif enfant).",
        codes={0: "Non", 1: "Oui"},
        example=0,
    ),
    Feature(
        "any_unhelmeted",
        Kind.CATEGORICAL,
        "derived: usagers.secu1-3 without 2 (casque) for a rider or passenger of a cycle "
        "or a motorised two- or three-wheeler",
        "Un usager d'un deux-roues (cycle ou motorisé) sans casque.",
        codes={0: "Non", 1: "Oui"},
        example=0,
    ),
    # --- the place (lieux) ---
    Feature(
        "catr",
        Kind.CATEGORICAL,
        "lieux.catr",
        "Catégorie de route.",
        codes={
            1: "Autoroute",
            2: "Route nationale",
            3: "Route départementale",
            4: "Voie communale",
            5: "Hors réseau public",
            6: "Parc de stationnement ouvert à la circulation publique",
            7: "Routes de métropole urbaine",
            9: "Autre",
        },
        required=True,
        example=3,
    ),
    Feature(
        "circ",
        Kind.CATEGORICAL,
        "lieux.circ",
        "Régime de circulation.",
        codes={
            1: "A sens unique",
            2: "Bidirectionnelle",
            3: "A chaussées séparées",
            4: "Avec voies d'affectation variable",
        },
        example=2,
    ),
    Feature(
        "surf",
        Kind.CATEGORICAL,
        "lieux.surf",
        "État de la surface.",
        codes={
            1: "Normale",
            2: "Mouillée",
            3: "Flaques",
            4: "Inondée",
            5: "Enneigée",
            6: "Boue",
            7: "Verglacée",
            8: "Corps gras - huile",
            9: "Autre",
        },
        example=1,
    ),
    Feature(
        "situ",
        Kind.CATEGORICAL,
        "lieux.situ",
        "Situation de l'accident.",
        codes={
            0: "Aucun",
            1: "Sur chaussée",
            2: "Sur bande d'arrêt d'urgence",
            3: "Sur accotement",
            4: "Sur trottoir",
            5: "Sur piste cyclable",
            6: "Sur autre voie spéciale",
            8: "Autres",
        },
        example=1,
    ),
    Feature(
        "vma",
        Kind.NUMERICAL,
        "lieux.vma",
        "Vitesse maximale autorisée sur le lieu, en km/h.",
        minimum=5,
        maximum=130,
        example=80,
    ),
    Feature(
        "agg_",
        Kind.CATEGORICAL,
        "caracteristiques.agg",
        "Localisation: hors ou en agglomération.",
        codes={1: "Hors agglomération", 2: "En agglomération"},
        required=True,
        example=1,
    ),
    Feature(
        "int",
        Kind.CATEGORICAL,
        "caracteristiques.int",
        "Type d'intersection.",
        codes={
            1: "Hors intersection",
            2: "Intersection en X",
            3: "Intersection en T",
            4: "Intersection en Y",
            5: "Intersection à plus de 4 branches",
            6: "Giratoire",
            7: "Place",
            8: "Passage à niveau",
            9: "Autre intersection",
        },
        example=1,
    ),
    Feature(
        "dep",
        Kind.CATEGORICAL,
        "caracteristiques.dep",
        "Code INSEE du département (2A/2B pour la Corse).",
        codes=DEPARTMENTS,
        example="33",
    ),
    Feature(
        "lat",
        Kind.NUMERICAL,
        "caracteristiques.lat",
        "Latitude (WGS84) du lieu de l'accident.",
        minimum=-90,
        maximum=90,
        integer=False,
        example=44.84,
    ),
    Feature(
        "long",
        Kind.NUMERICAL,
        "caracteristiques.long",
        "Longitude (WGS84) du lieu de l'accident.",
        minimum=-180,
        maximum=180,
        integer=False,
        example=-0.58,
    ),
    # --- the circumstances (caracteristiques) ---
    Feature(
        "mois",
        Kind.CATEGORICAL,
        "caracteristiques.mois",
        "Mois de l'accident.",
        codes={m: f"mois {m}" for m in range(1, 13)},
        example=6,
    ),
    Feature(
        "weekday",
        Kind.CATEGORICAL,
        "derived: caracteristiques.jour, mois, an",
        "Jour de la semaine (0 lundi ... 6 dimanche).",
        codes={
            0: "lundi",
            1: "mardi",
            2: "mercredi",
            3: "jeudi",
            4: "vendredi",
            5: "samedi",
            6: "dimanche",
        },
        example=5,
    ),
    Feature(
        "hour",
        Kind.NUMERICAL,
        "derived: caracteristiques.hrmn (HH:MM)",
        "Heure de l'accident (0-23).",
        minimum=0,
        maximum=23,
        required=True,
        example=17,
    ),
    Feature(
        "lum",
        Kind.CATEGORICAL,
        "caracteristiques.lum",
        "Conditions d'éclairage.",
        codes={
            1: "Plein jour",
            2: "Crépuscule ou aube",
            3: "Nuit sans éclairage public",
            4: "Nuit avec éclairage public non allumé",
            5: "Nuit avec éclairage public allumé",
        },
        required=True,
        example=1,
    ),
    Feature(
        "atm",
        Kind.CATEGORICAL,
        "caracteristiques.atm",
        "Conditions atmosphériques.",
        codes={
            1: "Normale",
            2: "Pluie légère",
            3: "Pluie forte",
            4: "Neige - grêle",
            5: "Brouillard - fumée",
            6: "Vent fort - tempête",
            7: "Temps éblouissant",
            8: "Temps couvert",
            9: "Autre",
        },
        example=1,
    ),
    Feature(
        "col",
        Kind.CATEGORICAL,
        "caracteristiques.col",
        "Type de collision.",
        codes={
            1: "Deux véhicules - frontale",
            2: "Deux véhicules - par l'arrière",
            3: "Deux véhicules - par le coté",
            4: "Trois véhicules et plus - en chaîne",
            5: "Trois véhicules et plus - collisions multiples",
            6: "Autre collision",
            7: "Sans collision",
        },
        example=3,
    ),
    # --- counts over the accident ---
    Feature(
        "nb_victim",
        Kind.NUMERICAL,
        "derived: number of usagers rows of the accident",
        "Nombre de personnes impliquées (usagers) dans l'accident.",
        minimum=1,
        maximum=500,
        required=True,
        example=2,
    ),
    Feature(
        "nb_vehicules",
        Kind.NUMERICAL,
        "derived: number of vehicules rows of the accident",
        "Nombre de véhicules impliqués dans l'accident.",
        minimum=1,
        maximum=500,
        required=True,
        example=2,
    ),
)

FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
FEATURES_BY_NAME: Mapping[str, Feature] = {f.name: f for f in FEATURES}
NUMERICAL_FEATURES: tuple[str, ...] = tuple(f.name for f in FEATURES if f.kind is Kind.NUMERICAL)
CATEGORICAL_FEATURES: tuple[str, ...] = tuple(
    f.name for f in FEATURES if f.kind is Kind.CATEGORICAL
)

# Department codes are strings; the model reads numbers. Their position in the sorted
# contract list is a stable, documented numeric code that needs no learned state.
_DEPARTMENT_INDEX: Mapping[str, int] = {code: i for i, code in enumerate(DEPARTMENTS)}


def example_row() -> dict[str, Any]:
    """A valid feature row, used by OpenAPI examples and warm-up predictions."""
    return {f.name: f.example for f in FEATURES}


def contract_dict() -> dict[str, Any]:
    """The contract as JSON-ready data, stored in every model manifest."""
    return {
        "version": CONTRACT_VERSION,
        "target": TARGET,
        "target_labels": {str(k): v for k, v in TARGET_LABELS.items()},
        "features": [f.to_dict() for f in FEATURES],
    }


def contract_fingerprint() -> str:
    """sha256 of the canonical contract: a model whose manifest carries another
    fingerprint was trained on different inputs and must not be served."""
    canonical = json.dumps(contract_dict(), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def encode_value(feature: Feature, value: Any) -> float:
    """Numeric value the model reads for one raw value; NaN for missing."""
    if value is None:
        return math.nan
    if feature.name == "dep":
        return float(_DEPARTMENT_INDEX[value]) if value in _DEPARTMENT_INDEX else math.nan
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number


def encode_rows(rows: Iterable[Mapping[str, Any]]) -> np.ndarray:
    """Raw feature rows (dicts keyed by feature name) to the float32 matrix the
    model reads, columns in contract order."""
    encoded = [[encode_value(f, row.get(f.name)) for f in FEATURES] for row in rows]
    return np.asarray(encoded, dtype=np.float32).reshape(-1, len(FEATURES))


def encode_frame(frame: Any) -> np.ndarray:
    """A pandas DataFrame with the contract's columns to the model's float32 matrix.

    Vectorised twin of :func:`encode_rows` for training and batch scoring: both
    must give the same numbers, and a test checks that they do.
    """
    import pandas as pd  # local import: the scorer's hot path never needs pandas

    columns: list[np.ndarray] = []
    for feature in FEATURES:
        series = frame[feature.name]
        if feature.name == "dep":
            mapped = series.map(_DEPARTMENT_INDEX)
            columns.append(pd.to_numeric(mapped, errors="coerce").to_numpy(dtype=np.float64))
        else:
            columns.append(pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64))
    return np.column_stack(columns).astype(np.float32)


def invalid_values(row: Mapping[str, Any]) -> list[str]:
    """Names the problems of one raw row: unknown fields, missing required fields,
    values outside the allowed codes or range. Empty when the row is valid."""
    problems = [f"unknown field '{name}'" for name in row if name not in FEATURES_BY_NAME]
    for feature in FEATURES:
        value = row.get(feature.name)
        if value is None:
            if feature.required:
                problems.append(f"'{feature.name}' is required")
            continue
        if not feature.is_valid(value):
            problems.append(f"'{feature.name}' has invalid value {value!r}")
    return problems


def categorical_columns_indices() -> Sequence[int]:
    return [i for i, f in enumerate(FEATURES) if f.kind is Kind.CATEGORICAL]


def numerical_columns_indices() -> Sequence[int]:
    return [i for i, f in enumerate(FEATURES) if f.kind is Kind.NUMERICAL]

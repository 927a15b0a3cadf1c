"""What the person features are worth: the default model with contract 2's call-time
features against the three person-feature variants issue 12 quotes.

* ``call-time``: contract 2, what a caller can say about everyone involved (counts of
  pedestrians, cycles, motorcycles and heavy vehicles, oldest and youngest age, anyone
  unrestrained or unhelmeted);
* ``worst-hurt``: contract 1, place, catu, sexe, secu1, age, catv, obsm and motor of
  the most severely hurt person, chosen by ``grav`` (file order among equals);
* ``first-listed``: the same attributes of the first person of the accident in the
  usagers file, chosen without the outcome;
* ``none``: no person feature at all.

Every variant shares the other 18 contract features (place, circumstances,
nb_victim, nb_vehicules), the labels and the rows of the contract-2 build, and the
default model (HistGradientBoosting, seed 42). Synthetic data: the default 2021 size,
held-out split of ``split_table`` (the training job's hash split). Real samples
(``../shared/baac-samples``, 1,319 labelled accidents): 5-fold stratified
cross-validation, mean and standard deviation.
Prints the markdown tables of ``docs/feature-contract.md``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold

from core import contract
from training import baac, dataset
from training.model import ModelKind, build_pipeline, evaluate, positive_probability
from training.synthetic import synthesize

SAMPLES = Path(__file__).resolve().parents[1] / ".." / "shared" / "baac-samples"

CALL_TIME = (
    "nb_pedestrians",
    "nb_cycles",
    "nb_motorcycles",
    "nb_heavy_vehicles",
    "oldest_age",
    "youngest_age",
    "any_unrestrained",
    "any_unhelmeted",
)
SHARED = tuple(name for name in contract.FEATURE_NAMES if name not in CALL_TIME)
PERSON_CATEGORICAL = ("place", "catu", "sexe", "secu1", "catv", "obsm", "motor")
PERSON_NUMERICAL = ("victim_age",)
# Contract 1's severity order: killed, hospitalised, slightly injured, unharmed.
SEVERITY_RANK = {2: 0, 3: 1, 4: 2, 1: 3}
METRICS = ("roc_auc", "accuracy", "f1")


def person_attributes(years: list[baac.RawYear], worst: bool) -> pd.DataFrame:
    """Contract 1's person columns for one person per accident: the worst hurt
    (``worst``) or the first listed, with their vehicle's catv/obsm/motor."""
    key = contract.ACCIDENT_ID
    usagers = pd.concat([y.usagers for y in years], ignore_index=True)
    vehicules = pd.concat([y.vehicules for y in years], ignore_index=True)
    an = pd.concat(
        [y.caracteristiques[[key, "an"]].assign(year=y.year) for y in years], ignore_index=True
    )
    if worst:
        rank = usagers["grav"].map(SEVERITY_RANK).fillna(len(SEVERITY_RANK))
        usagers = usagers.assign(_rank=rank).sort_values("_rank", kind="stable")
    person = usagers.drop_duplicates(key, keep="first").reset_index(drop=True)
    vehicle = pd.DataFrame({key: person[key]})
    for column in ("catv", "obsm", "motor"):
        vehicle[column] = np.nan
    found = pd.Series(False, index=person.index)
    for join in ("id_vehicule", "num_veh"):
        candidates = vehicules.dropna(subset=[join]).drop_duplicates([key, join])
        merged = person[[key, join]].merge(
            candidates[[key, join, "catv", "obsm", "motor"]], on=[key, join], how="left"
        )
        use = merged["catv"].notna().to_numpy() & ~found.to_numpy()
        for column in ("catv", "obsm", "motor"):
            vehicle.loc[use, column] = merged.loc[use, column].astype("float64")
        found |= use
    person = person.merge(an, on=key, how="left")
    year = pd.to_numeric(person["an"], errors="coerce").fillna(person["year"]).astype(float)
    age = year - pd.to_numeric(person["an_nais"], errors="coerce").astype(float)
    place = pd.to_numeric(person["place"], errors="coerce").astype(float)
    pedestrian = pd.to_numeric(person["catu"], errors="coerce") == 3
    columns = {
        key: person[key],
        "place": place.mask(place.isna() & pedestrian, 10.0),
        "catu": person["catu"],
        "sexe": person["sexe"],
        "secu1": person["secu1"],
        "victim_age": age.where(age.between(0, 110)),
        **{column: vehicle[column] for column in ("catv", "obsm", "motor")},
    }
    frame = pd.DataFrame(columns)
    for column in (*PERSON_CATEGORICAL, *PERSON_NUMERICAL):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    return frame


def variants(years: list[baac.RawYear]) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """The contract-2 table with both person variants joined, and each variant's
    columns."""
    key = contract.ACCIDENT_ID
    table = dataset.build_table(years)
    encoded = pd.DataFrame(contract.encode_frame(table), columns=list(contract.FEATURE_NAMES))
    encoded[key] = table[key].to_numpy()
    encoded[contract.TARGET] = table[contract.TARGET].to_numpy()
    for worst, prefix in ((True, "worst_"), (False, "first_")):
        person = person_attributes(years, worst)
        person = person.rename(columns={c: prefix + c for c in person.columns if c != key})
        encoded = encoded.merge(person, on=key, how="left")
    person_columns = [*PERSON_CATEGORICAL, *PERSON_NUMERICAL]
    return encoded, {
        "call-time (contract 2)": [*CALL_TIME, *SHARED],
        "worst-hurt person (contract 1)": [*("worst_" + c for c in person_columns), *SHARED],
        "first person listed": [*("first_" + c for c in person_columns), *SHARED],
        "no person features": list(SHARED),
    }


def fit_and_score(train: pd.DataFrame, test: pd.DataFrame, columns: list[str]) -> dict[str, float]:
    """The default model's pipeline, imputing each column by its kind."""
    numerical = {*contract.NUMERICAL_FEATURES, *PERSON_NUMERICAL}
    is_numerical = [c.removeprefix("worst_").removeprefix("first_") in numerical for c in columns]
    pipeline = build_pipeline(ModelKind.HIST_GRADIENT_BOOSTING, seed=42)
    (_, numeric_imputer, _), (_, categorical_imputer, _) = pipeline.named_steps[
        "impute"
    ].transformers
    pipeline.set_params(
        impute__transformers=[
            ("numerical", numeric_imputer, [i for i, n in enumerate(is_numerical) if n]),
            ("categorical", categorical_imputer, [i for i, n in enumerate(is_numerical) if not n]),
        ]
    )
    x_train = train[columns].to_numpy(dtype=np.float32)
    pipeline.fit(x_train, train[contract.TARGET].to_numpy(int))
    probability = positive_probability(pipeline, test[columns].to_numpy(dtype=np.float32))
    metrics = evaluate(test[contract.TARGET].to_numpy(int), probability, 0.5)
    return {name: float(metrics[name]) for name in METRICS}


def synthetic_rows(accidents: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        synthesize(Path(folder), accidents=accidents, seed=42, year=2021)
        table, columns = variants(baac.read_raw(Path(folder)))
    train, test = dataset.split_table(table, test_size=0.3, seed=42)
    print(
        f"Synthetic data, {accidents:,} accidents (seed 42): {len(train):,} training and "
        f"{len(test):,} held-out rows\n"
    )
    print("| features | ROC-AUC | accuracy | F1 |\n|---|---|---|---|")
    for name, chosen in columns.items():
        scores = fit_and_score(train, test, chosen)
        print(f"| {name} | " + " | ".join(f"{scores[m]:.3f}" for m in METRICS) + " |")


def real_rows(samples: Path, folds: int) -> None:
    table, columns = variants(baac.read_raw(samples))
    labels = table[contract.TARGET].to_numpy(int)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=42)
    print(
        f"\nReal samples ({samples.name}, {len(table):,} labelled accidents, "
        f"{labels.mean():.1%} prioritaire): {folds}-fold stratified cross-validation, "
        "mean ± standard deviation\n"
    )
    print("| features | ROC-AUC | accuracy | F1 |\n|---|---|---|---|")
    for name, chosen in columns.items():
        per_fold = [
            fit_and_score(table.iloc[train], table.iloc[test], chosen)
            for train, test in splitter.split(table, labels)
        ]
        cells = [
            f"{statistics.mean(f[m] for f in per_fold):.3f} ± "
            f"{statistics.stdev(f[m] for f in per_fold):.3f}"
            for m in METRICS
        ]
        print(f"| {name} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accidents", type=int, default=56_000)
    parser.add_argument("--samples", type=Path, default=SAMPLES)
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args()
    synthetic_rows(args.accidents)
    if args.samples.is_dir():
        real_rows(args.samples.resolve(), args.folds)
    else:
        print(f"\n(no real samples at {args.samples}: skipped)")


if __name__ == "__main__":
    main()

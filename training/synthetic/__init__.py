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

The package follows the seams: ``distributions.py`` (the tables, as data),
``population.py`` (the generator, on typed records of arrays), ``layouts.py`` (what
each year's files look like) and ``writers.py`` (the files of a population in a year's
layout).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from training.synthetic.distributions import GRAV_TARGET, DriftKind, drift_params
from training.synthetic.layouts import year_layout
from training.synthetic.population import calibrate, generate, grav
from training.synthetic.writers import TABLES, format_tables, write_atomically

__all__ = ["GRAV_TARGET", "TABLES", "DriftKind", "synthesize"]

log = logging.getLogger(__name__)


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
    layout = year_layout(year)
    drift = DriftKind(drift) if drift is not None else None
    population = generate(np.random.default_rng(seed), accidents, year, drift_params(drift))
    # Thresholds always come from the undrifted population of the same seed and size,
    # so a drift towards riskier accidents shows up as more severe outcomes.
    reference = (
        population
        if drift is None
        else generate(np.random.default_rng(seed), accidents, year, drift_params(None))
    )
    severity = grav(population, calibrate(reference))
    contents = format_tables(population, severity, layout, seed=seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {table: out_dir / name for table, name in layout.files.items()}
    for table in TABLES:
        write_atomically(paths[table], contents[table])
    log.info(
        "synthetic BAAC tables written",
        extra={
            "folder": str(out_dir),
            "year": year,
            "seed": seed,
            "drift": drift.value if drift else None,
            "accidents": accidents,
            "vehicles": int(population.vehicles.accident.size),
            "persons": int(severity.size),
        },
    )
    return paths

"""Which accidents a model trains on and which it is judged on, decided so that the
answer never changes when data is added, removed or reordered.

Each accident id is hashed with a salt (sha256 of ``"<salt>:<id>"``) into a number
in [0, 1): an accident is held out when its number is below the test share, so
adding a year or dropping an accident moves no other accident across the split. The
by-year split holds out the latest year instead (train on the past, judge on the
future), for real data. The split is recorded in the manifest as a rule, so a later
training can tell which of its held-out accidents a champion never trained on.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from core import contract
from training.errors import TrainingError
from training.settings import SplitMethod

HASH = "sha256"
YEAR = "year"
_SCALE = float(2**64)


def salt_for(seed: int) -> str:
    """The seed stays the one knob of the split: it names the salt."""
    return f"accident-triage:{seed}"


def hash_fraction(ids: pd.Series, salt: str) -> np.ndarray:
    """A stable number in [0, 1) per accident id: the first 8 bytes of
    sha256(salt:id), as a fraction of 2**64."""
    prefix = f"{salt}:".encode()
    return np.fromiter(
        (
            int.from_bytes(hashlib.sha256(prefix + str(i).encode()).digest()[:8], "big") / _SCALE
            for i in ids.tolist()
        ),
        dtype=np.float64,
        count=len(ids),
    )


@dataclass(frozen=True)
class SplitRule:
    """The rule deciding held-out accidents, as recorded in a manifest."""

    method: SplitMethod
    salt: str
    test_size: float
    held_out_years: tuple[int, ...] = ()

    @classmethod
    def from_manifest(cls, record: Any) -> SplitRule | None:
        """The recorded rule, or None when the record is absent or not one this code
        can apply (then nobody can tell which rows that model trained on)."""
        if not isinstance(record, dict) or record.get("hash") != HASH:
            return None
        try:
            method = SplitMethod(record["method"])
            return cls(
                method=method,
                salt=str(record["salt"]),
                test_size=float(record["test_size"]),
                held_out_years=tuple(int(y) for y in record.get("held_out_years", ())),
            )
        except (KeyError, TypeError, ValueError):
            return None

    def held_out(self, table: pd.DataFrame) -> np.ndarray:
        """True for the rows this rule keeps out of training."""
        if self.method is SplitMethod.YEAR:
            if YEAR not in table.columns:
                return np.zeros(len(table), dtype=bool)
            years = pd.to_numeric(table[YEAR], errors="coerce")
            return np.asarray(years.isin(self.held_out_years), dtype=bool)
        return hash_fraction(table[contract.ACCIDENT_ID], self.salt) < self.test_size

    def as_manifest(self) -> dict[str, Any]:
        return {
            "method": self.method.value,
            "hash": HASH,
            "salt": self.salt,
            "key": contract.ACCIDENT_ID,
            "test_size": self.test_size,
            "held_out_years": list(self.held_out_years),
            "rule": (
                f"held out when year in {list(self.held_out_years)}"
                if self.method is SplitMethod.YEAR
                else f"held out when sha256('{self.salt}:' + {contract.ACCIDENT_ID}) "
                f"read as a fraction of 2**64 is below {self.test_size}"
            ),
        }


def make_rule(table: pd.DataFrame, method: SplitMethod, test_size: float, seed: int) -> SplitRule:
    if not 0 < test_size < 1:
        raise ValueError(f"test_size must be between 0 and 1, got {test_size}")
    if method is SplitMethod.HASH:
        return SplitRule(method, salt_for(seed), test_size)
    years = sorted({int(y) for y in table[YEAR].dropna().unique()}) if YEAR in table else []
    if len(years) < 2:
        raise TrainingError(
            f"split_method=year needs at least two years of data to hold out the latest; "
            f"got {years or 'none'}"
        )
    return SplitRule(method, salt_for(seed), test_size, held_out_years=(years[-1],))


def apply_rule(table: pd.DataFrame, rule: SplitRule) -> tuple[pd.DataFrame, pd.DataFrame]:
    if table.empty:
        raise TrainingError("cannot split an empty table")
    held_out = rule.held_out(table)
    return (
        table.loc[~held_out].reset_index(drop=True),
        table.loc[held_out].reset_index(drop=True),
    )


def folds(ids: pd.Series, salt: str, count: int) -> np.ndarray:
    """Fold of each row for out-of-fold predictions on the training side, by another
    salt of the same hash: stable too, and every row of an accident in one fold."""
    fraction = hash_fraction(ids, f"{salt}:folds")
    return np.minimum((fraction * count).astype(np.int64), count - 1)


def stratification(train: pd.DataFrame, test: pd.DataFrame) -> dict[str, Any]:
    """The split is not forced to keep the class mix (that would make it depend on
    the other accidents); this checks it stayed within chance."""
    train_share = float(train[contract.TARGET].mean()) if len(train) else math.nan
    test_share = float(test[contract.TARGET].mean()) if len(test) else math.nan
    pooled = float(pd.concat([train, test])[contract.TARGET].mean())
    noise = (
        math.sqrt(pooled * (1 - pooled) * (1 / len(train) + 1 / len(test)))
        if len(train) and len(test)
        else math.nan
    )
    difference = test_share - train_share
    return {
        "train_prioritaire_share": round(train_share, 4),
        "test_prioritaire_share": round(test_share, 4),
        "difference": round(difference, 4),
        "standard_error": round(noise, 4),
        "within_chance": bool(abs(difference) <= 3 * noise) if noise == noise else False,
    }

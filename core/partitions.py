"""A day's partition of the inference log or of the feedback labels, read the same way
whether or not it was compacted.

The scorer writes many small files per day (one per flush and replica). The drift
job's compaction (``monitoring/compaction.py``) folds a finished day's files into a
few large *parts* and then commits a *manifest* that lists the parts and every file
they replace:

    <prefix>date=YYYY-MM-DD/<host>-<ts>.parquet                raw files
    <prefix>date=YYYY-MM-DD/_compacted/<generation>-<token>-<n>.parquet   parts
    <prefix>date=YYYY-MM-DD/_compacted/manifest-<generation>.json        manifests

A manifest is created once (create-if-absent, so of two racing compactions one
commits and the other discards its parts), after its parts are stored. A reader
takes the newest manifest's parts and the raw files it does not list (files flushed
after it, late): every row once, whichever side of the commit its listing fell.
Replaced files are deleted only once the manifest is ``grace`` old, so a reader that
resolved the day just before a commit still finds its files; a reader slower than
that re-resolves the day (:func:`read_day`) rather than read half of it.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Generic, TypeVar

from core import layout
from core.errors import ObjectNotFoundError, StorageError
from core.storage import Storage

log = logging.getLogger(__name__)

T = TypeVar("T")

COMPACTED_FOLDER = "_compacted/"
_MANIFEST = re.compile(r"_compacted/manifest-(\d{8})\.json$")
_PART = re.compile(r"_compacted/(\d{8})-[0-9a-f]+-\d{4}\.parquet$")
READ_ATTEMPTS = 3


@dataclass(frozen=True)
class Manifest:
    generation: int
    parts: tuple[str, ...]
    """Keys of the parts, in the order their rows were read."""
    replaces: frozenset[str]
    """Every raw file and earlier part whose rows the parts hold (cumulative over
    generations, so a raw file replaced by an older one is never read again)."""
    rows: int
    created_at: datetime

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "generation": self.generation,
                "parts": list(self.parts),
                "replaces": sorted(self.replaces),
                "rows": self.rows,
                "created_at": self.created_at.isoformat(),
            },
            indent=1,
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        record = json.loads(data)
        return cls(
            generation=int(record["generation"]),
            parts=tuple(record["parts"]),
            replaces=frozenset(record["replaces"]),
            rows=int(record["rows"]),
            created_at=datetime.fromisoformat(record["created_at"]).astimezone(UTC),
        )


def manifest_key(prefix: str, day: date, generation: int) -> str:
    return f"{layout.day_prefix(prefix, day)}{COMPACTED_FOLDER}manifest-{generation:08d}.json"


def part_key(prefix: str, day: date, generation: int, token: str, index: int) -> str:
    """A part of ``generation``, by the compaction run ``token`` (hex): racing runs
    never write the same key."""
    return (
        f"{layout.day_prefix(prefix, day)}{COMPACTED_FOLDER}"
        f"{generation:08d}-{token}-{index:04d}.parquet"
    )


def manifest_generation(key: str) -> int | None:
    match = _MANIFEST.search(key)
    return int(match.group(1)) if match else None


def part_generation(key: str) -> int | None:
    match = _PART.search(key)
    return int(match.group(1)) if match else None


def is_raw(key: str) -> bool:
    return key.endswith(".parquet") and f"/{COMPACTED_FOLDER}" not in key


@dataclass(frozen=True)
class DayFiles:
    day: date
    keys: list[str]
    """What to read for the day: the manifest's parts, then the raw files it does not
    replace."""
    manifest: Manifest | None
    listed: list[str] = field(default_factory=list)
    """Every key of the partition, as listed."""

    @property
    def new_raw(self) -> list[str]:
        """Raw files no manifest replaces yet: what a compaction would fold in."""
        parts = set(self.manifest.parts) if self.manifest else set()
        return [key for key in self.keys if key not in parts]


def partition_days(storage: Storage, prefix: str) -> dict[date, list[str]]:
    """Every day that has a partition under ``prefix``, with its keys."""
    days: dict[date, list[str]] = {}
    for key in storage.list(prefix):
        found = layout.partition_date(key)
        if found is not None:
            days.setdefault(date.fromisoformat(found), []).append(key)
    return days


def day_files(
    storage: Storage, prefix: str, day: date, listed: Iterable[str] | None = None
) -> DayFiles:
    """The files to read for ``day`` (``listed``: its keys when already listed)."""
    keys = sorted(storage.list(layout.day_prefix(prefix, day)) if listed is None else listed)
    manifest = None
    for key in sorted(keys, key=lambda k: manifest_generation(k) or -1, reverse=True):
        if manifest_generation(key) is None:
            break
        try:
            manifest = Manifest.from_json(storage.read_bytes(key))
            break
        except ObjectNotFoundError:
            continue  # deleted (retention) since the listing: an older one, if any
        except (ValueError, KeyError, TypeError) as error:
            # Manifests are created whole, never rewritten: this is damage, and reading
            # the raw files instead could read rows twice.
            raise StorageError(f"{storage.url_for(key)}: unreadable manifest ({error})") from error
    replaced = manifest.replaces if manifest else frozenset()
    raw = [key for key in keys if is_raw(key) and key not in replaced]
    return DayFiles(day, [*(manifest.parts if manifest else ()), *raw], manifest, keys)


@dataclass
class DayRead(Generic[T]):
    results: list[T]
    files: int
    unreadable: list[str]


def read_day(storage: Storage, prefix: str, day: date, read: Callable[[bytes], T]) -> DayRead[T]:
    """``read`` applied to each file of ``day``. A file ``read`` cannot parse
    (OSError, ValueError: pyarrow's errors are both) is skipped and named; a file
    deleted since the listing means a compaction replaced it: the day is resolved and
    read again from the start, so no row is read twice or missed."""
    for _ in range(READ_ATTEMPTS):
        files = day_files(storage, prefix, day)
        results: list[T] = []
        unreadable: list[str] = []
        try:
            for key in files.keys:
                data = storage.read_bytes(key)
                try:
                    results.append(read(data))
                except (OSError, ValueError) as error:
                    unreadable.append(key)
                    log.warning("skipping unreadable file", extra={"key": key, "error": str(error)})
        except ObjectNotFoundError:
            log.info("a file of the day was replaced while read; reading it again")
            continue
        return DayRead(results, len(files.keys), unreadable)
    raise StorageError(
        f"{storage.url_for(layout.day_prefix(prefix, day))}: files kept disappearing while "
        f"read ({READ_ATTEMPTS} attempts)"
    )

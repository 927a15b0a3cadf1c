"""Compaction and retention of what the scorer writes: a step of every drift run
(``monitoring/job.py``) and its own command, ``python -m monitoring compact``.

**Compaction.** Each finished day's inference-log and feedback files (one per flush
and replica: thousands a day) become a few parts of ``compaction_rows_per_file``
rows, committed by a manifest that lists what they replace (``core/partitions.py``
has the layout and the readers' rule). The order of the steps is what keeps readers
right: parts first, then the manifest, created once (of two racing compactions one
commits, the other deletes its parts); readers then take the parts and skip the
files listed, and those files are deleted only ``compaction_grace_hours`` after the
commit, by a later run. Rows keep their order (the parts hold the files' rows in the
order readers read them), so feedback's rule (first label wins, the last overwrite
replaces it, by ``received_at``) decides the same after as before. A file that
cannot be read is left as it is, not replaced; a day that gets late files after its
compaction is compacted again, into the next generation.

**Retention.** Whole days of inference logs older than ``retention_days``, and drift
reports older than that, are deleted; never a day of the current drift or quality
window, never the retrain record (``last-retrain.json``, the cooldown's), never a
model. Feedback labels are
training data: kept unless ``feedback_retention_days`` is set.
"""

from __future__ import annotations

import io
import logging
import secrets
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from core import layout, partitions, tables
from core.errors import ObjectExistsError, StorageError
from core.storage import Storage, create_once
from monitoring.drift import Window
from monitoring.settings import MonitoringSettings

log = logging.getLogger(__name__)

SETTLE = timedelta(hours=1)
"""A day is compacted once it ended this long ago: the last flushes of its rows have
landed by then (a later one is read next to the parts and compacted next time)."""
ROW_GROUP_ROWS = 100_000
"""Rows buffered into one row group of a part: small files' rows are gathered rather
than written as thousands of tiny row groups."""


def _nullable(schema: pa.Schema) -> pa.Schema:
    # Older files may lack a column a newer scorer writes: it becomes nulls.
    return pa.schema([schema.field(i).with_nullable(True) for i in range(len(schema))])


SCHEMAS: dict[str, pa.Schema] = {
    layout.INFERENCE_LOG_PREFIX: _nullable(tables.INFERENCE_LOG_SCHEMA),
    layout.FEEDBACK_PREFIX: _nullable(tables.FEEDBACK_SCHEMA),
}


@dataclass
class PrefixResult:
    days_compacted: list[str] = field(default_factory=list)
    files_compacted: int = 0
    rows_compacted: int = 0
    files_deleted: int = 0
    days_expired: list[str] = field(default_factory=list)
    lost_races: int = 0
    unreadable_files: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "days_compacted": self.days_compacted,
            "files_compacted": self.files_compacted,
            "rows_compacted": self.rows_compacted,
            "files_deleted": self.files_deleted,
            "days_expired": self.days_expired,
            "lost_races": self.lost_races,
            "unreadable_files": self.unreadable_files[:20],
            "errors": self.errors,
        }


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table``'s columns as ``schema`` has them: cast, missing ones as nulls, others
    dropped. Timestamps may lose sub-microsecond digits (pandas writes nanoseconds)."""
    columns = []
    for target in schema:
        if target.name in table.column_names:
            safe = not pa.types.is_timestamp(target.type)
            columns.append(table[target.name].cast(target.type, safe=safe))
        else:
            columns.append(pa.nulls(len(table), target.type))
    return pa.Table.from_arrays(columns, schema=schema)


class _PartWriter:
    """Parts of at most ``rows_per_file`` rows, written locally then uploaded."""

    def __init__(
        self,
        storage: Storage,
        prefix: str,
        day: date,
        generation: int,
        schema: pa.Schema,
        rows_per_file: int,
        folder: Path,
    ) -> None:
        self.storage, self.prefix, self.day, self.generation = storage, prefix, day, generation
        self.schema, self.rows_per_file, self.folder = schema, rows_per_file, folder
        self.token = secrets.token_hex(6)
        self.parts: list[str] = []
        self.rows = 0
        self._buffer: list[pa.Table] = []
        self._buffered = 0
        self._writer: pq.ParquetWriter | None = None
        self._in_part = 0

    def write(self, table: pa.Table) -> None:
        while len(table):
            room = min(self.rows_per_file - self._in_part - self._buffered, len(table))
            self._buffer.append(table.slice(0, room))
            self._buffered += room
            table = table.slice(room)
            if self._buffered >= ROW_GROUP_ROWS or self._in_part + self._buffered >= (
                self.rows_per_file
            ):
                self._write_group()

    def _write_group(self) -> None:
        if not self._buffered:
            return
        if self._writer is None:
            self._writer = pq.ParquetWriter(
                self.folder / "part.parquet", self.schema, compression="zstd"
            )
        self._writer.write_table(pa.concat_tables(self._buffer))
        self._in_part += self._buffered
        self.rows += self._buffered
        self._buffer, self._buffered = [], 0
        if self._in_part >= self.rows_per_file:
            self._upload()

    def _upload(self) -> None:
        if self._writer is None:
            return
        self._writer.close()
        self._writer = None
        key = partitions.part_key(
            self.prefix, self.day, self.generation, self.token, len(self.parts)
        )
        # Named before the upload: a failed upload's key is deleted with the rest.
        self.parts.append(key)
        self.storage.upload_file(self.folder / "part.parquet", key)
        self._in_part = 0

    def close(self) -> list[str]:
        self._write_group()
        self._upload()
        return self.parts

    def discard(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        for key in self.parts:
            self.storage.delete(key)


@dataclass(frozen=True)
class DayCompaction:
    manifest: partitions.Manifest | None
    """The committed manifest; None when another compaction committed first."""
    files: int
    unreadable: list[str]


def compact_day(
    storage: Storage,
    prefix: str,
    day: date,
    *,
    rows_per_file: int,
    now: datetime,
    listed: list[str] | None = None,
) -> DayCompaction | None:
    """Folds the day's files into parts of a new generation and commits them; None when
    the day has no file a manifest does not already hold."""
    files = partitions.day_files(storage, prefix, day, listed)
    if not files.new_raw:
        return None
    previous = files.manifest
    previous_parts = set(previous.parts) if previous else set()
    generation = (previous.generation if previous else 0) + 1
    schema = SCHEMAS[prefix]
    replaced: list[str] = []
    unreadable: list[str] = []
    with tempfile.TemporaryDirectory(prefix="compaction-") as folder:
        writer = _PartWriter(storage, prefix, day, generation, schema, rows_per_file, Path(folder))
        try:
            for key in files.keys:
                data = storage.read_bytes(key)
                try:
                    table = conform(pq.read_table(io.BytesIO(data)), schema)
                except (OSError, ValueError, pa.ArrowException) as error:
                    if key in previous_parts:
                        # Never build a generation on a damaged part: its rows would go.
                        raise StorageError(
                            f"{storage.url_for(key)}: unreadable compacted part ({error})"
                        ) from error
                    unreadable.append(key)
                    log.warning("left uncompacted: unreadable", extra={"key": key})
                    continue
                writer.write(table)
                replaced.append(key)
            parts = writer.close()
        except BaseException:
            writer.discard()
            raise
    if not set(replaced) - previous_parts:
        writer.discard()
        return DayCompaction(None, 0, unreadable)
    manifest = partitions.Manifest(
        generation=generation,
        parts=tuple(parts),
        replaces=(previous.replaces if previous else frozenset()) | set(replaced),
        rows=writer.rows,
        created_at=now,
    )
    try:
        create_once(
            storage,
            partitions.manifest_key(prefix, day, generation),
            manifest.to_json(),
            content_type="application/json",
        )
    except ObjectExistsError:
        log.info("another compaction committed this day first", extra={"day": str(day)})
        writer.discard()
        return DayCompaction(None, len(replaced), unreadable)
    return DayCompaction(manifest, len(replaced), unreadable)


def delete_replaced(
    storage: Storage, prefix: str, day: date, *, now: datetime, grace: timedelta
) -> int:
    """Deletes what the day's newest manifest replaces, once it is ``grace`` old (a
    reader that resolved the day before the commit has finished by then): the files
    it lists, older manifests, and parts of no manifest (a lost race, a crash)."""
    files = partitions.day_files(storage, prefix, day)
    manifest = files.manifest
    if manifest is None or now - manifest.created_at < grace:
        return 0
    doomed = []
    for key in files.listed:
        manifest_generation = partitions.manifest_generation(key)
        part_generation = partitions.part_generation(key)
        if (
            key in manifest.replaces
            or (manifest_generation is not None and manifest_generation < manifest.generation)
            or (
                part_generation is not None
                and part_generation <= manifest.generation
                and key not in manifest.parts
            )
        ):
            doomed.append(key)
    for key in doomed:
        storage.delete(key)
    return len(doomed)


def expire_day(storage: Storage, keys: list[str]) -> None:
    """Deletes a whole day past retention: raw files and parts first, manifests last,
    so an interrupted run leaves a day that still reads consistently."""
    for key in sorted(keys, key=lambda k: partitions.manifest_generation(k) is not None):
        storage.delete(key)


def expire_reports(storage: Storage, *, before: datetime) -> int:
    """Deletes the drift reports of runs started before ``before`` (the retrain
    record next to them, ``last-retrain.json``, is not a report and stays)."""
    deleted = 0
    for key in storage.list(layout.DRIFT_REPORT_PREFIX):
        folder = key[len(layout.DRIFT_REPORT_PREFIX) :].partition("/")[0]
        try:
            started = datetime.strptime(folder, "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC)
        except ValueError:
            continue
        if started < before:
            storage.delete(key)
            deleted += 1
    return deleted


def run_compaction(
    settings: MonitoringSettings,
    log_storage: Storage,
    report_storage: Storage,
    *,
    now: datetime,
) -> dict[str, Any]:
    """Compaction of every finished day, deletion of what earlier runs replaced, then
    retention; one day's failure is reported and the next day tried."""
    now = now.astimezone(UTC)
    # The drift and quality windows' days (a backfill's too) are kept whatever the
    # retention says.
    kept_hours = max(
        settings.window_hours, settings.quality_window_hours if settings.quality_enabled else 0
    )
    window_start = Window.ending(settings.window_end or now, kept_hours).start
    keep_logs_from = min(
        (now - timedelta(days=settings.retention_days)).date(), window_start.date()
    )
    keep_from: dict[str, date | None] = {
        layout.INFERENCE_LOG_PREFIX: keep_logs_from,
        layout.FEEDBACK_PREFIX: (
            (now - timedelta(days=settings.feedback_retention_days)).date()
            if settings.feedback_retention_days is not None
            else None
        ),
    }
    finished_before = (now - SETTLE).date()
    grace = timedelta(hours=settings.compaction_grace_hours)
    summary: dict[str, Any] = {}
    for prefix, oldest_kept in keep_from.items():
        result = PrefixResult()
        for day, keys in sorted(partitions.partition_days(log_storage, prefix).items()):
            try:
                if oldest_kept is not None and day < oldest_kept:
                    expire_day(log_storage, keys)
                    result.days_expired.append(day.isoformat())
                    result.files_deleted += len(keys)
                    continue
                if day >= finished_before:
                    continue
                compacted = compact_day(
                    log_storage,
                    prefix,
                    day,
                    rows_per_file=settings.compaction_rows_per_file,
                    now=now,
                    listed=keys,
                )
                if compacted is not None:
                    result.unreadable_files.extend(compacted.unreadable)
                    if compacted.manifest is None:
                        result.lost_races += bool(compacted.files)
                    else:
                        result.days_compacted.append(day.isoformat())
                        result.files_compacted += compacted.files
                        result.rows_compacted += compacted.manifest.rows
                result.files_deleted += delete_replaced(
                    log_storage, prefix, day, now=now, grace=grace
                )
            except StorageError as error:
                result.errors.append(f"{day}: {error}")
                log.error(
                    "compaction of a day failed", extra={"day": str(day), "error": str(error)}
                )
        summary[prefix.rstrip("/")] = result.to_dict()
    # The retrain cooldown reads last-retrain.json, not the reports: they can all go.
    summary["reports_deleted"] = expire_reports(
        report_storage, before=now - timedelta(days=settings.retention_days)
    )
    summary["retention_days"] = settings.retention_days
    log.info("compaction and retention done", extra={"summary": summary})
    return summary

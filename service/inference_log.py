"""The inference log: every scored row, written to the storage in parquet batches for
the drift job (and for feedback labels sent by request id).

Requests only append to an in-memory buffer (O(1), never raises, never waits); a
background task flushes it every ``flush_seconds``, or sooner once ``flush_rows``
rows wait, writing one parquet file per flush under
``inference-logs/date=YYYY-MM-DD/<host>-<timestamp>.parquet``: the date of the rows'
own timestamps (UTC; a flush with rows of two days writes a file per day), the time
of the flush. A row is therefore always in its day's partition, however late the
flush, and the drift job and the training job read only the days they need.

The buffer holds :class:`LogChunk` objects, one per request, made of what scoring
already computed: the model's float32 matrix, the probability array, the request
ids. Writing a file is then a handful of numpy operations per column instead of
Python work per row and field; with per-row dicts the flush cost about 20
microseconds of GIL-holding CPU per row here, more than scoring the row.

When the storage is down the chunks stay in the buffer and the flush is retried with
exponential backoff, at shutdown too (until the shutdown budget is spent). Writes run
on the app's storage executor, never on the threads that score batches. The buffer
holds at most ``capacity`` rows: past that the oldest rows are dropped and counted in
``triage_inference_log_rows_dropped_total``. A write in progress takes at most half
the capacity, so there is always room to drop the oldest *waiting* rows instead of
the newest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from datetime import UTC, date, datetime

from core import layout
from core.errors import StorageError
from core.storage import Storage
from core.tables import LogChunk, inference_log_parquet
from service.metrics import ScorerMetrics
from service.storage_executor import StorageExecutor

log = logging.getLogger(__name__)

BACKOFF_FIRST_SECONDS = 1.0
# The shutdown flush has seconds, not minutes: it retries sooner and more often.
SHUTDOWN_BACKOFF_FIRST_SECONDS = 0.1
SHUTDOWN_BACKOFF_MAX_SECONDS = 1.0


class InferenceLog:
    def __init__(
        self,
        storage: Storage,
        metrics: ScorerMetrics,
        executor: StorageExecutor,
        *,
        host: str,
        flush_rows: int,
        flush_seconds: float,
        capacity: int,
        retry_max_seconds: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if capacity < 2:
            raise ValueError("the inference-log buffer needs room for at least 2 rows")
        self.storage = storage
        self.metrics = metrics
        self.executor = executor
        self.host = host
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.capacity = capacity
        self.retry_max_seconds = retry_max_seconds
        self.max_file_rows = capacity // 2
        self._clock = clock
        self._pending: deque[LogChunk] = deque()
        self._pending_rows = 0
        self._in_flight = 0
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.failures = 0
        self.rows_written = 0
        self.rows_dropped = 0
        self.files_written = 0
        metrics.log_buffer_rows.set_function(lambda: self.buffered_rows)

    # --- the request side: cheap and infallible ------------------------------------

    def add(self, chunk: LogChunk) -> None:
        self._pending.append(chunk)
        self._pending_rows += len(chunk)
        self._drop_oldest(self._pending_rows + self._in_flight - self.capacity)
        if self._pending_rows >= self.flush_rows:
            self._wake.set()

    def _drop_oldest(self, excess: int) -> None:
        if excess <= 0:
            return
        self._count_dropped(excess)
        self._pending_rows -= excess
        pending = self._pending
        while excess:
            oldest = pending[0]
            if len(oldest) <= excess:
                pending.popleft()
                excess -= len(oldest)
            else:
                pending[0] = oldest.split(excess)[1]
                excess = 0

    @property
    def buffered_rows(self) -> int:
        return self._pending_rows + self._in_flight

    def _count_dropped(self, rows: int) -> None:
        self.rows_dropped += rows
        self.metrics.log_rows_dropped.inc(rows)

    # --- the flusher --------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="inference-log-flusher")

    async def _run(self) -> None:
        while not self._stop.is_set():
            if self.failures:
                await _wait(self._stop, self._backoff_seconds())
            else:
                await _wait(self._wake, self.flush_seconds)
                self._wake.clear()
            if self._stop.is_set():
                return
            await self._flush_due()

    def _backoff_seconds(self) -> float:
        return min(self.retry_max_seconds, BACKOFF_FIRST_SECONDS * 2 ** (self.failures - 1))

    async def flush(self) -> bool:
        """Writes every waiting row (in files of at most half the capacity); False and
        the rows kept when the storage fails."""
        while self._pending:
            if not await self._write_next():
                return False
        return True

    async def _flush_due(self) -> None:
        """One wake-up of the flusher: a file of what waits, then more only while full
        files' worth wait. Rows that arrive during a write wait for the next wake-up
        rather than being chased with one small file after another, which under load
        would keep a thread writing tiny files (and holding the GIL) all the time."""
        if not self._pending or not await self._write_next():
            return
        while self._pending_rows >= self.flush_rows:
            if not await self._write_next():
                return

    async def _write_next(self) -> bool:
        if await self._flush_once():
            self.failures = 0
            return True
        self.failures += 1
        return False

    def _take(self, rows: int) -> list[LogChunk]:
        taken: list[LogChunk] = []
        while self._pending and rows:
            chunk = self._pending.popleft()
            if len(chunk) > rows:
                chunk, rest = chunk.split(rows)
                self._pending.appendleft(rest)
            taken.append(chunk)
            rows -= len(chunk)
        return taken

    async def _flush_once(self) -> bool:
        batch = self._take(self.max_file_rows)
        count = sum(len(chunk) for chunk in batch)
        self._pending_rows -= count
        self._in_flight = count
        written_at = self._clock()
        unwritten = _by_day(batch)
        try:
            # One file per day of the rows' own timestamps: a row is in its day's
            # partition however late the flush (a flush across midnight, a storage
            # outage), which the drift window and the training job's lookup by
            # request-id day rely on.
            while unwritten:
                day, chunks = next(iter(unwritten.items()))
                key = layout.day_partition_key(
                    layout.INFERENCE_LOG_PREFIX, day, written_at, self.host
                )
                await self.executor.run(self._write, key, chunks)
                del unwritten[day]
                self._count_written(chunks)
        except BaseException as error:
            # Back to the front, oldest first; then the capacity decides what stays.
            back = [chunk for chunk in batch if _day(chunk) in unwritten]
            back_rows = sum(len(chunk) for chunk in back)
            self._in_flight = 0
            self._pending.extendleft(reversed(back))
            self._pending_rows += back_rows
            self._drop_oldest(self._pending_rows - self.capacity)
            if not isinstance(error, Exception):
                raise  # cancelled: the rows are back, let the cancellation through
            log.warning(
                "inference-log flush failed; rows kept for a retry",
                extra={
                    "error": str(error),
                    "buffered_rows": self._pending_rows,
                    "failures": self.failures + 1,
                },
                exc_info=not isinstance(error, OSError | StorageError),
            )
            return False
        self._in_flight = 0
        return True

    def _count_written(self, chunks: list[LogChunk]) -> None:
        rows = sum(len(chunk) for chunk in chunks)
        self._in_flight -= rows
        self.rows_written += rows
        self.files_written += 1
        self.metrics.log_rows_written.inc(rows)

    def _write(self, key: str, batch: list[LogChunk]) -> None:
        self.storage.write_bytes(
            key, inference_log_parquet(batch), content_type="application/vnd.apache.parquet"
        )

    async def close(self, timeout: float) -> None:
        """Stops the flusher and writes what is left, retrying with backoff until
        ``timeout`` seconds are spent (a storage back after a short outage still gets
        the rows); rows that could not be written by then are counted as dropped and
        logged with their count."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self._stop.set()
        self._wake.set()
        if self._task is not None:
            # The flusher finishes the write it is in (never cut: a cancelled thread
            # would write its file anyway and the retry would duplicate it).
            await asyncio.wait({self._task}, timeout=max(0.0, deadline - loop.time()))
            if not self._task.done():
                self._task.cancel()
        attempts = 0
        while self._pending and (remaining := deadline - loop.time()) > 0:
            try:
                if await asyncio.wait_for(self.flush(), remaining):
                    break
            except TimeoutError:
                break
            attempts += 1
            pause = min(
                SHUTDOWN_BACKOFF_FIRST_SECONDS * 2 ** (attempts - 1),
                SHUTDOWN_BACKOFF_MAX_SECONDS,
                max(0.0, deadline - loop.time()),
            )
            log.warning(
                "shutdown flush failed; retrying",
                extra={
                    "attempts": attempts,
                    "retry_in": pause,
                    "buffered_rows": self.buffered_rows,
                },
            )
            await asyncio.sleep(pause)
        lost = self.buffered_rows
        if lost:
            self._pending.clear()
            self._pending_rows = 0
            self._in_flight = 0
            self._count_dropped(lost)
            log.error(
                "inference-log rows lost at shutdown",
                extra={"rows": lost, "attempts": attempts, "budget_seconds": timeout},
            )
        log.info(
            "inference log closed",
            extra={"rows_written": self.rows_written, "rows_dropped": self.rows_dropped},
        )


def _day(chunk: LogChunk) -> date:
    return datetime.fromtimestamp(chunk.timestamp, UTC).date()


def _by_day(batch: list[LogChunk]) -> dict[date, list[LogChunk]]:
    """The batch's chunks by the UTC day of their timestamp, in order; one group
    without a per-chunk look when the first and last rows are of the same day (every
    flush but those that span midnight)."""
    stamps = [chunk.timestamp for chunk in batch]
    if not stamps:
        return {}
    first = datetime.fromtimestamp(min(stamps), UTC).date()
    if datetime.fromtimestamp(max(stamps), UTC).date() == first:
        return {first: batch}
    groups: dict[date, list[LogChunk]] = {}
    for chunk in batch:
        groups.setdefault(_day(chunk), []).append(chunk)
    return groups


async def _wait(event: asyncio.Event, timeout: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout)

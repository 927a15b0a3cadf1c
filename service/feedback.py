"""Feedback labels: the true class of an accident scored earlier, stored for the next
training run (``training/feedback.py`` reads them back).

Labels are precious and come in bursts, so they are stored by group commit: the
labels that arrive within ``batch_seconds`` of each other are written as one parquet
file under ``feedback/date=YYYY-MM-DD/<host>-<timestamp>.parquet``, and each waiting
request is answered once its file is stored (200), or with a 503 when it was not.
Nothing is acknowledged before it is stored.

A slow or hanging storage never holds a client for the storage's own timeout: a
request waits at most ``wait_seconds`` for its file (then 503: not confirmed, send it
again), no more than ``max_pending`` labels wait at once, and while a write has been
stuck for longer than ``wait_seconds`` new labels are refused at once (503) rather
than queued behind it. Writes run on the app's storage executor, never on the
threads that score batches.

One label per id: the first one stored wins. This process remembers the ids it
stored (the last ``remembered_ids`` of them) and refuses another label for one of
them with 409, unless it is an explicit ``overwrite`` (admin key). Replicas do not
share memory, so the training job's reader applies the same rule to the stored
files: it is the final word.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from core import layout
from core.errors import StorageError
from core.storage import Storage
from core.tables import FeedbackLabel, feedback_parquet
from service.errors import LabelConflictError, StorageUnavailableError
from service.metrics import LABELS, ScorerMetrics
from service.storage_executor import StorageExecutor

log = logging.getLogger(__name__)

_PENDING = False
_STORED = True


@dataclass(slots=True)
class _Waiting:
    label: FeedbackLabel
    stored: asyncio.Future[None]


class FeedbackStore:
    def __init__(
        self,
        storage: Storage,
        metrics: ScorerMetrics,
        executor: StorageExecutor,
        *,
        host: str,
        batch_seconds: float,
        max_pending: int,
        wait_seconds: float,
        remembered_ids: int,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.storage = storage
        self.metrics = metrics
        self.executor = executor
        self.host = host
        self.batch_seconds = batch_seconds
        self.max_pending = max_pending
        self.wait_seconds = wait_seconds
        self.remembered_ids = remembered_ids
        self._clock = clock
        self._waiting: list[_Waiting] = []
        self._writing = 0
        self._write_started: float | None = None
        # request id -> stored (True) or in a batch not yet stored (False).
        self._ids: OrderedDict[str, bool] = OrderedDict()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.files_written = 0

    # --- the request side ----------------------------------------------------------

    async def store(self, label: FeedbackLabel) -> None:
        """Returns once ``label`` is stored. StorageUnavailableError (503) when it is
        not (refused at once while the storage is stuck or too many labels wait, or
        not confirmed in time); LabelConflictError (409) when a label for the same id
        was already stored and this one is not an explicit overwrite."""
        self._admit(label)
        waiting = _Waiting(label, asyncio.get_running_loop().create_future())
        self._ids[label.request_id] = _PENDING
        self._waiting.append(waiting)
        self._wake.set()
        try:
            # shield: a timeout here must not cancel the future the writer resolves.
            await asyncio.wait_for(asyncio.shield(waiting.stored), self.wait_seconds)
        except TimeoutError:
            log.error(
                "feedback label not confirmed in time",
                extra={"feedback_request_id": label.request_id, "wait_seconds": self.wait_seconds},
            )
            raise StorageUnavailableError(
                f"the feedback storage did not confirm the label within {self.wait_seconds:g} s: "
                "it is NOT acknowledged; send it again later"
            ) from None

    def _admit(self, label: FeedbackLabel) -> None:
        state = self._ids.get(label.request_id)
        if state is _PENDING:
            raise StorageUnavailableError(
                f"a label for request id {label.request_id!r} is being stored; send it "
                "again in a moment if it is not confirmed"
            )
        if state is _STORED and not label.overwrite:
            raise LabelConflictError(
                f"request id {label.request_id!r} already has a label (the first one "
                'wins; an overwrite needs the admin key and "overwrite": true)'
            )
        if (
            self._write_started is not None
            and time.monotonic() - self._write_started > self.wait_seconds
        ):
            raise StorageUnavailableError(
                "the feedback storage is not answering: the label was NOT stored; send it "
                "again later"
            )
        if len(self._waiting) + self._writing >= self.max_pending:
            raise StorageUnavailableError(
                f"{self.max_pending} labels are already waiting for the feedback storage: "
                "the label was NOT stored; send it again later"
            )

    @property
    def writing(self) -> bool:
        """A file of labels is being written."""
        return self._write_started is not None

    # --- the writer ------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="feedback-writer")

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            # The group-commit window: the labels arriving meanwhile share the file.
            await asyncio.sleep(self.batch_seconds)
            self._wake.clear()
            batch, self._waiting = self._waiting, []
            if batch:
                await self._write(batch)

    async def _write(self, batch: list[_Waiting]) -> None:
        labels = [waiting.label for waiting in batch]
        key = layout.partitioned_key(layout.FEEDBACK_PREFIX, self._clock(), self.host)
        self._writing = len(batch)
        self._write_started = time.monotonic()
        try:
            await self.executor.run(
                self.storage.write_bytes,
                key,
                feedback_parquet(labels),
                content_type="application/vnd.apache.parquet",
            )
        except Exception as error:
            log.error(
                "feedback labels not stored",
                extra={"error": str(error), "labels": len(batch)},
                exc_info=not isinstance(error, OSError | StorageError),
            )
            self._settle(batch, stored=False)
            return
        finally:
            self._writing = 0
            self._write_started = None
        self.files_written += 1
        self._settle(batch, stored=True)
        log.info("feedback labels stored", extra={"labels": len(batch), "key": key})

    def _settle(self, batch: list[_Waiting], *, stored: bool) -> None:
        for waiting in batch:
            request_id = waiting.label.request_id
            if stored:
                self._ids[request_id] = _STORED
                self._ids.move_to_end(request_id)
                self.metrics.feedback_labels.labels(LABELS[waiting.label.label]).inc()
            elif waiting.label.overwrite:
                self._ids[request_id] = _STORED  # the label it was to replace stays
            else:
                self._ids.pop(request_id, None)
            if not waiting.stored.done():
                if stored:
                    waiting.stored.set_result(None)
                else:
                    waiting.stored.set_exception(
                        StorageUnavailableError(
                            "the feedback storage is unavailable, the label was NOT stored; "
                            "send it again later"
                        )
                    )
                    # Retrieved here: a request that already timed out will never read it.
                    waiting.stored.exception()
        while len(self._ids) > self.remembered_ids:
            self._ids.popitem(last=False)

    async def close(self) -> None:
        """Stops the writer. Runs after uvicorn has drained the requests, so no label
        waits any more; one that still did is answered 503 (not stored)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        leftover, self._waiting = self._waiting, []
        self._settle(leftover, stored=False)

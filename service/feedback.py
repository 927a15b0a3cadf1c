"""Feedback labels: the true class of an accident scored earlier, stored for the next
training run (``training/feedback.py`` reads them back).

Each label is written at once as a one-row parquet file under
``feedback/date=YYYY-MM-DD/<host>-<timestamp>.parquet``. Unlike the inference log
there is no buffer: a label is rare and precious, so when the storage is down the
caller gets a 503 and sends it again, instead of the label being lost silently.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from service.errors import StorageUnavailableError
from service.metrics import LABELS, ScorerMetrics
from service.tables import feedback_parquet
from training import layout
from training.errors import StorageError
from training.storage import Storage

log = logging.getLogger(__name__)


class FeedbackStore:
    def __init__(
        self,
        storage: Storage,
        metrics: ScorerMetrics,
        *,
        host: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.storage = storage
        self.metrics = metrics
        self.host = host
        self._clock = clock

    async def store(self, request_id: str, label: int, features: Mapping[str, Any] | None) -> str:
        """Writes one label and returns its key; StorageUnavailableError when the
        storage refused it."""
        now = self._clock()
        key = layout.partitioned_key(layout.FEEDBACK_PREFIX, now, self.host)
        data = feedback_parquet(request_id, now.timestamp(), label, features)
        try:
            await asyncio.to_thread(
                self.storage.write_bytes, key, data, content_type="application/vnd.apache.parquet"
            )
        except (StorageError, OSError) as error:
            log.error(
                "feedback label not stored",
                extra={"error": str(error), "feedback_request_id": request_id},
            )
            raise StorageUnavailableError(
                "the feedback storage is unavailable, the label was NOT stored; send it again later"
            ) from error
        self.metrics.feedback_labels.labels(LABELS[label]).inc()
        log.info(
            "feedback label stored",
            extra={"feedback_request_id": request_id, "label": label, "key": key},
        )
        return key

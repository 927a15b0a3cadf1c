"""The inference-log buffer and flusher, on a storage that fails on demand."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from core import contract, layout
from core.errors import StorageError
from core.storage import FileStorage
from core.tables import INFERENCE_LOG_SCHEMA, LogChunk
from service.inference_log import InferenceLog
from service.metrics import ScorerMetrics
from service.storage_executor import StorageExecutor

T = TypeVar("T")


class FlakyStorage(FileStorage):
    """A file storage whose writes fail while ``down`` is set, or take ``delay``."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.down = threading.Event()
        self.delay = 0.0
        self.attempts = 0

    def write_bytes(self, key: str, data: bytes, *, content_type: str | None = None) -> None:
        self.attempts += 1
        if self.delay:
            time.sleep(self.delay)
        if self.down.is_set():
            raise StorageError(f"{self.url_for(key)}: cannot reach endpoint: connection refused")
        super().write_bytes(key, data, content_type=content_type)

    def frame(self) -> pd.DataFrame:
        keys = self.list(layout.INFERENCE_LOG_PREFIX)
        if not keys:
            return pd.DataFrame(columns=list(layout.INFERENCE_LOG_COLUMNS))
        return pd.concat(
            [pd.read_parquet(io.BytesIO(self.read_bytes(key))) for key in keys],
            ignore_index=True,
        )


def chunk(ids: Iterable[int], features: dict[str, Any] | None = None) -> LogChunk:
    """Rows r<i> scored in one request; row i has probability i/1000 (and so
    prediction 1 from i=500 with the 0.5 threshold)."""
    numbers = list(ids)
    rows = [features or contract.example_row() for _ in numbers]
    return LogChunk(
        request_ids=[f"r{i}" for i in numbers],
        timestamp=1_790_000_000.0 + numbers[0],
        model_version="v1",
        threshold=0.5,
        probabilities=np.array([i / 1000 for i in numbers]),
        features=contract.encode_rows(rows),
        latitudes=[row["lat"] for row in rows],
        longitudes=[row["long"] for row in rows],
    )


def row(i: int, features: dict[str, Any] | None = None) -> LogChunk:
    return chunk([i], features)


def make_log(storage: FlakyStorage, **overrides: Any) -> tuple[InferenceLog, ScorerMetrics]:
    metrics = ScorerMetrics()
    values: dict[str, Any] = {
        "host": "pod-a",
        "flush_rows": 1000,
        "flush_seconds": 60.0,
        "capacity": 100,
        "retry_max_seconds": 0.2,
    }
    values.update(overrides)
    executor = StorageExecutor(2)
    executor.start()
    return InferenceLog(storage, metrics, executor, **values), metrics


def run(coroutine: Awaitable[T]) -> T:
    async def wrapper() -> T:
        return await coroutine

    return asyncio.run(wrapper())


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def sample(metrics: ScorerMetrics, name: str) -> float:
    value = metrics.registry.get_sample_value(name)
    assert value is not None, name
    return value


@pytest.fixture
def storage(tmp_path: Path) -> FlakyStorage:
    return FlakyStorage(tmp_path / "logs")


def test_a_full_batch_of_rows_is_flushed_at_once(storage: FlakyStorage) -> None:
    async def scenario() -> None:
        log, metrics = make_log(storage, flush_rows=10)
        log.start()
        log.add(chunk(range(10)))
        await until(lambda: log.rows_written == 10, timeout=5)
        assert sample(metrics, "triage_inference_log_rows_written_total") == 10
        await log.close(5)

    run(scenario())
    assert storage.frame()[layout.REQUEST_ID].tolist() == [f"r{i}" for i in range(10)]


def test_a_few_rows_are_flushed_after_flush_seconds(storage: FlakyStorage) -> None:
    async def scenario() -> None:
        log, _ = make_log(storage, flush_seconds=0.1)
        log.start()
        log.add(row(1))
        started = time.monotonic()
        await until(lambda: log.rows_written == 1, timeout=5)
        assert time.monotonic() - started < 2
        await log.close(5)

    run(scenario())


def test_files_are_date_partitioned_parquet_with_the_layout_columns(
    storage: FlakyStorage,
) -> None:
    when = datetime(2026, 3, 14, 15, 9, 26, tzinfo=UTC)
    nulls = {name: None for name in contract.FEATURE_NAMES} | {"any_unhelmeted": 1, "dep": "2A"}

    async def scenario() -> None:
        log, _ = make_log(storage, clock=lambda: when)
        log.add(row(1))
        log.add(chunk([600], nulls))
        assert await log.flush()

    run(scenario())
    [key] = storage.list(layout.INFERENCE_LOG_PREFIX)
    # The partition is the rows' day (2026-09-21), the name the flush's time.
    assert key == "inference-logs/date=2026-09-21/pod-a-20260314T150926000000Z.parquet"
    table = pq.read_table(io.BytesIO(storage.read_bytes(key)))
    assert table.schema.equals(INFERENCE_LOG_SCHEMA)
    assert tuple(table.column_names) == layout.INFERENCE_LOG_COLUMNS
    frame = table.to_pandas()
    assert frame[layout.REQUEST_ID].tolist() == ["r1", "r600"]
    assert frame[layout.PROBABILITY].tolist() == [0.001, 0.6]
    assert frame[layout.PREDICTION].tolist() == [0, 1]
    assert frame[layout.MODEL_VERSION].tolist() == ["v1", "v1"]
    assert frame[layout.TIMESTAMP].iloc[0] == pd.Timestamp(1_790_000_001, unit="s", tz="UTC")
    # The raw values, not the encoding: codes as integers, dep as its string code,
    # coordinates exactly as sent, nulls where nothing was filled.
    example = contract.example_row()
    first = frame.iloc[0]
    for name in contract.FEATURE_NAMES:
        assert first[name] == example[name], name
    assert frame["dep"].tolist() == ["33", "2A"]
    assert frame["any_unhelmeted"].tolist() == [0, 1]
    second = frame.iloc[1]
    assert all(
        pd.isna(second[n]) for n in contract.FEATURE_NAMES if n not in ("any_unhelmeted", "dep")
    )
    # What the drift job and training do with it: the contract's encoder reads it back.
    np.testing.assert_array_equal(
        contract.encode_frame(frame), contract.encode_rows([example, nulls])
    )


def midnight_chunk(ids: Iterable[int], *, seconds_after: float) -> LogChunk:
    """Rows scored ``seconds_after`` midnight starting 2026-12-07 (negative: before)."""
    midnight = datetime(2026, 12, 7, tzinfo=UTC).timestamp()
    return replace(chunk(ids), timestamp=midnight + seconds_after)


def test_a_flush_across_midnight_writes_each_row_under_its_own_day(
    storage: FlakyStorage,
) -> None:
    flushed = datetime(2026, 12, 7, 0, 0, 3, tzinfo=UTC)

    async def scenario() -> None:
        log, metrics = make_log(storage, clock=lambda: flushed)
        log.add(midnight_chunk([1, 2], seconds_after=-1))
        log.add(midnight_chunk([3], seconds_after=1))
        log.add(midnight_chunk([4], seconds_after=-0.5))  # a slow request, logged late
        assert await log.flush()
        assert (log.files_written, log.rows_written) == (2, 4)
        assert sample(metrics, "triage_inference_log_rows_written_total") == 4

    run(scenario())
    by_day = {
        layout.partition_date(key): pd.read_parquet(io.BytesIO(storage.read_bytes(key)))
        for key in storage.list(layout.INFERENCE_LOG_PREFIX)
    }
    assert {day: frame[layout.REQUEST_ID].tolist() for day, frame in by_day.items()} == {
        "2026-12-06": ["r1", "r2", "r4"],
        "2026-12-07": ["r3"],
    }


def test_when_the_second_day_fails_only_its_rows_are_retried(storage: FlakyStorage) -> None:
    """The first day's file is stored: retrying it too would log its rows twice."""
    clock = iter(datetime(2026, 12, 7, 0, 0, s, tzinfo=UTC) for s in range(3, 60))
    failing_key = "inference-logs/date=2026-12-07/"
    written_before_failure: list[str] = []
    second_day_down = threading.Event()

    class FailsOnTheSecondDay(FlakyStorage):
        def write_bytes(self, key: str, data: bytes, *, content_type: str | None = None) -> None:
            if key.startswith(failing_key) and second_day_down.is_set():
                written_before_failure.extend(self.list(layout.INFERENCE_LOG_PREFIX))
                raise StorageError("connection refused")
            super().write_bytes(key, data, content_type=content_type)

    flaky = FailsOnTheSecondDay(storage.root)
    second_day_down.set()

    async def scenario() -> None:
        log, _ = make_log(flaky, clock=lambda: next(clock))
        log.add(midnight_chunk([1], seconds_after=-1))
        log.add(midnight_chunk([2], seconds_after=1))
        assert not await log.flush()
        assert (log.rows_written, log.buffered_rows) == (1, 1)
        second_day_down.clear()
        assert await log.flush()
        assert (log.rows_written, log.buffered_rows, log.files_written) == (2, 0, 2)

    run(scenario())
    assert len(written_before_failure) == 1
    assert sorted(flaky.frame()[layout.REQUEST_ID]) == ["r1", "r2"]


def test_every_department_and_code_survives_the_round_trip(storage: FlakyStorage) -> None:
    rows = []
    for i, code in enumerate(contract.DEPARTMENTS):
        row = dict(contract.example_row(), dep=code)
        for feature in contract.FEATURES:
            if feature.codes and feature.name != "dep":
                row[feature.name] = list(feature.codes)[i % len(feature.codes)]
        row["nb_victim"], row["oldest_age"], row["lat"] = 500, i % 111, -89.999999 + i
        rows.append(row)

    async def scenario() -> None:
        log, _ = make_log(storage, capacity=1000)
        log.add(
            LogChunk(
                [f"d{i}" for i in range(len(rows))],
                1.0,
                "v1",
                0.5,
                np.zeros(len(rows)),
                contract.encode_rows(rows),
                [r["lat"] for r in rows],
                [r["long"] for r in rows],
            )
        )
        assert await log.flush()

    run(scenario())
    frame = storage.frame()
    assert frame[list(contract.FEATURE_NAMES)].to_dict("records") == rows


def test_rows_survive_a_storage_outage_and_are_written_after_it(storage: FlakyStorage) -> None:
    async def scenario() -> None:
        log, metrics = make_log(storage, flush_rows=5, retry_max_seconds=0.1)
        storage.down.set()
        log.start()
        log.add(chunk(range(5)))
        await until(lambda: log.failures >= 2)
        assert log.rows_written == 0
        assert log.buffered_rows == 5
        assert sample(metrics, "triage_inference_log_buffer_rows") == 5
        log.add(chunk(range(5, 8)))
        storage.down.clear()
        await until(lambda: log.rows_written == 8)
        assert log.failures == 0
        assert sample(metrics, "triage_inference_log_rows_dropped_total") == 0
        await log.close(5)

    run(scenario())
    assert sorted(storage.frame()[layout.REQUEST_ID]) == sorted(f"r{i}" for i in range(8))


def test_retries_back_off_exponentially_up_to_the_cap(storage: FlakyStorage) -> None:
    log, _ = make_log(storage, retry_max_seconds=5)
    delays = []
    for failures in range(1, 7):
        log.failures = failures
        delays.append(log._backoff_seconds())
    assert delays == [1, 2, 4, 5, 5, 5]


def test_a_full_buffer_drops_the_oldest_rows_and_counts_them(storage: FlakyStorage) -> None:
    async def scenario() -> None:
        log, metrics = make_log(storage, capacity=10, flush_rows=100)
        storage.down.set()
        log.add(chunk(range(4)))
        assert not await log.flush()
        log.add(chunk(range(4, 25)))
        assert log.buffered_rows == 10
        assert log.rows_dropped == 15
        assert sample(metrics, "triage_inference_log_rows_dropped_total") == 15
        storage.down.clear()
        assert await log.flush()

    run(scenario())
    assert storage.frame()[layout.REQUEST_ID].tolist() == [f"r{i}" for i in range(15, 25)]


def test_appends_never_wait_for_a_slow_write_and_the_bound_holds(storage: FlakyStorage) -> None:
    async def scenario() -> None:
        log, _ = make_log(storage, capacity=10, flush_rows=4)
        storage.delay = 0.5
        log.start()
        log.add(chunk(range(4)))
        await until(lambda: storage.attempts == 1)
        started = time.perf_counter()
        for i in range(4, 30):
            log.add(row(i))
            assert log.buffered_rows <= 10
        assert time.perf_counter() - started < 0.05
        storage.delay = 0
        await log.close(5)
        # 5 rows in flight (half the capacity) were written; of the rest, the newest
        # that fitted beside them were kept.
        assert log.rows_written + log.rows_dropped == 30

    run(scenario())
    written = storage.frame()[layout.REQUEST_ID].tolist()
    assert written[:4] == ["r0", "r1", "r2", "r3"]
    assert written[-1] == "r29"


def test_close_flushes_what_is_left(storage: FlakyStorage) -> None:
    async def scenario() -> None:
        log, _ = make_log(storage, flush_rows=1000, flush_seconds=60)
        log.start()
        log.add(chunk(range(7)))
        await log.close(5)
        assert log.rows_written == 7

    run(scenario())
    assert len(storage.frame()) == 7


def test_close_gives_up_in_time_and_counts_the_lost_rows(storage: FlakyStorage) -> None:
    async def scenario() -> None:
        log, metrics = make_log(storage, retry_max_seconds=0.05)
        storage.down.set()
        log.start()
        log.add(chunk(range(3)))
        started = time.monotonic()
        await log.close(0.5)
        assert time.monotonic() - started < 2
        assert log.rows_dropped == 3
        assert sample(metrics, "triage_inference_log_rows_dropped_total") == 3

    run(scenario())


def test_a_tiny_capacity_is_refused(storage: FlakyStorage) -> None:
    with pytest.raises(ValueError, match="at least 2"):
        make_log(storage, capacity=1)

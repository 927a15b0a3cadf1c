"""Traffic for a scorer: ``python -m tools simulate``.

Rows come from the synthetic BAAC generator, optionally drifted, passed through the
real loader and table builder (so they look exactly like what the model was trained
on), or from a held-out parquet file. Requests are sent open-loop at a fixed rate
(request ``i`` is due at ``start + i / rate``), with a bounded number in flight, for a
bounded duration; a share of the answered predictions gets its true label posted to
``/feedback`` after a delay, as a hospital's report would arrive later.
"""

from __future__ import annotations

import asyncio
import logging
import math
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core import contract
from tools.errors import ToolError

log = logging.getLogger(__name__)

MAX_DURATION_SECONDS = 3600.0
MAX_RATE = 5000.0
MAX_REQUESTS = 1_000_000


def synthetic_table(accidents: int, *, seed: int, drift: str | None = None) -> pd.DataFrame:
    """Synthetic BAAC tables read back by the real loader: the modelling table, with
    the contract's features and the target."""
    from training.baac import read_raw
    from training.dataset import build_table
    from training.synthetic import DriftKind, synthesize

    kind = DriftKind(drift) if drift else None
    with tempfile.TemporaryDirectory(prefix="simulate-baac-") as folder:
        synthesize(Path(folder), accidents=accidents, seed=seed, drift=kind)
        return build_table(read_raw(Path(folder)))


def contract_rows(table: pd.DataFrame) -> tuple[list[dict[str, Any]], list[int | None]]:
    """JSON-ready request bodies (integers as ints, ``dep`` as a string, missing as
    null) and the true labels, leaving out rows the scorer would refuse (a required
    feature missing: the loader turns BAAC's unfilled codes into missing values)."""
    columns: dict[str, list[Any]] = {}
    for feature in contract.FEATURES:
        series = table[feature.name]
        values: list[Any]
        if feature.is_string_coded:
            values = [None if pd.isna(v) else str(v) for v in series.tolist()]
        elif feature.kind is contract.Kind.CATEGORICAL or feature.integer:
            numbers = pd.to_numeric(series, errors="coerce")
            values = [None if math.isnan(v) else round(v) for v in numbers.astype(float).tolist()]
        else:
            numbers = pd.to_numeric(series, errors="coerce").astype(float)
            values = [None if math.isnan(v) else v for v in numbers.tolist()]
        columns[feature.name] = values
    targets: list[int | None]
    if contract.TARGET in table.columns:
        targets = [None if pd.isna(v) else int(v) for v in table[contract.TARGET].tolist()]
    else:
        targets = [None] * len(table)
    rows, labels = [], []
    for index in range(len(table)):
        row = {name: values[index] for name, values in columns.items()}
        if contract.invalid_values(row):
            continue
        rows.append(row)
        labels.append(targets[index])
    return rows, labels


def rows_from_parquet(path: Path) -> tuple[list[dict[str, Any]], list[int | None]]:
    try:
        table = pd.read_parquet(path)
    except (OSError, ValueError) as error:
        raise ToolError(f"{path}: cannot read parquet ({error})") from error
    missing = sorted(set(contract.FEATURE_NAMES) - set(table.columns))
    if missing:
        raise ToolError(f"{path}: missing feature column(s) {missing}")
    return contract_rows(table)


@dataclass
class _Tally:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    errors: int = 0
    feedback_sent: int = 0
    feedback_errors: int = 0
    versions: Counter[str] = field(default_factory=Counter)
    predicted_prioritaire: int = 0


def _percentile(values: Sequence[float], q: float) -> float | None:
    return None if not values else round(float(np.percentile(values, q)) * 1000, 3)


async def _run(
    url: str,
    rows: Sequence[dict[str, Any]],
    labels: Sequence[int | None],
    *,
    rate: float,
    total: int,
    concurrency: int,
    feedback_share: float,
    feedback_delay: float,
    seed: int,
    timeout: float,
    progress: bool,
) -> tuple[_Tally, float]:
    import httpx
    from tqdm import tqdm

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(rows))
    gives_feedback = rng.random(total) < feedback_share
    tally = _Tally()
    feedback_tasks: list[asyncio.Task[None]] = []
    bar = tqdm(total=total, unit="req", disable=not progress, leave=False)
    # Requests are handed out in order by one counter: request i leaves at its due time
    # (open loop), unless all `concurrency` workers are busy, and then as soon as one
    # is free; a slow scorer shows as a lower achieved rate, never as a pile-up.
    next_index = 0

    async with httpx.AsyncClient(base_url=url.rstrip("/"), timeout=timeout) as client:

        async def feedback(request_id: str, label: int) -> None:
            await asyncio.sleep(feedback_delay)
            try:
                response = await client.post(
                    "/feedback", json={"request_id": request_id, "label": label}
                )
                if response.status_code < 300:
                    tally.feedback_sent += 1
                else:
                    tally.feedback_errors += 1
            except httpx.HTTPError:
                tally.feedback_errors += 1

        async def one(index: int) -> None:
            position = int(order[index % len(order)])
            sent_at = time.perf_counter()
            try:
                response = await client.post("/predict", json=rows[position])
            except httpx.HTTPError as error:
                tally.errors += 1
                tally.statuses[type(error).__name__] += 1
                return
            finally:
                bar.update(1)
            tally.latencies.append(time.perf_counter() - sent_at)
            tally.statuses[str(response.status_code)] += 1
            if response.status_code >= 300:
                tally.errors += 1
                return
            body = response.json()
            tally.versions[str(body.get("model_version"))] += 1
            tally.predicted_prioritaire += int(body.get("prediction") == 1)
            label = labels[position]
            if gives_feedback[index] and label is not None:
                feedback_tasks.append(
                    asyncio.create_task(feedback(str(body["request_id"]), int(label)))
                )

        async def worker() -> None:
            nonlocal next_index
            while next_index < total:
                index = next_index
                next_index += 1
                delay = start + index / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                await one(index)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(min(concurrency, total))))
        elapsed = time.perf_counter() - start
        # Labels still waiting for their delay are sent: the delay is bounded.
        await asyncio.gather(*feedback_tasks)
    bar.close()
    return tally, elapsed


def simulate(
    url: str,
    rows: Sequence[dict[str, Any]],
    labels: Sequence[int | None],
    *,
    rate: float,
    duration: float,
    concurrency: int = 4,
    feedback_share: float = 0.0,
    feedback_delay: float = 0.0,
    seed: int = 0,
    timeout: float = 10.0,
    progress: bool = False,
) -> dict[str, Any]:
    """Sends ``rate * duration`` requests; returns counts, the achieved rate and the
    latency percentiles (milliseconds, answered requests only)."""
    if not rows:
        raise ToolError("no valid rows to send")
    # Bounds keep a typo from turning into an unbounded load test (ValueError: the CLI
    # reports a usage error).
    if not 0 < rate <= MAX_RATE:
        raise ValueError(f"rate must be in (0, {MAX_RATE:.0f}] requests per second")
    if not 0 < duration <= MAX_DURATION_SECONDS:
        raise ValueError(f"duration must be in (0, {MAX_DURATION_SECONDS:.0f}] seconds")
    if not 0 <= feedback_share <= 1:
        raise ValueError("feedback share must be between 0 and 1")
    if not 0 <= feedback_delay <= MAX_DURATION_SECONDS:
        raise ValueError(f"feedback delay must be in [0, {MAX_DURATION_SECONDS:.0f}] seconds")
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    total = min(MAX_REQUESTS, max(1, round(rate * duration)))
    tally, elapsed = asyncio.run(
        _run(
            url,
            rows,
            labels,
            rate=rate,
            total=total,
            concurrency=concurrency,
            feedback_share=feedback_share,
            feedback_delay=feedback_delay,
            seed=seed,
            timeout=timeout,
            progress=progress,
        )
    )
    answered = total - tally.errors
    return {
        "url": url,
        "sent": total,
        "ok": answered,
        "errors": tally.errors,
        "statuses": dict(tally.statuses),
        "seconds": round(elapsed, 3),
        "target_rate": rate,
        "achieved_rate": round(total / elapsed, 2) if elapsed > 0 else None,
        "latency_ms": {
            "p50": _percentile(tally.latencies, 50),
            "p95": _percentile(tally.latencies, 95),
            "p99": _percentile(tally.latencies, 99),
        },
        "prioritaire_share": round(tally.predicted_prioritaire / answered, 4) if answered else None,
        "model_versions": dict(tally.versions),
        "feedback": {"sent": tally.feedback_sent, "errors": tally.feedback_errors},
    }

"""The parts of the live observability stack of ``test_dashboards_live.py`` that are
not fixtures: its labels and settings, random contract-valid rows, the Prometheus HTTP
API and a background traffic loop. A plain module (import it as
``tests.grafana.live_stack``); the fixtures and the two stand-ins are in ``conftest.py``.
"""

from __future__ import annotations

import json
import math
import os
import random
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from core import contract

PROMETHEUS = "prometheus"
PUSHGATEWAY = "prometheus-pushgateway"
NAMESPACE = "triage-test"
"""What Kubernetes service discovery would add as the namespace label."""
SCORER_POD = "scorer-test-0"
PUSHGATEWAY_POD = "pushgateway-test-0"
API_KEY = "test-admin-key"
SCRAPE_INTERVAL_SECONDS = 1
RATE_INTERVAL = "20s"
"""What the tests put in place of Grafana's ``$__rate_interval``: 20 scrapes."""

RENDER_FOLDER = os.environ.get("TRIAGE_RENDER_DASHBOARDS")
"""When set, the stack runs a longer scenario and the dashboards are rendered there."""
RENDER_SECONDS = float(os.environ.get("TRIAGE_RENDER_SECONDS", "240"))


@dataclass(frozen=True)
class LiveStack:
    scorer_url: str
    pushgateway_url: str
    prometheus_url: str
    registry: Path
    started: float
    """Unix time Prometheus started: the beginning of its data."""


def random_row(rng: random.Random) -> dict[str, Any]:
    """A contract-valid row: the contract's example with every feature redrawn among
    its allowed values, or left out when optional (one time in ten)."""
    row = contract.example_row()
    for feature in contract.FEATURES:
        if not feature.required and rng.random() < 0.1:
            row[feature.name] = None
        elif feature.codes:
            row[feature.name] = rng.choice(list(feature.codes))
        elif feature.minimum is not None and feature.maximum is not None:
            value = rng.uniform(feature.minimum, feature.maximum)
            row[feature.name] = round(value) if feature.integer else round(value, 4)
    return row


def prometheus_api(prometheus_url: str, path: str, **params: str) -> Any:
    """GET ``/api/v1/<path>``; the ``data`` of a successful answer."""
    query = urllib.parse.urlencode(params)
    with urllib.request.urlopen(f"{prometheus_url}/api/v1/{path}?{query}", timeout=30) as answer:
        body = json.load(answer)
    assert body["status"] == "success", body
    return body["data"]


def instant_query(prometheus_url: str, expr: str) -> list[dict[str, Any]]:
    """The samples of an instant query (a scalar becomes one sample with no labels)."""
    data = prometheus_api(prometheus_url, "query", query=expr)
    if data["resultType"] == "scalar":
        return [{"metric": {}, "value": data["result"]}]
    return list(data["result"])


def has_finite_value(samples: list[dict[str, Any]]) -> bool:
    return any(math.isfinite(float(sample["value"][1])) for sample in samples)


def wait_for_series(prometheus_url: str, exprs: list[str], *, timeout: float = 60.0) -> None:
    """Return once every expression has a sample; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    missing = list(exprs)
    while time.monotonic() < deadline:
        missing = [expr for expr in missing if not instant_query(prometheus_url, expr)]
        if not missing:
            return
        time.sleep(0.5)
    pytest.fail(f"no data in Prometheus within {timeout:.0f} s for {missing}")


class TrafficLoop(threading.Thread):
    """Scoring traffic in the background, so that the short-window rates and quantiles
    the panels compute have fresh samples. ``rate`` and ``invalid_share`` may be changed
    while it runs."""

    def __init__(self, scorer_url: str, *, rate: float = 10.0, seed: int = 1) -> None:
        super().__init__(daemon=True)
        self.scorer_url = scorer_url
        self.rate = rate
        self.invalid_share = 0.05
        self.feedback_share = 0.2
        self.batch_share = 0.02
        self.rng = random.Random(seed)
        self.stopped = threading.Event()
        self.errors: list[str] = []

    def run(self) -> None:
        with httpx.Client(base_url=self.scorer_url, timeout=10.0) as client:
            while not self.stopped.is_set():
                try:
                    self._one(client)
                except httpx.HTTPError as error:
                    self.errors.append(repr(error))
                self.stopped.wait(self.rng.expovariate(self.rate))

    def _one(self, client: httpx.Client) -> None:
        if self.rng.random() < self.batch_share:
            rows = [random_row(self.rng) for _ in range(self.rng.randint(5, 50))]
            client.post("/predict/batch", json={"rows": rows})
            return
        row = random_row(self.rng)
        if self.rng.random() < self.invalid_share:
            row["vma"] = 1000  # out of range: 422
        answer = client.post("/predict", json=row)
        if answer.status_code == 200 and self.rng.random() < self.feedback_share:
            request_id = answer.json()["request_id"]
            label = int(self.rng.random() < answer.json()["probability"])
            client.post("/feedback", json={"request_id": request_id, "label": label})

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=15)

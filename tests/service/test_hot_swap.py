"""Hot reload under load: a real uvicorn server, concurrent clients, a new version
promoted in the registry and picked up by the background poll. No request may fail,
and no answer may mix versions."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

import httpx
import pytest

from core import contract
from core.registry import Registry
from service.app import create_app
from service.settings import ScorerSettings
from tests.service.helpers import V1, V2, wait_for

pytestmark = pytest.mark.servers

CLIENTS = 8
ROWS = [
    contract.example_row(),
    {**contract.example_row(), "nb_pedestrians": 1, "any_unhelmeted": 1, "vma": 110},
    {**contract.example_row(), "oldest_age": 80, "lum": 3},
]


def test_swap_under_concurrent_requests_fails_nothing(
    make_settings: Callable[..., ScorerSettings],
    registry: Registry,
    serve: Callable[..., AbstractContextManager[str]],
) -> None:
    app = create_app(make_settings(poll_interval_seconds=0.1))
    stop = threading.Event()
    seen: list[list[str]] = [[] for _ in range(CLIENTS)]
    failures: list[str] = []

    def hammer(index: int, base_url: str) -> None:
        with httpx.Client(base_url=base_url, timeout=10) as http:
            i = 0
            while not stop.is_set():
                i += 1
                try:
                    if i % 5 == 0:
                        response = http.post("/predict/batch", json={"rows": ROWS})
                        body = response.json()
                        versions = {p["model_version"] for p in body["predictions"]}
                        if versions != {body["model_version"]}:
                            failures.append(f"mixed versions in one batch: {versions}")
                        version = body["model_version"]
                    else:
                        response = http.post("/predict", json=ROWS[i % len(ROWS)])
                        version = response.json()["model_version"]
                    if response.status_code != 200:
                        failures.append(f"{response.status_code}: {response.text[:200]}")
                    seen[index].append(version)
                except Exception as error:  # any transport error is a failed request
                    failures.append(repr(error))

    with serve(app) as base_url:
        threads = [
            threading.Thread(target=hammer, args=(i, base_url), daemon=True) for i in range(CLIENTS)
        ]
        for thread in threads:
            thread.start()
        try:
            wait_for(lambda: all(len(s) >= 20 for s in seen), timeout=30)
            registry.promote(V2, reason="hot swap test")
            wait_for(lambda: all(s and s[-1] == V2 for s in seen), timeout=30)
            time.sleep(0.5)
        finally:
            stop.set()
            for thread in threads:
                thread.join(15)
        metrics = httpx.get(base_url + "/metrics").text

    assert failures == []
    total = sum(len(s) for s in seen)
    assert total > 200
    for versions in seen:
        assert versions[0] == V1
        assert versions[-1] == V2
        # Sequential requests on one client: once the new version answered, the old
        # one never does again (the swap is one atomic assignment).
        switch = versions.index(V2)
        assert set(versions[switch:]) == {V2}
    assert 'triage_model_reloads_total{result="success"} 2.0' in metrics
    assert 'triage_model_reloads_total{result="failure"} 0.0' in metrics

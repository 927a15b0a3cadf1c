"""The inference log and feedback against the real S3 store the chart deploys
(SeaweedFS, ``weed mini`` on loopback: tests/seaweedfs_server.py), reached through a
proxy that can be switched off to simulate an outage. The proxy works in front of any
server, so the outage needs no fault injection from the server (moto's only edge)."""

from __future__ import annotations

import concurrent.futures
import contextlib
import io
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlparse

import boto3
import httpx
import pandas as pd
import pytest
from botocore.config import Config
from fastapi.testclient import TestClient

from core import contract, layout
from service.app import create_app
from service.settings import ScorerSettings
from service.state import ScorerState
from tests.service.helpers import SwitchableProxy, wait_for
from tests.support import S3Server

pytestmark = pytest.mark.servers

ROW = contract.example_row()


# One attempt and short timeouts: an outage shows within seconds, not after botocore's
# retries.
FAIL_FAST: dict[str, Any] = {
    "storage_attempts": 1,
    "storage_connect_timeout_seconds": 1,
    "storage_read_timeout_seconds": 2,
}


@pytest.fixture
def proxy(s3_env: S3Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[SwitchableProxy]:
    """Points the scorer's S3 client at a switchable proxy in front of the server."""
    endpoint = urlparse(s3_env.endpoint_url)
    assert endpoint.hostname is not None and endpoint.port is not None
    switch = SwitchableProxy(endpoint.hostname, endpoint.port)
    monkeypatch.setenv("AWS_ENDPOINT_URL", switch.url)
    yield switch
    switch.close()


def logged_request_ids(endpoint_url: str, uri: str, prefix: str) -> list[str]:
    """Request ids in the parquet files under ``prefix``, read straight from the server
    (with the credentials s3_env set)."""
    parsed = urlparse(uri)
    client = boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}),
    )
    root = parsed.path.lstrip("/")
    listing = client.list_objects_v2(Bucket=parsed.netloc, Prefix=root + prefix)
    ids: list[str] = []
    for item in listing.get("Contents", []):
        body = client.get_object(Bucket=parsed.netloc, Key=item["Key"])["Body"].read()
        ids += pd.read_parquet(io.BytesIO(body))[layout.REQUEST_ID].tolist()
    return ids


def state_of(client: TestClient) -> ScorerState:
    state: ScorerState = client.app.state.scorer  # type: ignore[attr-defined]
    return state


def test_inference_log_reaches_s3_and_survives_an_outage(
    make_client: Callable[..., TestClient],
    s3_bucket: str,
    s3_server: S3Server,
    proxy: SwitchableProxy,
) -> None:
    client = make_client(
        inference_log_uri=s3_bucket,
        inference_log_flush_rows=5,
        inference_log_flush_seconds=0.2,
        inference_log_retry_max_seconds=0.2,
        inference_log_buffer_rows=50,
        **FAIL_FAST,
    )
    log = state_of(client).inference_log
    assert log is not None

    def logged() -> list[str]:
        return logged_request_ids(s3_server.endpoint_url, s3_bucket, layout.INFERENCE_LOG_PREFIX)

    first = [client.post("/predict", json=ROW).json()["request_id"] for _ in range(5)]
    wait_for(lambda: sorted(logged()) == sorted(first), timeout=20)

    # Outage: scoring goes on, rows wait in the buffer and flushes keep failing.
    proxy.set_down()
    during = []
    for _ in range(10):
        response = client.post("/predict", json=ROW)
        assert response.status_code == 200
        during.append(response.json()["request_id"])
    wait_for(lambda: log.failures >= 2, timeout=20)
    assert log.buffered_rows == 10

    proxy.set_up()
    wait_for(lambda: sorted(logged()) == sorted(first + during), timeout=30)
    assert log.failures == 0

    # A longer outage than the buffer holds: the oldest rows go, and are counted.
    proxy.set_down()
    batch = client.post("/predict/batch", json={"rows": [ROW] * 80})
    assert batch.status_code == 200
    assert log.buffered_rows == 50
    proxy.set_up()
    wait_for(lambda: log.buffered_rows == 0 and log.failures == 0, timeout=30)
    kept = [f"{batch.json()['request_id']}-{i}" for i in range(30, 80)]
    assert sorted(logged()) == sorted(first + during + kept)
    metrics = client.get("/metrics").text
    assert "triage_inference_log_rows_dropped_total 30.0" in metrics
    assert "triage_inference_log_rows_written_total 65.0" in metrics


def test_feedback_is_refused_with_503_while_s3_is_down(
    make_client: Callable[..., TestClient],
    s3_bucket: str,
    s3_server: S3Server,
    proxy: SwitchableProxy,
) -> None:
    client = make_client(
        inference_log_uri=s3_bucket,
        **FAIL_FAST,
    )
    ok, lost, again = (client.post("/predict", json=ROW).json()["request_id"] for _ in range(3))
    assert client.post("/feedback", json={"request_id": ok, "label": 1}).status_code == 200
    proxy.set_down()
    response = client.post("/feedback", json={"request_id": lost, "label": 0})
    assert response.status_code == 503
    assert "NOT stored" in response.json()["detail"]
    proxy.set_up()
    assert client.post("/feedback", json={"request_id": again, "label": 0}).status_code == 200
    stored = logged_request_ids(s3_server.endpoint_url, s3_bucket, layout.FEEDBACK_PREFIX)
    assert sorted(stored) == sorted([again, ok])


def test_a_hanging_s3_starves_neither_batch_scoring_nor_feedback_clients(
    make_settings: Callable[..., ScorerSettings],
    serve: Callable[..., contextlib.AbstractContextManager[str]],
    s3_bucket: str,
    proxy: SwitchableProxy,
) -> None:
    """S3 accepts connections and never answers. Storage calls wait for their read
    timeout (30 s here), but only on the storage executor's threads: a 300-row batch,
    whose model call goes to a thread, still answers, and feedback clients get a 503
    after feedback_wait_seconds, or at once, instead of waiting for S3. The old code
    shared one thread pool and blocked both for the whole timeout."""
    app = create_app(
        make_settings(
            inference_log_uri=s3_bucket,
            inference_log_flush_rows=1,
            storage_attempts=1,
            storage_connect_timeout_seconds=1,
            storage_read_timeout_seconds=30,
            storage_threads=2,
            feedback_wait_seconds=1,
        )
    )
    state: ScorerState = app.state.scorer
    log = state.inference_log
    assert log is not None
    with serve(app) as base, httpx.Client(base_url=base, timeout=60) as http:
        ids = [http.post("/predict", json=ROW).json()["request_id"] for _ in range(12)]
        wait_for(lambda: log.buffered_rows == 0, timeout=20)
        proxy.set_hanging()
        # A flush of the inference log now hangs on S3...
        http.post("/predict", json=ROW)
        wait_for(lambda: log.buffered_rows == 1 and log.rows_written == 12, timeout=20)

        def label(request_id: str) -> tuple[int, float]:
            started = time.monotonic()
            response = http.post("/feedback", json={"request_id": request_id, "label": 1})
            return response.status_code, time.monotonic() - started

        # ...and so do feedback writes, more of them than the default pool has threads.
        with concurrent.futures.ThreadPoolExecutor(len(ids)) as pool:
            labels = [pool.submit(label, request_id) for request_id in ids]
            wait_for(lambda: state.feedback.writing, timeout=20)
            started = time.monotonic()
            batch = http.post("/predict/batch", json={"rows": [ROW] * 300})
            batch_seconds = time.monotonic() - started
            answers = [future.result() for future in labels]
        assert batch.status_code == 200 and len(batch.json()["predictions"]) == 300
        assert batch_seconds < 10, "the batch waited for the hanging storage"
        assert [status for status, _ in answers] == [503] * len(ids)
        assert max(seconds for _, seconds in answers) < 10, "feedback waited for S3"
        # The hanging write was still in progress all along: nothing timed out yet.
        assert state.feedback.writing
        assert log.rows_written == 12
        proxy.set_up()


def test_the_shutdown_flush_outlasts_a_short_s3_outage(
    make_client: Callable[..., TestClient],
    s3_bucket: str,
    s3_server: S3Server,
    proxy: SwitchableProxy,
) -> None:
    """S3 is down when the scorer stops and back a moment later: the last flush
    retries within its budget, and no row is lost (the old one tried once)."""
    client = make_client(
        inference_log_uri=s3_bucket,
        inference_log_flush_seconds=3600,
        **FAIL_FAST,
        shutdown_flush_seconds=20,
    )
    log = state_of(client).inference_log
    assert log is not None
    batch = client.post("/predict/batch", json={"rows": [ROW] * 50}).json()["request_id"]
    assert log.buffered_rows == 50
    proxy.set_down()
    # Leaving the client runs the lifespan's shutdown, as SIGTERM would.
    stopping = threading.Thread(target=client.__exit__, args=(None, None, None))
    stopping.start()
    wait_for(lambda: log.failures >= 2, timeout=20)
    proxy.set_up()
    stopping.join(30)
    assert not stopping.is_alive()
    assert (log.rows_written, log.rows_dropped) == (50, 0)
    logged = logged_request_ids(s3_server.endpoint_url, s3_bucket, layout.INFERENCE_LOG_PREFIX)
    assert sorted(logged) == sorted(f"{batch}-{i}" for i in range(50))


def test_rows_lost_at_shutdown_are_logged_with_their_count(
    make_client: Callable[..., TestClient],
    s3_bucket: str,
    proxy: SwitchableProxy,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = make_client(
        inference_log_uri=s3_bucket,
        inference_log_flush_seconds=3600,
        **FAIL_FAST,
        shutdown_flush_seconds=1,
    )
    log = state_of(client).inference_log
    assert log is not None
    client.post("/predict/batch", json={"rows": [ROW] * 7})
    proxy.set_down()
    with caplog.at_level(logging.WARNING, logger="service.inference_log"):
        client.__exit__(None, None, None)
    [lost] = [r for r in caplog.records if r.getMessage() == "inference-log rows lost at shutdown"]
    assert lost.rows == 7  # type: ignore[attr-defined]
    assert lost.attempts >= 2  # type: ignore[attr-defined]
    assert log.rows_dropped == 7

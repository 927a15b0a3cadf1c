"""The inference log and feedback against the real S3 store the chart deploys
(SeaweedFS, ``weed mini`` on loopback: tests/seaweedfs_server.py), reached through a
proxy that can be switched off to simulate an outage. The proxy works in front of any
server, so the outage needs no fault injection from the server (moto's only edge)."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from urllib.parse import urlparse

import boto3
import pandas as pd
import pytest
from botocore.config import Config
from fastapi.testclient import TestClient

from service.state import ScorerState
from tests.service.helpers import SwitchableProxy, wait_for
from tests.support import S3Server
from training import contract, layout

pytestmark = pytest.mark.servers

ROW = contract.example_row()


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
        storage_max_attempts=1,
        storage_connect_timeout_seconds=1,
        storage_read_timeout_seconds=2,
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
        storage_max_attempts=1,
        storage_connect_timeout_seconds=1,
        storage_read_timeout_seconds=2,
    )
    assert client.post("/feedback", json={"request_id": "ok-1", "label": 1}).status_code == 200
    proxy.set_down()
    response = client.post("/feedback", json={"request_id": "lost-1", "label": 0})
    assert response.status_code == 503
    assert "NOT stored" in response.json()["detail"]
    proxy.set_up()
    assert client.post("/feedback", json={"request_id": "again-1", "label": 0}).status_code == 200
    stored = logged_request_ids(s3_server.endpoint_url, s3_bucket, layout.FEEDBACK_PREFIX)
    assert sorted(stored) == ["again-1", "ok-1"]

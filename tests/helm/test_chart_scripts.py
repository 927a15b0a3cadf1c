"""The Python the chart runs inline, executed for real: the bucket-creation Job against
a moto S3 server, and the `helm test` pod against a real scorer on loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.factories import publish_model
from tests.helm.chart import Rendered, name, pod_spec
from tests.support import S3Server
from training.registry import Registry
from training.storage import open_storage

pytestmark = pytest.mark.servers

ROOT = Path(__file__).resolve().parents[2]


def inline_script(rendered: Rendered, kind: str, component: str) -> str:
    command = pod_spec(rendered.get(kind, name(component)))["containers"][0]["command"]
    assert command[:2] == ["python", "-c"]
    script: str = command[2]
    return script


def test_bucket_job_creates_the_bucket_once(
    render: Callable[..., Rendered], s3_env: S3Server
) -> None:
    script = inline_script(render("default"), "Job", "bucket")
    bucket = f"triage-{os.getpid()}-{int(time.time())}"
    env = {**os.environ, "BUCKET": bucket}
    first = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert first.returncode == 0, first.stderr
    assert f"created bucket {bucket}" in first.stdout
    s3_env.admin.head_bucket(Bucket=bucket)
    again = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert again.returncode == 0, again.stderr
    assert f"bucket {bucket} exists" in again.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def scorer_url(tmp_path: Path) -> Iterator[str]:
    registry = tmp_path / "registry"
    publish_model(Registry(open_storage(str(registry)), "accident-severity"), "v1")
    port = free_port()
    env = {
        **os.environ,
        "SCORER_REGISTRY_URI": str(registry),
        "SCORER_INFERENCE_LOG_ENABLED": "false",
        "SCORER_RETRAIN_MODE": "disabled",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "service", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url + "/health", timeout=1).close()
                break
            except OSError:
                assert process.poll() is None, "the scorer exited"
                assert time.monotonic() < deadline, "the scorer did not start"
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_helm_test_pod_script_passes_against_a_real_scorer(
    render: Callable[..., Rendered], scorer_url: str
) -> None:
    script = inline_script(render("default"), "Pod", "test")
    result = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "SCORER_URL": scorer_url, "READY_TIMEOUT": "30"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "GET /ready: 200" in result.stdout
    assert "POST /predict: 200" in result.stdout


def test_helm_test_pod_script_fails_when_the_scorer_never_gets_ready(
    render: Callable[..., Rendered],
) -> None:
    script = inline_script(render("default"), "Pod", "test")
    result = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "SCORER_URL": f"http://127.0.0.1:{free_port()}", "READY_TIMEOUT": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "not ready" in result.stderr

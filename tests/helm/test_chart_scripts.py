"""What the chart runs, executed for real: the first-model Job's wait-for-storage init
container against the test S3 server (SeaweedFS), and the `helm test` pod against a real scorer on
loopback. (SeaweedFS itself, with the chart's identities, is in tests/seaweedfs/.)"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from core.registry import Registry
from core.storage import open_storage
from tests.factories import publish_model
from tests.helm.chart import Rendered, env_values, name, pod_spec
from tests.support import LOOPBACK, S3Server, free_port, running_process

pytestmark = pytest.mark.servers

ROOT = Path(__file__).resolve().parents[2]


def inline_script(rendered: Rendered, kind: str, component: str) -> str:
    command = pod_spec(rendered.get(kind, name(component)))["containers"][0]["command"]
    assert command[:2] == ["python", "-c"]
    script: str = command[2]
    return script


def wait_for_storage(rendered: Rendered) -> dict[str, Any]:
    (job,) = rendered.kinds("Job")
    (container,) = pod_spec(job)["initContainers"]
    return container


def run_wait_for_storage(
    container: dict[str, Any], registry_uri: str, timeout: str | None = None
) -> subprocess.CompletedProcess[str]:
    """The init container's command and plain environment, on this machine: the
    registry and the endpoint are the test's, the credentials the test server's (s3_env)."""
    command = list(container["command"])
    assert command[0] == "python"
    if timeout is not None:
        assert command[-2] == "--timeout"
        command[-1] = timeout
    env = {k: v for k, v in env_values(container).items() if v is not None}
    env.pop("AWS_ENDPOINT_URL", None)
    env["TRAINING_REGISTRY_URI"] = registry_uri
    return subprocess.run(
        [sys.executable, *command[1:]],
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_first_model_job_waits_for_the_bucket_then_goes_on(
    render: Callable[..., Rendered], s3_env: S3Server
) -> None:
    container = wait_for_storage(render("default"))
    assert env_values(container)["TRAINING_REGISTRY_URI"].startswith("s3://")
    bucket = s3_env.make_bucket()
    result = run_wait_for_storage(container, f"s3://{bucket}/")
    assert result.returncode == 0, result.stderr
    assert bucket in result.stdout


def test_first_model_job_fails_clearly_when_the_bucket_never_comes(
    render: Callable[..., Rendered], s3_env: S3Server
) -> None:
    container = wait_for_storage(render("default"))
    missing = f"missing-{os.getpid()}-{int(time.time())}"
    result = run_wait_for_storage(container, f"s3://{missing}/", timeout="1")
    assert result.returncode != 0
    # The Job's log ends with one line saying why.
    reason = result.stderr.strip().splitlines()[-1]
    assert reason.startswith("error: "), result.stderr
    assert "not usable" in reason and missing in reason


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
    url = f"http://{LOOPBACK}:{port}"
    with running_process(
        [sys.executable, "-m", "service", "--host", LOOPBACK, "--port", str(port)],
        ready_url=url + "/health",
        env=env,
        cwd=ROOT,
        timeout=30,
        grace=30,
        name="scorer",
    ):
        yield url


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
        env={**os.environ, "SCORER_URL": f"http://{LOOPBACK}:{free_port()}", "READY_TIMEOUT": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "not ready" in result.stderr

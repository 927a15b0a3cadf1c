"""Fixtures of the live observability stack of ``test_dashboards_live.py``: a real
scorer serving a model trained by the training CLI, a real Prometheus Pushgateway and a
real Prometheus scraping both (with the alert rules loaded), all on loopback ports.

The traffic comes from the real simulator (``python -m tools simulate``, drifted
rows with delayed feedback labels) and the drift metrics from the real drift job
(``python -m monitoring drift``, which detects that drift, retrains locally and pushes).
:func:`send_scorer_traffic` adds what a well-behaved simulator never sends: invalid
requests, a batch and a refused retrain, for the error and validation panels.
:func:`push_drift_metrics` is only used to script the rendered previews
(``TRIAGE_RENDER_DASHBOARDS``), where drift must come and go on cue.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.exposition import push_to_gateway

from core import contract
from tests.grafana.dashboard_queries import ALERTS_FILE, ROOT
from tests.grafana.live_stack import (
    API_KEY,
    NAMESPACE,
    PROMETHEUS,
    PUSHGATEWAY,
    PUSHGATEWAY_POD,
    RATE_INTERVAL,
    RENDER_FOLDER,
    RENDER_SECONDS,
    SCORER_POD,
    SCRAPE_INTERVAL_SECONDS,
    LiveStack,
    TrafficLoop,
    random_row,
    wait_for_series,
)
from tests.support import LOOPBACK, free_port, running_process
from tools.demo import evidently_ui

# --- stand-ins for the simulator and the drift job ------------------------------------


def send_scorer_traffic(
    scorer_url: str,
    *,
    requests: int = 60,
    invalid_share: float = 0.1,
    feedback_share: float = 0.3,
    seed: int = 0,
) -> dict[int, int]:
    """Stand-in for ``python -m tools simulate``: POSTs ``requests`` single
    predictions (a share of them invalid, answered 422), one batch, feedback for a
    share of the answers, and one retrain request (refused: retraining is disabled in
    this stack). Returns the status codes seen, by code."""
    rng = random.Random(seed)
    statuses: dict[int, int] = {}

    def count(response: httpx.Response) -> httpx.Response:
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        return response

    with httpx.Client(base_url=scorer_url, timeout=10.0) as client:
        for _ in range(requests):
            row = random_row(rng)
            if rng.random() < invalid_share:
                row["any_unhelmeted"] = 9  # not a code: 422
            response = count(client.post("/predict", json=row))
            if response.status_code == 200 and rng.random() < feedback_share:
                answer = response.json()
                count(
                    client.post(
                        "/feedback",
                        json={"request_id": answer["request_id"], "label": rng.choice((0, 1))},
                    )
                )
        count(client.post("/predict/batch", json={"rows": [random_row(rng) for _ in range(20)]}))
        count(client.post("/retrain", headers={"X-API-Key": API_KEY}))
    return statuses


def push_drift_metrics(
    pushgateway_url: str,
    *,
    dataset_drift: bool = True,
    finished: float | None = None,
    seed: int = 0,
) -> None:
    """Stand-in for the drift job's push (``python -m monitoring drift``): one run's
    gauges, with the names of docs/metrics.md, PUT as the ``job="drift"`` group."""
    rng = random.Random(seed)
    finished = time.time() if finished is None else finished
    registry = CollectorRegistry()

    def gauge(name: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(name, name.replace("_", " "), labels, registry=registry)

    score = gauge("triage_drift_feature_score", ("feature",))
    drifted = gauge("triage_drift_feature_drifted", ("feature",))
    # Past the drift job's default threshold (a quarter of the features) when drifting.
    moved = set(rng.sample(contract.FEATURE_NAMES, 9 if dataset_drift else 1))
    for feature in contract.FEATURE_NAMES:
        p_value = rng.uniform(0.0, 0.04) if feature in moved else rng.uniform(0.06, 1.0)
        score.labels(feature).set(p_value)
        drifted.labels(feature).set(1 if feature in moved else 0)
    share = len(moved) / len(contract.FEATURE_NAMES)
    gauge("triage_drift_dataset_drift").set(1 if dataset_drift else 0)
    gauge("triage_drift_share_drifted_columns").set(share)
    prediction_share = gauge("triage_drift_prediction_share", ("source",))
    prediction_share.labels("reference").set(0.33)
    prediction_share.labels("current").set(0.41 if dataset_drift else 0.34)
    gauge("triage_drift_current_rows").set(1800 + rng.randrange(400))
    gauge("triage_drift_reference_rows").set(900)
    gauge("triage_drift_insufficient_data").set(0)
    gauge("triage_drift_retrain_triggered").set(1 if dataset_drift else 0)
    last_retrain = finished if dataset_drift else finished - 86400
    gauge("triage_drift_last_retrain_timestamp_seconds").set(last_retrain)
    gauge("triage_drift_last_success_timestamp_seconds").set(finished)
    gauge("triage_drift_ui_snapshot_stored").set(1)
    step_errors = gauge("triage_drift_step_errors", ("step",))
    step_errors.labels("compaction").set(0)
    step_errors.labels("quality").set(0)
    report = gauge("triage_drift_report_info", ("run", "project_id", "snapshot_id"))
    report.labels(f"run-{seed}", "project", f"snapshot-{seed}").set(1)
    # Realised quality of one version: labels accumulate from run to run, and the
    # drifted run's figures fall below the held-out ones.
    held_out = {"accuracy": 0.74, "precision": 0.62, "recall": 0.55, "f1": 0.58}
    held_out |= {"roc_auc": 0.79, "brier": 0.17}
    loss = 0.07 if dataset_drift else 0.01
    realised = gauge("triage_quality_realised", ("version", "figure"))
    manifest = gauge("triage_quality_manifest", ("version", "figure"))
    for figure, value in held_out.items():
        manifest.labels("v1", figure).set(value)
        realised.labels("v1", figure).set(value + loss if figure == "brier" else value - loss)
    matched = 1400 if dataset_drift else 600
    labels = gauge("triage_quality_labels", ("version", "kind"))
    for kind, count in (("matched", matched), ("pending", 3 * matched), ("duplicate", 4)):
        labels.labels("v1", kind).set(count)
    matrix = gauge("triage_quality_confusion_matrix", ("version", "actual", "predicted"))
    for (actual, predicted), share in {
        (0, 0): 0.5,
        (0, 1): 0.14,
        (1, 0): 0.12,
        (1, 1): 0.24,
    }.items():
        matrix.labels("v1", str(actual), str(predicted)).set(round(matched * share))
    gauge("triage_quality_unknown_labels").set(3)
    gauge("triage_quality_ambiguous_labels").set(0)
    tolerance = gauge("triage_quality_tolerance", ("figure",))
    for figure in ("accuracy", "f1", "roc_auc", "brier"):
        tolerance.labels(figure).set(0.05)
    gauge("triage_quality_min_labels").set(1000)
    push_to_gateway(pushgateway_url, job="drift", registry=registry)


# --- the servers ------------------------------------------------------------------------


def _require_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} not installed (Debian packages prometheus, prometheus-pushgateway)")
    return path


def _process_env(extra: dict[str, str]) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SCORER_")}
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def trained_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry with one promoted model, trained by the real training CLI."""
    registry = tmp_path_factory.mktemp("registry")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "training",
            "train",
            "--raw",
            "synthetic://?accidents=3000",
            "--registry",
            str(registry),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return registry


def prometheus_config(scorer_port: int, pushgateway_port: int) -> dict[str, Any]:
    """Scrape jobs as in the cluster: ``scorer`` with namespace and pod labels (what the
    chart's pod-annotation discovery adds), ``pushgateway`` with ``honor_labels`` so the
    pushed metrics keep ``job="drift"``."""
    interval = f"{SCRAPE_INTERVAL_SECONDS}s"
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(ALERTS_FILE)],
        "scrape_configs": [
            {
                "job_name": "scorer",
                "static_configs": [
                    {
                        "targets": [f"{LOOPBACK}:{scorer_port}"],
                        "labels": {"namespace": NAMESPACE, "pod": SCORER_POD},
                    }
                ],
            },
            {
                "job_name": "pushgateway",
                "honor_labels": True,
                "static_configs": [
                    {
                        "targets": [f"{LOOPBACK}:{pushgateway_port}"],
                        "labels": {"namespace": NAMESPACE, "pod": PUSHGATEWAY_POD},
                    }
                ],
            },
        ],
    }


@pytest.fixture(scope="module")
def live_stack(
    trained_registry: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveStack]:
    prometheus = _require_binary(PROMETHEUS)
    pushgateway = _require_binary(PUSHGATEWAY)
    workdir = tmp_path_factory.mktemp("live-stack")
    scorer_port, pushgateway_port, prometheus_port = free_port(), free_port(), free_port()
    scorer_url = f"http://{LOOPBACK}:{scorer_port}"
    pushgateway_url = f"http://{LOOPBACK}:{pushgateway_port}"
    prometheus_url = f"http://{LOOPBACK}:{prometheus_port}"
    config = workdir / "prometheus.yml"
    # JSON is YAML: no YAML writer needed.
    config.write_text(json.dumps(prometheus_config(scorer_port, pushgateway_port), indent=2))

    with contextlib.ExitStack() as stack:
        stack.enter_context(
            running_process(
                [
                    pushgateway,
                    f"--web.listen-address={LOOPBACK}:{pushgateway_port}",
                    # Debian's build persists to /var/lib/prometheus by default, which
                    # would carry metrics from one run (or machine user) to the next.
                    f"--persistence.file={workdir / 'pushgateway.data'}",
                ],
                ready_url=f"{pushgateway_url}/-/ready",
            )
        )
        stack.enter_context(
            running_process(
                [sys.executable, "-m", "service", "--host", LOOPBACK, "--port", str(scorer_port)],
                ready_url=f"{scorer_url}/health",
                env=_process_env(
                    {
                        "SCORER_REGISTRY_URI": str(trained_registry),
                        "SCORER_API_KEY": API_KEY,
                        "SCORER_RETRAIN_MODE": "disabled",
                        "SCORER_POLL_INTERVAL_SECONDS": "1",
                        "SCORER_INFERENCE_LOG_FLUSH_SECONDS": "1",
                        "SCORER_ACCESS_LOG": "false",
                    }
                ),
                cwd=ROOT,
                timeout=60,
            )
        )
        _wait_until_ready(f"{scorer_url}/ready")
        started = time.time()
        stack.enter_context(
            running_process(
                [
                    prometheus,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={workdir / 'tsdb'}",
                    f"--web.listen-address={LOOPBACK}:{prometheus_port}",
                ],
                ready_url=f"{prometheus_url}/-/ready",
                timeout=30,
            )
        )
        # Its API answers 503 until the TSDB is open.
        _wait_until_ready(f"{prometheus_url}/-/ready")
        yield LiveStack(scorer_url, pushgateway_url, prometheus_url, trained_registry, started)


def _wait_until_ready(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        time.sleep(0.2)
    pytest.fail(f"{url} not ready within {timeout:.0f} s")


# --- traffic and drift, as the dashboards expect them -------------------------------------


@pytest.fixture(scope="module")
def populated(live_stack: LiveStack) -> Iterator[LiveStack]:
    """The live stack after some traffic and a drift push, with traffic still flowing
    (so the short-window rates and quantiles have fresh samples)."""
    # Counters first scraped at 0, so that the first requests show as an increase.
    wait_for_series(
        live_stack.prometheus_url, ['up{job="scorer"} == 1', 'up{job="pushgateway"} == 1']
    )
    statuses = send_scorer_traffic(live_stack.scorer_url, requests=60)
    assert statuses.get(200, 0) > 20 and statuses.get(422, 0) > 0, statuses
    traffic = TrafficLoop(live_stack.scorer_url)
    traffic.start()
    try:
        if RENDER_FOLDER:
            _render_scenario(live_stack, traffic)
        else:
            _simulate_and_run_drift_job(live_stack)
        wait_for_series(
            live_stack.prometheus_url,
            [
                'triage_predictions_total{job="scorer"}',
                'http_requests_total{job="scorer", status="4xx"}',
                'triage_feedback_labels_total{job="scorer"} > 0',
                'triage_drift_last_success_timestamp_seconds{job="drift"}',
                # Enough samples for rate() over the panels' window.
                f'count_over_time(up{{job="scorer"}}[{RATE_INTERVAL}]) >= 5',
            ],
        )
        yield live_stack
    finally:
        traffic.stop()
    assert not traffic.errors, traffic.errors[:5]


def _run_module(*args: str, timeout: float = 300) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=ROOT,
        env={**os.environ, "DO_NOT_TRACK": "1"},
    )
    assert result.returncode == 0, f"{args[:2]} failed:\n{result.stderr[-3000:]}"
    summary: dict[str, Any] = json.loads(result.stdout)
    return summary


def _simulate_and_run_drift_job(stack: LiveStack) -> None:
    """Drifted traffic through the real simulator, then the real drift job: it must see
    the drift, start a local retrain (the feedback labels are new data) and push."""
    simulated = _run_module(
        "tools", "simulate", "--url", stack.scorer_url, "--rate", "60",
        "--duration", "8", "--drift", "night-rural", "--accidents", "3000", "--seed", "5",
        "--feedback-share", "0.3", "--feedback-delay", "0.5", "--no-progress",
    )  # fmt: skip
    assert simulated["errors"] == 0, simulated
    # The scorer flushes its inference log every second.
    time.sleep(3)
    # The Evidently UI as the demo starts it: the run stores its report there.
    with tempfile.TemporaryDirectory() as folder, evidently_ui(Path(folder)) as ui:
        drift = _run_module(
            "monitoring", "drift", "--registry", str(stack.registry),
            "--pushgateway-url", stack.pushgateway_url, "--min-rows", "200",
            "--retrain-mode", "local", "--training-raw", "synthetic://?accidents=3000",
            "--evidently-ui-url", ui,
        )  # fmt: skip
    assert drift["dataset_drift"] is True, drift
    assert drift["evidently_ui"]["stored"] is True, drift["evidently_ui"]
    assert drift["retrain"]["triggered"] is True, drift["retrain"]


def _render_scenario(stack: LiveStack, traffic: TrafficLoop) -> None:
    """A few minutes worth looking at: steady traffic, a first drift run without drift,
    a burst with many invalid requests, a model promotion picked up by hot reload, and a
    second drift run that finds drift."""
    from core.registry import Registry
    from core.storage import open_storage
    from tests.factories import publish_model

    step = RENDER_SECONDS / 6
    time.sleep(step)
    push_drift_metrics(stack.pushgateway_url, dataset_drift=False, seed=1)
    time.sleep(step)
    traffic.rate, traffic.invalid_share = 25.0, 0.3
    httpx.post(f"{stack.scorer_url}/retrain", headers={"X-API-Key": API_KEY}, timeout=10)
    time.sleep(step / 2)
    traffic.rate, traffic.invalid_share = 10.0, 0.05
    time.sleep(step / 2)
    registry = Registry(open_storage(str(stack.registry)), "accident-severity")
    publish_model(registry, "20991231t000000-rendered", seed=7)
    time.sleep(step)
    push_drift_metrics(stack.pushgateway_url, dataset_drift=True, seed=2)
    traffic.rate = 15.0
    time.sleep(step)

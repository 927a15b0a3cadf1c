"""The local end-to-end demo (``make demo``, ``python -m tools demo``): one command,
embedded defaults, no network.

Synthesize BAAC tables, train and promote a first model into a local registry, start
the scorer (and a Pushgateway when the Debian ``prometheus-pushgateway`` binary is
installed, and Evidently's UI, where each drift run stores its report), send normal
traffic, run the drift job (no drift expected), send drifted
traffic with delayed feedback labels, run the drift job again (drift: a local retrain
runs, and its label guard and promotion gate decide), then check whether the scorer
picked up a newly promoted version and summarise where the reports are.

Every process it starts is a child of ``tools.processes.running_process``, stopped when
the demo ends, whatever happens; servers listen on free ports of 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from monitoring.job import run_drift
from monitoring.settings import MonitoringSettings, RetrainMode
from tools.errors import ToolError
from tools.processes import LOOPBACK, free_port, http_get, running_process
from tools.simulate import contract_rows, simulate, synthetic_table

log = logging.getLogger(__name__)

MARKER = ".monitoring-demo"
PUSHGATEWAY_BINARY = "prometheus-pushgateway"
# The scorer polls its alias this often, so a promoted version is served within it.
SCORER_POLL_SECONDS = 1.0
SCORER_FLUSH_SECONDS = 1.0
PICKUP_TIMEOUT_SECONDS = 30.0
EVIDENTLY_WORKSPACE = "evidently-workspace"


@dataclass(frozen=True)
class DemoOptions:
    workdir: Path
    accidents: int = 20_000
    """Training accidents: fewer than a year's 56,000, because the demo trains twice
    (its measured run time is in docs/drift.md, "Traffic simulator and demo")."""
    drift: str = "night-rural"
    rate: float = 150.0
    seconds: float = 8.0
    """Length of each traffic phase at the target rate: rate x seconds requests (1,200,
    above the drift job's 1,000 minimum); a slower scorer stretches the phase."""
    traffic_accidents: int = 6000
    feedback_share: float = 0.5
    feedback_delay: float = 0.5
    pushgateway: bool = True
    evidently_ui: bool = True
    seed: int = 42


def _child(
    name: str,
    command: list[str],
    *,
    ready_url: str,
    env: Mapping[str, str],
    log: Path,
    timeout: float,
) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    """A server of the demo: ready when its readiness URL says 200 (the scorer's says
    503 until a model is loaded); its output in the work folder, where a failed start
    points (the error stays on one line); stopped with time to flush (the scorer
    writes its inference log on SIGTERM)."""
    return running_process(
        command,
        ready_url=ready_url,
        env=env,
        log=log,
        log_lines=0,
        statuses={200},
        timeout=timeout,
        grace=10.0,
        name=name,
    )


@contextlib.contextmanager
def evidently_ui(workdir: Path) -> Iterator[str]:
    """Evidently's UI (``evidently ui``, as the chart runs it) on a free loopback port,
    its workspace under ``workdir``; yields its base URL, stops it on exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://{LOOPBACK}:{port}"
    command = [sys.executable, "-m", "evidently.cli", "ui", "--host", LOOPBACK]
    command += ["--port", str(port), "--workspace", str(workdir / EVIDENTLY_WORKSPACE)]
    with _child(
        "Evidently UI",
        command,
        ready_url=f"{url}/api/version",
        env={**os.environ, "DO_NOT_TRACK": "1"},
        log=workdir / "evidently-ui.log",
        timeout=60.0,
    ):
        yield url


def prepare_workdir(workdir: Path) -> None:
    """A fresh folder: one left by an earlier demo (it carries the marker) is emptied;
    anything else that is not empty is refused rather than deleted."""
    if workdir.exists() and any(workdir.iterdir()):
        if not (workdir / MARKER).exists():
            raise ToolError(
                f"{workdir} exists and was not made by the demo: remove it or pass --workdir"
            )
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / MARKER).write_text("created by python -m tools demo; safe to delete\n")


def scorer_metric(base_url: str, name: str) -> float:
    """One unlabelled sample of the scorer's /metrics (0 when absent)."""
    status, body = http_get(f"{base_url}/metrics")
    if status != 200:
        return 0.0
    for line in body.decode("utf-8", errors="replace").splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{}"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def wait_for_flush(base_url: str, rows: int, *, timeout: float = 20.0) -> float:
    """Until the scorer has written ``rows`` rows to its inference log."""
    deadline = time.monotonic() + timeout
    written = 0.0
    while time.monotonic() < deadline:
        written = scorer_metric(base_url, "triage_inference_log_rows_written_total")
        if written >= rows:
            return written
        time.sleep(0.25)
    return written


def served_version(base_url: str) -> str | None:
    status, body = http_get(f"{base_url}/ready")
    return str(json.loads(body).get("model_version")) if status == 200 else None


def _drift_settings(
    options: DemoOptions,
    registry: Path,
    raw: Path,
    start: datetime,
    pushgateway: str | None,
    ui: str | None,
) -> MonitoringSettings:
    end = datetime.now(UTC) + timedelta(seconds=1)
    values: dict[str, Any] = {
        "registry_uri": str(registry),
        "window_end": end,
        # The window is exactly one traffic phase, so each run judges one kind of traffic.
        "window_hours": (end - start).total_seconds() / 3600,
        "retrain_mode": RetrainMode.LOCAL,
        "training_raw_uri": str(raw),
        "pushgateway_url": pushgateway,
        "evidently_ui_url": ui,
    }
    return MonitoringSettings(**values)


def _check_traffic(phase: str, traffic: Mapping[str, Any], scorer_log: Path) -> None:
    """A drift run on a phase the scorer mostly refused would only say "insufficient
    data": stop here with the reason instead."""
    minimum = MonitoringSettings.model_fields["min_rows"].default
    if traffic["ok"] < minimum:
        raise ToolError(
            f"{phase} traffic: the scorer answered {traffic['ok']} of {traffic['sent']} "
            f"requests (statuses {traffic['statuses']}), the drift job needs {minimum}; "
            f"see {scorer_log}"
        )


def _short(summary: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "status": summary.get("status"),
        "dataset_drift": summary.get("dataset_drift"),
        "prediction_drift": summary.get("prediction_drift"),
        "share_of_drifted_columns": summary.get("share_of_drifted_columns"),
        "drifted_features": summary.get("drifted_features"),
        "rows": summary.get("rows", {}).get("current"),
        "prioritaire_share": {
            side: summary.get("prediction", {}).get(side, {}).get("prioritaire_share")
            for side in ("reference", "current")
        },
        "retrain": summary.get("retrain"),
        "report": summary.get("report"),
        "evidently_ui": summary.get("evidently_ui"),
        "quality": summary.get("quality"),
        "seconds": summary.get("seconds"),
    }


QUALITY_FIGURES = (
    ("accuracy", "accuracy"),
    ("f1", "F1"),
    ("roc_auc", "ROC-AUC"),
    ("brier", "Brier"),
)


def quality_lines(quality: Mapping[str, Any] | None) -> list[str]:
    """The realised quality of each served version beside its manifest's figures."""
    if not quality or "versions" not in quality:
        return [f"  realised quality   {(quality or {}).get('error', 'not measured')}"]
    labels = quality["labels"]
    lines = [
        f"  realised quality   {labels['matched']} labels matched, {labels['duplicate']} "
        f"duplicate, {labels['unknown']} unknown (tolerance {quality['tolerance']}, "
        f"judged from {quality['min_labels']} labels)"
    ]
    for version, measured in quality["versions"].items():
        figures, held_out = measured["figures"], measured["manifest"] or {}
        shown = ", ".join(
            f"{label} {figures[name]:.3f} (held out {held_out[name]:.3f})"
            if figures.get(name) is not None and held_out.get(name) is not None
            else f"{label} {figures.get(name)}"
            for name, label in QUALITY_FIGURES
        )
        decayed = ", ".join(measured["decayed"]) or "none"
        lines.append(
            f"    {version}: {measured['matched']} matched, {measured['pending']} pending; "
            f"{shown or 'no figure yet'}; decayed: {decayed}"
        )
    return lines


def run_demo(options: DemoOptions, *, keep: contextlib.ExitStack | None = None) -> dict[str, Any]:
    """The whole demo; its servers stop when it returns, but for the Evidently UI when
    ``keep`` is given: it then stops with ``keep``, after the caller printed its URL."""
    from training.settings import TrainingSettings
    from training.synthetic import synthesize
    from training.train import train

    started = time.perf_counter()
    workdir = options.workdir.resolve()
    prepare_workdir(workdir)
    raw, registry = workdir / "raw", workdir / "registry"
    result: dict[str, Any] = {"workdir": str(workdir), "options": {**options.__dict__}}

    log.info("demo 1/7: synthesizing BAAC tables", extra={"accidents": options.accidents})
    synthesize(raw, accidents=options.accidents, seed=options.seed, year=2021)
    log.info("demo 2/7: training and promoting the first model")
    # Keyword arguments through a dict: mypy has no pydantic plugin here and would take
    # every field with a default for a required argument.
    training_values: dict[str, Any] = {"raw_uri": str(raw), "registry_uri": str(registry)}
    first = train(TrainingSettings(**training_values))
    result["first_model"] = {k: first.get(k) for k in ("version", "promoted", "reason", "metrics")}

    normal_rows, normal_labels = contract_rows(
        synthetic_table(options.traffic_accidents, seed=options.seed + 1000)
    )
    drifted_rows, drifted_labels = contract_rows(
        synthetic_table(options.traffic_accidents, seed=options.seed + 2000, drift=options.drift)
    )
    env = {
        **os.environ,
        "DO_NOT_TRACK": "1",
        "SCORER_REGISTRY_URI": str(registry),
        "SCORER_API_KEY": secrets.token_urlsafe(24),
        "SCORER_POLL_INTERVAL_SECONDS": str(SCORER_POLL_SECONDS),
        "SCORER_INFERENCE_LOG_FLUSH_SECONDS": str(SCORER_FLUSH_SECONDS),
        "SCORER_RETRAIN_MODE": "disabled",
        "SCORER_GRACEFUL_SHUTDOWN_SECONDS": "2",
        "SCORER_SHUTDOWN_FLUSH_SECONDS": "3",
    }
    with contextlib.ExitStack() as stack:
        pushgateway_url = None
        binary = shutil.which(PUSHGATEWAY_BINARY)
        if options.pushgateway and binary:
            port = free_port()
            pushgateway_url = f"http://{LOOPBACK}:{port}"
            stack.enter_context(
                _child(
                    "Pushgateway",
                    # No persistence: Debian's default file is under /var/lib.
                    [binary, f"--web.listen-address={LOOPBACK}:{port}", "--persistence.file="],
                    ready_url=f"{pushgateway_url}/-/ready",
                    env=os.environ,
                    log=workdir / "pushgateway.log",
                    timeout=20.0,
                )
            )
        result["pushgateway"] = pushgateway_url or (
            "not started (--no-pushgateway)"
            if not options.pushgateway
            else f"not started ({PUSHGATEWAY_BINARY} not installed)"
        )

        ui_url = None
        if options.evidently_ui:
            ui_url = (keep or stack).enter_context(evidently_ui(workdir))
            log.info("Evidently UI started", extra={"url": ui_url})
        result["evidently_ui"] = ui_url or "not started (--no-evidently-ui)"

        log.info("demo 3/7: starting the scorer")
        port = free_port()
        base_url = f"http://{LOOPBACK}:{port}"
        log_file = workdir / "scorer.log"
        stack.enter_context(
            _child(
                "scorer",
                [sys.executable, "-m", "service", "--host", LOOPBACK, "--port", str(port)],
                ready_url=f"{base_url}/ready",
                env=env,
                log=log_file,
                timeout=60.0,
            )
        )
        result["scorer"] = {"url": base_url, "log": str(log_file)}

        def phase(
            name: str, drift_step: str, rows: Any, labels: Any, logged_before: int, **feedback: Any
        ) -> tuple[dict[str, Any], dict[str, Any]]:
            """One kind of traffic, flushed to the inference log, then the drift job on
            exactly that traffic's window."""
            start = datetime.now(UTC) - timedelta(seconds=1)
            traffic = simulate(
                base_url, rows, labels, rate=options.rate, duration=options.seconds, **feedback
            )
            _check_traffic(name, traffic, log_file)
            wait_for_flush(base_url, logged_before + traffic["ok"])
            result[f"{name}_traffic"] = traffic
            log.info(f"demo {drift_step}: drift job on the {name} traffic")
            summary = run_drift(
                _drift_settings(options, registry, raw, start, pushgateway_url, ui_url)
            )
            result[f"drift_run_{name}"] = _short(summary)
            return traffic, summary

        log.info("demo 4/7: normal traffic", extra={"rate": options.rate})
        normal, _ = phase("normal", "5/7", normal_rows, normal_labels, 0, seed=options.seed)
        log.info("demo 6/7: drifted traffic", extra={"drift": options.drift})
        _, second = phase(
            "drifted",
            "7/7",
            drifted_rows,
            drifted_labels,
            normal["ok"],
            feedback_share=options.feedback_share,
            feedback_delay=options.feedback_delay,
            seed=options.seed + 1,
        )

        training = second.get("retrain", {}).get("training") or {}
        new_version = training.get("version") if training.get("promoted") else None
        served = served_version(base_url)
        if new_version:
            deadline = time.monotonic() + PICKUP_TIMEOUT_SECONDS
            while served != new_version and time.monotonic() < deadline:
                time.sleep(0.25)
                served = served_version(base_url)
        result["served_version"] = {
            "before": first.get("version"),
            "promoted": new_version,
            "after": served,
            "picked_up": bool(new_version) and served == new_version,
        }
        if pushgateway_url:
            _, body = http_get(f"{pushgateway_url}/metrics")
            result["pushed_metrics"] = [
                line
                for line in body.decode("utf-8", errors="replace").splitlines()
                if line.startswith("triage_drift_") and "feature" not in line
            ]
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def format_report(result: Mapping[str, Any]) -> str:
    """The human-readable end of the demo."""
    normal, drifted = result["drift_run_normal"], result["drift_run_drifted"]
    served = result["served_version"]
    retrain = drifted.get("retrain") or {}
    training = retrain.get("training") or {}

    def traffic(name: str) -> str:
        t = result[name]
        latency = t["latency_ms"]
        return (
            f"{t['ok']}/{t['sent']} answered at {t['achieved_rate']} req/s, "
            f"p50 {latency['p50']} ms, p99 {latency['p99']} ms, "
            f"prioritaire {t['prioritaire_share']}"
        )

    def run(summary: Mapping[str, Any]) -> str:
        return (
            f"{summary['status']} (dataset drift {summary['dataset_drift']}, share "
            f"{summary['share_of_drifted_columns']}, prediction drift "
            f"{summary['prediction_drift']}; drifted: "
            f"{', '.join(summary.get('drifted_features') or []) or 'none'})"
        )

    lines = [
        "",
        f"Demo finished in {result['seconds']} s (workdir {result['workdir']})",
        f"  first model        {result['first_model']['version']} "
        f"(ROC-AUC {result['first_model']['metrics']['roc_auc']:.3f})",
        f"  normal traffic     {traffic('normal_traffic')}",
        f"  drift run 1        {run(normal)}",
        f"  drifted traffic    {traffic('drifted_traffic')} "
        f"({result['options']['drift']}, {result['drifted_traffic']['feedback']['sent']} labels)",
        f"  drift run 2        {run(drifted)}",
        f"  retrain            {'started' if retrain.get('triggered') else 'not started'}: "
        f"{retrain.get('reason')}",
    ]
    if training:
        lines.append(
            f"  training result    {training.get('status')}, version {training.get('version')}, "
            f"promoted {training.get('promoted')}: {training.get('reason')}"
        )
    lines.append(
        f"  scorer serves      {served['after']}"
        + (" (picked up the promoted version)" if served["picked_up"] else "")
    )
    lines += quality_lines(drifted.get("quality"))
    lines += [
        f"  HTML report 1      {normal['report'].get('html')}",
        f"  HTML report 2      {drifted['report'].get('html')}",
        f"  Evidently UI       {result['evidently_ui']}",
    ]
    for number, summary in enumerate((normal, drifted), start=1):
        stored = summary.get("evidently_ui") or {}
        if stored:
            lines.append(f"    run {number} report    {stored.get('url') or stored.get('error')}")
    lines.append(f"  Pushgateway        {result['pushgateway']}")
    lines += [f"    {line}" for line in result.get("pushed_metrics", [])]
    return "\n".join(lines)

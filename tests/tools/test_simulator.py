"""The traffic simulator: rows the scorer's own request model accepts, a bounded
open-loop rate, delayed feedback labels for the answered predictions, and errors
counted instead of raised. The scorer is a small recording stand-in on loopback."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from core import contract
from service.schemas import AccidentFeatures
from tests.support import LOOPBACK, free_port, serving
from tools.simulate import contract_rows, simulate, synthetic_table

pytestmark = pytest.mark.servers

# `python -m tools` runs from a checkout: the repository root.
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class FakeScorer:
    url: str
    predictions: list[tuple[float, str, dict[str, Any]]] = field(default_factory=list)
    feedback: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    fail_every: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextlib.contextmanager
def fake_scorer() -> Iterator[FakeScorer]:
    scorer = FakeScorer(url="")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            body = json.loads(raw)
            now = time.monotonic()
            if self.path == "/feedback":
                with scorer.lock:
                    scorer.feedback.append((now, body))
                self._send(200, {"status": "stored"})
                return
            # The scorer's own request model, strict as the scorer applies it.
            AccidentFeatures.model_validate_json(raw)
            request_id = uuid.uuid4().hex
            with scorer.lock:
                scorer.predictions.append((now, request_id, body))
                count = len(scorer.predictions)
            if scorer.fail_every and count % scorer.fail_every == 0:
                self._send(503, {"detail": "no model loaded yet"})
                return
            high = body["nb_pedestrians"] > 0
            self._send(
                200,
                {
                    "prediction": int(high),
                    "label": "prioritaire" if high else "non-prioritaire",
                    "probability": 0.8 if high else 0.2,
                    "confidence": "high",
                    "model_version": "v1",
                    "request_id": request_id,
                },
            )

    server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
    scorer.url = f"http://{LOOPBACK}:{server.server_address[1]}"
    with serving(server):
        yield scorer


@pytest.fixture(scope="module")
def rows() -> tuple[list[dict[str, Any]], list[int | None]]:
    return contract_rows(synthetic_table(600, seed=5, drift="two-wheelers"))


def test_rows_from_the_real_loader_are_valid_requests(
    rows: tuple[list[dict[str, Any]], list[int | None]],
) -> None:
    features, labels = rows
    assert 500 < len(features) <= 600
    for row in features:
        AccidentFeatures.model_validate_json(json.dumps(row))
        assert set(row) == set(contract.FEATURE_NAMES)
    assert set(labels) == {0, 1}
    assert isinstance(features[0]["dep"], str) and isinstance(features[0]["nb_pedestrians"], int)


def test_sends_at_the_rate_and_posts_delayed_feedback(
    rows: tuple[list[dict[str, Any]], list[int | None]],
) -> None:
    features, labels = rows
    with fake_scorer() as scorer:
        result = simulate(
            scorer.url,
            features,
            labels,
            rate=200,
            duration=1.0,
            feedback_share=0.5,
            feedback_delay=0.3,
            seed=1,
        )
    assert result["sent"] == result["ok"] == 200 and result["errors"] == 0
    assert len(scorer.predictions) == 200
    # Open loop at 200/s: the last request leaves at about 1 s, not before.
    assert 0.95 <= result["seconds"] < 5
    assert result["achieved_rate"] <= 210
    latency = result["latency_ms"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"]
    assert 60 <= result["feedback"]["sent"] <= 140 and result["feedback"]["errors"] == 0
    predicted = {request_id: (at, body) for at, request_id, body in scorer.predictions}
    label_of = {
        json.dumps(f, sort_keys=True): label for f, label in zip(features, labels, strict=True)
    }
    for at, body in scorer.feedback:
        sent_at, features_sent = predicted[body["request_id"]]
        assert at - sent_at >= 0.3  # the label arrives after its delay
        assert body["label"] == label_of[json.dumps(features_sent, sort_keys=True)]
    assert result["prioritaire_share"] == pytest.approx(
        sum(body["nb_pedestrians"] > 0 for _, _, body in scorer.predictions) / 200
    )


def test_errors_are_counted_not_raised(
    rows: tuple[list[dict[str, Any]], list[int | None]],
) -> None:
    features, labels = rows
    with fake_scorer() as scorer:
        scorer.fail_every = 4
        result = simulate(scorer.url, features, labels, rate=400, duration=0.25, seed=2)
    assert result["sent"] == 100
    assert result["errors"] == 25 and result["statuses"] == {"200": 75, "503": 25}
    refused = simulate(
        f"http://{LOOPBACK}:{free_port()}", features, labels, rate=50, duration=0.1, seed=2
    )
    assert refused["errors"] == refused["sent"] == 5
    assert refused["statuses"] == {"ConnectError": 5}


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("rate", 0, "rate must be in"),
        ("rate", 10_000, "rate must be in"),
        ("duration", 4000, "duration must be in"),
        ("feedback_share", 1.5, "feedback share"),
    ],
)
def test_bounds_are_enforced(option: str, value: float, message: str) -> None:
    arguments: dict[str, Any] = {"rate": 10, "duration": 1, option: value}
    with pytest.raises(ValueError, match=message):
        simulate("http://127.0.0.1:9", [contract.example_row()], [1], **arguments)


def test_cli_sends_held_out_rows_and_prints_json(tmp_path: Path) -> None:
    held_out = tmp_path / "test.parquet"
    synthetic_table(300, seed=8).to_parquet(held_out)
    with fake_scorer() as scorer:
        completed = subprocess.run(
            [
                sys.executable,
                "-m",
                "tools",
                "simulate",
                "--url",
                scorer.url,
                "--rows",
                str(held_out),
                "--rate",
                "100",
                "--duration",
                "0.5",
                "--no-progress",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
        )
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)
    assert result["sent"] == result["ok"] == 50 and result["drift"] is None
    assert len(scorer.predictions) == 50
    usage = subprocess.run(
        [sys.executable, "-m", "tools", "simulate", "--url", scorer.url, "--rate", "0"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert usage.returncode == 2
    assert usage.stderr.strip().splitlines()[-1].startswith("error: rate must be in")

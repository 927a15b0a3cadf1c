"""The training job: BAAC tables in, an evaluated and versioned model out, promoted
only when it is at least as good as production on the same held-out rows."""

from __future__ import annotations

import io
import json
import logging
import platform
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import joblib
import numpy as np
import pandas as pd
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from training import contract, layout
from training.baac import read_raw
from training.dataset import assemble, data_fingerprint, split_table
from training.errors import RegistryError, TrainingError
from training.feedback import load_feedback
from training.model import (
    ONNX_TOLERANCE,
    ModelKind,
    build_pipeline,
    evaluate,
    onnx_probability,
    positive_probability,
    to_onnx,
)
from training.registry import Registry, new_version
from training.storage import open_storage
from training.synthetic import DriftKind, synthesize

log = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = layout.DEFAULT_MODEL_NAME
LIBRARIES = ("scikit-learn", "numpy", "pandas", "pyarrow", "skl2onnx", "onnxruntime", "joblib")


class PromoteMode(StrEnum):
    AUTO = "auto"
    NEVER = "never"
    FORCE = "force"


class TrainingSettings(BaseSettings):
    """Settings of ``python -m training train``; every field is also read from the
    environment with the ``TRAINING_`` prefix (e.g. ``TRAINING_REGISTRY_URI``)."""

    model_config = SettingsConfigDict(env_prefix="TRAINING_", extra="forbid")

    raw_uri: str = Field(
        "synthetic://",
        description="Where the BAAC tables are: a folder, file:///folder, s3://bucket/prefix, "
        "or synthetic://?accidents=N&seed=S&year=Y&drift=KIND to generate them.",
    )
    registry_uri: str = Field(
        ".registry", description="Storage root of the model registry (file:// or s3://)."
    )
    model_name: str = Field(DEFAULT_MODEL_NAME, description="Model name in the registry.")
    model_kind: ModelKind = Field(
        ModelKind.HIST_GRADIENT_BOOSTING, description="Classifier of the pipeline."
    )
    promote: PromoteMode = Field(
        PromoteMode.AUTO,
        description="auto: promotion gate; never: publish only; force: always promote.",
    )
    promotion_tolerance: float = Field(
        0.005,
        ge=0,
        le=1,
        description="auto promotes when ROC-AUC >= production's minus this, on the same rows.",
    )
    threshold: float = Field(
        0.5, gt=0, lt=1, description="Probability from which a case is prioritaire."
    )
    force: bool = Field(
        False, description="Train even when the data fingerprint equals production's."
    )
    first_model_only: bool = Field(
        False,
        description="Train only when the model has no production version yet (the "
        "chart's first-model Job: re-run on every upgrade, it must never replace a "
        "production model trained since on other data).",
    )
    seed: int = Field(42, description="Seed of the split and of the model.")
    test_size: float = Field(0.3, gt=0, lt=1, description="Held-out share of accidents.")
    reference_rows: int = Field(
        50_000, gt=0, description="Rows of the drift reference sample stored with the model."
    )
    use_feedback: bool = Field(True, description="Add the scorer's feedback labels.")
    storage_attempts: int = Field(5, ge=1, description="Attempts per storage call.")


def decide_promotion(
    mode: PromoteMode,
    new_auc: float | None,
    production_auc: float | None,
    production_version: str | None,
    tolerance: float,
) -> tuple[bool, str]:
    if mode is PromoteMode.NEVER:
        return False, "promotion disabled (--promote never)"
    if mode is PromoteMode.FORCE:
        return True, "promotion forced (--promote force)"
    if production_version is None:
        return True, "no production model yet"
    if production_auc is None:
        return True, f"production model {production_version} could not be evaluated"
    if new_auc is None:
        return False, "new model has no ROC-AUC on the held-out rows (one class only)"
    if new_auc >= production_auc - tolerance:
        return True, (
            f"ROC-AUC {new_auc:.4f} >= production {production_version}'s "
            f"{production_auc:.4f} - tolerance {tolerance}"
        )
    return False, (
        f"ROC-AUC {new_auc:.4f} < production {production_version}'s "
        f"{production_auc:.4f} - tolerance {tolerance}"
    )


@contextmanager
def raw_folder(raw_uri: str, attempts: int) -> Iterator[tuple[Path, str]]:
    """A local folder holding the BAAC tables named by ``raw_uri``, and a description
    of the source for the manifest."""
    parsed = urlparse(raw_uri)
    if parsed.scheme == "synthetic":
        options = {key: values[-1] for key, values in parse_qs(parsed.query).items()}
        unknown = set(options) - {"accidents", "seed", "year", "drift"}
        if unknown:
            raise TrainingError(f"{raw_uri}: unknown synthetic option(s) {sorted(unknown)}")
        with tempfile.TemporaryDirectory(prefix="baac-synthetic-") as folder:
            synthesize(
                Path(folder),
                accidents=int(options.get("accidents", 56_000)),
                seed=int(options.get("seed", 42)),
                year=int(options.get("year", 2021)),
                drift=DriftKind(options["drift"]) if "drift" in options else None,
            )
            yield Path(folder), f"synthetic ({raw_uri})"
    elif parsed.scheme == "s3":
        storage = open_storage(raw_uri, max_attempts=attempts)
        with tempfile.TemporaryDirectory(prefix="baac-s3-") as folder:
            keys = [key for key in storage.list() if key.lower().endswith(".csv")]
            if not keys:
                raise TrainingError(f"{raw_uri}: no .csv file under this prefix")
            for key in keys:
                target = Path(folder, key)
                target.parent.mkdir(parents=True, exist_ok=True)
                storage.download_file(key, target)
            yield Path(folder), raw_uri
    else:
        path = Path(parsed.path if parsed.scheme == "file" else raw_uri)
        if not path.is_dir():
            raise TrainingError(f"{raw_uri}: not a folder")
        yield path, str(path.resolve())


def code_version() -> str:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
            cwd=Path(__file__).parent,
        )
        return result.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return metadata.version("accident-triage")


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def reference_sample(
    train: pd.DataFrame, probability: np.ndarray, threshold: float, rows: int, seed: int
) -> pd.DataFrame:
    """Stratified by target, so the reference keeps the class mix of the training data
    that the drift job compares predictions against."""
    frame = train[[*contract.FEATURE_NAMES, contract.TARGET]].copy()
    frame[layout.PROBABILITY] = probability
    frame[layout.PREDICTION] = (probability >= threshold).astype(int)
    if len(frame) <= rows:
        return frame.reset_index(drop=True)
    fraction = rows / len(frame)
    sample = frame.groupby(contract.TARGET, group_keys=False).sample(
        frac=fraction, random_state=seed
    )
    return sample.reset_index(drop=True)


def _parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def train(settings: TrainingSettings) -> dict[str, Any]:
    """Runs the whole job and returns its summary (also printed by the CLI)."""
    started = time.perf_counter()
    storage = open_storage(settings.registry_uri, max_attempts=settings.storage_attempts)
    registry = Registry(storage, settings.model_name)
    production_version = registry.alias_version()
    if production_version is not None and settings.first_model_only:
        return {
            "model_name": settings.model_name,
            "production_version": production_version,
            "status": "skipped",
            "promoted": False,
            "reason": f"a production model exists ({production_version}) and only a first "
            "model was asked for (first_model_only)",
        }
    production_manifest = registry.manifest(production_version) if production_version else None

    log.info("step 1/5: reading BAAC tables", extra={"raw_uri": settings.raw_uri})
    with raw_folder(settings.raw_uri, settings.storage_attempts) as (folder, source):
        built = assemble(read_raw(folder))
    table = built.table
    feedback_rows = 0
    if settings.use_feedback:
        feedback = load_feedback(storage)
        feedback_rows = len(feedback.table)
    fingerprint = data_fingerprint(
        pd.concat([table, feedback.table], ignore_index=True) if feedback_rows else table
    )
    summary: dict[str, Any] = {
        "model_name": settings.model_name,
        "data_fingerprint": fingerprint,
        "production_version": production_version,
        "feedback_rows": feedback_rows,
        "data_quality": built.quality(),
    }
    if (
        production_manifest is not None
        and production_manifest.get("data", {}).get("fingerprint") == fingerprint
        and not settings.force
    ):
        summary.update(
            status="skipped",
            promoted=False,
            reason="no new labelled data: the data fingerprint equals production's "
            f"({production_version}); use --force to retrain anyway",
        )
        return summary

    log.info("step 2/5: splitting", extra={"accidents": len(table)})
    train_rows, test_rows = split_table(table, test_size=settings.test_size, seed=settings.seed)
    if feedback_rows:
        # Feedback only ever joins the training side: the held-out rows stay BAAC
        # accidents, so the new and the production model are judged on the same kind
        # of data as every earlier version.
        train_rows = pd.concat([train_rows, feedback.table], ignore_index=True)
    x_train = contract.encode_frame(train_rows)
    y_train = train_rows[contract.TARGET].to_numpy(dtype=int)
    x_test = contract.encode_frame(test_rows)
    y_test = test_rows[contract.TARGET].to_numpy(dtype=int)

    log.info("step 3/5: fitting", extra={"model_kind": settings.model_kind.value})
    fit_started = time.perf_counter()
    pipeline = build_pipeline(settings.model_kind, seed=settings.seed)
    pipeline.fit(x_train, y_train)
    fit_seconds = time.perf_counter() - fit_started

    log.info("step 4/5: evaluating on held-out rows", extra={"rows": len(y_test)})
    test_probability = positive_probability(pipeline, x_test)
    metrics = evaluate(y_test, test_probability, settings.threshold)
    files: dict[str, bytes] = {}
    joblib_buffer = io.BytesIO()
    joblib.dump(pipeline, joblib_buffer, compress=3)
    files[layout.MODEL_JOBLIB] = joblib_buffer.getvalue()
    onnx_check = _compile(pipeline, x_test, test_probability)
    if onnx_check["published"]:
        files[layout.MODEL_ONNX] = onnx_check.pop("bytes")
    production_metrics = _evaluate_production(registry, production_version, x_test, y_test)
    production_auc = production_metrics.get("roc_auc") if production_metrics else None
    promote, reason = decide_promotion(
        settings.promote,
        metrics["roc_auc"],
        production_auc,
        production_version,
        settings.promotion_tolerance,
    )

    log.info("step 5/5: publishing", extra={"registry": storage.uri})
    reference = reference_sample(
        train_rows,
        positive_probability(pipeline, x_train),
        settings.threshold,
        settings.reference_rows,
        settings.seed,
    )
    files[layout.REFERENCE] = _parquet_bytes(reference)
    now = datetime.now(UTC)
    version = new_version(now, fingerprint)
    manifest = {
        "created_at": now.isoformat(),
        "code_version": code_version(),
        "libraries": library_versions(),
        "model_kind": settings.model_kind.value,
        "threshold": settings.threshold,
        "contract": contract.contract_dict(),
        "contract_fingerprint": contract.contract_fingerprint(),
        "data": {
            "fingerprint": fingerprint,
            "source": source,
            "years": sorted({int(y) for y in table["year"].dropna().unique()}),
            "rows": {"train": len(train_rows), "test": len(test_rows), "feedback": feedback_rows},
            "class_balance": {
                "train_prioritaire_share": float(y_train.mean()),
                "test_prioritaire_share": float(y_test.mean()),
            },
            "quality": built.quality(),
        },
        "metrics": metrics,
        "production_comparison": {
            "production_version": production_version,
            "production_metrics_same_rows": production_metrics,
        },
        "onnx": onnx_check,
        "training": {"fit_seconds": round(fit_seconds, 3), "seed": settings.seed},
        "promotion": {"mode": settings.promote.value, "promoted": promote, "reason": reason},
        "reference_rows": len(reference),
    }
    registry.publish(version, files, manifest)
    if promote:
        registry.promote(version, reason=reason)
    summary.update(
        status="trained",
        version=version,
        promoted=promote,
        reason=reason,
        metrics={k: metrics[k] for k in ("accuracy", "precision", "recall", "f1", "roc_auc")},
        production_metrics=(
            {k: production_metrics[k] for k in ("accuracy", "f1", "roc_auc")}
            if production_metrics
            else None
        ),
        rows={"train": len(train_rows), "test": len(test_rows)},
        onnx=onnx_check["published"],
        seconds=round(time.perf_counter() - started, 2),
    )
    return summary


def _compile(pipeline: Any, x_test: np.ndarray, test_probability: np.ndarray) -> dict[str, Any]:
    """The ONNX twin is published only when it gives the pipeline's probabilities on
    the held-out rows; otherwise the scorer falls back on the joblib pipeline."""
    try:
        onnx_bytes = to_onnx(pipeline)
        difference = float(np.max(np.abs(onnx_probability(onnx_bytes, x_test) - test_probability)))
    except Exception as error:  # skl2onnx raises many unrelated types on unsupported models
        log.warning("ONNX conversion failed", extra={"error": str(error)})
        return {"published": False, "reason": f"conversion failed: {error}"}
    if difference > ONNX_TOLERANCE:
        return {
            "published": False,
            "max_probability_difference": difference,
            "reason": f"probabilities differ by {difference:.2e} > {ONNX_TOLERANCE}",
        }
    return {"published": True, "max_probability_difference": difference, "bytes": onnx_bytes}


def _evaluate_production(
    registry: Registry, production_version: str | None, x_test: np.ndarray, y_test: np.ndarray
) -> dict[str, Any] | None:
    if production_version is None:
        return None
    try:
        production = registry.load(production_version)
    except RegistryError as error:
        log.warning("production model cannot be evaluated", extra={"error": str(error)})
        return None
    return evaluate(y_test, production.predict_proba(x_test), production.threshold)


def summary_json(summary: dict[str, Any]) -> str:
    return json.dumps(summary, indent=2, default=str)

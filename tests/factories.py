"""Small real models for tests that need a registry with something in it, without
running the whole training job."""

from __future__ import annotations

import io
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np

from core import contract, layout
from core.registry import Registry
from service.request_ids import RequestIdSigner
from training.model import ModelKind, build_pipeline, to_onnx


def random_features(rows: int, seed: int) -> np.ndarray:
    """Contract-valid encoded rows: codes drawn from each feature's allowed values."""
    rng = np.random.default_rng(seed)
    columns = []
    for feature in contract.FEATURES:
        if feature.kind is contract.Kind.CATEGORICAL:
            codes = contract.encode_rows([{feature.name: code} for code in feature.codes])
            column = rng.choice(codes[:, contract.FEATURE_NAMES.index(feature.name)], rows)
        else:
            assert feature.minimum is not None and feature.maximum is not None
            column = rng.uniform(feature.minimum, feature.maximum, rows).round()
        columns.append(column)
    return np.column_stack(columns).astype(np.float32)


def publish_model(
    registry: Registry,
    version: str,
    *,
    seed: int = 0,
    rows: int = 600,
    onnx: bool = True,
    promote: bool = True,
    manifest_extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Fits a small gradient-boosting pipeline on a learnable rule and publishes it."""
    features = random_features(rows, seed)
    unhelmeted = features[:, contract.FEATURE_NAMES.index("any_unhelmeted")]
    vma = features[:, contract.FEATURE_NAMES.index("vma")]
    labels = ((unhelmeted == 1) | (vma > 80)).astype(int)
    pipeline = build_pipeline(ModelKind.HIST_GRADIENT_BOOSTING, seed=seed)
    pipeline.fit(features, labels)
    buffer = io.BytesIO()
    joblib.dump(pipeline, buffer)
    files = {layout.MODEL_JOBLIB: buffer.getvalue()}
    if onnx:
        files[layout.MODEL_ONNX] = to_onnx(pipeline)
    manifest = {
        "threshold": 0.5,
        "contract_fingerprint": contract.contract_fingerprint(),
        "data": {"fingerprint": f"fingerprint-{seed}", "class_balance": {}},
        "metrics": {"roc_auc": 0.9},
        **(manifest_extra or {}),
    }
    published = registry.publish(version, files, manifest)
    if promote:
        registry.promote(version, reason="test")
    return published


class _RunsCode:
    """Unpickling this object creates a file: proof that a pickle was executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def malicious_pickle(marker: Path) -> bytes:
    """A joblib payload that creates ``marker`` when it is loaded."""
    buffer = io.BytesIO()
    joblib.dump(_RunsCode(marker), buffer)
    return buffer.getvalue()


def publish_pickle_only(
    registry: Registry, version: str, payload: bytes, *, promote: bool = True
) -> dict[str, Any]:
    """A version with only ``model.joblib`` (no ONNX twin), its checksum in a manifest
    that is valid in every other way: what an attacker with write access could make."""
    manifest = {
        "threshold": 0.5,
        "contract_fingerprint": contract.contract_fingerprint(),
        "data": {"fingerprint": "pickle-only", "class_balance": {}},
        "metrics": {"roc_auc": 0.9},
    }
    published = registry.publish(version, {layout.MODEL_JOBLIB: payload}, manifest)
    if promote:
        # Registry.promote refuses a version without ONNX: the attacker writes the
        # pointer itself.
        pointer = {"alias": layout.PRODUCTION_ALIAS, "version": version, "reason": "test"}
        registry.storage.write_bytes(
            layout.alias_key(registry.name, layout.PRODUCTION_ALIAS),
            json.dumps(pointer).encode("utf-8"),
        )
    return published


def issued_ids(count: int, when: datetime) -> list[str]:
    """``count`` request ids as the scorer issues them at ``when``."""
    signer = RequestIdSigner("test key", batch_limit=1000)
    return [signer.issue_at(int(when.timestamp())) for _ in range(count)]

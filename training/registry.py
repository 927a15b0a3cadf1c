"""The model registry: immutable versions and alias pointers in the storage.

A version is published file by file with its ``manifest.json`` last, and only a
version with a manifest is listed; an alias is written after the version is complete.
So a crash at any point leaves either the old state or the new one, never a
half-written model in production.

Loading verifies the model file's sha256 against the manifest and the manifest's
contract against the code's before anything is deserialised. The scorer loads the
ONNX file only (onnxruntime executes no Python code; a version without one is
refused); the joblib pipeline is unpickled only by the training job, through
:meth:`Registry.load_pipeline`.

This module is imported by the scorer: its heavy imports stay inside functions.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from training import contract, layout
from training.errors import ArtifactVerificationError, ObjectNotFoundError, RegistryError
from training.storage import Storage

log = logging.getLogger(__name__)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def new_version(when: datetime, data_fingerprint: str) -> str:
    """Sortable by creation time, to the microsecond (the registry lists versions
    oldest first by name, and two trainings can finish within one second), and
    distinct even for two started at the same instant on the same data (the CronJob
    and POST /retrain, two scorer replicas): a random part follows the fingerprint's."""
    utc = when.astimezone(UTC)
    return f"{utc:%Y%m%dt%H%M%S}.{utc:%f}-{data_fingerprint[:8]}-{secrets.token_hex(4)}"


class ScoringModel(Protocol):
    version: str
    manifest: Mapping[str, Any]
    threshold: float
    runtime: str

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Positive-class probability for each row of the contract's float32 matrix."""
        ...


@dataclass
class OnnxScoringModel:
    version: str
    manifest: Mapping[str, Any]
    threshold: float
    session: Any
    runtime: str = "onnxruntime"

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        outputs = self.session.run(["probabilities"], {"features": features})
        return np.asarray(outputs[0][:, 1], dtype=np.float64)


@dataclass
class SklearnScoringModel:
    version: str
    manifest: Mapping[str, Any]
    threshold: float
    pipeline: Any
    runtime: str = "scikit-learn"

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(self.pipeline.predict_proba(features)[:, 1], dtype=np.float64)


class Registry:
    """Versions and aliases of one model name in one storage."""

    def __init__(self, storage: Storage, name: str) -> None:
        layout.validate_name("model name", name)
        self.storage = storage
        self.name = name

    # --- reading ---------------------------------------------------------------

    def versions(self) -> list[str]:
        """Complete versions (those with a manifest), oldest first."""
        prefix = layout.model_prefix(self.name)
        found = []
        for key in self.storage.list(prefix):
            parts = key[len(prefix) :].split("/")
            if len(parts) == 2 and parts[1] == layout.MANIFEST and parts[0] != "aliases":
                found.append(parts[0])
        return sorted(found)

    def manifest(self, version: str) -> dict[str, Any]:
        key = layout.version_prefix(self.name, version) + layout.MANIFEST
        try:
            raw = self.storage.read_bytes(key)
        except ObjectNotFoundError as error:
            raise RegistryError(f"model {self.name} has no version {version!r}") from error
        try:
            manifest: dict[str, Any] = json.loads(raw)
        except json.JSONDecodeError as error:
            raise RegistryError(f"{self.storage.url_for(key)}: manifest is not JSON") from error
        return manifest

    def alias(self, alias: str = layout.PRODUCTION_ALIAS) -> dict[str, Any] | None:
        """The alias pointer, or None when no version was ever promoted to it."""
        key = layout.alias_key(self.name, alias)
        try:
            pointer: dict[str, Any] = json.loads(self.storage.read_bytes(key))
        except ObjectNotFoundError:
            return None
        except json.JSONDecodeError as error:
            raise RegistryError(f"{self.storage.url_for(key)}: alias is not JSON") from error
        return pointer

    def alias_version(self, alias: str = layout.PRODUCTION_ALIAS) -> str | None:
        pointer = self.alias(alias)
        return None if pointer is None else str(pointer["version"])

    def read_file(self, version: str, filename: str) -> bytes:
        """A version's file, verified against the checksum its manifest records."""
        manifest = self.manifest(version)
        expected = manifest.get("files", {}).get(filename, {}).get("sha256")
        if expected is None:
            raise ArtifactVerificationError(
                f"model {self.name} version {version}: manifest lists no {filename}"
            )
        key = layout.version_prefix(self.name, version) + filename
        data = self.storage.read_bytes(key)
        actual = sha256_hex(data)
        if actual != expected:
            raise ArtifactVerificationError(
                f"{self.storage.url_for(key)}: sha256 {actual[:12]}… does not match the "
                f"manifest's {expected[:12]}… (corrupted or tampered file); refusing to load"
            )
        return data

    def load(self, version: str) -> ScoringModel:
        """A verified ONNX model ready to score: what the scorer serves, and nothing
        else. A version whose manifest lists no ``model.onnx`` is refused, never
        unpickled: the manifest is written by whoever wrote the files it vouches for, so
        a matching checksum proves nothing about a pickle's safety, and unpickling runs
        arbitrary code. Verification happens before the bytes reach onnxruntime."""
        manifest = self.manifest(version)
        where = f"model {self.name} version {version}"
        verify_contract(manifest, where=where)
        if layout.MODEL_ONNX not in manifest.get("files", {}):
            raise ArtifactVerificationError(
                f"{where} has no ONNX twin ({layout.MODEL_ONNX} is not in its manifest); "
                "the scorer serves ONNX models only and never unpickles a model file"
            )
        onnx_bytes = self.read_file(version, layout.MODEL_ONNX)
        return OnnxScoringModel(version, manifest, _threshold(manifest), onnx_session(onnx_bytes))

    def load_pipeline(self, version: str) -> ScoringModel:
        """The version's scikit-learn pipeline, unpickled: for the training job only
        (e.g. to evaluate a production model that has no ONNX twin), which runs on
        data and artifacts it trusts. The scorer must use :meth:`load`."""
        manifest = self.manifest(version)
        verify_contract(manifest, where=f"model {self.name} version {version}")
        pipeline = _unpickle(self.read_file(version, layout.MODEL_JOBLIB))
        return SklearnScoringModel(version, manifest, _threshold(manifest), pipeline)

    # --- writing ---------------------------------------------------------------

    def publish(
        self, version: str, files: Mapping[str, bytes], manifest: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Uploads a new immutable version; the manifest, with every file's checksum,
        goes last so the version only exists once it is complete."""
        prefix = layout.version_prefix(self.name, version)
        if self.storage.exists(prefix + layout.MANIFEST):
            raise RegistryError(
                f"model {self.name} version {version} exists; versions are immutable"
            )
        recorded = {
            filename: {"sha256": sha256_hex(data), "bytes": len(data)}
            for filename, data in files.items()
        }
        for filename, data in files.items():
            self.storage.write_bytes(prefix + filename, data)
        complete = {**manifest, "name": self.name, "version": version, "files": recorded}
        self.storage.write_bytes(
            prefix + layout.MANIFEST,
            json.dumps(complete, indent=2, sort_keys=True, default=str).encode("utf-8"),
            content_type="application/json",
        )
        return complete

    def promote(
        self, version: str, *, reason: str, alias: str = layout.PRODUCTION_ALIAS
    ) -> dict[str, Any]:
        """Points the alias at a complete version (rollback is promoting an older
        one). The history entry is written before the pointer, so every pointer
        value has an audit record."""
        manifest = self.manifest(version)
        verify_contract(manifest, where=f"model {self.name} version {version}")
        now = datetime.now(UTC)
        pointer = {
            "alias": alias,
            "version": version,
            "previous": self.alias_version(alias),
            "promoted_at": now.isoformat(),
            "reason": reason,
        }
        body = json.dumps(pointer, indent=2).encode("utf-8")
        self.storage.write_bytes(layout.alias_history_key(self.name, alias, now), body)
        self.storage.write_bytes(layout.alias_key(self.name, alias), body)
        return pointer


def verify_contract(manifest: Mapping[str, Any], *, where: str) -> None:
    """A model trained on other inputs would silently score garbage: refuse it."""
    recorded = manifest.get("contract_fingerprint")
    expected = contract.contract_fingerprint()
    if recorded != expected:
        raise ArtifactVerificationError(
            f"{where}: feature contract {str(recorded)[:12]}… differs from this code's "
            f"{expected[:12]}…; retrain the model with this version of the code"
        )


def _threshold(manifest: Mapping[str, Any]) -> float:
    return float(manifest.get("threshold", 0.5))


def onnx_session(onnx_bytes: bytes) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    # Single-row requests are the common case: one thread avoids a thread hand-off
    # per call, and replicas scale out instead.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own untyped exceptions
        raise ArtifactVerificationError(f"cannot load ONNX model: {error}") from error


def _unpickle(data: bytes) -> Any:
    import joblib

    # joblib wants a file; the bytes were checksum-verified before this point.
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / layout.MODEL_JOBLIB
        path.write_bytes(data)
        return joblib.load(path)

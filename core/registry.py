"""The model registry: immutable versions and alias pointers in the storage.

A version is published file by file with its ``manifest.json`` last, and only a
version with a manifest is listed; an alias is written after the version is complete.
So a crash at any point leaves either the old state or the new one, never a
half-written model in production. Publishing is create-if-absent: a publisher first
claims the version's folder (``publisher.json``, written with
:meth:`Storage.create_bytes`), so of two publishers of one version exactly one writes
files there, and the manifest itself is created, never replaced.

Manifests and alias pointers are validated by schema before use: a file of the wrong
shape is one :class:`RegistryError` naming the file and what is wrong.

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
import os
import secrets
import socket
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from core import contract, layout
from core.errors import (
    ArtifactVerificationError,
    ObjectExistsError,
    ObjectNotFoundError,
    PromotionConflictError,
    RegistryError,
)
from core.storage import Storage, create_once

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


# --- file schemas -------------------------------------------------------------------


def _valid_name(kind: str, value: str) -> str:
    try:
        return layout.validate_name(kind, value)
    except ValueError as error:
        # pydantic wraps a ValueError's message after "Value error, ": say it plainly.
        raise ValueError(str(error).removeprefix(f"invalid {kind} ")) from None


class FileRecord(BaseModel):
    """What a manifest vouches for about one of the version's files."""

    model_config = ConfigDict(extra="allow")

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(ge=0)


class ManifestSchema(BaseModel):
    """The fields the registry and the scorer rely on; the training job records many
    more (metrics, data, libraries), which are kept as they are."""

    model_config = ConfigDict(extra="allow")

    name: str
    version: str
    files: dict[str, FileRecord]
    contract_fingerprint: str | None = None
    threshold: float = 0.5

    @field_validator("version")
    @classmethod
    def _check_version(cls, value: str) -> str:
        return _valid_name("model version", value)


class AliasSchema(BaseModel):
    """An alias pointer: the version it names, and how it came to name it."""

    model_config = ConfigDict(extra="allow")

    version: str
    alias: str | None = None
    previous: str | None = None
    promoted_at: str | None = None
    reason: str | None = None
    # How many times the alias moved; pointers written before promotions were claims
    # have none, and count as generation 0.
    generation: int = Field(0, ge=0)

    @field_validator("version")
    @classmethod
    def _check_version(cls, value: str) -> str:
        return _valid_name("model version", value)


def _validated(schema: type[BaseModel], raw: bytes, *, what: str, where: str) -> dict[str, Any]:
    """The parsed JSON object, or one RegistryError naming the file and every problem."""
    try:
        data = json.loads(raw)
    except ValueError as error:  # UnicodeDecodeError included
        raise RegistryError(f"{where}: {what} is not JSON ({error})") from error
    if not isinstance(data, dict):
        raise RegistryError(f"{where}: {what} must be a JSON object, found {_json_type(data)}")
    try:
        schema.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc']) or 'value'}: {_problem(problem)}"
            for problem in error.errors()
        )
        raise RegistryError(f"{where}: invalid {what}: {problems}") from None
    return data


def _problem(problem: Any) -> str:
    if problem["type"] == "missing":
        return "missing"
    got = _json_type(problem["input"])
    return f"{problem['msg'].removeprefix('Value error, ')} (found {got})"


def _json_type(value: object) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string {value!r}" if len(value) <= 40 else "a string"
    return names.get(type(value), type(value).__name__)


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


class AnyCurrent:
    """``Registry.promote(replacing=ANY_CURRENT)``: an operator's promotion, whatever
    the alias names now."""


ANY_CURRENT = AnyCurrent()


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
        where = self.storage.url_for(key)
        manifest = _validated(ManifestSchema, raw, what="manifest", where=where)
        if manifest["version"] != version:
            raise RegistryError(
                f"{where}: invalid manifest: it names version {manifest['version']!r}, "
                f"its folder is {version!r}"
            )
        return manifest

    def alias(self, alias: str = layout.PRODUCTION_ALIAS) -> dict[str, Any] | None:
        """The alias pointer, or None when no version was ever promoted to it."""
        key = layout.alias_key(self.name, alias)
        try:
            raw = self.storage.read_bytes(key)
        except ObjectNotFoundError:
            return None
        return _validated(AliasSchema, raw, what="alias", where=self.storage.url_for(key))

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
        goes last so the version only exists once it is complete.

        Create-if-absent: the publisher claims the version's folder before writing in
        it, so a second publisher of the same version fails at once with a
        RegistryError and writes nothing (it cannot overwrite the winner's files), and
        the manifest is created, never replaced."""
        prefix = layout.version_prefix(self.name, version)
        if self.storage.exists(prefix + layout.MANIFEST):
            raise RegistryError(
                f"model {self.name} version {version} exists; versions are immutable"
            )
        publisher = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started_at": datetime.now(UTC).isoformat(),
            # Makes the record unique, so a retried create that finds it knows it is its own.
            "token": secrets.token_hex(8),
        }
        try:
            create_once(
                self.storage,
                prefix + layout.PUBLISHER,
                json.dumps(publisher, indent=2).encode("utf-8"),
                content_type="application/json",
            )
        except ObjectExistsError as error:
            raise RegistryError(
                f"model {self.name} version {version} is already being published (or was) "
                f"by another run ({self._publisher(prefix)}); versions are immutable"
            ) from error
        recorded = {
            filename: {"sha256": sha256_hex(data), "bytes": len(data)}
            for filename, data in files.items()
        }
        for filename, data in files.items():
            self.storage.write_bytes(prefix + filename, data)
        complete = {**manifest, "name": self.name, "version": version, "files": recorded}
        try:
            create_once(
                self.storage,
                prefix + layout.MANIFEST,
                json.dumps(complete, indent=2, sort_keys=True, default=str).encode("utf-8"),
                content_type="application/json",
            )
        except ObjectExistsError as error:
            raise RegistryError(
                f"model {self.name} version {version} exists; versions are immutable"
            ) from error
        return complete

    def _publisher(self, prefix: str) -> str:
        try:
            record = json.loads(self.storage.read_bytes(prefix + layout.PUBLISHER))
            return f"host {record['host']}, pid {record['pid']}, since {record['started_at']}"
        except Exception:  # only feeds a message: whatever is there, say less
            return "publisher unknown"

    def promote(
        self,
        version: str,
        *,
        reason: str,
        alias: str = layout.PRODUCTION_ALIAS,
        replacing: str | AnyCurrent | None = ANY_CURRENT,
    ) -> dict[str, Any]:
        """Points the alias at a complete, servable version (rollback is promoting an
        older one).

        A promotion is a claim: it creates the history record of the alias's next
        generation (create-if-absent) before moving the pointer, so of two promotions
        racing from the same alias value exactly one happens and the other gets a
        PromotionConflictError; every pointer value has its audit record. ``replacing``
        is the version the caller judged the new one against (None: no production
        yet): when the alias names another one by now, nothing is promoted."""
        manifest = self.manifest(version)
        where = f"model {self.name} version {version}"
        verify_contract(manifest, where=where)
        if layout.MODEL_ONNX not in manifest.get("files", {}):
            raise ArtifactVerificationError(
                f"{where} has no ONNX twin: the scorer serves ONNX only, so it cannot be promoted"
            )
        # An operator's promotion retries once after finishing an interrupted one; a
        # judged promotion never does: the alias no longer names what it was judged on.
        for _ in range(2):
            current = self.alias(alias)
            current_version = None if current is None else str(current["version"])
            if not isinstance(replacing, AnyCurrent) and current_version != replacing:
                raise PromotionConflictError(
                    f"alias {alias} of model {self.name} now names "
                    f"{current_version or 'nothing'}, not {replacing or 'nothing'} as when "
                    f"this promotion was decided; {version} was not promoted"
                )
            generation = (0 if current is None else int(current.get("generation", 0))) + 1
            pointer = self._claim_generation(alias, version, current_version, generation, reason)
            if pointer is not None:
                return pointer
        raise PromotionConflictError(
            f"alias {alias} of model {self.name} keeps moving under this promotion; "
            f"{version} was not promoted"
        )

    def _claim_generation(
        self, alias: str, version: str, previous: str | None, generation: int, reason: str
    ) -> dict[str, Any] | None:
        """Creates the history record of the alias's ``generation``-th value, then
        moves the pointer to it. None when another promotion holds that generation:
        its pointer is (re)written from its record first, so a promotion that crashed
        between the two writes is completed instead of blocking every later one. The
        pointer is the record's exact bytes, so completing one still in progress
        writes what its owner writes."""
        now = datetime.now(UTC)
        pointer = {
            "alias": alias,
            "version": version,
            "previous": previous,
            "generation": generation,
            "promoted_at": now.isoformat(),
            "reason": reason,
            "host": socket.gethostname(),
            # Makes the record unique, so a retried create that finds it knows it is its own.
            "token": secrets.token_hex(8),
        }
        body = json.dumps(pointer, indent=2).encode("utf-8")
        history_key = layout.alias_history_key(self.name, alias, generation)
        try:
            create_once(self.storage, history_key, body, content_type="application/json")
        except ObjectExistsError:
            winner = self.storage.read_bytes(history_key)
            _validated(AliasSchema, winner, what="alias history record", where=history_key)
            self.storage.write_bytes(
                layout.alias_key(self.name, alias), winner, content_type="application/json"
            )
            return None
        self.storage.write_bytes(
            layout.alias_key(self.name, alias), body, content_type="application/json"
        )
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

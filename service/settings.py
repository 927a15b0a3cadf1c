"""The scorer's one settings object, read from ``SCORER_*`` environment variables.

Built once in the entry point (or a test) and passed to :func:`service.app.create_app`;
nothing reads the environment after that.
"""

from __future__ import annotations

from typing import Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core import layout
from core.retrain import DEFAULT_TRAINING_CRONJOB, RetrainMode
from core.settings import (
    ModelName,
    RegistryUri,
    StorageAttempts,
    TrainingCronjob,
    TrainingRawUri,
    TrainingTimeoutSeconds,
)

DEFAULT_MODEL_NAME = layout.DEFAULT_MODEL_NAME


__all__ = ["DEFAULT_MODEL_NAME", "RetrainMode", "ScorerSettings"]


class ScorerSettings(BaseSettings):
    """Settings of ``python -m service``; every field is read from the environment with
    the ``SCORER_`` prefix, e.g. ``SCORER_REGISTRY_URI`` or ``SCORER_API_KEY``."""

    model_config = SettingsConfigDict(env_prefix="SCORER_", extra="forbid")

    # --- the model -------------------------------------------------------------
    registry_uri: RegistryUri = ".registry"
    model_name: ModelName = DEFAULT_MODEL_NAME
    alias: str = Field(
        layout.PRODUCTION_ALIAS,
        description="Alias whose version is served and followed (unless model_version pins one).",
    )
    model_version: str | None = Field(
        None,
        description="Registry version to serve instead of following the alias (rollback "
        "by configuration); hot reload and POST /model/reload then never read the alias. "
        "Unset or empty: follow the alias.",
    )
    poll_interval_seconds: float = Field(
        30.0,
        ge=0,
        description="How often the alias pointer is checked for a new version; 0 turns "
        "hot reload off (POST /model/reload still works).",
    )
    # Fewer than the jobs' 5: a request may be waiting on the call.
    storage_attempts: StorageAttempts = 3
    storage_connect_timeout_seconds: float = Field(
        2.0, gt=0, description="Connect timeout of one storage call attempt."
    )
    storage_read_timeout_seconds: float = Field(
        10.0, gt=0, description="Read timeout of one storage call attempt."
    )
    storage_threads: int = Field(
        4,
        ge=1,
        le=64,
        description="Threads of the scorer's own storage pool (inference-log flushes, "
        "feedback writes, alias polls, model downloads); a hanging storage holds at most "
        "these, never the threads that score batches.",
    )

    # --- requests ---------------------------------------------------------------
    api_key: SecretStr | None = Field(
        None,
        description="Key of the admin endpoints (POST /model/reload, POST /retrain), sent "
        "in the X-API-Key header. Unset: the admin endpoints answer 403.",
    )
    batch_limit: int = Field(
        1000, ge=1, le=100_000, description="Most rows accepted by POST /predict/batch."
    )
    max_body_bytes: int = Field(
        1_000_000,
        ge=1024,
        description="Largest request body accepted; larger ones get 413. Must hold "
        "batch_limit rows (about 600 bytes each).",
    )

    request_id_key: SecretStr | None = Field(
        None,
        description="Key that signs the request ids the scorer issues (HMAC), so any "
        "replica sharing it can tell them from made-up ones when a feedback label "
        "arrives. Must be the same on every replica (the chart generates one Secret). "
        "Unset: a random key per process (ids cannot be labelled after a restart or on "
        "another replica).",
    )

    # --- feedback ---------------------------------------------------------------
    feedback_batch_seconds: float = Field(
        0.05,
        ge=0,
        description="Group commit: labels arriving within this window are stored as one file.",
    )
    feedback_max_pending: int = Field(
        1000,
        ge=1,
        description="Most labels waiting for the storage at once; beyond, 503 at once.",
    )
    feedback_wait_seconds: float = Field(
        5.0,
        gt=0,
        description="Longest a feedback request waits for its label to be stored (then "
        "503, not stored); a write stuck longer makes new labels get 503 at once.",
    )
    feedback_remembered_ids: int = Field(
        100_000,
        ge=1,
        description="Labelled request ids this process remembers to refuse a second "
        "label with 409 (the training job's reader applies the rule to all of them).",
    )
    feedback_rate_per_second: float = Field(
        100.0,
        gt=0,
        description="Labels per second a client (one IP address) may send, sustained; "
        "beyond, 429 with Retry-After. The admin key is not limited.",
    )
    feedback_burst: int = Field(
        200, ge=1, description="Labels a client may send at once before the rate applies."
    )

    # --- confidence tiers ---------------------------------------------------------
    confidence_high_margin: float = Field(
        0.3,
        gt=0,
        le=1,
        description="For a model version without measured tiers in its manifest: 'high' "
        "confidence when |probability - threshold| >= this margin.",
    )
    confidence_medium_margin: float = Field(
        0.15,
        gt=0,
        le=1,
        description="'medium' when the margin is at least this (and below the high one), "
        "else 'low'.",
    )

    # --- inference log ---------------------------------------------------------
    inference_log_enabled: bool = Field(
        True, description="Log every scored row for the drift job and for feedback joins."
    )
    inference_log_uri: str | None = Field(
        None,
        description="Storage root of the inference log and the feedback labels; unset: "
        "the registry's. The training job reads feedback from its TRAINING_INFERENCE_LOG_URI.",
    )
    inference_log_flush_rows: int = Field(
        1000, ge=1, description="Flush as soon as this many rows are waiting."
    )
    inference_log_flush_seconds: float = Field(
        10.0, gt=0, description="Flush at least this often when rows are waiting."
    )
    inference_log_buffer_rows: int = Field(
        100_000,
        ge=2,
        description="Most rows kept in memory while the storage is down; beyond it the "
        "oldest are dropped (and counted).",
    )
    inference_log_retry_max_seconds: float = Field(
        60.0, gt=0, description="Longest wait between two flush attempts while failing."
    )

    # --- shutdown ---------------------------------------------------------------
    graceful_shutdown_seconds: float = Field(
        15.0,
        gt=0,
        description="Time given to in-flight requests after SIGTERM. With "
        "shutdown_flush_seconds it must fit in the pod's terminationGracePeriodSeconds.",
    )
    shutdown_flush_seconds: float = Field(
        10.0, gt=0, description="Time given to the last inference-log flush on shutdown."
    )

    # --- retraining ---------------------------------------------------------------
    retrain_mode: RetrainMode = Field(
        RetrainMode.LOCAL,
        description="What POST /retrain does: 'local' runs the training command as a "
        "subprocess, 'kubernetes' creates a Job from the training CronJob, 'disabled' "
        "refuses.",
    )
    training_raw_uri: TrainingRawUri = None
    training_timeout_seconds: TrainingTimeoutSeconds = 3600.0
    training_cronjob: TrainingCronjob = DEFAULT_TRAINING_CRONJOB
    namespace: str | None = Field(
        None,
        description="Kubernetes mode: namespace of the training CronJob; unset: the pod's "
        "own (read from the service account).",
    )

    # --- process ------------------------------------------------------------------
    log_level: str = Field("INFO", description="Logging level of the JSON logs.")
    access_log: bool = Field(
        False, description="uvicorn's per-request access log (it costs throughput: docs/scorer.md)."
    )

    @field_validator("api_key", "request_id_key", mode="before")
    @classmethod
    def _blank_key_is_no_key(cls, value: object) -> object:
        # A chart renders an unset secret as an empty variable: that means "no key",
        # never "the empty string is the key".
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("alias")
    @classmethod
    def _alias(cls, value: str) -> str:
        return layout.validate_name("alias", value)

    @field_validator("model_version", mode="before")
    @classmethod
    def _blank_version_follows(cls, value: object) -> object:
        # The chart, or `SCORER_MODEL_VERSION=` in a shell, unpins by emptying it.
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("model_version")
    @classmethod
    def _model_version(cls, value: str | None) -> str | None:
        # The registry's own rule for version names (core.layout), checked here so a
        # typo fails at start-up, not as a storage key.
        return None if value is None else layout.validate_name("model version", value)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.confidence_medium_margin > self.confidence_high_margin:
            raise ValueError(
                "confidence_medium_margin must not exceed confidence_high_margin "
                f"({self.confidence_medium_margin} > {self.confidence_high_margin})"
            )
        return self

    @property
    def effective_inference_log_uri(self) -> str:
        return self.inference_log_uri or self.registry_uri

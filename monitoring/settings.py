"""Settings of the drift job: one object, built in the entry point and passed down.

Every field is also read from the environment with the ``MONITORING_`` prefix
(``MONITORING_REGISTRY_URI``, ``MONITORING_PUSHGATEWAY_URL``, ...), so the same
``python -m monitoring drift`` runs unchanged as a Kubernetes CronJob.
"""

from __future__ import annotations

from datetime import datetime

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

__all__ = ["DEFAULT_MODEL_NAME", "MonitoringSettings", "RetrainMode"]

DEFAULT_MODEL_NAME = layout.DEFAULT_MODEL_NAME


class MonitoringSettings(BaseSettings):
    """Settings of ``python -m monitoring drift`` (env prefix ``MONITORING_``)."""

    model_config = SettingsConfigDict(env_prefix="MONITORING_", extra="forbid")

    # --- where things are --------------------------------------------------------
    registry_uri: RegistryUri = ".registry"
    model_name: ModelName = DEFAULT_MODEL_NAME
    inference_log_uri: str | None = Field(
        None,
        description="Storage root the scorer writes inference-logs/ under; "
        "default: the registry's root.",
    )
    report_uri: str | None = Field(
        None,
        description="Storage root reports/drift/ is written under; default: the registry's root.",
    )
    storage_attempts: StorageAttempts = 5

    # --- what is compared ----------------------------------------------------------
    window_hours: float = Field(
        24.0, gt=0, description="Length of the window of live rows, ending at window_end."
    )
    window_end: datetime | None = Field(
        None, description="End of the window (ISO 8601, UTC if no offset); default: now."
    )
    min_rows: int = Field(
        1000,
        ge=1,
        description="Fewer live rows than this in the window: report 'insufficient data', "
        "judge nothing, trigger nothing. Below about 1,000 rows the sampling noise of "
        "the distances reaches their thresholds (see docs/drift.md).",
    )
    max_current_rows: int = Field(
        50_000,
        ge=1,
        description="Cap on the live rows compared: a uniform sample of the window when it "
        "has more, so memory stays bounded whatever the traffic.",
    )
    max_reference_rows: int = Field(
        50_000, ge=1, description="Cap on the reference rows compared (uniform sample)."
    )
    sample_seed: int = Field(0, description="Seed of both samples, for reproducible reports.")

    # --- how drift is judged ---------------------------------------------------------
    drift_share: float = Field(
        0.1,
        gt=0,
        le=1,
        description="Dataset drift when at least this share of the contract's features "
        "drifted: 0.1 is 3 of 26 (Evidently's DataDriftPreset drift_share; its default "
        "0.5 misses drift concentrated on a few features, see docs/drift.md).",
    )
    column_threshold: float | None = Field(
        None,
        gt=0,
        description="Per-feature drift threshold for every feature; default: the threshold "
        "of the method Evidently picks (0.1 for the distances, 0.05 for p-values).",
    )

    retrain_on_prediction_drift: bool = Field(
        True,
        description="Also retrain when the model's outputs drifted (probability "
        "distribution or predicted class mix) without dataset drift: a shift in one "
        "strong feature, such as the victims' age, moves the predictions first.",
    )

    # --- realised quality from feedback labels (monitoring/quality.py) ----------------
    quality_enabled: bool = Field(
        True,
        description="Measure each served version's realised quality from the feedback "
        "labels in every drift run.",
    )
    quality_window_hours: float = Field(
        168.0,
        gt=0,
        description="Predictions made in this many hours up to window_end are joined with "
        "their labels: longer than the drift window, since labels arrive late.",
    )
    quality_min_labels: int = Field(
        1000,
        ge=1,
        description="A version's realised quality is judged against its manifest (alerts, "
        "retrain) only with at least this many labelled predictions (the sampling noise "
        "it leaves is measured in docs/drift.md, 'Realised quality').",
    )
    quality_tolerance: float = Field(
        0.05,
        ge=0,
        le=1,
        description="Quality decay: a judged figure worse than the manifest's held-out one "
        "by more than this (absolute; lower for accuracy, F1 and ROC-AUC, higher for the "
        "Brier score).",
    )
    retrain_on_quality_decay: bool = Field(
        True,
        description="Also retrain when the production version's realised quality decayed "
        "(same cooldown and claim as a drift retrain).",
    )

    # --- where results go ------------------------------------------------------------
    pushgateway_url: str | None = Field(
        None, description="Pushgateway base URL (http://host:9091); unset: push nothing."
    )
    push_timeout_seconds: float = Field(10.0, gt=0, description="Timeout of the push.")

    # --- Evidently UI (monitoring/workspace.py) ----------------------------------------
    evidently_ui_url: str | None = Field(
        None,
        description="Base URL of an Evidently UI (http://host:8000): every run's snapshot is "
        "also stored in its project, through its HTTP API; unset: store none.",
    )
    evidently_ui_project: str = Field(
        "accident-triage",
        min_length=1,
        description="Name of the Evidently project the snapshots go to (found or created).",
    )
    evidently_ui_secret: SecretStr | None = Field(
        None, description="The UI's --secret, required by its write API when it has one."
    )
    evidently_ui_timeout_seconds: float = Field(
        10.0, gt=0, description="Timeout of each call to the Evidently UI."
    )
    evidently_ui_max_runs: int = Field(
        60,
        ge=1,
        description="Runs of each kind the project keeps: older ones are deleted from the "
        "UI, which holds every snapshot in memory (their size is measured in "
        "docs/drift.md); the object store keeps its own reports.",
    )

    # --- what a drift starts ---------------------------------------------------------
    retrain_mode: RetrainMode = Field(
        RetrainMode.LOCAL,
        description="local: run the training command; kubernetes: create a Job from the "
        "training CronJob; disabled: only report the decision.",
    )
    cooldown_hours: float = Field(
        24.0,
        ge=0,
        description="No new retrain within this long after the last one a drift run started.",
    )
    namespace: str | None = Field(
        None,
        description="Namespace of the training CronJob; default: the pod's own namespace "
        "(service account), else 'default'.",
    )
    training_cronjob: TrainingCronjob = DEFAULT_TRAINING_CRONJOB
    training_raw_uri: TrainingRawUri = None
    training_timeout_seconds: TrainingTimeoutSeconds = 1800.0
    dry_run: bool = Field(
        False, description="Decide and print the retrain command or Job, start nothing."
    )

    # --- compaction and retention (monitoring/compaction.py) ---------------------------
    compaction_enabled: bool = Field(
        True,
        description="Compact finished days and apply the retention at the start of every "
        "drift run (python -m monitoring compact does it alone).",
    )
    compaction_rows_per_file: int = Field(
        1_000_000,
        ge=1000,
        description="Rows per compacted part (the part sizes this gives are measured in "
        "docs/drift.md, 'Compaction and retention').",
    )
    compaction_grace_hours: float = Field(
        1.0,
        ge=0,
        description="Files a compaction replaced are deleted by a run at least this long "
        "after it, once every reader that listed the day before it has finished.",
    )
    retention_days: int = Field(
        14,
        ge=1,
        description="Inference-log days and drift reports older than this are deleted "
        "(never a day of the drift or quality window). Sized for a kind cluster's 5 Gi SeaweedFS "
        "claim from the measured bytes a row (docs/drift.md, 'Compaction and retention').",
    )
    feedback_retention_days: int | None = Field(
        None,
        ge=1,
        description="Feedback days older than this are deleted; unset: labels are "
        "training data, kept.",
    )

    @field_validator("evidently_ui_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError(f"not an http(s) URL: {value!r}")
        return value or None

    @model_validator(mode="after")
    def _check_caps(self) -> MonitoringSettings:
        if self.max_current_rows < self.min_rows:
            raise ValueError(
                f"max_current_rows ({self.max_current_rows}) is below min_rows "
                f"({self.min_rows}): no window could ever be judged"
            )
        return self

    @property
    def effective_inference_log_uri(self) -> str:
        return self.inference_log_uri or self.registry_uri

    @property
    def effective_report_uri(self) -> str:
        return self.report_uri or self.registry_uri

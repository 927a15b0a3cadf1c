"""The training job's one settings object, read from ``TRAINING_*`` environment
variables, and the choices it names. Built in the entry point and passed to
:func:`training.train.train`; nothing reads the environment after that.

This module imports neither scikit-learn nor pandas: ``python -m training --help``
builds its flags from these fields without loading them.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core import layout
from core.settings import ModelName, RegistryUri, StorageAttempts

DEFAULT_MODEL_NAME = layout.DEFAULT_MODEL_NAME


class ModelKind(StrEnum):
    HIST_GRADIENT_BOOSTING = "hist-gradient-boosting"
    RANDOM_FOREST = "random-forest"
    LOGISTIC_REGRESSION = "logistic-regression"
    MAJORITY = "majority"
    """The floor every model must beat: the training share of prioritaire as the
    probability of every row. skl2onnx has no converter for it, so it is never served."""


class SplitMethod(StrEnum):
    HASH = "hash"
    YEAR = "year"


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
    registry_uri: RegistryUri = ".registry"
    model_name: ModelName = DEFAULT_MODEL_NAME
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
    promotion_min_rows: int = Field(
        1000,
        ge=1,
        description="auto promotes only when champion and challenger can be compared on at "
        "least this many held-out rows neither trained on (below 1,000 rows the ROC-AUC's "
        "standard error, about 0.015, dwarfs the tolerance).",
    )
    split_method: SplitMethod = Field(
        SplitMethod.HASH,
        description="hash: an accident is held out by a salted hash of its id (stable when "
        "data is added); year: hold out the latest year, train on the earlier ones.",
    )
    threshold: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="Probability from which a case is prioritaire; unset: chosen on "
        "out-of-fold probabilities from missed_prioritaire_cost_ratio.",
    )
    missed_prioritaire_cost_ratio: float = Field(
        3.0,
        gt=0,
        description="Cost of a missed prioritaire accident, in over-triaged accidents; "
        "chooses the threshold.",
    )
    validation_folds: int = Field(
        3,
        ge=2,
        le=10,
        description="Folds of the out-of-fold probabilities that choose the threshold and "
        "the tiers and fill the drift reference.",
    )
    tier_high_precision: float = Field(
        0.8, gt=0, lt=1, description="'high' tier: the predicted label is right this often."
    )
    tier_medium_precision: float = Field(
        0.65, gt=0, lt=1, description="'medium' tier: right at least this often."
    )
    force: bool = Field(
        False, description="Train even when the data fingerprint equals production's."
    )
    first_model_only: bool = Field(
        False,
        description="Train only when the model has no production version yet, or only "
        "one trained on another feature contract (the chart's first-model Job: re-run on "
        "every upgrade, it must never replace a production model trained since on other "
        "data, but must replace one the upgraded scorer refuses).",
    )
    seed: int = Field(42, description="Seed of the model; names the salt of the split's hash.")
    test_size: float = Field(0.3, gt=0, lt=1, description="Held-out share of accidents.")
    reference_rows: int = Field(
        50_000, gt=0, description="Rows of the drift reference sample stored with the model."
    )
    use_feedback: bool = Field(True, description="Add the scorer's feedback labels.")
    feedback_days: int | None = Field(
        None,
        ge=1,
        description="Read the feedback labels of the last this many days' partitions only; "
        "unset: every stored label (a compacted day is one file).",
    )
    inference_log_uri: str | None = Field(
        None,
        description="Storage root the scorer writes feedback labels and the inference log "
        "under (its SCORER_INFERENCE_LOG_URI); unset: the registry's.",
    )
    storage_attempts: StorageAttempts = 5

    @property
    def effective_inference_log_uri(self) -> str:
        return self.inference_log_uri or self.registry_uri

    @model_validator(mode="after")
    def _tiers_ordered(self) -> TrainingSettings:
        if self.tier_medium_precision > self.tier_high_precision:
            raise ValueError(
                f"tier_medium_precision ({self.tier_medium_precision}) must not exceed "
                f"tier_high_precision ({self.tier_high_precision})"
            )
        return self

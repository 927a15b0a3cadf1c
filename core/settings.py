"""The settings the roles share, defined once: one name, one description, one
validation for the same setting in the scorer (``SCORER_*``), the drift job
(``MONITORING_*``) and the training job (``TRAINING_*``).

Each role's settings class (``service/settings.py``, ``monitoring/settings.py``,
``training/settings.py``) declares ``registry_uri: RegistryUri = ".registry"`` and so
on; the default stays the role's (the scorer retries storage calls less than the jobs:
a request waits on them).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from core import layout


def _model_name(value: str) -> str:
    return layout.validate_name("model name", value)


RegistryUri = Annotated[
    str,
    Field(
        description="Storage root of the model registry: a folder, file:///abs/path or "
        "s3://bucket/prefix (endpoint and credentials from the AWS_* variables)."
    ),
]
ModelName = Annotated[
    str, AfterValidator(_model_name), Field(description="Model name in the registry.")
]
StorageAttempts = Annotated[int, Field(ge=1, description="Attempts per storage call.")]

# --- what starts a retrain (the scorer's POST /retrain, the drift job) ---------------

TrainingRawUri = Annotated[
    str | None,
    Field(
        description="Local mode: --raw-uri passed to the training command; unset: the "
        "training job's own TRAINING_RAW_URI or default."
    ),
]
TrainingTimeoutSeconds = Annotated[
    float,
    Field(gt=0, description="Local mode: a training subprocess running longer is killed."),
]
TrainingCronjob = Annotated[
    str,
    Field(description="Kubernetes mode: name of the training CronJob the Job is created from."),
]

"""Where everything lives in the storage, and the columns of what the scorer writes.

The scorer writes inference logs and feedback, the training job reads feedback and
writes models, the drift job reads inference logs and models and writes reports: one
module names every key so the three agree.

    models/<name>/<version>/model.joblib      scikit-learn Pipeline (training's copy)
    models/<name>/<version>/model.onnx        compiled twin the scorer serves
    models/<name>/<version>/reference.parquet drift reference sample
    models/<name>/<version>/publisher.json    written first, create-if-absent: who
                                              publishes the version (one publisher only)
    models/<name>/<version>/manifest.json     written last: a version without it
                                              does not exist
    models/<name>/aliases/<alias>.json        pointer to a version, written last of all
    models/<name>/aliases/history/<alias>-<generation>.json  every alias change, for
                                                     audit; created (never replaced) before
                                                     the pointer moves: the promotion's claim
    inference-logs/date=YYYY-MM-DD/<host>-<ts>.parquet   rows whose timestamp is of
                                              that day (UTC), flushed at <ts>
    feedback/date=YYYY-MM-DD/<host>-<ts>.parquet         labels stored at <ts>
    <both>/date=YYYY-MM-DD/_compacted/...     a finished day compacted: parts and the
                                              manifests saying which files they
                                              replace (core/partitions.py)
    reports/drift/<ts>/{report.html,snapshot.json,summary.json}
    retrain-claims/<name>/<window>.json       who started the retrain of a decision
                                              window (create-if-absent: one per window)
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

from core import contract

MODELS_PREFIX = "models/"
INFERENCE_LOG_PREFIX = "inference-logs/"
FEEDBACK_PREFIX = "feedback/"
DRIFT_REPORT_PREFIX = "reports/drift/"
RETRAIN_CLAIMS_PREFIX = "retrain-claims/"

MODEL_JOBLIB = "model.joblib"
MODEL_ONNX = "model.onnx"
REFERENCE = "reference.parquet"
MANIFEST = "manifest.json"
PUBLISHER = "publisher.json"

PRODUCTION_ALIAS = "production"
DEFAULT_MODEL_NAME = "accident-severity"

# Names become storage keys and Kubernetes label values: keep them to that alphabet.
_NAME_PATTERN = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$")

# Inference-log columns besides the contract's features.
REQUEST_ID = "request_id"
TIMESTAMP = "timestamp"
PROBABILITY = "probability"
PREDICTION = "prediction"
MODEL_VERSION = "model_version"
INFERENCE_LOG_COLUMNS: tuple[str, ...] = (
    REQUEST_ID,
    TIMESTAMP,
    MODEL_VERSION,
    PROBABILITY,
    PREDICTION,
    *contract.FEATURE_NAMES,
)

# Feedback columns: the true label for a request id, with the features when the
# caller sent them (otherwise training joins the inference log on the request id).
# ``overwrite`` marks a correction sent with the admin key: it replaces the label
# stored before it, where any other later label for the same id is ignored.
LABEL = "label"
RECEIVED_AT = "received_at"
OVERWRITE = "overwrite"
FEEDBACK_COLUMNS: tuple[str, ...] = (
    REQUEST_ID,
    RECEIVED_AT,
    LABEL,
    OVERWRITE,
    *contract.FEATURE_NAMES,
)


def validate_name(kind: str, value: str) -> str:
    if not _NAME_PATTERN.match(value):
        raise ValueError(
            f"invalid {kind} {value!r}: use 1-63 lowercase letters, digits, '.', '_' or '-'"
        )
    return value


def model_prefix(name: str) -> str:
    return f"{MODELS_PREFIX}{validate_name('model name', name)}/"


def version_prefix(name: str, version: str) -> str:
    return f"{model_prefix(name)}{validate_name('model version', version)}/"


def alias_key(name: str, alias: str) -> str:
    return f"{model_prefix(name)}aliases/{validate_name('alias', alias)}.json"


def alias_history_key(name: str, alias: str, generation: int) -> str:
    """The record of the alias's ``generation``-th value: zero-padded, so the history
    lists in promotion order."""
    return f"{model_prefix(name)}aliases/history/{alias}-{generation:08d}.json"


def retrain_claim_key(name: str, window: str) -> str:
    if not re.fullmatch(r"\d{8}T\d{2}", window):
        raise ValueError(f"invalid decision window {window!r}: expected YYYYMMDDTHH")
    return f"{RETRAIN_CLAIMS_PREFIX}{validate_name('model name', name)}/{window}.json"


def timestamp_slug(when: datetime) -> str:
    """Sortable UTC timestamp for keys: 20261125T193000123456Z."""
    return when.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def partitioned_key(prefix: str, when: datetime, host: str) -> str:
    """Date-partitioned parquet key, one file per flush and host, so several scorer
    replicas never write the same key."""
    return day_partition_key(prefix, when.astimezone(UTC).date(), when, host)


def day_partition_key(prefix: str, day: date, written: datetime, host: str) -> str:
    """The key of a file of ``day``'s rows written at ``written``: the inference log
    partitions rows by their own day, whenever the flush happens."""
    safe_host = re.sub(r"[^A-Za-z0-9._-]", "-", host) or "host"
    return f"{day_prefix(prefix, day)}{safe_host}-{timestamp_slug(written)}.parquet"


def day_prefix(prefix: str, day: date) -> str:
    """``<prefix>date=YYYY-MM-DD/``: one day's partition."""
    return f"{prefix}date={day.isoformat()}/"


def partition_date(key: str) -> str | None:
    """The YYYY-MM-DD of a partitioned key, or None when the key is not one."""
    match = re.search(r"date=(\d{4}-\d{2}-\d{2})/", key)
    return match.group(1) if match else None


def drift_report_prefix(when: datetime) -> str:
    return f"{DRIFT_REPORT_PREFIX}{timestamp_slug(when)}/"

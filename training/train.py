"""The training job: BAAC tables in, an evaluated and versioned model out, promoted
only when it can be served and is at least as good as production on rows neither
model trained on."""

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
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import joblib
import numpy as np
import pandas as pd
from sklearn.model_selection import PredefinedSplit, cross_val_predict

from core import contract, layout
from core.errors import PromotionConflictError, RegistryError
from core.registry import Registry, new_version
from core.storage import Storage, open_storage
from training import decision
from training.baac import read_raw
from training.dataset import assemble, data_fingerprint
from training.errors import TrainingError
from training.feedback import FEEDBACK_ID_PREFIX, load_feedback
from training.model import (
    ONNX_TOLERANCE,
    ModelKind,
    build_pipeline,
    evaluate,
    onnx_probability,
    positive_probability,
    to_onnx,
)
from training.settings import PromoteMode, TrainingSettings
from training.split import SplitRule, apply_rule, folds, make_rule, stratification
from training.synthetic import DriftKind, synthesize

log = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = layout.DEFAULT_MODEL_NAME
LIBRARIES = ("scikit-learn", "numpy", "pandas", "pyarrow", "skl2onnx", "onnxruntime", "joblib")


def decide_promotion(
    mode: PromoteMode,
    *,
    unservable: str | None,
    production_version: str | None,
    production_split_known: bool,
    shared_rows: int,
    min_rows: int,
    new_auc: float | None,
    production_auc: float | None,
    tolerance: float,
    production_contract_matches: bool = True,
) -> tuple[bool, str]:
    """``force`` overrides the comparison but not servability: the scorer cannot load a
    model without a faithful ONNX twin, so promoting one would leave production empty.
    A production version trained on another feature contract is no champion: the
    scorer of this code refuses it, so any servable model is better."""
    if mode is PromoteMode.NEVER:
        return False, "promotion disabled (--promote never)"
    if unservable is not None:
        return False, f"not servable, never promoted: {unservable}"
    if mode is PromoteMode.FORCE:
        return True, "promotion forced (--promote force)"
    if production_version is None:
        return True, "no production model yet"
    if not production_contract_matches:
        return True, (
            f"production {production_version} was trained on another feature contract, "
            "which this code's scorer refuses"
        )
    if not production_split_known:
        return False, (
            f"production {production_version} records no split, so which rows it trained "
            "on is unknown and no honest comparison is possible; promote by hand if wanted"
        )
    if shared_rows < min_rows:
        return False, (
            f"only {shared_rows} held-out rows neither model trained on, fewer than "
            f"promotion_min_rows={min_rows}; not promoted automatically"
        )
    if production_auc is None:
        return True, f"production model {production_version} could not be evaluated"
    if new_auc is None:
        return False, "new model has no ROC-AUC on the shared rows (one class only)"
    where = f"on {shared_rows} rows neither trained on"
    if new_auc >= production_auc - tolerance:
        return True, (
            f"ROC-AUC {new_auc:.4f} >= production {production_version}'s "
            f"{production_auc:.4f} - tolerance {tolerance} {where}"
        )
    return False, (
        f"ROC-AUC {new_auc:.4f} < production {production_version}'s "
        f"{production_auc:.4f} - tolerance {tolerance} {where}"
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
        drift = options.get("drift")
        if drift is not None and drift not in set(DriftKind):
            raise TrainingError(
                f"{raw_uri}: synthetic option drift={drift!r} is not one of "
                f"{sorted(k.value for k in DriftKind)}"
            )
        with tempfile.TemporaryDirectory(prefix="baac-synthetic-") as folder:
            synthesize(
                Path(folder),
                accidents=_int_option(raw_uri, options, "accidents", 56_000),
                seed=_int_option(raw_uri, options, "seed", 42),
                year=_int_option(raw_uri, options, "year", 2021),
                drift=DriftKind(drift) if drift is not None else None,
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


def _int_option(raw_uri: str, options: dict[str, str], name: str, default: int) -> int:
    value = options.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise TrainingError(
            f"{raw_uri}: synthetic option {name}={value!r} is not an integer"
        ) from None


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


def feedback_storage(settings: TrainingSettings, registry_storage: Storage) -> Storage:
    """Where the scorer stored its labels: the registry's storage unless the scorer
    logs elsewhere (a separate bucket for the inference log, say)."""
    if settings.effective_inference_log_uri == settings.registry_uri:
        return registry_storage
    return open_storage(
        settings.effective_inference_log_uri, max_attempts=settings.storage_attempts
    )


def train(settings: TrainingSettings) -> dict[str, Any]:
    """Runs the whole job and returns its summary (also printed by the CLI)."""
    started = time.perf_counter()
    storage = open_storage(settings.registry_uri, max_attempts=settings.storage_attempts)
    registry = Registry(storage, settings.model_name)
    production_version = registry.alias_version()
    production_manifest = registry.manifest(production_version) if production_version else None
    # After an upgrade that changed the feature contract, production is a model the
    # scorer refuses: the first-model Job must replace it, not keep it.
    production_contract_matches = (
        production_manifest is None
        or production_manifest.get("contract_fingerprint") == contract.contract_fingerprint()
    )
    if production_version is not None and settings.first_model_only and production_contract_matches:
        return {
            "model_name": settings.model_name,
            "production_version": production_version,
            "status": "skipped",
            "promoted": False,
            "reason": f"a production model exists ({production_version}) and only a first "
            "model was asked for (first_model_only)",
        }

    log.info("step 1/5: reading BAAC tables", extra={"raw_uri": settings.raw_uri})
    with raw_folder(settings.raw_uri, settings.storage_attempts) as (folder, source):
        built = assemble(read_raw(folder))
    table = built.table
    rule = make_rule(table, settings.split_method, settings.test_size, settings.seed)
    train_rows, test_rows = apply_rule(table, rule)
    x_test = contract.encode_frame(test_rows)
    feedback, feedback_leaks = pd.DataFrame(), 0
    if settings.use_feedback:
        feedback, feedback_leaks = drop_held_out_feedback(
            load_feedback(feedback_storage(settings, storage), days=settings.feedback_days).table,
            test_rows,
            x_test,
        )
    feedback_rows = len(feedback)
    fingerprint = data_fingerprint(
        pd.concat([table, feedback], ignore_index=True) if feedback_rows else table
    )
    summary: dict[str, Any] = {
        "model_name": settings.model_name,
        "data_fingerprint": fingerprint,
        "production_version": production_version,
        "feedback_rows": feedback_rows,
        "feedback_rows_dropped_held_out": feedback_leaks,
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
    if feedback_rows:
        # Feedback only ever joins the training side: the held-out rows stay BAAC
        # accidents, so the new and the production model are judged on the same kind
        # of data as every earlier version.
        train_rows = pd.concat([train_rows, feedback], ignore_index=True)
    x_train = contract.encode_frame(train_rows)
    y_train = train_rows[contract.TARGET].to_numpy(dtype=int)
    y_test = test_rows[contract.TARGET].to_numpy(dtype=int)

    log.info("step 3/5: fitting", extra={"model_kind": settings.model_kind.value})
    fit_started = time.perf_counter()
    validation_probability = out_of_fold_probability(
        settings.model_kind,
        x_train,
        y_train,
        train_rows[contract.ACCIDENT_ID],
        salt=rule.salt,
        fold_count=settings.validation_folds,
        seed=settings.seed,
    )
    if settings.threshold is None:
        threshold_choice = decision.choose_threshold(
            y_train, validation_probability, settings.missed_prioritaire_cost_ratio
        )
    else:
        threshold_choice = decision.fixed_threshold(
            y_train, validation_probability, settings.threshold
        )
    threshold = float(threshold_choice["threshold"])
    tiers = decision.confidence_bands(
        y_train,
        validation_probability,
        threshold,
        settings.tier_high_precision,
        settings.tier_medium_precision,
    )
    pipeline = build_pipeline(settings.model_kind, seed=settings.seed)
    pipeline.fit(x_train, y_train)
    fit_seconds = time.perf_counter() - fit_started

    log.info("step 4/5: evaluating on held-out rows", extra={"rows": len(y_test)})
    test_probability = positive_probability(pipeline, x_test)
    metrics = evaluate(y_test, test_probability, threshold)
    tiers["test"] = decision.tier_precision(
        y_test, test_probability, threshold, tiers["edges"], tiers["tiers"]
    )
    files: dict[str, bytes] = {}
    joblib_buffer = io.BytesIO()
    joblib.dump(pipeline, joblib_buffer, compress=3)
    files[layout.MODEL_JOBLIB] = joblib_buffer.getvalue()
    onnx_check = _compile(pipeline, x_test, test_probability, threshold)
    if onnx_check["published"]:
        files[layout.MODEL_ONNX] = onnx_check.pop("bytes")
    comparison = _compare_with_production(
        registry,
        production_version,
        production_manifest,
        test_rows,
        x_test,
        test_probability,
        threshold,
        settings.promotion_min_rows,
    )
    promote, reason = decide_promotion(
        settings.promote,
        unservable=None if onnx_check["published"] else onnx_check["reason"],
        production_version=production_version,
        production_split_known=comparison["production_split_known"],
        shared_rows=comparison["rows"],
        min_rows=settings.promotion_min_rows,
        new_auc=(comparison["new_metrics_same_rows"] or {}).get("roc_auc"),
        production_auc=(comparison["production_metrics_same_rows"] or {}).get("roc_auc"),
        tolerance=settings.promotion_tolerance,
        production_contract_matches=production_contract_matches,
    )

    log.info("step 5/5: publishing", extra={"registry": storage.uri})
    # Out-of-fold probabilities: those of live rows come from a model that never saw
    # them, and in-sample ones (a RandomForest's are close to 0 and 1) would make
    # undrifted traffic look drifted.
    reference = reference_sample(
        train_rows, validation_probability, threshold, settings.reference_rows, settings.seed
    )
    files[layout.REFERENCE] = _parquet_bytes(reference)
    now = datetime.now(UTC)
    version = new_version(now, fingerprint)
    split_record = {
        **rule.as_manifest(),
        "rows": {
            "train": len(train_rows),
            "test": len(test_rows),
            "validation": len(y_train),
            "feedback": feedback_rows,
            "feedback_dropped_held_out": feedback_leaks,
        },
        "validation": f"{settings.validation_folds} folds of the training rows by "
        f"sha256('{rule.salt}:folds:' + {contract.ACCIDENT_ID})",
        "stratification": stratification(train_rows, test_rows),
    }
    manifest = {
        "created_at": now.isoformat(),
        "code_version": code_version(),
        "libraries": library_versions(),
        "model_kind": settings.model_kind.value,
        "threshold": threshold,
        "threshold_choice": threshold_choice,
        "tiers": tiers,
        "split": split_record,
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
        "production_comparison": comparison,
        "onnx": onnx_check,
        "training": {"fit_seconds": round(fit_seconds, 3), "seed": settings.seed},
        "promotion": {"mode": settings.promote.value, "promoted": promote, "reason": reason},
        "reference_rows": len(reference),
        "reference_probabilities": "out-of-fold",
    }
    registry.publish(version, files, manifest)
    if promote:
        try:
            registry.promote(version, reason=reason, replacing=production_version)
        except PromotionConflictError as conflict:
            # Another run moved production while this one trained: this model was
            # judged against a champion that is no longer the one it would replace.
            promote, reason = False, str(conflict)
    production_metrics = comparison["production_metrics_same_rows"]
    summary.update(
        status="trained",
        version=version,
        promoted=promote,
        reason=reason,
        servable=bool(onnx_check["published"]),
        metrics={
            k: metrics[k]
            for k in ("accuracy", "precision", "recall", "f1", "roc_auc", "brier", "ece")
        },
        threshold={
            k: threshold_choice[k]
            for k in ("threshold", "method", "recall", "precision", "validation_rows")
        },
        gate_rows=comparison["rows"],
        production_metrics=(
            {k: production_metrics[k] for k in ("accuracy", "f1", "roc_auc")}
            if production_metrics
            else None
        ),
        new_metrics_same_rows=(
            {k: comparison["new_metrics_same_rows"][k] for k in ("accuracy", "f1", "roc_auc")}
            if comparison["new_metrics_same_rows"]
            else None
        ),
        rows={"train": len(train_rows), "test": len(test_rows)},
        split={
            "method": rule.method.value,
            "held_out_years": list(rule.held_out_years),
            "stratification": split_record["stratification"],
        },
        onnx=onnx_check["published"],
        seconds=round(time.perf_counter() - started, 2),
    )
    return summary


def drop_held_out_feedback(
    feedback: pd.DataFrame, test_rows: pd.DataFrame, x_test: np.ndarray
) -> tuple[pd.DataFrame, int]:
    """Feedback rows that are held-out rows coming back (by request id, or by the same
    encoded features) would let the model train on the rows that judge it."""
    if feedback.empty:
        return feedback, 0
    request_ids = feedback[contract.ACCIDENT_ID].astype(str).str.removeprefix(FEEDBACK_ID_PREFIX)
    held_out_ids = set(test_rows[contract.ACCIDENT_ID].astype(str))
    held_out_rows = set(_row_keys(x_test))
    same_features = np.fromiter(
        (key in held_out_rows for key in _row_keys(contract.encode_frame(feedback))),
        dtype=bool,
        count=len(feedback),
    )
    leaking = request_ids.isin(held_out_ids).to_numpy() | same_features
    dropped = int(leaking.sum())
    if dropped:
        log.warning("feedback rows matching held-out rows were left out", extra={"rows": dropped})
    return feedback.loc[~leaking].reset_index(drop=True), dropped


def _row_keys(matrix: np.ndarray) -> list[bytes]:
    # One NaN bit pattern, so two missing values compare equal.
    canonical = np.where(np.isnan(matrix), np.float32(np.nan), matrix).astype(np.float32)
    return [row.tobytes() for row in canonical]


def out_of_fold_probability(
    kind: ModelKind,
    x_train: np.ndarray,
    y_train: np.ndarray,
    accident_ids: pd.Series,
    *,
    salt: str,
    fold_count: int,
    seed: int,
) -> np.ndarray:
    """Each training row's probability from a model fitted on the other folds."""
    fold = folds(accident_ids, salt, fold_count)
    probability = cross_val_predict(
        build_pipeline(kind, seed=seed),
        x_train,
        y_train,
        cv=PredefinedSplit(fold),
        method="predict_proba",
    )
    return np.asarray(probability[:, 1], dtype=np.float64)


def _compile(
    pipeline: Any, x_test: np.ndarray, test_probability: np.ndarray, threshold: float
) -> dict[str, Any]:
    """The ONNX twin is published only when it gives the pipeline's probabilities and
    labels on the held-out rows; without it the model is not servable (the scorer
    image has no scikit-learn)."""
    try:
        onnx_bytes = to_onnx(pipeline)
        onnx_probability_test = onnx_probability(onnx_bytes, x_test)
    except Exception as error:  # skl2onnx raises many unrelated types on unsupported models
        log.warning("ONNX conversion failed", extra={"error": str(error)})
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        return {"published": False, "reason": f"ONNX conversion failed: {first_line}"}
    parity = onnx_parity(test_probability, onnx_probability_test, threshold)
    if parity["reason"] is not None:
        return {"published": False, **parity}
    return {"published": True, **parity, "bytes": onnx_bytes}


def onnx_parity(
    pipeline_probability: np.ndarray, onnx_probability_: np.ndarray, threshold: float
) -> dict[str, Any]:
    difference = float(np.max(np.abs(onnx_probability_ - pipeline_probability), initial=0.0))
    flipped = int(((onnx_probability_ >= threshold) != (pipeline_probability >= threshold)).sum())
    reason = None
    if difference > ONNX_TOLERANCE:
        reason = f"ONNX probabilities differ by {difference:.2e} > {ONNX_TOLERANCE}"
    elif flipped:
        reason = f"ONNX labels differ on {flipped} held-out rows at threshold {threshold}"
    return {
        "max_probability_difference": difference,
        "labels_differing_at_threshold": flipped,
        "reason": reason,
    }


def _compare_with_production(
    registry: Registry,
    production_version: str | None,
    production_manifest: dict[str, Any] | None,
    test_rows: pd.DataFrame,
    x_test: np.ndarray,
    test_probability: np.ndarray,
    threshold: float,
    min_rows: int,
) -> dict[str, Any]:
    """Both models on the held-out rows that production's recorded split also kept
    out of its training: the only rows on which neither has an advantage."""
    comparison: dict[str, Any] = {
        "production_version": production_version,
        "production_split_known": False,
        "rows": 0,
        "new_metrics_same_rows": None,
        "production_metrics_same_rows": None,
    }
    if production_version is None or production_manifest is None:
        return comparison
    rule = SplitRule.from_manifest(production_manifest.get("split"))
    if rule is None:
        return comparison
    shared = rule.held_out(test_rows)
    comparison.update(production_split_known=True, rows=int(shared.sum()))
    if comparison["rows"] < min_rows:
        return comparison
    y_shared = test_rows[contract.TARGET].to_numpy(dtype=int)[shared]
    comparison["new_metrics_same_rows"] = evaluate(y_shared, test_probability[shared], threshold)
    comparison["production_metrics_same_rows"] = _evaluate_production(
        registry, production_version, x_test[shared], y_shared
    )
    return comparison


def _evaluate_production(
    registry: Registry, production_version: str, x_test: np.ndarray, y_test: np.ndarray
) -> dict[str, Any] | None:
    try:
        production = registry.load(production_version)
    except RegistryError as error:
        log.warning("production model cannot be evaluated", extra={"error": str(error)})
        return None
    return evaluate(y_test, production.predict_proba(x_test), production.threshold)


def summary_json(summary: dict[str, Any]) -> str:
    return json.dumps(summary, indent=2, default=str)

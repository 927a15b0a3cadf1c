import io
import json
import subprocess
import sys
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from tests.support import free_port
from training import contract, layout
from training.cli import main
from training.errors import StorageError
from training.registry import Registry
from training.storage import FileStorage, open_storage
from training.synthetic import synthesize
from training.train import (
    PromoteMode,
    TrainingSettings,
    decide_promotion,
    raw_folder,
    reference_sample,
    train,
)

SMALL = "synthetic://?accidents=2500&seed=42"


@pytest.fixture(scope="module")
def trained_registry(tmp_path_factory):
    """One real training run shared by the read-only tests of this module."""
    root = tmp_path_factory.mktemp("registry")
    summary = train(TrainingSettings(raw_uri=SMALL, registry_uri=str(root), reference_rows=800))
    return root, summary


def test_train_publishes_promotes_and_the_model_scores(trained_registry):
    root, summary = trained_registry
    assert summary["status"] == "trained" and summary["promoted"] is True
    assert summary["reason"] == "no production model yet"
    assert summary["onnx"] is True
    assert summary["metrics"]["roc_auc"] > 0.7
    registry = Registry(FileStorage(root), "accident-severity")
    assert registry.alias_version() == summary["version"]
    model = registry.load(summary["version"])
    probability = model.predict_proba(contract.encode_rows([contract.example_row()]))
    assert 0.0 <= probability[0] <= 1.0


def test_manifest_holds_what_the_issue_lists(trained_registry):
    root, summary = trained_registry
    manifest = Registry(FileStorage(root), "accident-severity").manifest(summary["version"])
    for key in ("version", "created_at", "code_version", "libraries", "threshold", "contract"):
        assert manifest[key], key
    assert manifest["libraries"]["python"].startswith("3.")
    data = manifest["data"]
    assert data["fingerprint"] == summary["data_fingerprint"]
    assert data["rows"]["train"] + data["rows"]["test"] == 2500
    assert 0.3 < data["class_balance"]["train_prioritaire_share"] < 0.6
    assert data["quality"] == summary["data_quality"]
    assert data["quality"]["duplicate_rows_removed"] == {"usagers": 0, "vehicules": 0}
    metrics = manifest["metrics"]
    for key in ("accuracy", "precision", "recall", "f1", "roc_auc"):
        assert 0 <= metrics[key] <= 1, key
    matrix = metrics["confusion_matrix"]["rows_true_columns_predicted"]
    assert sum(map(sum, matrix)) == data["rows"]["test"]
    assert set(manifest["files"]) == {layout.MODEL_JOBLIB, layout.MODEL_ONNX, layout.REFERENCE}
    assert manifest["onnx"]["max_probability_difference"] < 1e-4
    assert manifest["promotion"] == {
        "mode": "auto",
        "promoted": True,
        "reason": "no production model yet",
    }


def test_summary_and_manifest_count_repaired_and_dropped_rows(tmp_path):
    raw = tmp_path / "raw"
    paths = synthesize(raw, accidents=2500, seed=42)
    lines = paths["usagers"].read_bytes().splitlines()
    # A person written twice, and a person whose grav is missing.
    header, first = lines[0].split(b";"), lines[1].split(b";")
    grav = header.index(b'"grav"')
    unknown = [*first[:grav], b'" -1"', *first[grav + 1 :]]
    paths["usagers"].write_bytes(b"\n".join([*lines, lines[1], b";".join(unknown)]) + b"\n")
    summary = train(TrainingSettings(raw_uri=str(raw), registry_uri=str(tmp_path / "registry")))
    quality = summary["data_quality"]
    assert quality["duplicate_rows_removed"] == {"usagers": 1, "vehicules": 0}
    assert quality["grav"] == {"missing": 1, "invalid": 0}
    manifest = Registry(FileStorage(tmp_path / "registry"), "accident-severity").manifest(
        summary["version"]
    )
    assert manifest["data"]["quality"] == quality


def test_reference_sample_is_capped_stratified_and_has_predictions(trained_registry):
    root, summary = trained_registry
    registry = Registry(FileStorage(root), "accident-severity")
    reference = pd.read_parquet(
        io.BytesIO(registry.read_file(summary["version"], layout.REFERENCE))
    )
    assert len(reference) <= 800
    assert set(contract.FEATURE_NAMES) <= set(reference.columns)
    assert {layout.PROBABILITY, layout.PREDICTION, contract.TARGET} <= set(reference.columns)
    manifest = registry.manifest(summary["version"])
    share = manifest["data"]["class_balance"]["train_prioritaire_share"]
    assert reference[contract.TARGET].mean() == pytest.approx(share, abs=0.01)


def test_reference_sample_keeps_small_sets_whole():
    frame = pd.DataFrame({name: [1.0] * 4 for name in contract.FEATURE_NAMES})
    frame[contract.TARGET] = [0, 1, 0, 1]
    sample = reference_sample(frame, np.array([0.1, 0.9, 0.2, 0.8]), 0.5, 10, 42)
    assert sample[layout.PREDICTION].tolist() == [0, 1, 0, 1]


def test_first_model_only_trains_the_first_and_never_replaces_production(tmp_path):
    settings = TrainingSettings(
        raw_uri=SMALL, registry_uri=str(tmp_path), reference_rows=500, first_model_only=True
    )
    first = train(settings)
    assert first["status"] == "trained" and first["promoted"] is True
    # Other data (another seed) would pass the label guard; the first-model Job must
    # still leave production alone.
    other = train(
        settings.model_copy(update={"raw_uri": SMALL.replace("seed=", "seed=9"), "force": True})
    )
    assert other["status"] == "skipped" and other["promoted"] is False
    assert first["version"] in other["reason"]
    registry = Registry(FileStorage(tmp_path), "accident-severity")
    assert registry.versions() == [first["version"]]
    assert registry.alias_version() == first["version"]


def test_label_guard_skips_identical_data_unless_forced(tmp_path):
    settings = TrainingSettings(raw_uri=SMALL, registry_uri=str(tmp_path), reference_rows=500)
    first = train(settings)
    second = train(settings)
    assert second["status"] == "skipped" and second["promoted"] is False
    assert "no new labelled data" in second["reason"]
    registry = Registry(FileStorage(tmp_path), "accident-severity")
    assert registry.versions() == [first["version"]]
    forced = train(settings.model_copy(update={"force": True}))
    assert forced["status"] == "trained"
    assert forced["production_metrics"]["roc_auc"] == pytest.approx(forced["metrics"]["roc_auc"]), (
        "same data and seed: production and the new model score the same held-out rows"
    )
    assert len(registry.versions()) == 2


def test_gate_keeps_production_when_the_new_model_is_worse(tmp_path):
    strong = train(
        TrainingSettings(
            raw_uri="synthetic://?accidents=6000&seed=1",
            registry_uri=str(tmp_path),
            reference_rows=500,
        )
    )
    weak = train(
        TrainingSettings(
            raw_uri="synthetic://?accidents=400&seed=2",
            registry_uri=str(tmp_path),
            reference_rows=500,
            promotion_tolerance=0.0,
        )
    )
    assert weak["status"] == "trained" and weak["promoted"] is False
    assert weak["production_metrics"]["roc_auc"] > weak["metrics"]["roc_auc"]
    assert "< production" in weak["reason"]
    registry = Registry(FileStorage(tmp_path), "accident-severity")
    assert registry.alias_version() == strong["version"]
    assert registry.manifest(weak["version"])["promotion"]["promoted"] is False


@pytest.mark.parametrize(
    ("mode", "new", "production", "version", "expected"),
    [
        (PromoteMode.AUTO, 0.80, None, None, True),
        (PromoteMode.AUTO, 0.80, 0.802, "v1", True),
        (PromoteMode.AUTO, 0.80, 0.81, "v1", False),
        (PromoteMode.AUTO, 0.80, None, "v1", True),
        (PromoteMode.NEVER, 0.99, 0.5, "v1", False),
        (PromoteMode.FORCE, 0.5, 0.99, "v1", True),
    ],
)
def test_decide_promotion(mode, new, production, version, expected):
    promoted, reason = decide_promotion(mode, new, production, version, 0.005)
    assert promoted is expected
    assert reason


def test_crash_between_upload_and_alias_leaves_production_untouched(tmp_path, monkeypatch):
    first = train(TrainingSettings(raw_uri=SMALL, registry_uri=str(tmp_path), reference_rows=500))

    def crash(*args, **kwargs):
        raise OSError("killed before the alias was written")

    monkeypatch.setattr(Registry, "promote", crash)
    with pytest.raises(OSError, match="killed"):
        train(
            TrainingSettings(
                raw_uri=SMALL, registry_uri=str(tmp_path), reference_rows=500, force=True
            )
        )
    monkeypatch.undo()
    registry = Registry(FileStorage(tmp_path), "accident-severity")
    assert registry.alias_version() == first["version"]


def test_feedback_labels_join_the_training_data_and_change_the_fingerprint(tmp_path):
    settings = TrainingSettings(raw_uri=SMALL, registry_uri=str(tmp_path), reference_rows=500)
    first = train(settings)
    storage = FileStorage(tmp_path)
    now = datetime.now(UTC)
    logged = pd.DataFrame([contract.example_row(), contract.example_row() | {"nb_pedestrians": 1}])
    logged[layout.REQUEST_ID] = ["r1", "r2"]
    buffer = io.BytesIO()
    logged.to_parquet(buffer, index=False)
    storage.write_bytes(
        layout.partitioned_key(layout.INFERENCE_LOG_PREFIX, now, "pod"), buffer.getvalue()
    )
    feedback = pd.DataFrame(
        {
            layout.REQUEST_ID: ["r1", "r2", "unknown"],
            layout.RECEIVED_AT: [now] * 3,
            layout.LABEL: [1, 0, 1],
        }
    )
    buffer = io.BytesIO()
    feedback.to_parquet(buffer, index=False)
    storage.write_bytes(
        layout.partitioned_key(layout.FEEDBACK_PREFIX, now, "pod"), buffer.getvalue()
    )
    second = train(settings)
    assert second["status"] == "trained"
    assert second["feedback_rows"] == 2, "the label without a logged request is left out"
    assert second["data_fingerprint"] != first["data_fingerprint"]


def test_raw_tables_can_come_from_s3(tmp_path, s3_bucket):
    synthesize(tmp_path / "raw", accidents=1500, seed=3, year=2021)
    storage = open_storage(s3_bucket + "baac/2021/")
    for path in (tmp_path / "raw").iterdir():
        storage.upload_file(path, path.name)
    with raw_folder(s3_bucket + "baac/", attempts=2) as (folder, source):
        assert source == s3_bucket + "baac/"
        assert sorted(p.name for p in folder.rglob("*.csv")) == sorted(
            p.name for p in (tmp_path / "raw").iterdir()
        )


@pytest.mark.servers
def test_train_load_predict_round_trip_on_s3(s3_bucket):
    summary = train(TrainingSettings(raw_uri=SMALL, registry_uri=s3_bucket, reference_rows=500))
    registry = Registry(open_storage(s3_bucket), "accident-severity")
    assert registry.alias_version() == summary["version"]
    probability = registry.load(summary["version"]).predict_proba(
        contract.encode_rows([contract.example_row()])
    )
    assert probability.shape == (1,)


def test_unreachable_storage_fails_with_one_line_and_no_alias(aws_env, monkeypatch, capsys):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("TRAINING_STORAGE_ATTEMPTS", "2")
    code = main(["train", "--raw", SMALL, "--registry", "s3://models/root/"])
    assert code == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("error: ") and "s3://models/root/" in error


def test_storage_error_is_a_training_error():
    with pytest.raises(StorageError, match="unsupported storage URI"):
        open_storage("ftp://example/x")


def test_models_cli_lists_shows_and_rolls_back(tmp_path, capsys):
    settings = TrainingSettings(raw_uri=SMALL, registry_uri=str(tmp_path), reference_rows=500)
    first = train(settings)
    second = train(settings.model_copy(update={"force": True}))
    assert main(["models", "--registry", str(tmp_path), "list"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["production"] == second["version"]
    assert [row["version"] for row in listing["versions"]] == [first["version"], second["version"]]
    assert main(["models", "--registry", str(tmp_path), "promote", first["version"]]) == 0
    pointer = json.loads(capsys.readouterr().out)
    assert pointer["version"] == first["version"] and pointer["previous"] == second["version"]
    assert main(["models", "--registry", str(tmp_path), "show", "no-such-version"]) == 1
    assert "no version" in capsys.readouterr().err


def test_invalid_settings_exit_with_usage_error(tmp_path, capsys):
    code = main(["train", "--raw", SMALL, "--registry", str(tmp_path), "--promote", "sometimes"])
    assert code == 2
    assert "promote" in capsys.readouterr().err


def test_cli_prints_the_summary_last_as_json(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "training", "train", "--raw", SMALL, "--registry", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    summary = json.loads(result.stdout)
    assert summary["status"] == "trained"
    logs = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert any("step 3/5" in entry["message"] for entry in logs)

import io
import json
import subprocess
import sys
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from core import contract, layout
from core.commands import EXIT_NOT_SERVABLE
from core.errors import StorageError
from core.registry import Registry
from core.storage import FileStorage, open_storage
from core.tables import FeedbackLabel, feedback_parquet
from tests.factories import issued_ids, publish_model
from tests.support import free_port
from training.baac import read_raw
from training.cli import main
from training.dataset import build_table, split_table
from training.model import ModelKind
from training.split import SplitMethod, SplitRule
from training.synthetic import synthesize
from training.train import (
    PromoteMode,
    TrainingSettings,
    decide_promotion,
    onnx_parity,
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


def test_a_production_model_of_another_contract_is_replaced_even_by_the_first_model_job(
    tmp_path,
):
    # What an upgrade that changed the feature contract leaves: production names a
    # version the new scorer refuses, pointed at by the old code.
    registry = Registry(FileStorage(tmp_path), "accident-severity")
    publish_model(
        registry,
        "20000101t000000.000000-old",
        promote=False,
        manifest_extra={"contract_fingerprint": "contract-1"},
    )
    pointer = {"alias": layout.PRODUCTION_ALIAS, "version": "20000101t000000.000000-old"}
    registry.storage.write_bytes(
        layout.alias_key(registry.name, layout.PRODUCTION_ALIAS), json.dumps(pointer).encode()
    )
    summary = train(
        TrainingSettings(
            raw_uri=SMALL, registry_uri=str(tmp_path), reference_rows=500, first_model_only=True
        )
    )
    assert summary["status"] == "trained" and summary["promoted"] is True, summary
    assert "another feature contract" in summary["reason"]
    assert registry.alias_version() == summary["version"]


def test_label_guard_skips_identical_data_unless_forced(tmp_path):
    settings = TrainingSettings(
        raw_uri=SMALL, registry_uri=str(tmp_path), reference_rows=500, promotion_min_rows=100
    )
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
            promotion_min_rows=30,
        )
    )
    assert weak["status"] == "trained" and weak["promoted"] is False
    assert weak["production_metrics"]["roc_auc"] > weak["metrics"]["roc_auc"]
    assert "< production" in weak["reason"]
    registry = Registry(FileStorage(tmp_path), "accident-severity")
    assert registry.alias_version() == strong["version"]
    assert registry.manifest(weak["version"])["promotion"]["promoted"] is False


@pytest.mark.parametrize(
    ("mode", "unservable", "version", "split_known", "rows", "new", "production", "expected"),
    [
        (PromoteMode.AUTO, None, None, False, 0, 0.80, None, True),
        (PromoteMode.AUTO, None, "v1", True, 5000, 0.80, 0.802, True),
        (PromoteMode.AUTO, None, "v1", True, 5000, 0.80, 0.81, False),
        (PromoteMode.AUTO, None, "v1", True, 5000, 0.80, None, True),
        (PromoteMode.AUTO, None, "v1", True, 999, 0.99, 0.5, False),
        (PromoteMode.AUTO, None, "v1", False, 5000, 0.99, 0.5, False),
        (PromoteMode.AUTO, "no ONNX", None, False, 0, 0.99, None, False),
        (PromoteMode.NEVER, None, "v1", True, 5000, 0.99, 0.5, False),
        (PromoteMode.FORCE, None, "v1", False, 0, 0.5, 0.99, True),
        (PromoteMode.FORCE, "no ONNX", "v1", True, 5000, 0.99, 0.5, False),
    ],
)
def test_decide_promotion(mode, unservable, version, split_known, rows, new, production, expected):
    promoted, reason = decide_promotion(
        mode,
        unservable=unservable,
        production_version=version,
        production_split_known=split_known,
        shared_rows=rows,
        min_rows=1000,
        new_auc=new,
        production_auc=production,
        tolerance=0.005,
    )
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
                raw_uri=SMALL,
                registry_uri=str(tmp_path),
                reference_rows=500,
                force=True,
                promotion_min_rows=100,
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
    scored = issued_ids(2, now)
    logged[layout.REQUEST_ID] = scored
    buffer = io.BytesIO()
    logged.to_parquet(buffer, index=False)
    storage.write_bytes(
        layout.partitioned_key(layout.INFERENCE_LOG_PREFIX, now, "pod"), buffer.getvalue()
    )
    feedback = pd.DataFrame(
        {
            layout.REQUEST_ID: [*scored, "unknown"],
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


def test_feedback_is_read_from_the_inference_log_root_the_scorer_wrote_it_under(tmp_path):
    registry_root, log_root = tmp_path / "registry", tmp_path / "logs"
    now = datetime.now(UTC)
    logged = pd.DataFrame([contract.example_row(), contract.example_row() | {"nb_pedestrians": 1}])
    logged[layout.REQUEST_ID] = scored = issued_ids(2, now)
    storage = FileStorage(log_root)
    storage.write_bytes(
        layout.partitioned_key(layout.INFERENCE_LOG_PREFIX, now, "pod"),
        logged.to_parquet(index=False),
    )
    labels = pd.DataFrame(
        {layout.REQUEST_ID: scored, layout.RECEIVED_AT: [now] * 2, layout.LABEL: [1, 0]}
    )
    storage.write_bytes(
        layout.partitioned_key(layout.FEEDBACK_PREFIX, now, "pod"), labels.to_parquet(index=False)
    )
    common = {"raw_uri": SMALL, "registry_uri": str(registry_root), "reference_rows": 500}
    assert train(TrainingSettings(**common))["feedback_rows"] == 0, "not under the registry"
    summary = train(TrainingSettings(**common, inference_log_uri=str(log_root), force=True))
    assert summary["feedback_rows"] == 2


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
    settings = TrainingSettings(
        raw_uri=SMALL, registry_uri=str(tmp_path), reference_rows=500, promotion_min_rows=100
    )
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


def test_invalid_settings_exit_with_usage_error(tmp_path, capsys, monkeypatch):
    with pytest.raises(SystemExit) as exited:
        main(["train", "--raw", SMALL, "--registry", str(tmp_path), "--promote", "sometimes"])
    assert exited.value.code == 2
    assert "error: argument --promote: invalid choice: 'sometimes'" in capsys.readouterr().err
    # The same value from the environment: the settings' one-line error, exit code 2.
    monkeypatch.setenv("TRAINING_PROMOTE", "sometimes")
    assert main(["train", "--raw", SMALL, "--registry", str(tmp_path)]) == 2
    assert "error: invalid settings: promote" in capsys.readouterr().err


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


# --- honest evaluation (issue 12) ---------------------------------------------------


def _held_out_rows(raw_uri: str, seed: int = 42) -> pd.DataFrame:
    """The held-out rows of a training run, rebuilt the way the job builds them."""
    with raw_folder(raw_uri, attempts=1) as (folder, _):
        table = build_table(read_raw(folder))
    return split_table(table, test_size=0.3, seed=seed)[1]


def test_manifest_records_split_threshold_rationale_and_tiers(trained_registry):
    root, summary = trained_registry
    manifest = Registry(FileStorage(root), "accident-severity").manifest(summary["version"])
    rule = SplitRule.from_manifest(manifest["split"])
    assert rule is not None and rule.method is SplitMethod.HASH and rule.test_size == 0.3
    assert manifest["split"]["rows"]["test"] == manifest["metrics"]["rows"]
    assert "within_chance" in manifest["split"]["stratification"]
    choice = manifest["threshold_choice"]
    assert choice["threshold"] == manifest["threshold"] == manifest["metrics"]["threshold"]
    assert choice["missed_prioritaire_cost_ratio"] == 3.0
    assert choice["validation_rows"] == manifest["split"]["rows"]["train"]
    # A missed prioritaire costs three over-triages: the threshold sits well below 0.5
    # and recall is favoured.
    assert choice["threshold"] < 0.5 and choice["recall"] > choice["precision"]
    tiers = manifest["tiers"]
    assert tiers["edges"] == sorted(tiers["edges"])
    assert len(tiers["tiers"]) == len(tiers["edges"]) + 1
    validation, test = tiers["validation"], tiers["test"]
    assert sum(t["rows"] for t in validation.values()) == choice["validation_rows"]
    assert sum(t["rows"] for t in test.values()) == manifest["split"]["rows"]["test"]
    assert validation["high"]["precision"] >= 0.78
    assert validation["high"]["precision"] > validation["low"]["precision"]
    assert test["high"]["precision"] > test["low"]["precision"], "tiers mean something"
    assert manifest["reference_probabilities"] == "out-of-fold"


def test_the_served_threshold_is_the_chosen_one(trained_registry):
    root, summary = trained_registry
    registry = Registry(FileStorage(root), "accident-severity")
    model = registry.load(summary["version"])
    assert model.threshold == summary["threshold"]["threshold"] != 0.5


def test_a_random_forest_champion_is_not_judged_on_its_own_training_rows(tmp_path):
    champion = train(
        TrainingSettings(
            raw_uri=SMALL,
            registry_uri=str(tmp_path),
            model_kind=ModelKind.RANDOM_FOREST,
            reference_rows=500,
        )
    )
    # Another seed: another salt, so most of the challenger's held-out rows were the
    # champion's training rows; only those the champion also held out are compared.
    challenger = train(
        TrainingSettings(
            raw_uri=SMALL,
            registry_uri=str(tmp_path),
            reference_rows=500,
            seed=7,
            force=True,
            promotion_min_rows=100,
        )
    )
    registry = Registry(FileStorage(tmp_path), "accident-severity")
    rule = SplitRule.from_manifest(registry.manifest(champion["version"])["split"])
    held_out = _held_out_rows(SMALL, seed=7)
    shared = rule.held_out(held_out)
    assert challenger["gate_rows"] == int(shared.sum())
    assert 0 < challenger["gate_rows"] < len(held_out) / 2
    comparison = registry.manifest(challenger["version"])["production_comparison"]
    assert comparison["rows"] == challenger["gate_rows"]
    assert comparison["production_metrics_same_rows"]["rows"] == challenger["gate_rows"]
    # On its own training rows a RandomForest scores about 1.0 and every challenger
    # loses; on rows it never saw it scores like any model.
    assert challenger["production_metrics"]["roc_auc"] < 0.9
    assert f"on {challenger['gate_rows']} rows neither trained on" in challenger["reason"]


def test_gate_below_the_minimum_of_shared_rows_refuses(tmp_path):
    settings = TrainingSettings(raw_uri=SMALL, registry_uri=str(tmp_path), reference_rows=500)
    first = train(settings)
    second = train(settings.model_copy(update={"force": True}))
    assert second["status"] == "trained" and second["promoted"] is False
    assert second["gate_rows"] < settings.promotion_min_rows
    assert "fewer than promotion_min_rows=1000" in second["reason"]
    assert Registry(FileStorage(tmp_path), "accident-severity").alias_version() == first["version"]


def test_a_champion_without_a_recorded_split_is_not_replaced_automatically(tmp_path):
    settings = TrainingSettings(
        raw_uri=SMALL, registry_uri=str(tmp_path), reference_rows=500, promotion_min_rows=100
    )
    first = train(settings)
    registry = Registry(FileStorage(tmp_path), "accident-severity")
    # A version trained before splits were recorded: same files, no "split".
    manifest = registry.manifest(first["version"])
    files = {name: registry.read_file(first["version"], name) for name in manifest["files"]}
    old = {k: v for k, v in manifest.items() if k not in {"split", "files", "name", "version"}}
    registry.publish("20000101t000000.000000-old", files, old)
    registry.promote("20000101t000000.000000-old", reason="test: an old champion")
    second = train(settings.model_copy(update={"force": True}))
    assert second["promoted"] is False and second["gate_rows"] == 0
    assert "records no split" in second["reason"]
    assert registry.alias_version() == "20000101t000000.000000-old"


def test_an_unservable_model_is_never_promoted_and_the_cli_says_so(tmp_path, capsys):
    """The majority baseline has no ONNX converter: a real model the scorer cannot load."""
    code = main(
        [
            "train",
            "--raw",
            SMALL,
            "--registry",
            str(tmp_path),
            "--model-kind",
            "majority",
            "--promote",
            "force",
        ]
    )
    assert code == EXIT_NOT_SERVABLE == 3
    summary = json.loads(capsys.readouterr().out)
    assert summary["servable"] is False and summary["promoted"] is False
    assert summary["reason"].startswith("not servable, never promoted: ONNX conversion failed")
    registry = Registry(FileStorage(tmp_path), "accident-severity")
    assert registry.alias_version() is None
    assert layout.MODEL_ONNX not in registry.manifest(summary["version"])["files"]


def test_onnx_parity_requires_the_same_labels_at_the_threshold():
    pipeline = np.array([0.10, 0.30000, 0.90])
    within_tolerance = np.array([0.10, 0.29999, 0.90])
    parity = onnx_parity(pipeline, within_tolerance, 0.3)
    assert parity["max_probability_difference"] < 1e-4
    assert parity["labels_differing_at_threshold"] == 1
    assert "labels differ on 1 held-out rows" in parity["reason"]
    assert onnx_parity(pipeline, pipeline, 0.3)["reason"] is None


def _feature_values(row: pd.Series) -> dict[str, object]:
    """A table row as the scorer stores features: None for missing, ints for codes."""
    values: dict[str, object] = {}
    for feature in contract.FEATURES:
        value = row[feature.name]
        if pd.isna(value):
            values[feature.name] = None
        elif feature.is_string_coded:
            values[feature.name] = str(value)
        elif feature.kind is contract.Kind.NUMERICAL and not feature.integer:
            values[feature.name] = float(value)
        else:
            values[feature.name] = int(value)
    return values


def test_held_out_rows_coming_back_as_feedback_never_join_training(tmp_path):
    settings = TrainingSettings(
        raw_uri=SMALL, registry_uri=str(tmp_path), reference_rows=500, use_feedback=True
    )
    first = train(settings)
    storage = FileStorage(tmp_path)
    held_out = _held_out_rows(SMALL)
    now = datetime.now(UTC).timestamp()
    # As a simulator replaying held-out rows with their true label would send them
    # (the admin key lets labels carry features)...
    returned = [
        FeedbackLabel(f"req-{index}", int(row[contract.TARGET]), _feature_values(row), False, now)
        for index, (_, row) in enumerate(held_out.head(60).iterrows())
    ]
    # ...and a client that used the accident number as its request id, features changed.
    by_id = _feature_values(held_out.iloc[70]) | {"hour": 3}
    returned.append(
        FeedbackLabel(str(held_out.iloc[70][contract.ACCIDENT_ID]), 1, by_id, False, now)
    )
    storage.write_bytes(
        layout.partitioned_key(layout.FEEDBACK_PREFIX, datetime.now(UTC), "pod-a"),
        feedback_parquet(returned),
    )
    second = train(settings.model_copy(update={"force": True}))
    assert second["metrics"] == first["metrics"], "held-out metrics did not move"
    assert second["feedback_rows_dropped_held_out"] == 61
    assert second["feedback_rows"] == 0


def test_the_reference_holds_out_of_fold_probabilities(tmp_path):
    """A RandomForest's in-sample probabilities sit near 0 and 1; live rows' do not.
    The reference must look like live traffic, or undrifted traffic raises drift."""
    from scipy.stats import ks_2samp

    summary = train(
        TrainingSettings(
            raw_uri=SMALL,
            registry_uri=str(tmp_path),
            model_kind=ModelKind.RANDOM_FOREST,
            reference_rows=5000,
        )
    )
    registry = Registry(FileStorage(tmp_path), "accident-severity")
    reference = pd.read_parquet(
        io.BytesIO(registry.read_file(summary["version"], layout.REFERENCE))
    )
    live = registry.load(summary["version"]).predict_proba(
        contract.encode_frame(_held_out_rows(SMALL))
    )
    assert ks_2samp(reference[layout.PROBABILITY], live).statistic < 0.1


@pytest.mark.parametrize(
    ("uri", "named"),
    [
        ("synthetic://?accidents=abc", "accidents='abc' is not an integer"),
        ("synthetic://?seed=1.5", "seed='1.5' is not an integer"),
        ("synthetic://?drift=sideways", "drift='sideways' is not one of"),
    ],
)
def test_a_bad_synthetic_option_is_named_with_its_value(uri, named, tmp_path, capsys):
    assert main(["train", "--raw", uri, "--registry", str(tmp_path)]) == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith(f"error: {uri}: synthetic option ") and named in error


def test_year_split_trains_on_the_past_and_is_recorded(baac_samples, tmp_path):
    summary = train(
        TrainingSettings(
            raw_uri=str(baac_samples),
            registry_uri=str(tmp_path),
            split_method=SplitMethod.YEAR,
            reference_rows=500,
        )
    )
    assert summary["split"]["held_out_years"] == [2024]
    manifest = Registry(FileStorage(tmp_path), "accident-severity").manifest(summary["version"])
    assert manifest["split"]["method"] == "year"
    # The samples hold 266 accidents of 2024 and 1,054 before it, one of which (2021,
    # grav -1 on its only possibly severe victim) gets no label.
    assert manifest["split"]["rows"] == {
        "train": 1053,
        "test": 266,
        "validation": 1053,
        "feedback": 0,
        "feedback_dropped_held_out": 0,
    }


def test_tier_levels_must_be_ordered():
    with pytest.raises(ValidationError, match="tier_medium_precision"):
        TrainingSettings(tier_high_precision=0.6, tier_medium_precision=0.7)

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core import contract, layout
from core.errors import ArtifactVerificationError, PromotionConflictError, RegistryError
from core.registry import Registry, new_version, sha256_hex
from core.storage import FileStorage, open_storage
from tests.factories import (
    malicious_pickle,
    publish_model,
    publish_pickle_only,
    random_features,
)
from tests.support import run_together
from training.settings import PromoteMode, TrainingSettings
from training.train import train

BACKENDS = ["file", pytest.param("seaweedfs", marks=[pytest.mark.servers, pytest.mark.seaweedfs])]


@pytest.fixture(params=BACKENDS)
def registry(request, tmp_path):
    """A registry on a local folder, then on SeaweedFS (a fresh bucket of the chart's
    S3 store, tests/seaweedfs_server.py)."""
    if request.param == "file":
        return Registry(FileStorage(tmp_path), "accident-severity")
    return Registry(open_storage(request.getfixturevalue("s3_bucket")), "accident-severity")


def test_published_version_is_listed_loaded_and_scores(registry):
    publish_model(registry, "v1")
    assert registry.versions() == ["v1"]
    assert registry.alias_version() == "v1"
    model = registry.load("v1")
    assert model.runtime == "onnxruntime"
    probability = model.predict_proba(random_features(5, seed=9))
    assert probability.shape == (5,) and np.all((probability >= 0) & (probability <= 1))


def test_onnx_and_joblib_give_the_same_probabilities(registry):
    publish_model(registry, "v1")
    rows = random_features(200, seed=3)
    onnx_model = registry.load("v1")
    sklearn_model = registry.load_pipeline("v1")
    assert sklearn_model.runtime == "scikit-learn"
    np.testing.assert_allclose(
        onnx_model.predict_proba(rows), sklearn_model.predict_proba(rows), atol=1e-5
    )


def test_version_without_onnx_is_refused_and_its_pickle_never_runs(registry, tmp_path):
    """The manifest vouches for a pickle whose checksum matches; load must still not
    unpickle it (that would run its code)."""
    marker = tmp_path / "pickle-ran"
    publish_pickle_only(registry, "v1", malicious_pickle(marker))
    with pytest.raises(ArtifactVerificationError, match=r"no ONNX twin .*never unpickles"):
        registry.load("v1")
    assert not marker.exists()


def test_versions_are_immutable(registry):
    publish_model(registry, "v1")
    with pytest.raises(RegistryError, match="immutable"):
        publish_model(registry, "v1")


def test_concurrent_publishers_of_one_version_exactly_one_wins(registry):
    # Each publisher has its own storage object (its own S3 connections), different
    # files, and all start at once: one version results, the winner's, intact.
    publishers = 6

    def publish(index):
        own = Registry(open_storage(registry.storage.uri), registry.name)
        files = {layout.MODEL_JOBLIB: f"model of publisher {index}".encode() * 1000}
        own.publish("v1", files, {"publisher": index})
        return "published"

    outcomes = run_together(publishers, publish)
    [winner] = [index for index, outcome in enumerate(outcomes) if outcome == "published"]
    losers = [str(outcome) for index, outcome in enumerate(outcomes) if index != winner]
    assert all(isinstance(outcomes[i], RegistryError) for i in range(publishers) if i != winner)
    assert len(losers) == publishers - 1
    for message in losers:
        assert message.startswith("model accident-severity version v1 ")
        assert "versions are immutable" in message
    assert registry.versions() == ["v1"]
    manifest = registry.manifest("v1")
    assert manifest["publisher"] == winner
    # Every file the manifest vouches for is the winner's, unaltered by the losers.
    expected = f"model of publisher {winner}".encode() * 1000
    assert registry.read_file("v1", layout.MODEL_JOBLIB) == expected
    assert manifest["files"][layout.MODEL_JOBLIB]["sha256"] == sha256_hex(expected)


def test_a_version_claimed_by_a_crashed_publisher_is_not_overwritten(registry):
    prefix = layout.version_prefix("accident-severity", "v1")
    registry.storage.write_bytes(prefix + layout.PUBLISHER, b"not even JSON")
    with pytest.raises(RegistryError, match=r"already being published .*publisher unknown"):
        publish_model(registry, "v1")
    assert registry.storage.list(prefix) == [prefix + layout.PUBLISHER]


def test_two_trainings_started_at_once_on_the_same_data_make_two_versions(tmp_path):
    # The CronJob and POST /retrain, or two scorer replicas, on the same data: the
    # real training job twice at once, released by one barrier before it names its
    # version; both publish, each under its own version.
    settings = TrainingSettings(
        raw_uri="synthetic://?accidents=2000&seed=3",
        registry_uri=str(tmp_path / "registry"),
        promote=PromoteMode.NEVER,
        reference_rows=500,
        use_feedback=False,
    )
    summaries = run_together(2, lambda index: train(settings), timeout=600)
    assert all(isinstance(summary, dict) for summary in summaries), summaries
    assert [summary["status"] for summary in summaries] == ["trained", "trained"], summaries
    first, second = summaries[0]["version"], summaries[1]["version"]
    assert summaries[0]["data_fingerprint"] == summaries[1]["data_fingerprint"]
    assert first != second
    registry = Registry(open_storage(settings.registry_uri), settings.model_name)
    assert registry.versions() == sorted([first, second])


def test_rollback_is_promoting_an_older_version_and_is_audited(registry):
    publish_model(registry, "v1")
    publish_model(registry, "v2", seed=1)
    assert registry.alias_version() == "v2"
    pointer = registry.promote("v1", reason="rollback")
    assert pointer["previous"] == "v2"
    assert registry.alias_version() == "v1"
    history = [k for k in registry.storage.list() if "/aliases/history/" in k]
    assert len(history) == 3


def test_corrupted_model_file_is_refused(registry):
    publish_model(registry, "v1")
    key = layout.version_prefix("accident-severity", "v1") + layout.MODEL_ONNX
    registry.storage.write_bytes(key, registry.storage.read_bytes(key)[:-10] + b"0123456789")
    with pytest.raises(ArtifactVerificationError, match="sha256"):
        registry.load("v1")


def test_manifest_with_another_contract_is_refused(registry):
    publish_model(registry, "v1", promote=False, manifest_extra={"contract_fingerprint": "old"})
    with pytest.raises(ArtifactVerificationError, match="feature contract"):
        registry.load("v1")
    with pytest.raises(ArtifactVerificationError, match="feature contract"):
        registry.promote("v1", reason="test")


def test_crash_before_the_manifest_leaves_no_version_and_production_untouched(
    registry, monkeypatch
):
    publish_model(registry, "v1")
    original = registry.storage.create_bytes

    def crash_on_manifest(key, data, **kwargs):
        if key.endswith(layout.MANIFEST):
            raise OSError("simulated crash")
        original(key, data, **kwargs)

    monkeypatch.setattr(registry.storage, "create_bytes", crash_on_manifest)
    with pytest.raises(OSError, match="simulated crash"):
        publish_model(registry, "v2", seed=1)
    monkeypatch.undo()
    assert registry.versions() == ["v1"]
    assert registry.alias_version() == "v1"
    with pytest.raises(RegistryError, match="no version"):
        registry.manifest("v2")


def test_the_manifest_then_the_alias_are_written_last(registry, monkeypatch):
    publish_model(registry, "v1")
    written = []
    for method in ("write_bytes", "create_bytes"):
        original = getattr(registry.storage, method)

        def record(key, data, _original=original, _method=method, **kwargs):
            written.append((_method, key))
            _original(key, data, **kwargs)

        monkeypatch.setattr(registry.storage, method, record)
    publish_model(registry, "v2", seed=1)
    prefix = layout.version_prefix("accident-severity", "v2")
    alias = layout.alias_key("accident-severity", layout.PRODUCTION_ALIAS)
    # The claim on the version, its files, its manifest (both created, never
    # replaced), then the history entry and the pointer.
    assert written[0] == ("create_bytes", prefix + layout.PUBLISHER)
    assert written[-3:] == [
        ("create_bytes", prefix + layout.MANIFEST),
        written[-2],
        ("write_bytes", alias),
    ]
    assert written[-2][1].startswith(layout.model_prefix("accident-severity") + "aliases/history/")
    assert all(method == "write_bytes" and key.startswith(prefix) for method, key in written[1:-3])


def test_crash_before_the_alias_leaves_production_untouched(registry, monkeypatch):
    publish_model(registry, "v1")
    publish_model(registry, "v2", seed=1, promote=False)
    original = registry.storage.write_bytes
    alias = layout.alias_key("accident-severity", layout.PRODUCTION_ALIAS)

    def crash_on_alias(key, data, **kwargs):
        if key == alias:
            raise OSError("simulated crash")
        original(key, data, **kwargs)

    monkeypatch.setattr(registry.storage, "write_bytes", crash_on_alias)
    with pytest.raises(OSError, match="simulated crash"):
        registry.promote("v2", reason="test")
    monkeypatch.undo()
    assert registry.alias_version() == "v1"
    assert registry.versions() == ["v1", "v2"]
    # The interrupted promotion had claimed its generation: the next one completes it
    # rather than being blocked, then happens itself.
    pointer = registry.promote("v1", reason="after the crash")
    assert (pointer["previous"], pointer["generation"]) == ("v2", 3)
    assert registry.alias_version() == "v1"


def test_unknown_version_and_missing_alias(registry):
    assert registry.alias_version() is None
    with pytest.raises(RegistryError, match="no version 'v9'"):
        registry.load("v9")


def test_manifest_records_checksums_and_contract(registry):
    manifest = publish_model(registry, "v1")
    assert set(manifest["files"]) == {layout.MODEL_JOBLIB, layout.MODEL_ONNX}
    assert manifest["contract_fingerprint"] == contract.contract_fingerprint()
    stored = json.loads(
        registry.storage.read_bytes(
            layout.version_prefix("accident-severity", "v1") + "manifest.json"
        )
    )
    assert stored == manifest


def test_new_version_is_sortable_and_valid():
    from datetime import UTC, datetime

    earlier = new_version(datetime(2026, 1, 1, tzinfo=UTC), "abcdef0123")
    later = new_version(datetime(2026, 1, 2, tzinfo=UTC), "00000000")
    assert earlier < later
    assert layout.validate_name("model version", earlier) == earlier
    # Two trainings within one second sort in order; at the same instant, on the same
    # data, they still get different versions.
    first = new_version(datetime(2026, 1, 1, 0, 0, 0, 999, tzinfo=UTC), "ffffffff")
    second = new_version(datetime(2026, 1, 1, 0, 0, 0, 1000, tzinfo=UTC), "00000000")
    assert first < second
    same_instant = datetime(2026, 1, 1, tzinfo=UTC)
    assert len({new_version(same_instant, "abcdef0123") for _ in range(50)}) == 50


def test_invalid_model_name_is_refused(tmp_path):
    with pytest.raises(ValueError, match="invalid model name"):
        Registry(FileStorage(tmp_path), "../escape")


# --- files of the wrong shape ---------------------------------------------------------

BAD_ALIASES = [
    (b"{}", "invalid alias: version: missing"),
    (b"[]", "alias must be a JSON object, found an array"),
    (b'"v1"', "alias must be a JSON object, found the string 'v1'"),
    (b"3", "alias must be a JSON object, found the number 3"),
    (b"null", "alias must be a JSON object, found null"),
    (b'{"version": null}', "invalid alias: version: Input should be a valid string (found null)"),
    (
        b'{"version": 7}',
        "invalid alias: version: Input should be a valid string (found the number 7)",
    ),
    (b'{"version": "../v1"}', "invalid alias: version: '../v1': use 1-63 lowercase letters"),
    (b"{not json", "alias is not JSON"),
    (b"\xff\xfe", "alias is not JSON"),
]


@pytest.mark.parametrize(("content", "problem"), BAD_ALIASES)
def test_an_alias_of_the_wrong_shape_is_one_clear_error(registry, content, problem):
    key = layout.alias_key("accident-severity", layout.PRODUCTION_ALIAS)
    registry.storage.write_bytes(key, content)
    for read in (registry.alias, registry.alias_version):
        with pytest.raises(RegistryError) as caught:
            read()
        message = str(caught.value)
        assert message.startswith(f"{registry.storage.url_for(key)}: {problem}")
        assert "\n" not in message


def _manifest_key(version="v1"):
    return layout.version_prefix("accident-severity", version) + layout.MANIFEST


def _valid_manifest():
    return {
        "name": "accident-severity",
        "version": "v1",
        "files": {layout.MODEL_ONNX: {"sha256": "a" * 64, "bytes": 10}},
        "contract_fingerprint": contract.contract_fingerprint(),
        "threshold": 0.5,
    }


BAD_MANIFESTS = [
    ([], "manifest must be a JSON object, found an array"),
    ("v1", "manifest must be a JSON object, found the string 'v1'"),
    ({}, "invalid manifest: name: missing; version: missing; files: missing"),
    ({"files": None}, "invalid manifest: files: Input should be a valid dictionary (found null)"),
    ({"files": []}, "files: Input should be a valid dictionary (found an array)"),
    ({"files": {"model.onnx": "abc"}}, "files.model.onnx: Input should be a valid dictionary"),
    ({"files": {"model.onnx": {"bytes": 1}}}, "files.model.onnx.sha256: missing"),
    (
        {"files": {"model.onnx": {"sha256": "abc", "bytes": 1}}},
        "files.model.onnx.sha256: String should match pattern",
    ),
    ({"threshold": "high"}, "threshold: Input should be a valid number"),
    ({"version": None}, "version: Input should be a valid string (found null)"),
    ({"version": "v2"}, "invalid manifest: it names version 'v2', its folder is 'v1'"),
]


@pytest.mark.parametrize(("change", "problem"), BAD_MANIFESTS)
def test_a_manifest_of_the_wrong_shape_is_one_clear_error(registry, change, problem):
    content = {**_valid_manifest(), **change} if isinstance(change, dict) and change else change
    registry.storage.write_bytes(_manifest_key(), json.dumps(content).encode())
    assert registry.versions() == ["v1"]
    for use in (
        lambda: registry.manifest("v1"),
        lambda: registry.read_file("v1", layout.MODEL_ONNX),
        lambda: registry.promote("v1", reason="test"),
    ):
        with pytest.raises(RegistryError) as caught:
            use()
        message = str(caught.value)
        assert message.startswith(f"{registry.storage.url_for(_manifest_key())}: ")
        assert problem in message
        assert "\n" not in message
    assert registry.alias_version() is None


def test_a_valid_manifest_keeps_every_recorded_field(registry):
    content = {**_valid_manifest(), "metrics": {"roc_auc": 0.8}, "data": {"rows": 3}}
    registry.storage.write_bytes(_manifest_key(), json.dumps(content).encode())
    assert registry.manifest("v1") == content


@pytest.mark.parametrize(("content", "problem"), BAD_ALIASES[:3])
def test_the_cli_reports_a_bad_alias_in_one_line(tmp_path, content, problem):
    storage = FileStorage(tmp_path / "registry")
    key = layout.alias_key("accident-severity", layout.PRODUCTION_ALIAS)
    storage.write_bytes(key, content)
    expected = f"error: {storage.url_for(key)}: {problem}"
    for command in (
        ["models", "list"],
        ["train", "--raw", "synthetic://?accidents=50"],
    ):
        registry_option = ["--registry", str(tmp_path / "registry")]
        arguments = command[:1] + registry_option + command[1:]
        completed = subprocess.run(
            [sys.executable, "-m", "training", *arguments],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=Path(__file__).resolve().parents[2],
            check=False,
        )
        assert completed.returncode == 1, completed.stderr
        last = completed.stderr.strip().splitlines()[-1]
        assert last.startswith(expected), completed.stderr
        assert "Traceback" not in completed.stderr
        assert completed.stdout == ""


def test_a_version_without_onnx_cannot_be_promoted(registry):
    publish_model(registry, "v1")
    publish_model(registry, "v2", seed=1, onnx=False, promote=False)
    with pytest.raises(ArtifactVerificationError, match="no ONNX twin"):
        registry.promote("v2", reason="test")
    assert registry.alias_version() == "v1"


def test_concurrent_promotions_from_one_alias_value_exactly_one_wins(registry):
    publish_model(registry, "v1")
    candidates = [f"c{i}" for i in range(6)]
    for seed, candidate in enumerate(candidates, start=1):
        publish_model(registry, candidate, seed=seed, rows=200, promote=False)

    def promote(index):
        # Its own storage (its own S3 connections), as another training run's.
        own = Registry(open_storage(registry.storage.uri), registry.name)
        own.promote(candidates[index], reason="race", replacing="v1")
        return candidates[index]

    outcomes = run_together(len(candidates), promote)
    [winner] = [outcome for outcome in outcomes if isinstance(outcome, str)]
    losers = [outcome for outcome in outcomes if not isinstance(outcome, str)]
    assert all(isinstance(outcome, PromotionConflictError) for outcome in losers), outcomes
    pointer = registry.alias()
    assert (pointer["version"], pointer["previous"], pointer["generation"]) == (winner, "v1", 2)
    history = [k for k in registry.storage.list() if "/aliases/history/" in k]
    assert len(history) == 2


def test_a_promotion_judged_against_a_replaced_champion_does_not_happen(registry):
    publish_model(registry, "v1")
    publish_model(registry, "v2", seed=1)
    publish_model(registry, "v3", seed=2, promote=False)
    with pytest.raises(PromotionConflictError, match="now names v2, not v1"):
        registry.promote("v3", reason="judged against v1", replacing="v1")
    assert registry.alias_version() == "v2"
    with pytest.raises(PromotionConflictError, match="now names v2, not nothing"):
        registry.promote("v3", reason="first model", replacing=None)

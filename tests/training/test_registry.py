import json

import numpy as np
import pytest

from tests.factories import (
    malicious_pickle,
    publish_model,
    publish_pickle_only,
    random_features,
)
from training import contract, layout
from training.errors import ArtifactVerificationError, RegistryError
from training.registry import Registry, new_version
from training.storage import FileStorage, open_storage

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
    original = registry.storage.write_bytes

    def crash_on_manifest(key, data, **kwargs):
        if key.endswith(layout.MANIFEST):
            raise OSError("simulated crash")
        original(key, data, **kwargs)

    monkeypatch.setattr(registry.storage, "write_bytes", crash_on_manifest)
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
    original = registry.storage.write_bytes

    def record(key, data, **kwargs):
        written.append(key)
        original(key, data, **kwargs)

    monkeypatch.setattr(registry.storage, "write_bytes", record)
    publish_model(registry, "v2", seed=1)
    prefix = layout.version_prefix("accident-severity", "v2")
    alias = layout.alias_key("accident-severity", layout.PRODUCTION_ALIAS)
    # The version's files, its manifest, then the history entry and the pointer.
    assert written[-3:] == [prefix + layout.MANIFEST, written[-2], alias]
    assert written[-2].startswith(layout.model_prefix("accident-severity") + "aliases/history/")
    assert all(key.startswith(prefix) for key in written[:-3])


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

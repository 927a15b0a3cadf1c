"""The retrain claim (core/claims.py) on a folder and on SeaweedFS: one holder per
decision window, the losers told who, the claim given back only by its holder. The
launcher that takes it is tested in tests/core/test_retrain.py, the races between
drift jobs and POST /retrain in tests/monitoring and tests/service."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from core import claims, layout
from core.errors import ObjectExistsError, RetrainClaimedError
from core.storage import Storage, create_once, open_storage

BACKENDS = ["file", pytest.param("seaweedfs", marks=[pytest.mark.servers, pytest.mark.seaweedfs])]
NOW = datetime(2026, 11, 25, 12, 40, 5, tzinfo=UTC)
MODEL = "accident-severity"


@pytest.fixture(params=BACKENDS)
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "file":
        return open_storage(str(tmp_path / "store"))
    return open_storage(request.getfixturevalue("s3_bucket"))


def _claim(storage: Storage, trigger: str = "drift", host: str = "pod-a") -> claims.RetrainClaim:
    return claims.claim_retrain(
        storage,
        MODEL,
        window=claims.decision_window(NOW),
        trigger=trigger,
        host=host,
        reason=f"reason of {host}\non two lines",
        now=NOW,
    )


def test_the_decision_window_is_the_utc_hour() -> None:
    assert claims.decision_window(NOW) == "20261125T12"
    paris = timezone(timedelta(hours=1))
    assert claims.decision_window(datetime(2026, 11, 25, 13, 5, tzinfo=paris)) == "20261125T12"
    assert claims.decision_window(datetime(2026, 11, 25, 12, 59)) == "20261125T12"
    with pytest.raises(ValueError, match="invalid decision window '2026-11-25'"):
        layout.retrain_claim_key(MODEL, "2026-11-25")


def test_the_first_claim_wins_and_the_next_one_names_it(storage: Storage) -> None:
    held = _claim(storage)
    key = layout.retrain_claim_key(MODEL, "20261125T12")
    assert key == "retrain-claims/accident-severity/20261125T12.json"
    record = json.loads(storage.read_bytes(key))
    assert record["trigger"] == "drift" and record["host"] == "pod-a"
    assert record["reason"] == "reason of pod-a on two lines"
    assert record["token"] == held.token
    with pytest.raises(RetrainClaimedError) as caught:
        _claim(storage, trigger="scorer-api", host="pod-b")
    assert str(caught.value) == (
        "the retrain of model accident-severity for decision window 20261125T12 (UTC hour) "
        "was already claimed by drift on pod-a at 2026-11-25T12:40:05+00:00 "
        "(reason of pod-a on two lines)"
    )
    assert caught.value.key == key
    assert caught.value.holder is not None and "token" not in caught.value.holder
    assert caught.value.holder["host"] == "pod-a"
    # Another window, or another model, is another decision.
    later = claims.claim_retrain(
        storage, MODEL, window="20261125T13", trigger="drift", host="h", reason="r", now=NOW
    )
    assert later.window == "20261125T13"


def test_only_the_holder_gives_a_claim_back(storage: Storage) -> None:
    held = _claim(storage)
    impostor = held.model_copy(update={"token": "0" * 16})
    claims.release(storage, impostor)
    with pytest.raises(RetrainClaimedError):
        _claim(storage, host="pod-b")
    claims.release(storage, held)
    claims.release(storage, held)  # already given back: nothing to do
    assert _claim(storage, host="pod-b").host == "pod-b"


def test_an_unreadable_claim_still_holds_the_window(storage: Storage) -> None:
    key = layout.retrain_claim_key(MODEL, "20261125T12")
    storage.write_bytes(key, b"[]")
    with pytest.raises(RetrainClaimedError, match=r"whose record .* is unreadable") as caught:
        _claim(storage)
    assert caught.value.holder is None


def test_create_once_succeeds_when_the_object_is_its_own(storage: Storage) -> None:
    # What a retried PUT whose first answer was lost finds: its own bytes.
    storage.write_bytes("k.json", b"mine, token 1234")
    create_once(storage, "k.json", b"mine, token 1234")
    with pytest.raises(ObjectExistsError):
        create_once(storage, "k.json", b"someone else's")

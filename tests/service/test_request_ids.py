"""Issued request ids: signed (time included), verifiable by any replica with the key,
and readable for their issue day by the training job without it."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from core import request_ids
from service.request_ids import RequestIdSigner

LATE_EVENING = int(datetime(2026, 12, 6, 23, 30, tzinfo=UTC).timestamp())
NOON = int(datetime(2026, 12, 6, 12, 0, tzinfo=UTC).timestamp())


def test_an_id_carries_its_issue_time_and_eight_random_bytes() -> None:
    signer = RequestIdSigner("key", batch_limit=10)
    before = int(datetime.now(UTC).timestamp())
    issued = signer.issue()
    after = int(datetime.now(UTC).timestamp())
    assert len(issued) == request_ids.ID_HEX_DIGITS == 40
    stamp = request_ids.issued_at(issued)
    assert stamp is not None and before <= stamp.timestamp() <= after
    # Two ids of the same second differ in their random bytes.
    same_second = {signer.issue_at(NOON)[8:24] for _ in range(1000)}
    assert len(same_second) == 1000


def test_a_sibling_replica_with_the_key_verifies_ids_and_their_rows() -> None:
    issued = RequestIdSigner("key", batch_limit=10).issue_at(NOON)
    sibling = RequestIdSigner("key", batch_limit=10)
    assert sibling.issued(issued)
    assert sibling.issued(f"{issued}-9")
    assert not sibling.issued(f"{issued}-10")
    assert not RequestIdSigner("other key", batch_limit=10).issued(issued)


@pytest.mark.parametrize("position", [0, 7, 8, 23, 24, 39])
def test_changing_any_digit_time_included_makes_an_id_refused(position: int) -> None:
    signer = RequestIdSigner("key", batch_limit=10)
    issued = signer.issue_at(NOON)
    changed = issued[:position] + ("0" if issued[position] != "0" else "1") + issued[position + 1 :]
    assert not signer.issued(changed)


def test_the_issue_day_is_read_without_the_key() -> None:
    issued = RequestIdSigner("key", batch_limit=10).issue_at(NOON)
    assert request_ids.issued_at(issued) == datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    assert request_ids.logged_days(issued) == (date(2026, 12, 6),)
    assert request_ids.logged_days(f"{issued}-3") == (date(2026, 12, 6),)


def test_an_id_issued_late_in_the_evening_may_be_logged_the_next_day() -> None:
    issued = RequestIdSigner("key", batch_limit=10).issue_at(LATE_EVENING)
    assert request_ids.logged_days(issued) == (date(2026, 12, 6), date(2026, 12, 7))


@pytest.mark.parametrize(
    "request_id", ["admin-label-7", "0" * 32, "g" * 40, "+" + "0" * 39, "0_00" + "0" * 36, ""]
)
def test_ids_of_another_format_have_no_issue_day(request_id: str) -> None:
    assert request_ids.issued_at(request_id) is None
    assert request_ids.logged_days(request_id) == ()

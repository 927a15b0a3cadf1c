"""The format of the request ids the scorer issues, and what anyone can read from one
without the key: when it was issued.

An issued id is 40 hex digits: 4 bytes of issue time (epoch seconds, big-endian),
8 random bytes, and an 8-byte keyed MAC of the 12 bytes before it
(``service/request_ids.py`` signs and verifies). The time is in clear so the
training job can find an id's inference-log row by reading only the partitions of
its issue day, without the scorer's key; it is authenticated all the same, since the
scorer only accepts a label for an id whose MAC covers that time. A batch's row ``i``
is ``<id>-<i>``.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

TIME_BYTES = 4
NONCE_BYTES = 8
MAC_BYTES = 8
SIGNED_BYTES = TIME_BYTES + NONCE_BYTES
ID_HEX_DIGITS = 2 * (SIGNED_BYTES + MAC_BYTES)

LOGGED_WITHIN = timedelta(hours=1)
"""How long after its id's issue a row is scored and timestamped: the request's own
duration (body read, queue, model call), seconds at most; an hour leaves room for
any client. The inference log partitions rows by their own timestamp, so the row of
an id issued at ``t`` is under the day of ``t`` or of ``t + LOGGED_WITHIN``."""

_ISSUED_ID = re.compile(rf"[0-9a-f]{{{ID_HEX_DIGITS}}}")


def issued_at(request_id: str) -> datetime | None:
    """The issue time written in an id of the scorer's format (or a batch row's
    ``<id>-<i>``); None for any other id, such as an admin label's own."""
    base = request_id.partition("-")[0]
    if not _ISSUED_ID.fullmatch(base):
        return None
    return datetime.fromtimestamp(int(base[: 2 * TIME_BYTES], 16), UTC)


def logged_days(request_id: str) -> tuple[date, ...]:
    """The inference-log partition days the row of ``request_id`` can be in: none for
    an id the scorer did not issue in this format."""
    issued = issued_at(request_id)
    if issued is None:
        return ()
    first, last = issued.date(), (issued + LOGGED_WITHIN).date()
    return (first,) if first == last else (first, last)

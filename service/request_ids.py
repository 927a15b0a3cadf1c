"""Request ids the scorer issues, signed so that any replica can tell them from
made-up ones when a feedback label arrives for one.

An issued id is 40 hex digits (``core/request_ids.py`` has the format): 4 bytes of
issue time in epoch seconds, 8 random bytes, and an 8-byte keyed BLAKE2b MAC of both
(BLAKE2b's keyed mode is a MAC by design, and costs about a microsecond per id here,
where ``hmac`` with SHA-256 costs 3.6). The time lets the training job look for an
id's inference-log row in one day's partitions; the MAC covers it, so an accepted
label's id has the time the scorer wrote. The 8 random bytes are per second of
issue, so ids only collide when two of the same second share them. Replicas share
the key (``SCORER_REQUEST_ID_KEY``, one generated Secret in the chart) and no state:
a replica verifies an id a sibling issued by recomputing its MAC. A batch's row
``i`` is labelled as ``<id>-<i>``, with ``i`` below the batch limit.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from time import time as _now

from core.request_ids import ID_HEX_DIGITS, MAC_BYTES, NONCE_BYTES, SIGNED_BYTES

# The issue time: TIME_BYTES (4) unsigned big-endian bytes of epoch seconds.
_pack_time = struct.Struct(">I").pack


class RequestIdSigner:
    def __init__(self, key: str | None, *, batch_limit: int) -> None:
        # A key of any length becomes the 32 bytes BLAKE2b takes; no key means a
        # random one, valid for this process only.
        secret = key.encode("utf-8") if key else os.urandom(32)
        # Keyed once; copying the keyed state per id is a third cheaper than keying
        # a new hash each time (this runs on every request).
        self._keyed = hashlib.blake2b(key=hashlib.sha256(secret).digest(), digest_size=MAC_BYTES)
        self.batch_limit = batch_limit

    def _mac(self, signed: bytes) -> bytes:
        mac = self._keyed.copy()
        mac.update(signed)
        return mac.digest()

    def issue(self) -> str:
        """A new id, issued now. On every request: kept to a few C calls (the MAC
        inline rather than through ``issue_at``)."""
        signed = _pack_time(int(_now())) + os.urandom(NONCE_BYTES)
        mac = self._keyed.copy()
        mac.update(signed)
        return (signed + mac.digest()).hex()

    def issue_at(self, seconds: int) -> str:
        """An id issued at ``seconds`` (epoch): for tests and benchmarks that log
        rows of another day."""
        signed = _pack_time(seconds) + os.urandom(NONCE_BYTES)
        return (signed + self._mac(signed)).hex()

    def issued(self, request_id: str) -> bool:
        """Whether ``request_id`` is an id this key issued, or row ``i`` of one
        (``<id>-<i>``: decimal, no leading zero, below the batch limit)."""
        base, dash, row = request_id.partition("-")
        if dash and not (
            row.isdigit()
            and row.isascii()
            and (row == "0" or row[0] != "0")
            and int(row) < self.batch_limit
        ):
            return False
        if len(base) != ID_HEX_DIGITS:
            return False
        try:
            signed = bytes.fromhex(base[: 2 * SIGNED_BYTES])
        except ValueError:
            return False
        return hmac.compare_digest(self._mac(signed).hex(), base[2 * SIGNED_BYTES :])

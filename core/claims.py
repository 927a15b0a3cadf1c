"""Retrain claims: one training per decision, whoever triggers it.

A drift run (local or Kubernetes mode) and ``POST /retrain`` on any scorer replica
claim the retrain of a model for a decision window before they start anything: the
claim is ``retrain-claims/<model>/<window>.json`` in the registry's storage, written
with :meth:`Storage.create_bytes` (``os.link`` on files, ``If-None-Match: *`` on S3),
so of any number of triggers racing for one window exactly one gets it, and the others
learn who holds it and start nothing. The window is the UTC hour of the decision, the
bucket the drift job already named its Kubernetes Job after.

A claim is released only when nothing was started under it (the Job could not be
created, the subprocess could not be spawned), so another trigger may try again in the
same window; a training that started, even one that failed, keeps it. Old claims are
never read again (the window has passed) and may be deleted by anyone.

This module is part of the shared core: the scorer and the drift job both use it, and
neither imports the other.
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime

from pydantic import BaseModel

from core import layout
from core.errors import ObjectExistsError, ObjectNotFoundError, RetrainClaimedError
from core.storage import Storage, create_once

TRIGGER_DRIFT = "drift"
TRIGGER_SCORER_API = "scorer-api"
TRIGGER_SCHEDULE = "schedule"

_WINDOW_FORMAT = "%Y%m%dT%H"
# A claim found, then gone before it could be read, was released by a trigger that
# started nothing: try again, a bounded number of times.
_ATTEMPTS = 3


class RetrainClaim(BaseModel):
    """Who claimed the retrain of a window, when, and why."""

    model: str
    window: str
    trigger: str
    host: str
    claimed_at: datetime
    reason: str
    # Tells this claim from another one of the same window (a released then retaken
    # one), and makes the record unique for create_once.
    token: str

    def describe(self) -> str:
        return f"{self.trigger} on {self.host} at {self.claimed_at.isoformat()} ({self.reason})"


def decision_window(when: datetime) -> str:
    """The decision window of a moment: its UTC hour, e.g. ``20261125T12``. A naive
    date-time is UTC, as everywhere in the stack."""
    utc = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    return utc.strftime(_WINDOW_FORMAT)


def claim_retrain(
    storage: Storage,
    model: str,
    *,
    window: str,
    trigger: str,
    host: str,
    reason: str,
    now: datetime,
) -> RetrainClaim:
    """Claims the retrain of ``model`` for ``window``, or raises
    :class:`RetrainClaimedError` naming the holder. A storage failure raises
    StorageError: without a claim, nothing may be started."""
    key = layout.retrain_claim_key(model, window)
    claim = RetrainClaim(
        model=model,
        window=window,
        trigger=trigger,
        host=host,
        claimed_at=now.astimezone(UTC),
        reason=" ".join(reason.split()),
        token=secrets.token_hex(8),
    )
    body = claim.model_dump_json(indent=2).encode("utf-8")
    for _ in range(_ATTEMPTS):
        try:
            create_once(storage, key, body, content_type="application/json")
        except ObjectExistsError:
            try:
                holder = _read(storage, key)
            except ObjectNotFoundError:
                continue  # released meanwhile: the window is free again
            raise _claimed(storage, key, model, window, holder) from None
        return claim
    raise _claimed(storage, key, model, window, None)


def release(storage: Storage, claim: RetrainClaim) -> None:
    """Gives the claim back when nothing was started under it. Only its holder calls
    this, and nobody else can write the key while the claim exists, so reading the
    token and then deleting cannot remove another trigger's claim."""
    key = layout.retrain_claim_key(claim.model, claim.window)
    try:
        current = _read(storage, key)
    except ObjectNotFoundError:
        return
    if current is not None and current.token == claim.token:
        storage.delete(key)


def _read(storage: Storage, key: str) -> RetrainClaim | None:
    """The claim at ``key``; None when its record is unreadable (it still holds the
    window: the key exists)."""
    raw = storage.read_bytes(key)
    try:
        return RetrainClaim.model_validate(json.loads(raw))
    except ValueError:  # not JSON, or not a claim (ValidationError is a ValueError)
        return None


def _claimed(
    storage: Storage, key: str, model: str, window: str, holder: RetrainClaim | None
) -> RetrainClaimedError:
    who = (
        holder.describe()
        if holder
        else f"a trigger whose record {storage.url_for(key)} is unreadable"
    )
    return RetrainClaimedError(
        f"the retrain of model {model} for decision window {window} (UTC hour) was "
        f"already claimed by {who}",
        key=key,
        holder=holder.model_dump(mode="json", exclude={"token"}) if holder else None,
    )

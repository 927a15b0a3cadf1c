"""Starting a retrain: the one launcher behind the scorer's ``POST /retrain`` and the
drift job's trigger.

A retrain is started in one of two ways (:class:`RetrainMode`): a local
``python -m training train`` subprocess on the same registry, or a Job created from
the training CronJob through the API server (:mod:`core.k8s_jobs`, whose
``kubernetes`` client is imported only when a Job is created). Either way, the retrain
of the decision window is claimed first (:mod:`core.claims`), and the claim is given
back when nothing could be started under it, so of any number of triggers racing for
one window exactly one starts a training.

What is left to each role is its policy: the scorer maps the outcomes to HTTP answers
and watches its subprocess without blocking the event loop; the drift job decides
(cooldown, thresholds), waits for its subprocess and records what it started.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol, TypeVar

from core import claims, k8s_jobs
from core.errors import RetrainError, StorageError
from core.storage import Storage

log = logging.getLogger(__name__)

DEFAULT_TRAINING_CRONJOB = "accident-triage-training"

T = TypeVar("T")


class RetrainMode(StrEnum):
    LOCAL = "local"
    """Run ``python -m training train`` as a subprocess of this process."""
    KUBERNETES = "kubernetes"
    """Create a Job from the training CronJob through the API server."""
    DISABLED = "disabled"
    """Start nothing."""


@dataclass(frozen=True)
class RetrainTarget:
    """What a retrain trains, and where: the same registry the trigger reads."""

    registry_uri: str
    model_name: str
    raw_uri: str | None = None
    """``--raw`` of the local training command; None: the training job's own default."""
    training_cronjob: str = DEFAULT_TRAINING_CRONJOB
    namespace: str | None = None
    """Namespace of the training CronJob; None: the pod's own."""

    @classmethod
    def of(cls, settings: RetrainSettings) -> RetrainTarget:
        """The target a role's settings name, in the fields every role calls alike."""
        return cls(
            registry_uri=settings.registry_uri,
            model_name=settings.model_name,
            raw_uri=settings.training_raw_uri,
            training_cronjob=settings.training_cronjob,
            namespace=settings.namespace,
        )


class RetrainSettings(Protocol):
    """The settings of a role that can start a retrain (the scorer, the drift job)."""

    @property
    def registry_uri(self) -> str: ...
    @property
    def model_name(self) -> str: ...
    @property
    def training_raw_uri(self) -> str | None: ...
    @property
    def training_cronjob(self) -> str: ...
    @property
    def namespace(self) -> str | None: ...


def training_command(target: RetrainTarget) -> list[str]:
    """The local retrain: the training CLI of this interpreter on the same registry."""
    command = [
        sys.executable,
        "-m",
        "training",
        "train",
        "--registry-uri",
        target.registry_uri,
        "--model-name",
        target.model_name,
    ]
    if target.raw_uri:
        command += ["--raw-uri", target.raw_uri]
    return command


def training_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The training subprocess's environment: ours, minus the scorer's settings (its
    admin key above all), which the training job has no use for."""
    source = os.environ if environ is None else environ
    return {k: v for k, v in source.items() if not k.startswith("SCORER_")}


def training_summary(stdout: bytes | None) -> dict[str, Any]:
    """The JSON summary the training CLI prints last; ``{"output": ...}`` (its tail)
    when it printed something else."""
    text = (stdout or b"").decode("utf-8", errors="replace")
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {"output": text.strip()[-2000:]}
    return value if isinstance(value, dict) else {"output": text.strip()[-2000:]}


def wait_for_training(process: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
    """Waits for a local training run and returns its summary. Raises RetrainError when
    it failed, or ran longer than ``timeout`` seconds (it is then killed)."""
    try:
        stdout, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as error:
        process.kill()
        process.communicate()
        raise RetrainError(
            f"local retrain (pid {process.pid}) did not finish within {timeout:.0f} s: killed"
        ) from error
    if process.returncode != 0:
        raise RetrainError(f"local retrain failed with exit code {process.returncode}")
    return training_summary(stdout)


class RetrainLauncher:
    """Claims the retrain of a decision window and starts it, locally or as a Job.

    ``trigger`` names the caller in the claim and in the Job's ``triage/trigger``
    label (:data:`core.claims.TRIGGER_DRIFT`, :data:`core.claims.TRIGGER_SCORER_API`).
    """

    def __init__(
        self,
        target: RetrainTarget,
        *,
        claim_storage: Storage,
        trigger: str,
        host: str,
        namespace_file: Path = k8s_jobs.SERVICE_ACCOUNT_NAMESPACE,
    ) -> None:
        self.target = target
        # The registry's storage: the one root every trigger of this model shares.
        self.claim_storage = claim_storage
        self.trigger = trigger
        self.host = host
        self.namespace_file = namespace_file

    # --- the claim ------------------------------------------------------------------

    def claim(self, reason: str, now: datetime) -> claims.RetrainClaim:
        """Claims the window of ``now``; raises RetrainClaimedError naming the holder,
        or StorageError (without a claim, nothing may be started)."""
        return claims.claim_retrain(
            self.claim_storage,
            self.target.model_name,
            window=claims.decision_window(now),
            trigger=self.trigger,
            host=self.host,
            reason=reason,
            now=now,
        )

    def release(self, claim: claims.RetrainClaim) -> None:
        """Gives back a claim under which nothing was started. Best effort: a claim that
        cannot be given back only holds its window (one hour)."""
        try:
            claims.release(self.claim_storage, claim)
        except StorageError as error:
            log.warning("cannot give the retrain claim back", extra={"error": str(error)})

    def launch(self, reason: str, now: datetime, start: Callable[[], T]) -> T:
        """Claims the window, then calls ``start``; when ``start`` raises, nothing was
        started, so the claim is given back before the error goes on."""
        claim = self.claim(reason, now)
        try:
            return start()
        except BaseException:
            self.release(claim)
            raise

    # --- local ----------------------------------------------------------------------

    def command(self) -> list[str]:
        return training_command(self.target)

    def start_local(self) -> subprocess.Popen[bytes]:
        """Starts the training command; its stderr (JSON logs) joins ours, its stdout
        (the summary) is read by :func:`wait_for_training`."""
        try:
            process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                env=training_environment(),
            )
        except OSError as error:
            raise RetrainError(f"cannot start the training command: {error}") from error
        log.info("training run started", extra={"pid": process.pid, "trigger": self.trigger})
        return process

    # --- kubernetes -----------------------------------------------------------------

    def namespace(self) -> str | None:
        """The training CronJob's namespace: the configured one, else the pod's own;
        None outside a pod."""
        if self.target.namespace:
            return self.target.namespace
        with contextlib.suppress(OSError):
            return self.namespace_file.read_text().strip() or None
        return None

    def job_name(self, dedupe_key: str) -> str:
        return k8s_jobs.job_name(self.target.training_cronjob, dedupe_key)

    def create_job(
        self,
        namespace: str,
        *,
        reason: str,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
        dedupe_key: str | None = None,
    ) -> str:
        """Creates a Job from the training CronJob, labelled with the trigger; returns
        its name. Raises what :func:`core.k8s_jobs.create_job_from_cronjob` raises."""
        return k8s_jobs.create_job_from_cronjob(
            namespace,
            self.target.training_cronjob,
            reason=reason,
            labels={k8s_jobs.TRIGGER_LABEL: self.trigger, **(labels or {})},
            annotations=dict(annotations or {}),
            dedupe_key=dedupe_key,
        )

"""``POST /retrain``: starts a training run and lets hot reload pick up its result.

* local mode runs ``python -m training train`` as a background subprocess of the
  scorer, one at a time; when it ends, the alias is polled at once, so a promoted
  version is served seconds later;
* kubernetes mode creates a Job from the training CronJob (through
  ``core.k8s_jobs``, imported only in that mode); the regular alias poll picks
  up the promoted version;
* disabled mode refuses.

Before starting anything, both modes claim the retrain of the current decision window
(:mod:`core.claims`, in the registry's storage), the claim the drift job takes too:
of the drift runs and API calls of one UTC hour, on any replica, one starts a training
and the others get 409 naming who holds the claim. A claim under which nothing could
be started is given back.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from core import claims
from core.errors import RetrainClaimedError, StorageError
from core.storage import Storage
from service.errors import (
    ModelLoadError,
    RetrainConflictError,
    RetrainDisabledError,
    RetrainLaunchError,
)
from service.metrics import ScorerMetrics
from service.model_holder import ModelHolder
from service.settings import RetrainMode, ScorerSettings
from service.storage_executor import StorageExecutor

log = logging.getLogger(__name__)

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
TRIGGER = claims.TRIGGER_SCORER_API
"""Value of the Job's ``triage/trigger`` label and of the claim's trigger (the drift
job sets its own)."""


@dataclass(frozen=True)
class Launched:
    mode: RetrainMode
    run: str
    detail: str


class RetrainLauncher:
    def __init__(
        self,
        settings: ScorerSettings,
        holder: ModelHolder,
        metrics: ScorerMetrics,
        *,
        storage_executor: StorageExecutor,
        host: str,
        namespace_file: Path = SERVICE_ACCOUNT_NAMESPACE,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.settings = settings
        self.holder = holder
        self.metrics = metrics
        # Claims are storage calls: on the storage pool, never queued behind (or ahead
        # of) the model calls of large batches.
        self.storage_executor = storage_executor
        self.host = host
        self.namespace_file = namespace_file
        # Names the decision window of a request; tests pin it to one hour.
        self.clock = clock or _utc_now
        self._process: asyncio.subprocess.Process | None = None
        self._watcher: asyncio.Task[None] | None = None
        self.last_exit_code: int | None = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def launch(self, reason: str) -> Launched:
        try:
            if self.settings.retrain_mode is RetrainMode.DISABLED:
                raise RetrainDisabledError(
                    "retraining from the API is disabled (SCORER_RETRAIN_MODE=disabled)"
                )
            if self.settings.retrain_mode is RetrainMode.LOCAL:
                # This replica's own run first: its message is the more precise one.
                self._refuse_while_running()
                claim = await self._claim(reason)
                launch = self._launch_local
            else:
                namespace = self.namespace()
                claim = await self._claim(reason)
                launch = functools.partial(self._launch_kubernetes, namespace=namespace)
            try:
                launched = await launch(reason)
            except BaseException:
                # Nothing was started under the claim: another trigger may try again.
                # Best effort: a claim that cannot be given back only holds its hour.
                with contextlib.suppress(StorageError):
                    await self.storage_executor.run(claims.release, self._claim_storage, claim)
                raise
        except Exception:
            self.metrics.retrain_requests.labels("rejected").inc()
            raise
        self.metrics.retrain_requests.labels("accepted").inc()
        return launched

    @property
    def _claim_storage(self) -> Storage:
        # The registry's storage: the one root the drift job and every replica share.
        return self.holder.registry.storage

    async def _claim(self, reason: str) -> claims.RetrainClaim:
        now = self.clock()
        try:
            return await self.storage_executor.run(
                claims.claim_retrain,
                self._claim_storage,
                self.settings.model_name,
                window=claims.decision_window(now),
                trigger=TRIGGER,
                host=self.host,
                reason=reason,
                now=now,
            )
        except RetrainClaimedError as error:
            raise RetrainConflictError(str(error)) from error
        except StorageError as error:
            log.error("cannot claim the retrain", extra={"error": str(error)})
            raise RetrainLaunchError(
                "cannot claim the retrain: the model storage failed (see the scorer's log)"
            ) from error

    # --- local ----------------------------------------------------------------------

    def command(self) -> list[str]:
        command = [
            sys.executable,
            "-m",
            "training",
            "train",
            "--registry",
            self.settings.registry_uri,
            "--model-name",
            self.settings.model_name,
        ]
        if self.settings.retrain_raw_uri:
            command += ["--raw", self.settings.retrain_raw_uri]
        return command

    def _refuse_while_running(self) -> None:
        if self.running:
            assert self._process is not None
            raise RetrainConflictError(
                f"a training run is already in progress (pid {self._process.pid})"
            )

    async def _launch_local(self, reason: str) -> Launched:
        self._refuse_while_running()
        # The training job needs no scorer secret (the admin key above all).
        env = {k: v for k, v in os.environ.items() if not k.startswith("SCORER_")}
        try:
            process = await asyncio.create_subprocess_exec(
                *self.command(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=None,  # its JSON logs join the scorer's
                env=env,
            )
        except OSError as error:
            raise RetrainLaunchError(f"cannot start the training command: {error}") from error
        self._process = process
        self._watcher = asyncio.create_task(self._watch(process), name="retrain-watcher")
        log.info("training run started", extra={"pid": process.pid, "reason": reason})
        return Launched(
            RetrainMode.LOCAL,
            str(process.pid),
            "training started as a local subprocess; a promoted version is served when it ends",
        )

    async def _watch(self, process: asyncio.subprocess.Process) -> None:
        try:
            stdout, _ = await asyncio.wait_for(
                process.communicate(), self.settings.retrain_timeout_seconds
            )
        except TimeoutError:
            process.kill()
            await process.wait()
            log.error(
                "training run killed after its timeout",
                extra={"pid": process.pid, "timeout": self.settings.retrain_timeout_seconds},
            )
            self.last_exit_code = process.returncode
            return
        self.last_exit_code = process.returncode
        summary = _summary(stdout)
        if process.returncode != 0:
            log.error(
                "training run failed", extra={"pid": process.pid, "exit_code": process.returncode}
            )
            return
        log.info(
            "training run finished",
            extra={
                "pid": process.pid,
                "status": summary.get("status"),
                "version": summary.get("version"),
                "promoted": summary.get("promoted"),
                "reason": summary.get("reason"),
            },
        )
        # A failed load is logged and counted by the holder; the old model keeps serving.
        with contextlib.suppress(ModelLoadError):
            await self.holder.refresh()

    # --- kubernetes -----------------------------------------------------------------

    def namespace(self) -> str:
        if self.settings.retrain_namespace:
            return self.settings.retrain_namespace
        try:
            return self.namespace_file.read_text().strip()
        except OSError as error:
            raise RetrainLaunchError(
                "not running in a Kubernetes pod (no service account namespace); set "
                "SCORER_RETRAIN_NAMESPACE"
            ) from error

    async def _launch_kubernetes(self, reason: str, *, namespace: str) -> Launched:
        # Imported here: only this mode needs the kubernetes client behind it.
        from core import errors as monitoring_errors
        from core import k8s_jobs

        try:
            job = await asyncio.to_thread(
                k8s_jobs.create_job_from_cronjob,
                namespace,
                self.settings.retrain_cronjob,
                reason=reason,
                labels={k8s_jobs.TRIGGER_LABEL: TRIGGER},
                annotations={k8s_jobs.LABEL_PREFIX + "requested-by": self.host},
            )
        except monitoring_errors.RetrainConflictError as error:
            # A Job of the CronJob is running, or this request's Job already exists.
            raise RetrainConflictError(str(error)) from error
        except Exception as error:
            # The Kubernetes client raises its own ApiException and urllib3 errors.
            log.error(
                "cannot create the training Job",
                extra={"error": str(error), "cronjob": self.settings.retrain_cronjob},
            )
            raise RetrainLaunchError(
                f"cannot create a Job from CronJob {namespace}/"
                f"{self.settings.retrain_cronjob}: {error}"
            ) from error
        log.info("training Job created", extra={"job": job, "namespace": namespace})
        return Launched(
            RetrainMode.KUBERNETES,
            job,
            f"Job {namespace}/{job} created from CronJob {self.settings.retrain_cronjob}; "
            "a promoted version is picked up by the next alias poll",
        )

    async def close(self) -> None:
        """On shutdown, a local training run dies with the scorer rather than being
        orphaned halfway through a publish (the registry is safe either way)."""
        if self.running:
            assert self._process is not None
            self._process.terminate()
            try:
                await asyncio.wait_for(self._process.wait(), 5)
            except TimeoutError:
                self._process.kill()
        if self._watcher is not None:
            self._watcher.cancel()


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _summary(stdout: bytes | None) -> dict[str, object]:
    try:
        value = json.loads(stdout or b"{}")
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}

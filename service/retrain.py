"""``POST /retrain``: starts a training run and lets hot reload pick up its result.

The launching itself (the retrain claim, the local subprocess, the Job from the
training CronJob) is :mod:`core.retrain`, shared with the drift job. What is the
scorer's own:

* the HTTP answers: disabled mode is 403, a claimed window or a running training 409
  naming who, a failure to claim or to start 503;
* nothing blocks the event loop: the claim and the start run on the storage pool,
  never queued behind (or ahead of) the model calls of large batches;
* local mode runs one training at a time per replica, waited for on a thread of its
  own; when it ends the alias is polled at once, so a promoted version is served
  seconds later. In kubernetes mode the regular alias poll picks it up. A scorer pinned
  to a version (SCORER_MODEL_VERSION) serves neither, and its answer says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from core import claims, k8s_jobs
from core import retrain as core_retrain
from core.errors import RetrainClaimedError, RetrainError, StorageError
from core.errors import RetrainConflictError as JobConflictError
from core.retrain import RetrainMode, RetrainTarget
from service.errors import (
    ModelLoadError,
    RetrainConflictError,
    RetrainDisabledError,
    RetrainLaunchError,
)
from service.metrics import ScorerMetrics
from service.model_holder import ModelHolder
from service.settings import ScorerSettings
from service.storage_executor import StorageExecutor

log = logging.getLogger(__name__)

TRIGGER = claims.TRIGGER_SCORER_API
"""Value of the Job's ``triage/trigger`` label and of the claim's trigger (the drift
job sets its own)."""

T = TypeVar("T")


@dataclass(frozen=True)
class Launched:
    mode: RetrainMode
    run: str
    detail: str


class ApiRetrain:
    def __init__(
        self,
        settings: ScorerSettings,
        holder: ModelHolder,
        metrics: ScorerMetrics,
        *,
        storage_executor: StorageExecutor,
        host: str,
        namespace_file: Path = k8s_jobs.SERVICE_ACCOUNT_NAMESPACE,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.settings = settings
        self.holder = holder
        self.metrics = metrics
        self.storage_executor = storage_executor
        self.host = host
        self.launcher = core_retrain.RetrainLauncher(
            RetrainTarget.of(settings),
            # The registry's storage: the one root the drift job and every replica share.
            claim_storage=holder.registry.storage,
            trigger=TRIGGER,
            host=host,
            namespace_file=namespace_file,
        )
        # Names the decision window of a request; tests pin it to one hour.
        self.clock = clock or _utc_now
        self._process: subprocess.Popen[bytes] | None = None
        self._watcher: asyncio.Task[None] | None = None
        # Waits for the local training run (one at a time): an hour-long wait must not
        # hold a thread of the default pool, which scores batches.
        self._waiter: ThreadPoolExecutor | None = None
        self.last_exit_code: int | None = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    async def launch(self, reason: str) -> Launched:
        try:
            launched = await self._launch(reason)
        except Exception:
            self.metrics.retrain_requests.labels("rejected").inc()
            raise
        self.metrics.retrain_requests.labels("accepted").inc()
        return launched

    async def _launch(self, reason: str) -> Launched:
        mode = self.settings.retrain_mode
        if mode is RetrainMode.DISABLED:
            raise RetrainDisabledError(
                "retraining from the API is disabled (SCORER_RETRAIN_MODE=disabled)"
            )
        launcher = self.launcher
        if mode is RetrainMode.LOCAL:
            # This replica's own run first: its message is the more precise one.
            self._refuse_while_running()
            process = await self._claim_and_start(launcher, reason, self._start_local(launcher))
            return self._watch(process, reason)
        namespace = self.namespace()
        job = await self._claim_and_start(
            launcher,
            reason,
            functools.partial(
                launcher.create_job,
                namespace,
                reason=reason,
                annotations={k8s_jobs.LABEL_PREFIX + "requested-by": self.host},
            ),
            failure=f"cannot create a Job from CronJob {namespace}/"
            f"{self.settings.training_cronjob}: ",
        )
        log.info("training Job created", extra={"job": job, "namespace": namespace})
        return Launched(
            RetrainMode.KUBERNETES,
            job,
            f"Job {namespace}/{job} created from CronJob {self.settings.training_cronjob}; "
            + self._serving_note("a promoted version is picked up by the next alias poll"),
        )

    def _serving_note(self, following: str) -> str:
        pinned = self.settings.model_version
        if pinned is None:
            return following
        return (
            f"this scorer is pinned to {pinned} (SCORER_MODEL_VERSION) and will not serve "
            "a promoted version"
        )

    async def _claim_and_start(
        self,
        launcher: core_retrain.RetrainLauncher,
        reason: str,
        start: Callable[[], T],
        *,
        failure: str = "",
    ) -> T:
        try:
            return await self.storage_executor.run(launcher.launch, reason, self.clock(), start)
        except RetrainClaimedError as error:
            raise RetrainConflictError(str(error)) from error
        except JobConflictError as error:
            # A Job of the CronJob is running, or this request's Job already exists.
            raise RetrainConflictError(str(error)) from error
        except StorageError as error:
            log.error("cannot claim the retrain", extra={"error": str(error)})
            raise RetrainLaunchError(
                "cannot claim the retrain: the model storage failed (see the scorer's log)"
            ) from error
        except RetrainConflictError:
            raise
        except Exception as error:
            # RetrainError, and whatever else the Kubernetes client raises.
            log.error(
                "cannot start the retrain",
                extra={"error": str(error), "cronjob": self.settings.training_cronjob},
            )
            raise RetrainLaunchError(f"{failure}{error}") from error

    # --- local ----------------------------------------------------------------------

    def _refuse_while_running(self) -> None:
        if self.running:
            assert self._process is not None
            raise RetrainConflictError(
                f"a training run is already in progress (pid {self._process.pid})"
            )

    def _start_local(
        self, launcher: core_retrain.RetrainLauncher
    ) -> Callable[[], subprocess.Popen[bytes]]:
        def start() -> subprocess.Popen[bytes]:
            # Checked again under the claim: two requests may both have passed the
            # first check while neither had started.
            self._refuse_while_running()
            process = launcher.start_local()
            self._process = process
            return process

        return start

    def _watch(self, process: subprocess.Popen[bytes], reason: str) -> Launched:
        self._waiter = self._waiter or ThreadPoolExecutor(1, thread_name_prefix="retrain")
        self._watcher = asyncio.create_task(self._wait(process), name="retrain-watcher")
        log.info("training run started", extra={"pid": process.pid, "reason": reason})
        return Launched(
            RetrainMode.LOCAL,
            str(process.pid),
            "training started as a local subprocess; "
            + self._serving_note("a promoted version is served when it ends"),
        )

    async def _wait(self, process: subprocess.Popen[bytes]) -> None:
        loop = asyncio.get_running_loop()
        try:
            summary = await loop.run_in_executor(
                self._waiter,
                core_retrain.wait_for_training,
                process,
                self.settings.training_timeout_seconds,
            )
        except RetrainError as error:
            self.last_exit_code = process.returncode
            log.error("training run failed", extra={"pid": process.pid, "error": str(error)})
            return
        self.last_exit_code = process.returncode
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
        namespace = self.launcher.namespace()
        if namespace is None:
            raise RetrainLaunchError(
                "not running in a Kubernetes pod (no service account namespace); set "
                "SCORER_NAMESPACE"
            )
        return namespace

    async def close(self) -> None:
        """On shutdown, a local training run dies with the scorer rather than being
        orphaned halfway through a publish (the registry is safe either way)."""
        if self.running:
            assert self._process is not None
            self._process.terminate()
            try:
                await asyncio.wait_for(asyncio.to_thread(self._process.wait), 5)
            except TimeoutError:
                self._process.kill()
        if self._watcher is not None:
            self._watcher.cancel()
        if self._waiter is not None:
            self._waiter.shutdown(wait=False)


def _utc_now() -> datetime:
    return datetime.now(UTC)

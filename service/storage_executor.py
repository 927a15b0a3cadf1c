"""The app's own bounded thread pool for blocking storage calls: inference-log
flushes, feedback writes, alias polls and model downloads.

Everything else that goes to a thread (the model call for a batch of
``THREAD_MODEL_ROWS`` rows or more) uses the event loop's default pool. Before the
split they shared that pool, so with the storage hanging every thread could end up
blocked on a socket and a 300-row batch waited for the storage's timeout instead
of milliseconds (docs/scorer.md, "Speed"). With its own pool, a hanging storage holds at most
``storage_threads`` threads, and only storage work waits behind them.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class StorageExecutor:
    """Created with the app, started by its lifespan, shut down after the last flush."""

    def __init__(self, threads: int) -> None:
        if threads < 1:
            raise ValueError("the storage executor needs at least one thread")
        self.threads = threads
        self._pool: ThreadPoolExecutor | None = None

    def start(self) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="storage")

    async def run(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``function(*args, **kwargs)`` on a storage thread."""
        if self._pool is None:
            raise RuntimeError("the storage executor is not started (the app's lifespan starts it)")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(function, *args, **kwargs))

    def shutdown(self) -> None:
        """Stops taking work. A call stuck on a hanging storage is not waited for: its
        thread ends when the storage client's own timeout fires."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

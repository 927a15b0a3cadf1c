"""A token bucket per client, for the endpoints a client could flood (POST /feedback).

Each client (its IP address as the server sees it: behind a proxy that is the
proxy's, so set the limit for the busiest legitimate caller) gets ``burst`` tokens,
refilled at ``rate`` per second; a request takes one or is refused with the time until
the next one. At most ``max_clients`` buckets are kept: the least recently seen go
first (a forgotten client starts again with a full bucket, which a flood of distinct
addresses could only exploit one burst per address).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable


class RateLimiter:
    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.max_clients = max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, client: str) -> float | None:
        """None when ``client`` may go on, else the seconds until it may."""
        now = self._clock()
        tokens, last = self._buckets.pop(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        self._buckets[client] = (tokens, now)
        if len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return None if allowed else (1.0 - tokens) / self.rate

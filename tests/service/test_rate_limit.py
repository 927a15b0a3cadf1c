"""The per-client token bucket, on an injected clock."""

from __future__ import annotations

import pytest

from service.rate_limit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(2.0, 3, clock=clock)
    assert [limiter.take("a") for _ in range(3)] == [None, None, None]
    assert limiter.take("a") == pytest.approx(0.5)
    assert limiter.take("b") is None, "each client has its own bucket"
    clock.now += 0.5
    assert limiter.take("a") is None
    assert limiter.take("a") == pytest.approx(0.5)
    clock.now += 60
    assert [limiter.take("a") for _ in range(4)][-1] is not None, "refills up to the burst"


def test_only_the_most_recent_clients_are_kept() -> None:
    clock = Clock()
    limiter = RateLimiter(1.0, 1, max_clients=2, clock=clock)
    for client in ("a", "b", "c"):
        assert limiter.take(client) is None
    assert limiter.take("c") is not None
    assert limiter.take("a") is None, "a was forgotten: it starts with a full bucket"

from __future__ import annotations

from mediad.ratelimit import RateLimiter


def test_a_burst_then_the_steady_rate() -> None:
    limiter = RateLimiter(rate_per_min=60, burst=3)
    assert [limiter.take("a", 0.0) for _ in range(3)] == [None, None, None]
    wait = limiter.take("a", 0.0)
    assert wait is not None and 0.99 < wait <= 1.0
    assert limiter.take("a", 0.5) is not None
    assert limiter.take("a", 1.01) is None  # one token a second
    assert limiter.take("b", 0.0) is None  # keys are separate


def test_tokens_never_exceed_the_burst() -> None:
    limiter = RateLimiter(rate_per_min=60, burst=2)
    assert limiter.take("a", 0.0) is None
    assert [limiter.take("a", 1000.0) for _ in range(3)][:2] == [None, None]
    assert limiter.take("a", 1000.0) is not None


def test_memory_stays_bounded() -> None:
    limiter = RateLimiter(rate_per_min=60, burst=1, max_keys=100)
    for n in range(1000):
        limiter.take(f"client-{n}", float(n))
    assert len(limiter._buckets) <= 100

"""Pure: a token bucket per client, for ``POST /downloads``."""

from __future__ import annotations


class RateLimiter:
    """``rate_per_min`` requests a minute per key, in bursts of up to ``burst``."""

    def __init__(self, rate_per_min: int, burst: int | None = None, max_keys: int = 10_000) -> None:
        self.rate_per_s = rate_per_min / 60
        self.burst = float(burst if burst is not None else max(1, rate_per_min // 4))
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}  # key → (tokens, at)

    def take(self, key: str, now: float) -> float | None:
        """None when the request may go; else the seconds until it may."""
        tokens, at = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate_per_s)
        if tokens >= 1:
            self._remember(key, tokens - 1, now)
            return None
        self._remember(key, tokens, now)
        return (1 - tokens) / self.rate_per_s

    def _remember(self, key: str, tokens: float, now: float) -> None:
        if key not in self._buckets and len(self._buckets) >= self.max_keys:
            # Forget the fullest buckets: they are the ones that lose nothing by it.
            full = [
                k
                for k, (t, at) in self._buckets.items()
                if t + (now - at) * self.rate_per_s >= self.burst
            ]
            for k in full or list(self._buckets)[: self.max_keys // 10]:
                del self._buckets[k]
        self._buckets[key] = (tokens, now)

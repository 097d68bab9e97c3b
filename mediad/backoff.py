"""Exponential backoff: how long to wait before the next try of something that failed.

    backoff = Backoff(initial=0.5, factor=2, maximum=30)
    while True:
        try:
            await start()
            backoff.reset()          # the next failure waits `initial` again
        except Failure:
            await asyncio.sleep(backoff.next())   # 0.5, 1, 2, 4 … 30, 30 …

Pure: no clock and no sleeping, so its users decide when to reset (after a success,
after a run that lasted long enough) and how to wait.
"""

from __future__ import annotations


class Backoff:
    """Delays ``initial``, ``initial * factor``, ``initial * factor**2``… capped at
    ``maximum``; ``reset()`` starts over from ``initial``."""

    def __init__(self, initial: float = 0.5, factor: float = 2.0, maximum: float = 30.0) -> None:
        if initial <= 0:
            raise ValueError(f"backoff: initial must be above 0, not {initial}")
        if factor < 1:
            raise ValueError(f"backoff: factor must be at least 1, not {factor}")
        if maximum < initial:
            raise ValueError(f"backoff: maximum {maximum} is below initial {initial}")
        self.initial = float(initial)
        self.factor = float(factor)
        self.maximum = float(maximum)
        self._delay = self.initial
        self.attempts = 0  # how many delays next() gave since the last reset

    def peek(self) -> float:
        """The delay the next ``next()`` will give, without taking it."""
        return self._delay

    def next(self) -> float:
        """The delay to wait now; the one after it grows by ``factor`` (up to ``maximum``)."""
        delay = self._delay
        self._delay = min(self.maximum, delay * self.factor)
        self.attempts += 1
        return delay

    def reset(self) -> None:
        """Start over: the next delay is ``initial`` again."""
        self._delay = self.initial
        self.attempts = 0

    def __repr__(self) -> str:
        return (
            f"Backoff(initial={self.initial}, factor={self.factor}, maximum={self.maximum},"
            f" next={self._delay}, attempts={self.attempts})"
        )


def restart_backoff() -> Backoff:
    """The delays before starting again a child that exited (a worker, a managed server):
    0.5 s, doubling up to 30 s."""
    return Backoff(initial=0.5, factor=2.0, maximum=30.0)

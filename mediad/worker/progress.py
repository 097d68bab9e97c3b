"""What every progress parser returns, and the coercions they share.

Pure code: the parsers in ``ytdlp_progress``, ``aria2_progress`` and ``ffmpeg_progress``
turn tool output into :class:`Progress` values; the runners decide what to send.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from mediad import wire

STAGES = wire.WORKER_STAGES

# A parser never reports 100 while the tool still works on the job: the runner sends 100
# itself once the tool has exited successfully.
RUNNING_MAX = 99.9

# The largest count the service's event validator accepts.
MAX_COUNT = wire.MAX_INT

_SIZE_RE = re.compile(r"(?P<num>\d+(?:\.\d+)?)\s*(?P<unit>[KMGTPEZY]i)?B")
_UNIT_POWER = {"": 0, "K": 1, "M": 2, "G": 3, "T": 4, "P": 5, "E": 6, "Z": 7, "Y": 8}


@dataclass(frozen=True, slots=True)
class Progress:
    """One progress reading of a job.

    ``progress`` is a percentage from 0 to 100, or None when unknown (never a made-up 0);
    ``speed`` is in bytes per second and ``eta`` in seconds.
    """

    stage: str
    progress: float | None
    speed: int | None = None
    eta: int | None = None
    total_bytes: int | None = None
    downloaded_bytes: int | None = None

    def live(self) -> wire.Live:
        """What the worker sends: the percentage rounded to 2 places and within 0..100."""
        p = self.progress
        progress = None if p is None else round(min(100.0, max(0.0, p)), 2)
        return wire.Live(self.stage, progress, self.speed, self.eta, self.total_bytes)

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, not {self.stage!r}")
        p = self.progress
        if p is not None and not (math.isfinite(p) and 0.0 <= p <= 100.0):
            raise ValueError(f"progress must be from 0 to 100, not {p!r}")


def as_count(value: object) -> int | None:
    """A byte count, a number of seconds or a counter: a finite number from 0 to
    ``MAX_COUNT``, rounded down. Anything else (None, NaN, negative, text, bool) is None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or value < 0 or value > MAX_COUNT:
        return None
    return int(value)


def as_count_str(value: object) -> int | None:
    """:func:`as_count` for a number written as text, as aria2's RPC answers have it."""
    if isinstance(value, str):
        return as_count(int(value)) if is_digits(value.strip()) else None
    return as_count(value)


def is_digits(text: str) -> bool:
    """Only 0-9 (``str.isdigit`` also accepts "²", which ``int`` refuses)."""
    return text.isascii() and text.isdigit()


def percent(done: float, total: float, *, cap: float = 100.0) -> float | None:
    """``done / total`` as a percentage clamped to ``0..cap``; None when total is not > 0."""
    if not (math.isfinite(done) and math.isfinite(total)) or total <= 0:
        return None
    return min(cap, max(0.0, 100.0 * done / total))


def parse_size(text: str) -> int | None:
    """Bytes from a size as the tools print it: ``4227072B``, ``3.0MiB``, ``1010.50KiB``,
    ``0B``; None when ``text`` is not a size."""
    m = _SIZE_RE.fullmatch(text.strip())
    if m is None:
        return None
    unit = (m.group("unit") or "")[:1]
    return as_count(float(m.group("num")) * 1024 ** _UNIT_POWER[unit])

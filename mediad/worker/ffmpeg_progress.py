"""ffmpeg's ``-progress pipe:1`` blocks as :class:`Progress`.

ffmpeg prints ``key=value`` lines and closes each block with ``progress=continue`` or
``progress=end``. The percentage needs the input's duration, from ffprobe or from the
``Duration:`` line ffmpeg writes to stderr (:func:`parse_duration_line`); a live input has
none, and its progress stays unknown. ``progress=end`` also follows SIGINT/SIGTERM, so it
says the output is closed, not that the job succeeded: the exit code says that.
"""

from __future__ import annotations

import math
import re

from mediad.worker.progress import RUNNING_MAX, STAGES, Progress, as_count, is_digits, percent

_DURATION_RE = re.compile(r"\s*Duration:\s*(?:N/A|(?P<h>\d+):(?P<m>\d\d):(?P<s>\d\d(?:\.\d+)?))")
_CLOCK_RE = re.compile(r"(?P<h>\d+):(?P<m>\d\d):(?P<s>\d\d(?:\.\d+)?)")
_KEYS = frozenset({"out_time_us", "out_time_ms", "out_time", "speed", "total_size"})
_SPEED_RE = re.compile(r"(?P<x>\d+(?:\.\d+)?(?:e[+-]?\d+)?)\s*x")


class FfmpegProgressParser:
    """Reads the ``-progress`` stream line by line.

    ``duration_s`` is the input's duration (None when unknown or live: the percentage is
    then None). ``stage`` is what the job is doing while ffmpeg runs.
    """

    def __init__(self, duration_s: float | None, stage: str = "downloading") -> None:
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}")
        usable = duration_s is not None and math.isfinite(duration_s) and duration_s > 0
        self.duration_s = duration_s if usable else None
        self.stage = stage
        self.ended = False
        self._block: dict[str, str] = {}
        self._best: float | None = None

    def feed(self, line: str) -> Progress | None:
        """Take one line; return a :class:`Progress` at the end of each block."""
        key, sep, value = line.strip().partition("=")
        if not sep or not key:
            return None
        if key != "progress":
            if key in _KEYS:
                self._block[key] = value.strip()
            return None
        block, self._block = self._block, {}
        if value.strip() == "end":
            self.ended = True
        elif value.strip() != "continue":
            return None
        return self._progress(block)

    def _progress(self, block: dict[str, str]) -> Progress:
        out_us = _out_time_us(block)
        # No byte speed: ffmpeg reports a ratio to real time ("1.05x"), and total_size
        # lags behind what the muxer buffers, so bitrate x ratio would be a made-up number.
        return Progress(
            stage=self.stage,
            progress=self._percent(out_us),
            speed=None,
            eta=self._eta(out_us, _speed_x(block.get("speed"))),
            total_bytes=None,
            downloaded_bytes=_count(block.get("total_size")),
        )

    def _percent(self, out_us: int | None) -> float | None:
        """Never going down; below 100 until ``progress=end``, which reports what ffmpeg
        actually wrote (an interrupted run ends short of 100)."""
        if self.duration_s is not None and out_us is not None:
            cap = 100.0 if self.ended else RUNNING_MAX
            value = percent(out_us, self.duration_s * 1_000_000, cap=cap)
            if value is not None and (self._best is None or value > self._best):
                self._best = round(value, 2)
        return self._best

    def _eta(self, out_us: int | None, speed_x: float | None) -> int | None:
        if self.ended:
            return 0
        if self.duration_s is None or out_us is None or not speed_x:
            return None
        return math.ceil(max(0.0, self.duration_s - out_us / 1_000_000) / speed_x)


def parse_duration_line(line: str) -> float | None:
    """Seconds from ffmpeg's ``  Duration: 00:00:06.00, start: ...`` stderr line; None for
    ``Duration: N/A`` (a live stream) and for any other line."""
    m = _DURATION_RE.match(line)
    if m is None or m["h"] is None:
        return None
    return int(m["h"]) * 3600 + int(m["m"]) * 60 + float(m["s"])


def _out_time_us(block: dict[str, str]) -> int | None:
    # out_time_ms is microseconds too (an old ffmpeg mistake kept for compatibility).
    for key in ("out_time_us", "out_time_ms"):
        value = _count(block.get(key))
        if value is not None:
            return value
    m = _CLOCK_RE.fullmatch(block.get("out_time", ""))
    if m is None:  # N/A, or negative before the first packet
        return None
    return round((int(m["h"]) * 3600 + int(m["m"]) * 60 + float(m["s"])) * 1_000_000)


def _count(text: str | None) -> int | None:
    if text is None or not is_digits(text):
        return None  # N/A, negative or garbage
    return as_count(int(text))


def _speed_x(text: str | None) -> float | None:
    m = _SPEED_RE.fullmatch((text or "").strip())
    if m is None:
        return None
    value = float(m["x"])
    return value if math.isfinite(value) and value > 0 else None

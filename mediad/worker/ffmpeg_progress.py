"""ffmpeg's ``-progress pipe:1`` blocks as :class:`Progress`.

ffmpeg prints ``key=value`` lines and closes each block with ``progress=continue`` or
``progress=end``. The percentage needs the input's duration, from ffprobe or from the
``Duration:`` line ffmpeg writes to stderr (:func:`parse_duration_line`); a live input has
none, and its progress stays unknown. ``progress=end`` also follows SIGINT/SIGTERM, so it
says the output is closed, not that the job succeeded: the exit code says that.

With ``-loglevel level+info`` every stderr line carries its level (``[error] ...``,
``[hls @ 0x55...] [warning] ...``) while the ``-progress`` lines carry none, so one merged
stream separates cleanly: :class:`FfmpegLog` keeps the log lines that matter and
:func:`classify_error` turns them into an error code.
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from mediad.worker.progress import RUNNING_MAX, STAGES, Progress, as_count, is_digits, percent

_DURATION_RE = re.compile(r"\s*Duration:\s*(?:N/A|(?P<h>\d+):(?P<m>\d\d):(?P<s>\d\d(?:\.\d+)?))")
_CLOCK_RE = re.compile(r"(?P<h>\d+):(?P<m>\d\d):(?P<s>\d\d(?:\.\d+)?)")
_KEYS = frozenset({"out_time_us", "out_time_ms", "out_time", "speed", "total_size"})
_SPEED_RE = re.compile(r"(?P<x>\d+(?:\.\d+)?(?:e[+-]?\d+)?)\s*x")


# How many error and warning lines a run keeps for its message.
KEPT_LINES = 20
MAX_MESSAGE_CHARS = 500

_LOG_RE = re.compile(
    r"(?:\[(?P<component>[^\]@]+?) @ 0x[0-9a-f]+\] )?"
    r"\[(?P<level>panic|fatal|error|warning|info|verbose|debug|trace)\] ?(?P<text>.*)"
)
_FAILED_SEGMENT_RE = re.compile(r"Failed to open segment (?P<n>\d+) of playlist (?P<p>\d+)")
# Each line is checked against these in order, newest line first (see classify_error).
_ERROR_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("not_found", re.compile(r"Server returned 404\b|HTTP error 404\b")),
    ("http_error", re.compile(r"Server returned (?:[1-5]\d\d|[45]XX)\b|HTTP error \d{3}\b")),
    (
        "network",
        re.compile(
            r"Connection refused|Connection timed out|Connection reset|timed out"
            r"|Failed to resolve hostname|Name or service not known|name resolution"
            r"|Network is unreachable|No route to host|Broken pipe"
            r"|\bTLS\b|\bSSL\b|certificate",
            re.I,
        ),
    ),
    (
        "unsupported_url",
        re.compile(
            r"Invalid data found when processing input|not in allowed_(?:segment_)?extensions"
            r"|Protocol not found|No such (?:protocol|demuxer)",
            re.I,
        ),
    ),
)
# A deliberate refusal (a playlist pointing at file://, say) explains what follows it.
_REFUSED_RE = re.compile(
    r"Protocol '[^']*' not on whitelist|is not in allowed_(?:segment_)?extensions"
)
_ADDRESS_RE = re.compile(r"^\S+://\S+?: ")


@dataclass(frozen=True, slots=True)
class LogLine:
    """One stderr line of ``-loglevel level+...``, without its tags."""

    level: str
    text: str
    component: str | None = None


def parse_log_line(line: str) -> LogLine | None:
    """The level and text of a tagged log line; None for a ``-progress`` line or any
    other untagged output."""
    m = _LOG_RE.fullmatch(line.rstrip("\r\n"))
    if m is None:
        return None
    return LogLine(m["level"], m["text"].strip(), m["component"])


class FfmpegLog:
    """What a run's log says: the input's duration (its ``Duration:`` line), the last
    error and warning lines, and the HLS segments that could not be downloaded."""

    def __init__(self) -> None:
        self.duration_s: float | None = None
        self.duration_seen = False
        self.errors: deque[str] = deque(maxlen=KEPT_LINES)
        self.warnings: deque[str] = deque(maxlen=KEPT_LINES)
        self.failed_segments: set[tuple[int, int]] = set()
        self._first_segment_failure: str | None = None

    def feed(self, line: LogLine) -> None:
        if line.level in ("panic", "fatal", "error"):
            _append_new(self.errors, line.text)
        elif line.level == "warning":
            self._warning(line.text)
        elif line.level == "info" and not self.duration_seen:
            # The first Duration line is the input's (there is one input).
            if _DURATION_RE.match(line.text):
                self.duration_seen = True
                self.duration_s = parse_duration_line(line.text)

    def _warning(self, text: str) -> None:
        _append_new(self.warnings, text)
        m = _FAILED_SEGMENT_RE.search(text)
        if m is None:
            return
        self.failed_segments.add((int(m["p"]), int(m["n"])))
        if self._first_segment_failure is None:
            # The warning just before says why ("HTTP error 404 Not Found").
            causes = [w for w in list(self.warnings)[-3:-1] if _match(w)]
            self._first_segment_failure = f"{text}: {causes[-1]}" if causes else text

    def missing_segments(self) -> tuple[str, str] | None:
        """(errorCode, message) when segments were skipped, else None. ffmpeg's HLS
        reader skips a segment it cannot download and still exits 0: normal for a live
        stream that moved on, a hole in a finished (VOD) one."""
        if not self.failed_segments:
            return None
        detail = self._first_segment_failure or "a segment could not be downloaded"
        code = _match(detail)
        if code is None or code == "unsupported_url":
            code = "http_error"
        count = len(self.failed_segments)
        return code, _clip(f"{count} segment(s) of the stream could not be downloaded: {detail}")


def classify_error(
    errors: Sequence[str], warnings: Sequence[str], exit_code: int
) -> tuple[str, str]:
    """(errorCode, message) for a failed ffmpeg or ffprobe run.

    The newest error line that names a cause decides: ffmpeg's last line is often a
    generic ``URL: Input/output error`` after the line that says why. Warnings come next
    (ffmpeg logs some HTTP failures at warning level). A whitelist refusal wins over
    everything, since it is why the input then looked invalid.
    """
    lines = list(errors)
    last = lines[-1] if lines else None
    for line in lines:
        if _REFUSED_RE.search(line):
            return "unsupported_url", _message(f"refused to open it: {line}", last)
    for pool, final in ((lines, last), (list(warnings), None)):
        for line in reversed(pool):
            code = _match(line)
            if code is not None:
                return code, _message(line, final)
    if exit_code < 0 or exit_code == 255:
        how = f"by signal {-exit_code}" if exit_code < 0 else "(exit code 255)"
        return "interrupted", f"ffmpeg was stopped {how}"
    if last is not None:
        return "tool_failed", _clip(last)
    return "tool_failed", f"ffmpeg exited with code {exit_code}"


def parse_probe_duration(lines: Sequence[str]) -> float | None:
    """The duration ffprobe prints with ``-show_entries format=duration -of
    default=noprint_wrappers=1:nokey=1``: seconds, or None for ``N/A`` (a live stream)
    and when no line holds a positive number."""
    for line in reversed(lines):
        text = line.strip()
        if text == "N/A":
            return None
        try:
            value = float(text)
        except ValueError:
            continue
        if math.isfinite(value) and value > 0:
            return value
    return None


def _append_new(lines: deque[str], text: str) -> None:
    if text and (not lines or lines[-1] != text):
        lines.append(text)


def _match(line: str) -> str | None:
    for code, pattern in _ERROR_PATTERNS:
        if pattern.search(line):
            return code
    return None


def _message(cause: str, last: str | None) -> str:
    """The line that says why, then ffmpeg's final line when it adds something."""
    if last is None or last == cause or _ADDRESS_RE.sub("", last) in cause:
        return _clip(cause)
    return _clip(f"{cause} ({last})")


def _clip(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 1] + "…"


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

    @property
    def percent(self) -> float | None:
        """The highest percentage reported so far (None while unknown)."""
        return self._best

    def set_duration(self, duration_s: float | None) -> None:
        """Learn the duration late (from the ``Duration:`` line when ffprobe gave none)."""
        usable = duration_s is not None and math.isfinite(duration_s) and duration_s > 0
        self.duration_s = duration_s if usable else None

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

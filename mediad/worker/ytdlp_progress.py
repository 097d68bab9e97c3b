"""yt-dlp's output, one line at a time, as overall job progress, finished files and errors.

The runner starts yt-dlp with :data:`PROGRESS_ARGS`, merges stdout and stderr, splits the
stream on ``\\n`` and ``\\r`` and gives each line to :meth:`YtdlpParser.feed`. Besides the
JSON lines those arguments ask for, the parser reads yt-dlp's default human lines, so it
also copes with a yt-dlp that ignores the template.

Overall progress: a job is a list of items (playlist entries, else one), each downloaded
in one pass per format (``bestvideo+bestaudio`` is two passes with different file names).
Inside an item, passes are weighted by bytes: finished passes' bytes plus the current
pass's downloaded bytes, over finished bytes plus the current total. Since the next pass's
size is unknown until it starts, a pass that is not the item's last is scaled down to its
share of the item's passes, so the first of two passes ends at 50 and the value never
reaches 100 while a pass is still to come. Items share the job equally. The reported
value never goes down.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import orjson

from mediad.worker.progress import RUNNING_MAX, Progress, as_count, is_digits, parse_size

PROGRESS_ARGS: list[str] = [
    "--newline",
    "--color", "never",
    "--progress-delta", "0.1",
    "--no-quiet",
    "--progress-template",
    "download:[dl] %(progress.{status,downloaded_bytes,total_bytes,total_bytes_estimate,"
    "speed,eta,elapsed,fragment_index,fragment_count,filename})j",
    "--progress-template", "postprocess:[pp] %(progress.{status,postprocessor})j",
    "--print", "after_move:[file] %(filepath)j",
]  # fmt: skip

# Postprocessors by the key yt-dlp prints (``[Merger] ...``, ``"postprocessor": "Merger"``).
_PP_STAGES = {"Merger": "merging", "MoveFiles": "finalizing"}
_POSTPROCESSORS = frozenset({
    "Merger", "MoveFiles", "ExtractAudio", "Concat", "CopyStream", "EmbedSubtitle",
    "EmbedThumbnail", "Exec", "FixupDuplicateMoov", "FixupDuration", "FixupM3u8", "FixupM4a",
    "FixupStretched", "FixupTimestamp", "Metadata",
    "ModifyChapters", "SplitChapters", "SponsorBlock", "SubtitlesConvertor",
    "ThumbnailsConvertor", "VideoConvertor", "VideoRemuxer", "XAttrMetadata",
})  # fmt: skip

# What mediad runs before the download (run_ytdlp.LOOKALIKE_ARGS): no stage of its own.
_PRE_PROCESSORS = frozenset({"MetadataFromField", "MetadataParser"})

_FRAG = r"(?:\s+\(frag (?P<fi>\d+)(?:/(?P<fc>\d+))?\))?"
_SPEED = r"(?P<speed>Unknown B/s|\S+)"
_PERCENT_RE = re.compile(
    r"(?P<pct>\d+(?:\.\d+)?|N/A)%(?:\s+of\s+(?P<approx>~)?\s*(?P<total>\S+))?"
    rf"\s+at\s+{_SPEED}\s+ETA\s+(?P<eta>\S+){_FRAG}"
)
_BYTES_RE = re.compile(rf"(?P<done>\d\S*B)\s+at\s+{_SPEED}(?:\s+\([^)]*\))?{_FRAG}")
# "100%" without a decimal is yt-dlp's line for a finished pass ("100.0%" is still running).
_FINISHED_RE = re.compile(r"100%(?:\s+of\s+~?\s*(?P<total>\S+))?(?:\s+in\s+\S+)?(?:\s+at\s+\S+)?")
_FORMATS_RE = re.compile(r"\[info\] [^:]+: Downloading \d+ format\(s\): (?P<ids>.+)")
_RESUME_RE = re.compile(r"Resuming download at byte (?P<byte>\d+)")
_ITEM_RE = re.compile(r"Downloading item (?P<i>\d+) of (?P<n>\d+)")
_USAGE_RE = re.compile(r"[\w.-]+: error: (?P<msg>.+)")
_FORMAT_FILE_RE = re.compile(r"\.f[\w-]+\.\w+$")  # "name.f137.mp4": one format of a merge


@dataclass(frozen=True, slots=True)
class FileDone:
    """A file yt-dlp has finished and moved to its final place."""

    path: str


@dataclass(frozen=True, slots=True)
class _Sample:
    """One reading of the current pass."""

    downloaded: int | None = None
    total: int | None = None
    fraction: float | None = None  # 0..1 from fragments, for when bytes say nothing
    speed: int | None = None
    eta: int | None = None
    finished: bool = False  # the pass is over; ``total`` (else ``downloaded``) is its size


class _Tally:
    """Overall progress over items and passes; see the module docstring."""

    def __init__(self) -> None:
        self.items_total: int | None = None
        self.item_index = 1
        self.item_passes = 1
        self.item_done = 0
        self.item_bytes = 0  # finished passes of the current item
        self.job_bytes = 0  # finished passes of the whole job
        self.active = False
        self.sample = _Sample()
        self.floor: float | None = None
        self.moved = False  # the item's final file was reported ("[file] ...")

    def start_item(self, index: int | None = None, total: int | None = None) -> None:
        if index is not None:
            self.item_index, self.items_total = index, total
        self.item_passes, self.item_done, self.item_bytes = 1, 0, 0
        self.active, self.sample, self.moved = False, _Sample(), False

    def set_passes(self, passes: int) -> None:
        if self.item_done or self.active:  # a new item without "Downloading item i of n"
            self.start_item()
        self.item_passes = max(1, passes)

    def update(self, sample: _Sample) -> None:
        if sample.finished:
            self.finish_pass(sample.total if sample.total is not None else sample.downloaded)
        else:
            self.active, self.sample = True, sample

    def finish_pass(self, size: int | None, *, whole_item: bool = False) -> None:
        size = size if size is not None else self.sample.downloaded or 0
        self.item_bytes += size
        self.job_bytes += size
        self.item_done = self.item_passes if whole_item else self.item_done + 1
        self.active, self.sample = False, _Sample()

    def overall(self) -> float | None:
        """The job's percentage, never below what was reported before."""
        value = self._compute()
        if value is not None and (self.floor is None or value > self.floor):
            self.floor = value
        return self.floor

    def _compute(self) -> float | None:
        item = self._item_fraction()
        if item is None:
            return None
        if self.items_total:
            item = (min(self.item_index, self.items_total) - 1 + item) / self.items_total
        value = round(100.0 * min(1.0, max(0.0, item)), 2)
        return value if self._all_done() else min(value, RUNNING_MAX)

    def _item_fraction(self) -> float | None:
        if not self.active:
            return min(1.0, self.item_done / self.item_passes) if self.item_done else None
        share = min(1.0, (self.item_done + 1) / self.item_passes)
        bytes_part = self._bytes_fraction()
        return None if bytes_part is None else bytes_part * share

    def _bytes_fraction(self) -> float | None:
        done, total, fraction = self.sample.downloaded, self.sample.total, self.sample.fraction
        if total is None and fraction and done:
            total = round(done / fraction)  # fragments tell how far: estimate the size
        if total and done is not None:
            return min(1.0, (self.item_bytes + done) / (self.item_bytes + total))
        if fraction is not None and not self.item_bytes:
            return fraction
        return None

    def _all_done(self) -> bool:
        """100 only once the last item's file is in place: merging and moving come after
        the last byte, and a playlist may still have items to go."""
        last_item = self.items_total is None or self.item_index >= self.items_total
        return last_item and self.moved and not self.active and self.item_done >= self.item_passes

    def progress(self, stage: str) -> Progress:
        downloading = stage == "downloading"
        s = self.sample if self.active and downloading else _Sample()
        # Bytes cover the files seen so far: later passes' sizes are not known yet.
        known = self.job_bytes or None
        return Progress(
            stage=stage,
            progress=self.overall(),
            speed=s.speed,
            eta=s.eta,
            total_bytes=self.job_bytes + s.total if s.total else known,
            downloaded_bytes=self.job_bytes + s.downloaded if s.downloaded is not None else known,
        )


class YtdlpParser:
    """Reads yt-dlp's merged output line by line (see the module docstring).

    :meth:`feed` returns a :class:`Progress` when the job's progress or stage changed, a
    :class:`FileDone` for each finished file, else None. ``errors`` and ``warnings``
    collect the ``ERROR:`` and ``WARNING:`` messages; :func:`classify_error` reads them.
    """

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self.resumed_from: int | None = None  # "Resuming download at byte N", for logs
        self._tally = _Tally()
        self._stage = "downloading"
        self._pass_key: str | None = None
        self._sidecars: set[str] = set()  # subtitle files: downloaded, but not a format
        self._error_pending = False

    def feed(self, line: str) -> Progress | FileDone | None:
        """Parse one line; ``\\r``-separated updates inside it are parsed in turn and the
        last result wins, except that a :class:`FileDone` is never dropped."""
        result: Progress | FileDone | None = None
        for part in line.split("\r"):
            event = self._feed_one(part.rstrip())
            if event is not None and not isinstance(result, FileDone):
                result = event
        return result

    def _feed_one(self, line: str) -> Progress | FileDone | None:
        if not line:
            return None
        if self._error_pending and not line.startswith(("[dl] ", "[pp] ", "[file] ", "ERROR:")):
            # yt-dlp writes "ERROR: \r[download] Got error: ...": split on \r, the
            # message arrives as the next line.
            self._error_pending = False
            self.errors.append(line.strip())
            return None
        self._error_pending = False
        if line.startswith("[dl] "):
            return self._on_dl(_load_json(line[5:]))
        if line.startswith("[pp] "):
            return self._on_pp(_load_json(line[5:]))
        if line.startswith("[file] "):
            path = _load_json(line[7:])
            if not isinstance(path, str) or not path:
                return None
            self._tally.moved = True
            return FileDone(path)
        if line.startswith("[download] "):
            return self._on_download(line[11:].strip())
        if line.startswith("[info] "):
            self._on_info(line)
            return None
        return self._on_other(line)

    # -- JSON lines -----------------------------------------------------------------

    def _on_dl(self, data: object) -> Progress | None:
        if not isinstance(data, dict) or data.get("status") not in ("downloading", "finished"):
            return None
        name = data.get("filename")
        key = name if isinstance(name, str) else self._pass_key
        if key in self._sidecars:
            return None
        self._switch_pass(key)
        self._tally.update(_sample_from_json(data))
        return self._downloading()

    def _on_pp(self, data: object) -> Progress | None:
        if not isinstance(data, dict) or data.get("status") != "started":
            return None
        name = data.get("postprocessor")
        if not isinstance(name, str) or name in _PRE_PROCESSORS:
            return None
        return self._set_stage(_PP_STAGES.get(name, "postprocessing"))

    # -- human lines ----------------------------------------------------------------

    def _on_download(self, rest: str) -> Progress | None:
        if rest.startswith("Destination: "):
            key = rest[13:].strip()
            if key not in self._sidecars:
                self._switch_pass(key)
            self._pass_key = key
            return None
        sample = _human_sample(rest)
        if sample is None:
            return self._on_download_notice(rest)
        if self._pass_key in self._sidecars:
            return None
        self._tally.update(sample)
        return self._downloading()

    def _on_download_notice(self, rest: str) -> Progress | None:
        if rest.endswith(" has already been downloaded"):
            path = rest.removesuffix(" has already been downloaded")
            # The merged file being there means every format of the item is done.
            one_format = self._tally.item_passes > 1 and _FORMAT_FILE_RE.search(path)
            self._tally.finish_pass(None, whole_item=not one_format)
            return self._downloading()
        if m := _RESUME_RE.fullmatch(rest):
            self.resumed_from = as_count(int(m["byte"]))
        elif m := _ITEM_RE.fullmatch(rest):
            self._tally.start_item(int(m["i"]), int(m["n"]))
        return None

    def _on_info(self, line: str) -> None:
        if m := _FORMATS_RE.fullmatch(line):
            # "137+140, 251": each "+" part is its own pass, each ", " entry too.
            ids = [f for f in m["ids"].split(", ") if f]
            self._tally.set_passes(sum(len(f.split("+")) for f in ids))
        elif line.startswith("[info] Writing video subtitles to: "):
            self._sidecars.add(line.split(": ", 1)[1].strip())

    def _on_other(self, line: str) -> Progress | None:
        if line.startswith("ERROR:"):
            message = line[6:].strip()
            if message:
                self.errors.append(message)
            self._error_pending = not message
        elif line.startswith("WARNING:"):
            self.warnings.append(line[8:].strip())
        elif m := _USAGE_RE.fullmatch(line):
            self.errors.append(m["msg"].strip())  # bad options: exit 2, no ERROR: prefix
        elif line.startswith("[") and (tag := line[1:].partition("]")[0]) in _POSTPROCESSORS:
            return self._set_stage(_PP_STAGES.get(tag, "postprocessing"))
        return None

    # -- shared ---------------------------------------------------------------------

    def _switch_pass(self, key: str | None) -> None:
        """A pass for another file started: close the one that stopped without a word."""
        if key != self._pass_key and self._tally.active:
            self._tally.finish_pass(None)
        self._pass_key = key

    def _downloading(self) -> Progress:
        self._stage = "downloading"
        return self._tally.progress(self._stage)

    def _set_stage(self, stage: str | None) -> Progress | None:
        if stage is None or stage == self._stage:
            return None
        self._stage = stage
        return self._tally.progress(stage)


def _load_json(text: str) -> object:
    """The JSON value in ``text``, or None. yt-dlp's ``j`` uses Python's json, which writes
    ``NaN`` and ``Infinity``: orjson refuses those, the standard parser takes them."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def _sample_from_json(data: dict[str, Any]) -> _Sample:
    # total_bytes_estimate stands in for an absent total; a total of 0 means unknown.
    total = _count(data, "total_bytes") or _count(data, "total_bytes_estimate")
    return _Sample(
        downloaded=_count(data, "downloaded_bytes"),
        total=total or None,
        fraction=_fraction(_count(data, "fragment_index"), _count(data, "fragment_count")),
        speed=_count(data, "speed"),
        eta=_count(data, "eta"),
        finished=data.get("status") == "finished",
    )


def _count(data: dict[str, Any], key: str) -> int | None:
    return as_count(data.get(key))


def _human_sample(rest: str) -> _Sample | None:
    """The reading in a default ``[download]`` progress line (prefix removed), if it is one."""
    if m := _FINISHED_RE.fullmatch(rest):
        return _Sample(total=parse_size(m["total"]) if m["total"] else None, finished=True)
    if m := _PERCENT_RE.fullmatch(rest):
        return _sample_from_percent(m)
    if m := _BYTES_RE.fullmatch(rest):
        return _sample_from_bytes(m)
    return None


def _sample_from_percent(m: re.Match[str]) -> _Sample:
    total = parse_size(m["total"]) if m["total"] else None
    pct = None if m["pct"] == "N/A" else min(100.0, float(m["pct"]))
    speed, eta = _speed(m["speed"]), _eta(m["eta"])
    if total and pct is not None:
        # The printed size is rounded: the bytes come from the printed percentage.
        return _Sample(round(total * pct / 100), total, None, speed, eta)
    fraction = _fraction(_int(m["fi"]), _int(m["fc"]))
    if fraction is None and pct is not None:
        fraction = pct / 100
    return _Sample(None, None, fraction, speed, eta)


def _sample_from_bytes(m: re.Match[str]) -> _Sample:
    fraction = _fraction(_int(m["fi"]), _int(m["fc"]))
    return _Sample(parse_size(m["done"]), None, fraction, _speed(m["speed"]))


def _fraction(index: int | None, count: int | None) -> float | None:
    if index is None or not count:
        return None
    return min(1.0, index / count)


def _int(text: str | None) -> int | None:
    return int(text) if text else None


def _speed(text: str) -> int | None:
    return parse_size(text.removesuffix("/s"))


def _eta(text: str) -> int | None:
    """Seconds from ``SS``, ``MM:SS`` or ``HH:MM:SS``; None for ``Unknown``/``--:--:--``."""
    parts = text.split(":")
    if not all(is_digits(p) for p in parts) or len(parts) > 3:
        return None
    seconds = 0
    for p in parts:
        seconds = seconds * 60 + int(p)
    return seconds


# -- errors -------------------------------------------------------------------------

# (errorCode, pattern) in priority order: when several errors were printed, the first
# code in this list that any of them matches wins.
_ERROR_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("interrupted", re.compile(r"Interrupted by user", re.I)),
    ("disk_full", re.compile(r"No space left on device|Errno 28\]|Disk quota exceeded", re.I)),
    ("unsupported_url", re.compile(
        r"Unsupported URL|is not a valid URL|No video formats found", re.I)),
    ("not_found", re.compile(
        r"HTTP Error (404|410)|Video unavailable"
        r"|This video (is unavailable|does not exist|has been removed)", re.I)),
    ("http_error", re.compile(r"HTTP Error \d{3}|HTTPError", re.I)),
    ("network", re.compile(
        r"Connection refused|Name or service not known|name resolution|nodename nor servname"
        r"|No address associated|getaddrinfo|timed out|Network is unreachable|No route to host"
        r"|Connection reset|Connection aborted|Remote end closed|IncompleteRead"
        r"|TransportError|SSLError|\[SSL|CERTIFICATE_VERIFY_FAILED|Got error:"
        r"|Unable to download", re.I)),
]  # fmt: skip
_CAUSE_RE = re.compile(r"\s*\(caused by .*\)\s*$")
_PREFIX_RE = re.compile(r"^\[[^\]]+\]\s+(?:[^\s:]+:\s+)?")


def classify_error(errors: list[str], exit_code: int) -> tuple[str, str]:
    """(errorCode, message) for a failed yt-dlp run, from the ``ERROR:`` messages the
    parser collected and the exit code (negative: killed by that signal)."""
    for code, pattern in _ERROR_PATTERNS:
        for error in errors:
            if pattern.search(error):
                return code, clean_message(error)
    if exit_code < 0:
        return "interrupted", f"yt-dlp was stopped by signal {-exit_code}"
    if errors:
        return "tool_failed", clean_message(errors[-1])
    if exit_code == 2:
        return "tool_failed", "yt-dlp rejected its options"
    return "tool_failed", f"yt-dlp exited with code {exit_code}"


def clean_message(error: str) -> str:
    """An ``ERROR:`` message for people: no ``[extractor] id:`` prefix, no Python cause,
    no bug-report boilerplate."""
    text = error.split("; please report this issue", 1)[0]
    text = _CAUSE_RE.sub("", _PREFIX_RE.sub("", text.strip(), count=1))
    return text.strip() or error.strip()

"""The worker protocol: every message between ``mediad serve`` and its workers on the
``/worker`` Socket.IO namespace, defined once and used by both sides.

Server → worker: ``job:start`` (:class:`JobStart`), ``job:control`` (:class:`JobControl`).
Worker → server: ``progress`` (:class:`ProgressEvent`), ``completed``
(:class:`CompletedEvent`), ``failed`` (:class:`FailedEvent`), ``stopped``
(:class:`StoppedEvent`), ``heartbeat`` (:class:`Heartbeat`).

A subscription's check (``checks.py``) is an attempt too: ``listing:start``
(:class:`ListingStart`) asks for the entries of a URL, the worker answers with one or
more ``listed`` (:class:`ListedEvent`, the last with ``final``), or ``failed``; its
``failed``, ``stopped``, ``heartbeat`` and ``job:control`` carry the check's id as
``jobId``. In the Redis list a check is ``check:{checkId}`` (:data:`CHECK_PREFIX`).

Each message is a frozen value with ``encode()`` (the JSON-ready dict sent) and a
``parse_*`` function that returns it or raises ``InvalidEvent`` saying what is wrong —
the receiving side always parses, whichever side it is. Pure code: the parsers run for
every worker event (thousands a second), so they check by hand instead of through a
schema library. The bounds are here and nowhere else (the worker's parsers cap their
counts at :data:`MAX_INT`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from mediad.errors import InvalidEvent

# Message names.
JOB_START = "job:start"
JOB_CONTROL = "job:control"
PROGRESS = "progress"
COMPLETED = "completed"
FAILED = "failed"
STOPPED = "stopped"
HEARTBEAT = "heartbeat"
LISTING_START = "listing:start"
LISTED = "listed"
CHECK_PREFIX = "check:"

# The stages a worker reports; a job's stage is also "queued" before any worker has it.
WORKER_STAGES = ("downloading", "merging", "postprocessing", "finalizing")
JOB_STAGES = ("queued", *WORKER_STAGES)
_WORKER_STAGE_SET = frozenset(WORKER_STAGES)
# What the server may ask of a running tool: stop it (cancel, pause, abort — the
# worker answers ``stopped``) or finish a live recording with what it has (stop).
STOPPING_ACTIONS = frozenset({"cancel", "pause", "abort"})
CONTROL_ACTIONS = STOPPING_ACTIONS | {"stop"}
JOB_TYPES = frozenset({"ytdlp", "aria2", "ffmpeg", "twitter"})

ERROR_CODE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
MAX_MESSAGE = 2000
MAX_FILES = 10_000
MAX_NAME = 255
MAX_INT = 2**62
MAX_ATTEMPT = 1000
MAX_URL = 8192
# A listing: entries per ``listed`` message, and the size a worker packs one up to (the
# /worker namespace takes messages up to 64 KiB).
MAX_ENTRIES_PER_MESSAGE = 500
LISTED_CHUNK_BYTES = 48 * 1024
MAX_ENTRY_URL = 2048
MAX_ENTRY_KEY = 256
MAX_TITLE = 300
MAX_LISTING_ITEMS = 1000


@dataclass(frozen=True, slots=True)
class Live:
    """A running job's live progress: the fields every progress message, progress row,
    running attempt and job snapshot carry."""

    stage: str = "downloading"
    progress: float | None = None  # unknown until the tool says (a live stream never does)
    speed: int | None = None
    eta: int | None = None
    total_bytes: int | None = None

    def to_api(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "progress": self.progress,
            "speed": self.speed,
            "eta": self.eta,
            "totalBytes": self.total_bytes,
        }


@dataclass(frozen=True, slots=True)
class JobStart:
    job_id: str
    attempt: int
    url: str
    type: str
    options: dict[str, Any]

    def encode(self) -> dict[str, Any]:
        return {
            "jobId": self.job_id,
            "attempt": self.attempt,
            "url": self.url,
            "type": self.type,
            "options": self.options,
        }


@dataclass(frozen=True, slots=True)
class JobControl:
    job_id: str
    attempt: int
    action: str

    def encode(self) -> dict[str, Any]:
        return {"jobId": self.job_id, "attempt": self.attempt, "action": self.action}


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    job_id: str
    attempt: int
    live: Live

    def encode(self) -> dict[str, Any]:
        return {"jobId": self.job_id, "attempt": self.attempt, **self.live.to_api()}


@dataclass(frozen=True, slots=True)
class FileEntry:
    name: str
    size: int

    def encode(self) -> dict[str, Any]:
        return {"name": self.name, "size": self.size}


@dataclass(frozen=True, slots=True)
class CompletedEvent:
    job_id: str
    attempt: int
    files: tuple[FileEntry, ...]

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    def encode(self) -> dict[str, Any]:
        return {
            "jobId": self.job_id,
            "attempt": self.attempt,
            "files": [f.encode() for f in self.files],
        }


@dataclass(frozen=True, slots=True)
class FailedEvent:
    job_id: str
    attempt: int
    error_code: str
    message: str

    def encode(self) -> dict[str, Any]:
        return {
            "jobId": self.job_id,
            "attempt": self.attempt,
            "errorCode": self.error_code,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class StoppedEvent:
    job_id: str
    attempt: int
    action: str

    def encode(self) -> dict[str, Any]:
        return {"jobId": self.job_id, "attempt": self.attempt, "action": self.action}


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """A worker's beat; with a job, whether its tool worked since the last one."""

    job_id: str | None = None
    attempt: int | None = None
    active: bool = False

    def encode(self) -> dict[str, Any]:
        if self.job_id is None:
            return {}
        return {"jobId": self.job_id, "attempt": self.attempt, "active": self.active}


@dataclass(frozen=True, slots=True)
class ListingStart:
    """List the entries of ``url`` (at most ``max_items``) without downloading them."""

    check_id: str
    attempt: int
    url: str
    type: str
    max_items: int
    # The cookie file the subscription's options name (a members-only playlist): the
    # server put a copy in the check's work folder, as for a job.
    cookies: str | None = None

    def encode(self) -> dict[str, Any]:
        return {
            "checkId": self.check_id,
            "attempt": self.attempt,
            "url": self.url,
            "type": self.type,
            "maxItems": self.max_items,
            "cookies": self.cookies,
        }


@dataclass(frozen=True, slots=True)
class ListedEntry:
    extractor: str
    entry_id: str
    url: str
    title: str | None = None

    def encode(self) -> dict[str, Any]:
        return {"extractor": self.extractor, "id": self.entry_id, "url": self.url,
                "title": self.title}  # fmt: skip


@dataclass(frozen=True, slots=True)
class ListedEvent:
    check_id: str
    attempt: int
    entries: tuple[ListedEntry, ...]
    title: str | None = None
    final: bool = True

    def encode(self) -> dict[str, Any]:
        return {
            "checkId": self.check_id,
            "attempt": self.attempt,
            "title": self.title,
            "entries": [e.encode() for e in self.entries],
            "final": self.final,
        }


def listed_chunks(
    check_id: str, attempt: int, title: str | None, entries: list[ListedEntry]
) -> list[ListedEvent]:
    """A listing as ``listed`` messages that each fit :data:`LISTED_CHUNK_BYTES` (an
    entry's fields are bounded, so one always fits); the last is ``final``."""
    chunks: list[list[ListedEntry]] = [[]]
    size = 0
    for entry in entries:
        cost = 64 + sum(len(str(v).encode()) for v in entry.encode().values())
        if chunks[-1] and (size + cost > LISTED_CHUNK_BYTES or
                           len(chunks[-1]) >= MAX_ENTRIES_PER_MESSAGE):  # fmt: skip
            chunks.append([])
            size = 0
        chunks[-1].append(entry)
        size += cost
    last = len(chunks) - 1
    return [
        ListedEvent(check_id, attempt, tuple(c), title, final=i == last)
        for i, c in enumerate(chunks)
    ]


def parse_listing_start(data: Any) -> ListingStart:
    d = _mapping(data)
    url, kind, max_items = d.get("url"), d.get("type"), d.get("maxItems")
    if not isinstance(url, str) or not 0 < len(url) <= MAX_URL:
        raise InvalidEvent(f"url must be a string of 1 to {MAX_URL} characters")
    if kind not in JOB_TYPES:
        raise InvalidEvent(f"type must be one of {sorted(JOB_TYPES)}")
    if type(max_items) is not int or not 1 <= max_items <= MAX_LISTING_ITEMS:
        raise InvalidEvent(f"maxItems must be a whole number from 1 to {MAX_LISTING_ITEMS}")
    cookies = d.get("cookies")
    if cookies is not None and not (isinstance(cookies, str) and 0 < len(cookies) <= 64):
        raise InvalidEvent("cookies must be null or a cookie file's name")
    check_id, attempt = job_id(d.get("checkId")), _attempt(d.get("attempt"))
    return ListingStart(check_id, attempt, url, kind, max_items, cookies)


def parse_listed(data: Any) -> ListedEvent:
    d = _mapping(data)
    entries = d.get("entries")
    if not isinstance(entries, list) or len(entries) > MAX_ENTRIES_PER_MESSAGE:
        raise InvalidEvent(f"entries must be a list of at most {MAX_ENTRIES_PER_MESSAGE}")
    final = d.get("final", True)
    if not isinstance(final, bool):
        raise InvalidEvent("final must be true or false")
    return ListedEvent(
        check_id=job_id(d.get("checkId")),
        attempt=_attempt(d.get("attempt")),
        entries=tuple(_entry(e) for e in entries),
        title=_optional_text(d.get("title"), "title", MAX_TITLE),
        final=final,
    )


def _entry(value: Any) -> ListedEntry:
    if not isinstance(value, dict):
        raise InvalidEvent("each entry must be an object")
    url = value.get("url")
    if not isinstance(url, str) or not 0 < len(url) <= MAX_ENTRY_URL:
        raise InvalidEvent(f"an entry's url must be a string of 1 to {MAX_ENTRY_URL} characters")
    extractor = value.get("extractor")
    if not isinstance(extractor, str) or not 0 < len(extractor) <= 64:
        raise InvalidEvent("an entry's extractor must be a string of 1 to 64 characters")
    entry_id = value.get("id")
    if not isinstance(entry_id, str) or not 0 < len(entry_id) <= MAX_ENTRY_KEY:
        raise InvalidEvent(f"an entry's id must be a string of 1 to {MAX_ENTRY_KEY} characters")
    return ListedEntry(
        clean_text(extractor),
        clean_text(entry_id),
        url,
        _optional_text(value.get("title"), "title", MAX_TITLE),
    )


def _optional_text(value: Any, name: str, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidEvent(f"{name} must be a string or null")
    return clean_text(value)[:limit] or None


def parse_job_start(data: Any) -> JobStart:
    d = _mapping(data)
    url, job_type, options = d.get("url"), d.get("type"), d.get("options")
    if not isinstance(url, str) or not 0 < len(url) <= MAX_URL:
        raise InvalidEvent(f"url must be a string of 1 to {MAX_URL} characters")
    if job_type not in JOB_TYPES:
        raise InvalidEvent(f"type must be one of {sorted(JOB_TYPES)}")
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise InvalidEvent("options must be an object")
    return JobStart(job_id(d.get("jobId")), _attempt(d.get("attempt")), url, job_type, options)


def parse_job_control(data: Any) -> JobControl:
    d = _mapping(data)
    action = d.get("action")
    if action not in CONTROL_ACTIONS:
        raise InvalidEvent(f"action must be one of {sorted(CONTROL_ACTIONS)}")
    return JobControl(job_id(d.get("jobId")), _attempt(d.get("attempt")), action)


def parse_stopped(data: Any) -> StoppedEvent:
    d = _mapping(data)
    action = d.get("action")
    return StoppedEvent(
        job_id(d.get("jobId")),
        _attempt(d.get("attempt")),
        action if action in STOPPING_ACTIONS else "abort",
    )


def parse_heartbeat(data: Any) -> Heartbeat:
    """Lenient: a beat without a (valid) job still says the worker is alive."""
    if not isinstance(data, dict) or "jobId" not in data:
        return Heartbeat()
    try:
        return Heartbeat(
            job_id(data.get("jobId")), _attempt(data.get("attempt")), data.get("active") is True
        )
    except InvalidEvent:
        return Heartbeat()


def parse_progress(data: Any) -> ProgressEvent:
    d = _mapping(data)
    stage = d.get("stage")
    if not isinstance(stage, str) or stage not in _WORKER_STAGE_SET:
        raise InvalidEvent(f"stage must be one of {sorted(WORKER_STAGES)}")
    return ProgressEvent(
        job_id=job_id(d.get("jobId")),
        attempt=_attempt(d.get("attempt")),
        live=Live(
            stage=stage,
            progress=_percent(d.get("progress")),
            speed=_optional_count(d.get("speed"), "speed"),
            eta=_optional_count(d.get("eta"), "eta"),
            total_bytes=_optional_count(d.get("totalBytes"), "totalBytes"),
        ),
    )


def parse_completed(data: Any) -> CompletedEvent:
    d = _mapping(data)
    files = d.get("files")
    if not isinstance(files, list) or not files or len(files) > MAX_FILES:
        raise InvalidEvent(f"files must be a list of 1 to {MAX_FILES} entries")
    entries = tuple(_file(f) for f in files)
    if len({f.name for f in entries}) != len(entries):
        raise InvalidEvent("file names must be unique")
    return CompletedEvent(
        job_id=job_id(d.get("jobId")), attempt=_attempt(d.get("attempt")), files=entries
    )


def parse_failed(data: Any) -> FailedEvent:
    d = _mapping(data)
    code = d.get("errorCode")
    if not isinstance(code, str) or not ERROR_CODE.fullmatch(code):
        raise InvalidEvent("errorCode must be a snake_case string")
    message = d.get("message")
    if not isinstance(message, str):
        raise InvalidEvent("message must be a string")
    return FailedEvent(
        job_id=job_id(d.get("jobId")),
        attempt=_attempt(d.get("attempt")),
        error_code=code,
        message=clean_text(message)[:MAX_MESSAGE],
    )


def clean_text(text: str) -> str:
    """Text PostgreSQL and JSON can take: no NUL, no lone surrogates."""
    return text.encode("utf-8", "replace").decode("utf-8").replace("\x00", "\ufffd")


def job_id(value: Any) -> str:
    """The canonical form of a job id, or InvalidEvent."""
    if not isinstance(value, str) or len(value) > 64:
        raise InvalidEvent("jobId must be a UUID string")
    try:
        return str(UUID(value))
    except ValueError:
        raise InvalidEvent("jobId must be a UUID string") from None


def safe_file_name(name: Any) -> str:
    """A file name that is one path component: no separators, NUL, control characters."""
    if not isinstance(name, str):
        raise InvalidEvent("file name must be a string")
    try:
        size = len(name.encode())
    except UnicodeEncodeError:  # a lone surrogate
        raise InvalidEvent("file name must be valid Unicode") from None
    if not 0 < size <= MAX_NAME:
        raise InvalidEvent("file name must be 1 to 255 bytes")
    if name in (".", "..") or "/" in name or "\\" in name:
        raise InvalidEvent("file name must be a single path component")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise InvalidEvent("file name must not contain control characters")
    return name


def _mapping(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise InvalidEvent("event payload must be an object")
    return data


def _attempt(value: Any) -> int:
    if type(value) is not int or not 1 <= value <= MAX_ATTEMPT:
        raise InvalidEvent("attempt must be a whole number from 1")
    return value


def _percent(value: Any) -> float | None:
    if value is None:
        return None
    # NaN and infinities fail the range check; no math.isfinite (it overflows on huge ints).
    if type(value) not in (int, float) or not 0 <= value <= 100:
        raise InvalidEvent("progress must be a number from 0 to 100, or null")
    return float(value)


def _optional_count(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if type(value) is float and math.isfinite(value) and value.is_integer():
        value = int(value)
    if type(value) is not int or not 0 <= value <= MAX_INT:
        raise InvalidEvent(f"{name} must be a non-negative whole number, or null")
    return value


def _file(value: Any) -> FileEntry:
    if not isinstance(value, dict):
        raise InvalidEvent("each file must be an object")
    size = value.get("size")
    if type(size) is not int or not 0 <= size <= MAX_INT:
        raise InvalidEvent("file size must be a non-negative whole number")
    return FileEntry(name=safe_file_name(value.get("name")), size=size)

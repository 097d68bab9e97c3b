"""Pure: validation of the events workers and clients send.

Each ``parse_*`` returns a small frozen value or raises ``InvalidEvent`` saying what is
wrong. They run for every worker event (thousands a second), so they check by hand
instead of through a schema library.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from mediad.errors import InvalidEvent

WORKER_STAGES = frozenset({"downloading", "merging", "postprocessing", "finalizing"})
ERROR_CODE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
MAX_MESSAGE = 2000
MAX_FILES = 10_000
MAX_NAME = 255
MAX_INT = 2**62


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    job_id: str
    attempt: int
    stage: str
    progress: float | None
    speed: int | None
    eta: int | None
    total_bytes: int | None


@dataclass(frozen=True, slots=True)
class FileEntry:
    name: str
    size: int


@dataclass(frozen=True, slots=True)
class CompletedEvent:
    job_id: str
    attempt: int
    files: tuple[FileEntry, ...]

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


@dataclass(frozen=True, slots=True)
class FailedEvent:
    job_id: str
    attempt: int
    error_code: str
    message: str


def parse_progress(data: Any) -> ProgressEvent:
    d = _mapping(data)
    stage = d.get("stage")
    if not isinstance(stage, str) or stage not in WORKER_STAGES:
        raise InvalidEvent(f"stage must be one of {sorted(WORKER_STAGES)}")
    return ProgressEvent(
        job_id=job_id(d.get("jobId")),
        attempt=_attempt(d.get("attempt")),
        stage=stage,
        progress=_percent(d.get("progress")),
        speed=_optional_count(d.get("speed"), "speed"),
        eta=_optional_count(d.get("eta"), "eta"),
        total_bytes=_optional_count(d.get("totalBytes"), "totalBytes"),
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


def parse_attempt(value: Any) -> int:
    return _attempt(value)


def _attempt(value: Any) -> int:
    if type(value) is not int or not 1 <= value <= 1000:
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

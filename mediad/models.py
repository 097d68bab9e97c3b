"""The job, its statuses and types, and how a job looks on the wire."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any
from uuid import UUID

from mediad import wire


class Status(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PAUSED = "paused"

    def __str__(self) -> str:
        return self.value


TERMINAL = frozenset({Status.COMPLETED, Status.FAILED, Status.CANCELLED})


class JobType(str, Enum):
    YTDLP = "ytdlp"
    ARIA2 = "aria2"
    FFMPEG = "ffmpeg"
    TWITTER = "twitter"

    def __str__(self) -> str:
        return self.value


STAGES = wire.JOB_STAGES


@dataclass(frozen=True, slots=True)
class Job:
    id: UUID
    url: str
    type: JobType
    status: Status
    stage: str | None
    progress: float | None
    speed: int | None
    eta: int | None
    total_bytes: int | None
    filename: str | None
    output_path: str | None
    size: int | None
    error_code: str | None
    error_message: str | None
    options: dict[str, Any]
    meta: dict[str, Any]
    attempts: int
    worker_id: str | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    # The instance that runs (or last ran) the job's attempt.
    instance_id: str | None = None
    # The subscription whose check created the job (subs.py), if any.
    subscription_id: UUID | None = None

    @classmethod
    def from_row(cls, row: Any) -> Job:
        """A job from a row holding every one of its columns, by name (``RETURNING *``)."""
        return cls._of([row[k] for k in _JOB_FIELDS])

    @classmethod
    def from_columns(cls, row: Any) -> Job:
        """A job from a row of :data:`JOB_COLUMNS`, in that order: the reads' faster way."""
        return cls._of(list(row))

    @classmethod
    def _of(cls, values: list[Any]) -> Job:
        try:
            values[_TYPE_AT] = _TYPES[values[_TYPE_AT]]
            values[_STATUS_AT] = _STATUSES[values[_STATUS_AT]]
        except KeyError:  # not one of ours: the enums say which (ValueError)
            values[_TYPE_AT] = JobType(values[_TYPE_AT])
            values[_STATUS_AT] = Status(values[_STATUS_AT])
        return cls(*values)

    def to_api(self) -> dict[str, Any]:
        """The job as REST answers and Socket.IO acks show it (camelCase)."""
        return self._api(_iso)

    def to_api_orjson(self) -> dict[str, Any]:
        """:meth:`to_api` with its times left as datetimes, for ``orjson.dumps`` alone: it
        writes an aware datetime exactly as ``isoformat()`` does, four times faster."""
        return self._api(_same)

    def _api(self, when: Callable[[datetime | None], Any]) -> dict[str, Any]:
        return {
            "jobId": str(self.id),
            "url": self.url,
            "type": self.type.value,
            "status": self.status.value,
            "stage": self.stage,
            "progress": self.progress,
            "speed": self.speed,
            "eta": self.eta,
            "totalBytes": self.total_bytes,
            "filename": self.filename,
            "size": self.size,
            "outputPath": self.output_path,
            "errorCode": self.error_code,
            "errorMessage": self.error_message,
            "attempts": self.attempts,
            "options": self.options,
            "createdAt": when(self.created_at),
            "updatedAt": when(self.updated_at),
            "startedAt": when(self.started_at),
            "finishedAt": when(self.finished_at),
            "instanceId": self.instance_id,
            "subscriptionId": str(self.subscription_id) if self.subscription_id else None,
        }


# Job's field names, worked out once (``dataclasses.fields`` on every row was a tenth of a
# ``GET /downloads/{id}``), and the columns a job is read from in that order (from_columns).
_JOB_FIELDS = tuple(f.name for f in dataclasses.fields(Job))
JOB_COLUMNS = ", ".join(_JOB_FIELDS)
_TYPE_AT, _STATUS_AT = _JOB_FIELDS.index("type"), _JOB_FIELDS.index("status")
# Enum(value) goes through EnumType.__call__: a dict is several times faster.
_TYPES = {t.value: t for t in JobType}
_STATUSES = {s.value: s for s in Status}


# The API's view of a job (to_api's keys, in its order) and the column each comes from:
# a page of GET /downloads is made from these columns alone, without a Job per row.
_API_FIELDS = (
    ("jobId", "id"), ("url", "url"), ("type", "type"), ("status", "status"),
    ("stage", "stage"), ("progress", "progress"), ("speed", "speed"), ("eta", "eta"),
    ("totalBytes", "total_bytes"), ("filename", "filename"), ("size", "size"),
    ("outputPath", "output_path"), ("errorCode", "error_code"),
    ("errorMessage", "error_message"), ("attempts", "attempts"), ("options", "options"),
    ("createdAt", "created_at"), ("updatedAt", "updated_at"), ("startedAt", "started_at"),
    ("finishedAt", "finished_at"), ("instanceId", "instance_id"),
    ("subscriptionId", "subscription_id"),
)  # fmt: skip
_API_KEYS = tuple(key for key, _ in _API_FIELDS)
API_COLUMNS = ", ".join(column for _, column in _API_FIELDS)


def api_of_columns(row: Any) -> dict[str, Any]:
    """:meth:`Job.to_api_orjson` of a row of :data:`API_COLUMNS`, with no Job made (a
    third of the CPU of a page's rows)."""
    api = dict(zip(_API_KEYS, row, strict=True))
    api["jobId"] = str(api["jobId"])
    if api["subscriptionId"] is not None:
        api["subscriptionId"] = str(api["subscriptionId"])
    return api


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _same(value: datetime | None) -> datetime | None:
    return value

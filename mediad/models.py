"""The job, its statuses and types, and how a job looks on the wire."""

from __future__ import annotations

import dataclasses
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
        names = _JOB_FIELDS or _job_fields()
        values = {k: row[k] for k in names}
        values["type"] = JobType(values["type"])
        values["status"] = Status(values["status"])
        return cls(**values)

    def to_api(self) -> dict[str, Any]:
        """The job as REST answers and Socket.IO acks show it (camelCase)."""
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
            "createdAt": _iso(self.created_at),
            "updatedAt": _iso(self.updated_at),
            "startedAt": _iso(self.started_at),
            "finishedAt": _iso(self.finished_at),
            "instanceId": self.instance_id,
            "subscriptionId": str(self.subscription_id) if self.subscription_id else None,
        }


_JOB_FIELDS: tuple[str, ...] = ()


def _job_fields() -> tuple[str, ...]:
    """Job's field names, worked out once (``dataclasses.fields`` on every row was a
    tenth of a ``GET /downloads/{id}``)."""
    global _JOB_FIELDS
    _JOB_FIELDS = tuple(f.name for f in dataclasses.fields(Job))
    return _JOB_FIELDS


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None

"""mediad.models: Job from a database row, and the job as the API shows it."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import orjson
import pytest

from mediad.models import API_COLUMNS, JOB_COLUMNS, TERMINAL, Job, JobType, Status, api_of_columns

JOB_ID = UUID("0b9e4a6e-3c1f-4d0e-9a57-2f1f3c0e8d11")
CREATED = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)

# A job's fields, as mediad/openapi.yaml's Job names them.
API_FIELDS = {
    "jobId", "url", "type", "status", "stage", "progress", "speed", "eta", "totalBytes",
    "filename", "size", "outputPath", "errorCode", "errorMessage", "attempts", "options",
    "createdAt", "updatedAt", "startedAt", "finishedAt", "instanceId", "subscriptionId",
}  # fmt: skip


def row(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": JOB_ID,
        "url": "https://example.com/a.mp4",
        "type": "aria2",
        "status": "queued",
        "stage": "queued",
        "progress": None,
        "speed": None,
        "eta": None,
        "total_bytes": None,
        "filename": None,
        "output_path": None,
        "size": None,
        "error_code": None,
        "error_message": None,
        "options": {},
        "meta": {},
        "headers": None,  # a column the model does not keep
        "attempts": 0,
        "worker_id": None,
        "instance_id": "a",
        "subscription_id": None,
        "created_at": CREATED,
        "updated_at": CREATED,
        "started_at": None,
        "finished_at": None,
    }
    data.update(changes)
    return data


def test_from_row_converts_enums() -> None:
    job = Job.from_row(row())
    assert job.id == JOB_ID
    assert job.type is JobType.ARIA2
    assert job.status is Status.QUEUED
    assert job.attempts == 0
    assert job.options == {}


@pytest.mark.parametrize("status", list(Status))
@pytest.mark.parametrize("job_type", list(JobType))
def test_from_row_every_status_and_type(status: Status, job_type: JobType) -> None:
    job = Job.from_row(row(status=status.value, type=job_type.value))
    assert (job.status, job.type) == (status, job_type)


def test_from_row_rejects_unknown_status_and_type() -> None:
    with pytest.raises(ValueError):
        Job.from_row(row(status="exploded"))
    with pytest.raises(ValueError):
        Job.from_row(row(type="wget"))


def test_from_row_needs_every_column() -> None:
    data = row()
    del data["attempts"]
    with pytest.raises(KeyError):
        Job.from_row(data)


def test_from_columns_reads_the_columns_in_their_order() -> None:
    data = row(status="running", type="ffmpeg", meta={"interruptions": 1}, attempts=2)
    columns = [name.strip() for name in JOB_COLUMNS.split(",")]
    assert columns == [f.name for f in dataclasses.fields(Job)]
    assert Job.from_columns([data[c] for c in columns]) == Job.from_row(data)
    with pytest.raises(ValueError):
        Job.from_columns([row(status="exploded")[c] for c in columns])


def test_job_is_frozen() -> None:
    job = Job.from_row(row())
    with pytest.raises(dataclasses.FrozenInstanceError):
        job.status = Status.RUNNING  # type: ignore[misc]


def test_to_api_keys_are_exactly_the_design_fields() -> None:
    assert set(Job.from_row(row()).to_api()) == API_FIELDS


def test_to_api_of_a_new_job() -> None:
    api = Job.from_row(row()).to_api()
    assert api["jobId"] == str(JOB_ID)
    assert api["type"] == "aria2"
    assert api["status"] == "queued"
    assert api["createdAt"] == "2024-05-01T12:00:00.123456+00:00"
    assert api["startedAt"] is None
    assert api["finishedAt"] is None
    assert api["progress"] is None
    assert "meta" not in api and "workerId" not in api and "headers" not in api


def test_to_api_of_a_finished_job() -> None:
    started = CREATED + timedelta(seconds=1)
    finished = CREATED + timedelta(seconds=5)
    job = Job.from_row(
        row(
            type="ytdlp",
            status="completed",
            stage="finalizing",
            progress=100.0,
            speed=1_000_000,
            eta=0,
            total_bytes=5_000_000,
            filename="video.mp4",
            output_path=f"{JOB_ID}/video.mp4",
            size=5_000_000,
            options={"format": "best"},
            attempts=1,
            worker_id="w1",
            updated_at=finished,
            started_at=started,
            finished_at=finished,
        )
    )
    assert job.to_api() == {
        "jobId": str(JOB_ID),
        "url": "https://example.com/a.mp4",
        "type": "ytdlp",
        "status": "completed",
        "stage": "finalizing",
        "progress": 100.0,
        "speed": 1_000_000,
        "eta": 0,
        "totalBytes": 5_000_000,
        "filename": "video.mp4",
        "size": 5_000_000,
        "outputPath": f"{JOB_ID}/video.mp4",
        "errorCode": None,
        "errorMessage": None,
        "attempts": 1,
        "options": {"format": "best"},
        "createdAt": CREATED.isoformat(),
        "updatedAt": finished.isoformat(),
        "startedAt": started.isoformat(),
        "finishedAt": finished.isoformat(),
        "instanceId": "a",
        "subscriptionId": None,
    }


def test_to_api_timestamps_parse_back() -> None:
    api = Job.from_row(row(started_at=CREATED, finished_at=CREATED)).to_api()
    for key in ("createdAt", "updatedAt", "startedAt", "finishedAt"):
        assert datetime.fromisoformat(api[key]) == CREATED


@pytest.mark.parametrize(
    "when",
    [
        CREATED,
        CREATED.replace(microsecond=0),  # isoformat() leaves out a zero fraction
        CREATED.replace(microsecond=1000),
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ],
)
def test_to_api_orjson_encodes_as_to_api(when: datetime) -> None:
    """The REST answers' faster way writes the very bytes of ``to_api()``."""
    job = Job.from_row(row(created_at=when, updated_at=when, started_at=when, finished_at=None))
    assert orjson.dumps(job.to_api_orjson()) == orjson.dumps(job.to_api())
    assert set(job.to_api_orjson()) == API_FIELDS


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"status": "running", "stage": "downloading", "progress": 12.5, "speed": 10, "eta": 3},
        {"status": "completed", "filename": "a.mp4", "size": 5, "output_path": "x/a.mp4",
         "started_at": CREATED, "finished_at": CREATED.replace(microsecond=0)},
        {"status": "failed", "error_code": "network", "error_message": "reset",
         "options": {"format": "best", "n": [1, 2]}, "attempts": 3},
        {"subscription_id": UUID("5a0b8e8e-0c1e-4b1a-9d3a-1f2e3d4c5b6a"), "instance_id": None},
    ],
)  # fmt: skip
def test_api_of_columns_is_to_api_of_the_row(changes: dict[str, Any]) -> None:
    """A page's rows skip the Job: the same bytes as ``to_api()``, key order included."""
    data = row(**changes)
    columns = [name.strip() for name in API_COLUMNS.split(",")]
    api = api_of_columns([data[c] for c in columns])
    assert orjson.dumps(api) == orjson.dumps(Job.from_row(data).to_api())
    assert list(api) == list(Job.from_row(data).to_api())


def test_to_api_failed_job() -> None:
    api = Job.from_row(
        row(status="failed", error_code="network", error_message="connection reset")
    ).to_api()
    assert (api["errorCode"], api["errorMessage"]) == ("network", "connection reset")


def test_status_and_type_values() -> None:
    assert {s.value for s in Status} == {
        "queued", "running", "completed", "failed", "cancelled", "paused",
    }  # fmt: skip
    assert {t.value for t in JobType} == {"ytdlp", "aria2", "ffmpeg", "twitter"}
    assert str(Status.QUEUED) == "queued"
    assert str(JobType.YTDLP) == "ytdlp"
    assert TERMINAL == {Status.COMPLETED, Status.FAILED, Status.CANCELLED}

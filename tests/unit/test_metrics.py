"""The metrics module's own logic: durations from a job's row, the hooks, the scrape-time
gauges, the store instrumentation, and the error reports' tags."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mediad import errorreport
from mediad.errors import QueueUnavailable, StoreUnavailable
from mediad.metrics import (
    Cluster,
    Metrics,
    cluster_gauges,
    instance_gauges,
    jobs_clients,
    queue_wait_s,
    run_time_s,
)
from mediad.models import Job, JobType, Status

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def job(**changes: Any) -> Job:
    base = Job(
        id=uuid.uuid4(), url="https://example.com/a.mp4", type=JobType.ARIA2,
        status=Status.QUEUED, stage="queued", progress=None, speed=None, eta=None,
        total_bytes=None, filename=None, output_path=None, size=None, error_code=None,
        error_message=None, options={}, meta={}, attempts=0, worker_id=None,
        created_at=T0, updated_at=T0, started_at=None, finished_at=None,
    )  # fmt: skip
    return dataclasses.replace(base, **changes)


def test_durations_come_from_the_row() -> None:
    started = job(status=Status.RUNNING, attempts=1, started_at=T0 + timedelta(seconds=4))
    assert queue_wait_s(started) == 4.0
    assert queue_wait_s(dataclasses.replace(started, attempts=2)) is None  # a retry
    assert queue_wait_s(job()) is None
    done = dataclasses.replace(started, finished_at=T0 + timedelta(seconds=10))
    assert run_time_s(done) == 6.0
    assert run_time_s(job(status=Status.CANCELLED, finished_at=T0)) is None  # never started
    skewed = dataclasses.replace(done, finished_at=T0)
    assert run_time_s(skewed) == 0.0


def test_job_hooks_count_by_type_and_status() -> None:
    m = Metrics()
    m.job_submitted(job())
    m.job_submitted(job(type=JobType.YTDLP))
    started = job(status=Status.RUNNING, attempts=1, started_at=T0 + timedelta(seconds=2))
    m.job_started(started)
    end = T0 + timedelta(seconds=7)
    m.job_finished(
        dataclasses.replace(started, status=Status.COMPLETED, size=1000, finished_at=end)
    )
    m.job_finished(
        dataclasses.replace(
            started, status=Status.FAILED, error_code="blocked_address", finished_at=end
        )
    )
    m.job_finished(job(status=Status.CANCELLED, finished_at=end))  # cancelled while queued
    m.job_finished(job(status=Status.PAUSED))  # not an end: ignored
    assert m.value("mediad_jobs_submitted_total", type="aria2") == 1
    assert m.value("mediad_jobs_submitted_total", type="ytdlp") == 1
    assert m.value("mediad_jobs_finished_total", type="aria2", status="completed") == 1
    assert m.value("mediad_jobs_finished_total", type="aria2", status="failed") == 1
    assert m.value("mediad_jobs_finished_total", type="aria2", status="cancelled") == 1
    assert m.value("mediad_downloaded_bytes_total", type="aria2") == 1000
    assert m.value("mediad_egress_refusals_total") == 1
    assert m.value("mediad_job_queue_wait_seconds_count", type="aria2") == 1
    assert m.value("mediad_job_queue_wait_seconds_sum", type="aria2") == 2.0
    assert m.value("mediad_job_run_seconds_sum", type="aria2", status="completed") == 5.0
    assert m.value("mediad_job_run_seconds_count", type="aria2", status="cancelled") == 0


def test_registries_are_per_instance() -> None:
    a, b = Metrics(), Metrics()
    a.job_submitted(job())
    assert a.value("mediad_jobs_submitted_total", type="aria2") == 1
    assert b.value("mediad_jobs_submitted_total", type="aria2") == 0


def test_instance_gauges() -> None:
    families = {
        f.name: f.samples[0].value
        for f in instance_gauges({"connected": 3, "busy": 2, "running": 2}, 4, 7, 5)
    }
    assert families == {
        "mediad_jobs_running": 2,
        "mediad_slots_free": 2,
        "mediad_workers_connected": 3,
        "mediad_workers_busy": 2,
        "mediad_jobs_clients_connected": 5,
        "mediad_worker_events_rejected": 7,
    }


def test_cluster_gauges_are_omitted_when_not_read() -> None:
    assert list(cluster_gauges(Cluster())) == []
    (jobs, depth) = cluster_gauges(Cluster(by_status={"queued": 4, "failed": 1}, queue_depth=3))
    by_status = {s.labels["status"]: s.value for s in jobs.samples}
    assert by_status == {s.value: {"queued": 4, "failed": 1}.get(s.value, 0) for s in Status}
    assert "cluster-wide" in jobs.documentation and "cluster-wide" in depth.documentation
    assert depth.samples[0].value == 3


def test_jobs_clients_reads_the_namespace_room() -> None:
    class Manager:
        rooms = {
            "/jobs": {None: {"a": 1, "b": 2}, "jobs:all": {"a": 1}},
            "/worker": {None: {"w": 1}},
        }

    class Server:
        manager = Manager()

    assert jobs_clients(Server()) == 2
    assert jobs_clients(object()) == 0


class FakeStore:
    async def flush_progress(self, rows: list[int]) -> int:
        return len(rows)

    async def complete(self) -> str:
        return "done"

    async def get_job(self, fail: bool) -> None:
        if fail:
            raise StoreUnavailable("PostgreSQL is unavailable: down")

    async def close(self) -> None:
        raise AssertionError("not instrumented")

    def sync(self) -> int:
        return 1


class FakeQueue:
    async def push(self, job_id: str) -> None:
        raise QueueUnavailable("Redis is unavailable: down")


async def test_instrument_counts_latency_writes_and_errors() -> None:
    m = Metrics()
    store, queue = FakeStore(), FakeQueue()
    m.instrument(store, "postgres")  # type: ignore[arg-type]  # a stand-in with the same methods
    m.instrument(queue, "redis")  # type: ignore[arg-type]
    assert await store.flush_progress([1, 2, 3]) == 3
    assert await store.complete() == "done"
    await store.get_job(False)
    with pytest.raises(StoreUnavailable):
        await store.get_job(True)
    with pytest.raises(QueueUnavailable):
        await queue.push("x")
    assert store.sync() == 1
    with pytest.raises(AssertionError):
        await store.close()
    assert m.value("mediad_db_writes_total", kind="progress") == 1
    assert m.value("mediad_db_progress_rows_written_total") == 3
    assert m.value("mediad_db_writes_total", kind="terminal") == 1
    assert m.value("mediad_db_query_duration_seconds_count", method="get_job") == 2
    assert m.value("mediad_backend_errors_total", backend="postgres") == 1
    assert m.value("mediad_backend_errors_total", backend="redis") == 1


async def test_render_without_parts_parses_and_names_follow_the_conventions() -> None:
    m = Metrics()
    m.progress_received()
    text = (await m.render()).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["mediad_progress_events_received"].type == "counter"
    assert families["mediad_job_run_seconds"].type == "histogram"
    for family in families.values():
        assert family.name.startswith("mediad_")
        for sample in family.samples:
            assert "job_id" not in sample.labels and "jobId" not in sample.labels
    assert "_created" not in text


async def test_a_slow_read_is_omitted_and_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    import mediad.metrics as module

    monkeypatch.setattr(module, "SCRAPE_TIMEOUT_S", 0.01)
    m = Metrics()

    async def slow() -> int:
        await asyncio.sleep(10)
        return 1

    async def down() -> int:
        raise StoreUnavailable("PostgreSQL is unavailable: down")

    assert await m._bounded("redis", slow()) is None
    assert await m._bounded("postgres", down()) is None
    assert m.value("mediad_scrape_errors_total", source="redis") == 1
    assert m.value("mediad_scrape_errors_total", source="postgres") == 1


def test_error_report_tags_come_from_the_record() -> None:
    event = {"extra": {"jobId": "j-1", "stage": "downloading", "workerId": None, "other": 1}}
    tagged = errorreport.tag_fields(event)
    assert tagged["tags"] == {"jobId": "j-1", "stage": "downloading"}
    assert errorreport.tag_fields({})["tags"] == {}
    assert errorreport.tag_fields({"extra": {"jobId": "x" * 500}})["tags"]["jobId"] == "x" * 200

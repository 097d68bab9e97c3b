"""mediad.control.Controller against in-memory fakes: every action against every status,
and the consequences of each (the tool stopped, the id unqueued or pushed, files)."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest

from mediad import dispatcher as dispatcher_module
from mediad import states, wire
from mediad.errors import Conflict, NotFound
from mediad.models import JobType, Status
from tests.support.fakes import Rig, make_config
from tests.support.polling import eventually

ACTIONS = sorted(states.ACTIONS)
CASES = list(itertools.product(ACTIONS, Status))


@pytest.fixture
async def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Rig]:
    monkeypatch.setattr(dispatcher_module, "STOP_TIMEOUT_S", 5)  # never reached here
    rig = Rig(make_config(tmp_path, queue={"retry_backoff_s": 0}))
    yield rig
    await rig.close()


def files_of(rig: Rig, job_id: str) -> tuple[Path, Path]:
    """A partial file in tmp/{job} and a finished one in data/{job}."""
    tmp = Path(rig.config.storage.tmp_dir) / job_id / "part.bin"
    data = Path(rig.config.storage.data_dir) / job_id / "done.bin"
    for path in (tmp, data):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    return tmp, data


async def running(rig: Rig, job_type: JobType = JobType.ARIA2) -> tuple[str, str, int]:
    rig.connect("s1")
    rig.start()
    job_id = await rig.submit(job_type)
    sid, attempt = await rig.started(job_id)
    return job_id, sid, attempt


@pytest.mark.parametrize(("action", "status"), CASES, ids=[f"{a}-{s.value}" for a, s in CASES])
async def test_every_action_against_every_status(rig: Rig, action: str, status: Status) -> None:
    job = rig.store.new_job(uuid4(), status=status, progress=40.0, total_bytes=100)
    target = states.action_target(action, status)
    if target is None:
        with pytest.raises(Conflict) as info:
            await rig.controller.apply(job.id, action)
        assert info.value.code == "invalid_transition" and info.value.status == 409
        assert info.value.extra == {"status": status.value}
        assert rig.job(str(job.id)) == job and rig.publisher.events == []
        return
    changed = await rig.controller.apply(job.id, action)
    assert changed.status is target and rig.job(str(job.id)) == changed
    assert rig.publisher.of("job-update", str(job.id)) == [changed]
    if target is Status.QUEUED:
        assert rig.queue.waiting_list == [str(job.id)]
        assert changed.progress == (40.0 if status is Status.PAUSED else 0)
    else:
        assert rig.queue.waiting_list == []


@pytest.mark.parametrize("status", list(Status), ids=[s.value for s in Status])
async def test_stop_is_refused_unless_a_running_ffmpeg_job(rig: Rig, status: Status) -> None:
    job = rig.store.new_job(uuid4(), status=status, job_type=JobType.FFMPEG)
    with pytest.raises(Conflict) as info:  # running, but no attempt of it holds a slot here
        await rig.controller.apply(job.id, "stop")
    assert info.value.extra == {"status": status.value} and rig.channel.sent == []


async def test_stop_finishes_a_running_ffmpeg_recording(rig: Rig) -> None:
    job_id, sid, attempt = await running(rig, JobType.FFMPEG)
    await rig.progress(sid, job_id, attempt, progress=None, total_bytes=1234)
    job = await rig.controller.apply(UUID(job_id), "stop")
    assert rig.channel.controls == [(sid, wire.JobControl(job_id, attempt, "stop"))]
    assert job.status is Status.RUNNING and job.total_bytes == 1234  # the fresher snapshot


async def test_stop_is_refused_for_a_running_job_of_another_type(rig: Rig) -> None:
    job_id, _, _ = await running(rig, JobType.ARIA2)
    with pytest.raises(Conflict) as info:
        await rig.controller.apply(UUID(job_id), "stop")
    assert info.value.extra == {"status": "running"} and rig.channel.controls == []


async def test_cancel_of_a_running_job_removes_its_files_only_after_the_stop(rig: Rig) -> None:
    job_id, sid, attempt = await running(rig)
    tmp, data = files_of(rig, job_id)
    job = await rig.controller.apply(UUID(job_id), "cancel")
    assert job.status is Status.CANCELLED
    assert rig.channel.controls == [(sid, wire.JobControl(job_id, attempt, "cancel"))]
    assert tmp.exists() and data.exists(), "files removed while the tool may still write them"
    assert rig.dispatcher.attempt(job_id) is not None  # the slot stays taken
    await rig.stopped(sid, job_id, attempt, "cancel")
    assert not tmp.parent.exists() and not data.parent.exists()
    assert rig.dispatcher.attempt(job_id) is None and rig.queue.processing_list == []


async def test_cancel_of_a_running_job_whose_attempt_ended_removes_files_at_once(
    rig: Rig,
) -> None:
    job = rig.store.new_job(uuid4(), status=Status.RUNNING, attempts=1)
    tmp, data = files_of(rig, str(job.id))
    await rig.controller.apply(job.id, "cancel")
    assert not tmp.exists() and not data.exists()


async def test_pause_of_a_running_job_keeps_its_partial_data(rig: Rig) -> None:
    job_id, sid, attempt = await running(rig)
    tmp, _ = files_of(rig, job_id)
    job = await rig.controller.apply(UUID(job_id), "pause")
    assert job.status is Status.PAUSED
    assert rig.channel.controls == [(sid, wire.JobControl(job_id, attempt, "pause"))]
    await rig.stopped(sid, job_id, attempt, "pause")
    assert tmp.exists() and rig.dispatcher.attempt(job_id) is None
    resumed = await rig.controller.apply(UUID(job_id), "resume")
    assert resumed.status is Status.QUEUED and tmp.exists()
    _, attempt = await rig.started(job_id, 2)
    assert attempt == 2


async def test_cancel_of_a_paused_job_removes_its_partial_data_but_no_result(rig: Rig) -> None:
    job = rig.store.new_job(uuid4(), status=Status.PAUSED)
    tmp, data = files_of(rig, str(job.id))
    await rig.controller.apply(job.id, "cancel")
    assert not tmp.exists() and data.exists()


@pytest.mark.parametrize("action", ["cancel", "pause"])
async def test_a_queued_job_leaves_the_list(rig: Rig, action: str) -> None:
    job_id = await rig.submit()
    other = await rig.submit()
    await rig.controller.apply(UUID(job_id), action)
    assert rig.queue.waiting_list == [other] and rig.channel.sent == []


@pytest.mark.parametrize(
    ("action", "status"),
    [("resume", Status.PAUSED), ("retry", Status.FAILED), ("retry", Status.CANCELLED)],
)
async def test_resume_and_retry_push_the_id(rig: Rig, action: str, status: Status) -> None:
    job = rig.store.new_job(uuid4(), status=status, error_code="network", error_message="x")
    changed = await rig.controller.apply(job.id, action)
    assert rig.queue.waiting_list == [str(job.id)]
    assert (changed.status, changed.stage, changed.error_code) == (Status.QUEUED, "queued", None)


async def test_resume_while_redis_is_down_is_left_to_the_reconciler(rig: Rig) -> None:
    job = rig.store.new_job(uuid4(), status=Status.PAUSED)
    rig.queue.outage()
    changed = await rig.controller.apply(job.id, "resume")
    assert changed.status is Status.QUEUED
    rig.queue.outage(False)
    assert await rig.upkeep.reconcile() == (0, 1) and rig.queue.waiting_list == [str(job.id)]


async def test_an_action_that_loses_the_race_is_a_conflict_with_the_new_status(rig: Rig) -> None:
    job = rig.store.new_job(uuid4(), status=Status.QUEUED)
    transition = rig.store.transition

    async def someone_else_first(job_id: UUID, allowed: Any, target: Status) -> Any:
        rig.store.put(dataclasses.replace(rig.store.jobs[job_id], status=Status.COMPLETED))
        return await transition(job_id, allowed, target)

    rig.store.transition = someone_else_first  # type: ignore[method-assign]
    with pytest.raises(Conflict) as info:
        await rig.controller.apply(job.id, "pause")
    assert info.value.extra == {"status": "completed"} and rig.publisher.events == []


async def test_an_unknown_job_is_not_found(rig: Rig) -> None:
    with pytest.raises(NotFound):
        await rig.controller.apply(uuid4(), "cancel")
    with pytest.raises(NotFound):
        await rig.controller.delete(uuid4())


async def test_delete_of_a_running_job_is_refused(rig: Rig) -> None:
    job_id, _, _ = await running(rig)
    tmp, data = files_of(rig, job_id)
    with pytest.raises(Conflict) as info:
        await rig.controller.delete(UUID(job_id))
    assert info.value.extra == {"status": "running"}
    assert tmp.exists() and data.exists() and rig.job(job_id).status is Status.RUNNING


@pytest.mark.parametrize(
    "status", [s for s in Status if s is not Status.RUNNING], ids=lambda s: s.value
)
async def test_delete_removes_the_job_and_its_files(rig: Rig, status: Status) -> None:
    job = rig.store.new_job(uuid4(), status=status)
    if status is Status.QUEUED:
        await rig.queue.push(str(job.id))
    tmp, data = files_of(rig, str(job.id))
    await rig.controller.delete(job.id)
    assert job.id not in rig.store.jobs
    assert not tmp.parent.exists() and not data.parent.exists()
    assert rig.queue.waiting_list == []


async def test_create_writes_the_row_first_and_survives_a_redis_outage(rig: Rig) -> None:
    rig.queue.outage()
    job = await rig.controller.create("http://127.0.0.1:9/a.mp4", JobType.ARIA2, {})
    assert rig.job(str(job.id)).status is Status.QUEUED
    assert rig.publisher.of("job-update") == [job]
    rig.queue.outage(False)
    await rig.upkeep.reconcile()
    assert rig.queue.waiting_list == [str(job.id)]


async def test_a_cancelled_running_job_whose_worker_never_answers_is_cleaned_up(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dispatcher_module, "STOP_TIMEOUT_S", 0.01)
    job_id, _, _ = await running(rig)
    tmp, data = files_of(rig, job_id)
    await rig.controller.apply(UUID(job_id), "cancel")
    await eventually(
        lambda: not tmp.exists() and not data.exists(), timeout_s=2, interval_s=0.002,
        what="the files to go after the stop timeout",
    )  # fmt: skip
    assert rig.dispatcher.attempt(job_id) is None


async def test_cancel_while_a_pause_is_being_stopped_removes_files_after_the_stop(rig: Rig) -> None:
    """Pause asks the tool to stop; a cancel before the worker confirms must not remove
    tmp/{jobId} while the tool may still write there, but once it has stopped."""
    job_id, sid, attempt = await running(rig)
    await rig.controller.apply(UUID(job_id), "pause")
    await rig.controller.apply(UUID(job_id), "cancel")
    tmp, _ = files_of(rig, job_id)  # the tool's last writes before it dies
    await rig.stopped(sid, job_id, attempt, "pause")
    assert rig.dispatcher.attempt(job_id) is None
    assert not tmp.exists(), "a cancelled job kept the partial data its tool wrote"


async def test_cancel_while_the_outcome_is_being_recorded_removes_the_files(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker's failure is being written (PostgreSQL briefly down) when the client
    cancels: the cancel lands, the failure does not, and the job's files must go. The
    worker's tool is already gone, so it ignores the cancel (worker/client.py answers a
    control only while it runs that attempt) and no ``stopped`` ever comes. (The stop
    deadline outlasts the write's retry, as 30 s outlast PostgreSQL's usual blips.)"""
    monkeypatch.setattr(dispatcher_module, "STOP_TIMEOUT_S", 0.3)
    job_id, sid, attempt = await running(rig)
    tmp, _ = files_of(rig, job_id)
    rig.store.outage()
    failing = asyncio.create_task(rig.failed(sid, job_id, attempt, "not_found", "404"))
    await eventually(
        lambda: rig.store.refused["fail"] == 1, timeout_s=2, interval_s=0.002, what="the write"
    )
    rig.store.outage(False)
    await rig.controller.apply(UUID(job_id), "cancel")
    await asyncio.wait_for(failing, 2)
    await eventually(
        lambda: not rig.dispatcher._tasks, timeout_s=2, interval_s=0.002, what="the stop deadline"
    )
    assert rig.job(job_id).status is Status.CANCELLED
    assert rig.dispatcher.attempt(job_id) is None
    assert not tmp.exists(), "a cancelled job kept its partial data"

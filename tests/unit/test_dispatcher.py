"""mediad.dispatcher against in-memory fakes: slots, assignment, worker events, stops,
retries and drain. No PostgreSQL, Redis or sockets; every wait polls with a deadline."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from mediad import dispatcher as dispatcher_module
from mediad import results, wire
from mediad.attempts import Phase
from mediad.models import Status
from tests.support.fakes import Rig, make_config
from tests.support.polling import eventually

MakeRig = Callable[..., Awaitable[Rig]]


@pytest.fixture
async def make_rig(tmp_path: Path) -> AsyncIterator[MakeRig]:
    rigs: list[Rig] = []

    async def make(**sections: dict[str, Any]) -> Rig:
        sections.setdefault("queue", {})
        sections["queue"] = {"retry_backoff_s": 0, **sections["queue"]}
        rig = Rig(make_config(tmp_path / f"rig-{len(rigs)}", **sections))
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        await rig.close()


@pytest.fixture
def quick_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dispatcher_module, "STOP_TIMEOUT_S", 0.01)


async def until(check: Callable[[], Any], what: str, timeout_s: float = 2) -> Any:
    return await eventually(check, timeout_s=timeout_s, interval_s=0.002, what=what)


async def running_job(rig: Rig, sid: str = "s1") -> tuple[str, str, int]:
    """Connect a worker (if new), start the loop (if not yet) and run one job on it."""
    if rig.dispatcher.roster.worker(sid) is None:
        rig.connect(sid)
    if rig._run is None:
        rig.start()
    job_id = await rig.submit()
    got_sid, attempt = await rig.started(job_id)
    assert got_sid == sid
    return job_id, sid, attempt


# -- slots and assignment


async def test_never_more_jobs_run_than_slots_with_more_workers_than_slots(
    make_rig: MakeRig,
) -> None:
    rig = await make_rig(queue={"concurrency": 2})
    for i in range(4):
        rig.connect(f"s{i}")
    peak = 0
    start = rig.channel.start

    async def counting_start(sid: str, message: wire.JobStart) -> None:
        nonlocal peak
        peak = max(peak, len(rig.dispatcher.roster))
        await start(sid, message)

    rig.channel.start = counting_start  # type: ignore[method-assign]
    ids = [await rig.submit() for _ in range(5)]
    rig.start()
    await until(lambda: len(rig.channel.starts) == 2, "two starts")
    # The loop now waits for a slot: the other three stay in the list.
    for _ in range(20):
        await asyncio.sleep(0)
    assert len(rig.channel.starts) == 2 and len(rig.queue.waiting_list) == 3
    finished = 0
    while finished < 5:
        sid, start_msg = rig.channel.starts[finished]
        rig.stage(start_msg.job_id, start_msg.attempt, {"f.bin": b"x"})
        await rig.completed(sid, start_msg.job_id, start_msg.attempt, {"f.bin": 1})
        finished += 1
        if finished < 4:
            want = finished + 2
            await until(lambda want=want: len(rig.channel.starts) == want, "the next start")
    assert peak == 2
    assert [rig.job(i).status for i in ids] == [Status.COMPLETED] * 5
    assert rig.queue.processing_list == [] and rig.queue.waiting_list == []


@pytest.mark.parametrize("action", ["cancel", "pause"])
async def test_a_job_paused_or_cancelled_between_take_and_mark_running_is_dropped(
    make_rig: MakeRig, action: str
) -> None:
    rig = await make_rig()
    rig.connect("s1")
    job_id = await rig.submit()
    mark_running = rig.store.mark_running

    async def client_acts_first(uuid: UUID, worker_id: str, instance_id: str) -> Any:
        await rig.controller.apply(uuid, action)
        return await mark_running(uuid, worker_id, instance_id)

    rig.store.mark_running = client_acts_first  # type: ignore[method-assign]
    rig.start()
    await until(lambda: rig.store.calls["mark_running"] == 1, "the take")
    await until(lambda: not rig.queue.processing_list, "the id to leave processing")
    assert rig.channel.starts == []
    assert rig.job(job_id).status is Status(action + ("led" if action == "cancel" else "d"))
    assert rig.job(job_id).attempts == 0 and rig.queue.waiting_list == []
    assert len(rig.dispatcher.roster) == 0 and rig.dispatcher.roster.idle_worker() is not None


async def test_a_worker_that_leaves_before_the_start_is_recorded(make_rig: MakeRig) -> None:
    rig = await make_rig()
    rig.connect("s1")
    job_id = await rig.submit()
    mark_running = rig.store.mark_running

    async def worker_leaves_meanwhile(uuid: UUID, worker_id: str, instance_id: str) -> Any:
        job = await mark_running(uuid, worker_id, instance_id)
        await rig.dispatcher.worker_disconnected("s1")
        return job

    rig.store.mark_running = worker_leaves_meanwhile  # type: ignore[method-assign]
    rig.start()
    await until(
        lambda: rig.job(job_id).attempts == 1 and job_id in rig.queue.waiting_list,
        "the job back in the list",
    )
    job = rig.job(job_id)
    assert (job.status, job.error_code) == (Status.QUEUED, "worker_crashed")
    assert job.error_message == "the worker left before the job started"
    assert job.meta == {"interruptions": 1} and job.attempts == 1
    assert rig.channel.starts == [] and len(rig.dispatcher.roster) == 0
    assert rig.queue.processing_list == []
    assert rig.publisher.updates(job_id) == [Status.QUEUED, Status.QUEUED]  # created, requeued


async def test_a_malformed_id_in_the_list_is_dropped(make_rig: MakeRig) -> None:
    rig = await make_rig()
    rig.connect("s1")
    await rig.queue.push("not-a-uuid")
    rig.start()
    await until(lambda: rig.queue.calls["done"] == 1, "the drop")
    assert rig.queue.processing_list == [] and rig.channel.starts == []


# -- worker events


async def test_events_from_another_worker_or_a_stale_attempt_are_ignored_and_counted(
    make_rig: MakeRig,
) -> None:
    rig = await make_rig()
    job_id, sid, attempt = await running_job(rig)
    rig.connect("s2")
    await rig.progress(sid, job_id, attempt, progress=10.0)
    row, seen = rig.job(job_id), len(rig.publisher.events)
    live = rig.dispatcher.attempt(job_id).live  # type: ignore[union-attr]
    other_job = "1c8f6b63-7a8f-4e9d-8b62-4d2a1f7e3ba2"
    rig.stage(job_id, attempt, {"f.bin": b"x"})
    forged: list[Awaitable[None]] = [
        rig.progress("s2", job_id, attempt, progress=50.0),  # another worker
        rig.progress(sid, job_id, attempt + 1, progress=50.0),  # another attempt
        rig.progress(sid, other_job, attempt, progress=50.0),  # another job
        rig.progress("nobody", job_id, attempt, progress=50.0),  # no such worker
        rig.completed("s2", job_id, attempt, {"f.bin": 1}),
        rig.failed("s2", job_id, attempt, "network", "forged"),
        rig.failed(sid, job_id, attempt + 1, "network", "stale"),
    ]
    for i, event in enumerate(forged, start=1):
        await event
        assert rig.dispatcher.ignored_events == i
    assert rig.job(job_id) == row and len(rig.publisher.events) == seen
    a = rig.dispatcher.attempt(job_id)
    assert a is not None and a.live == live and a.phase is Phase.RUNNING
    assert (rig.stage(job_id, attempt, {}) / "f.bin").exists()  # still the current attempt's


async def test_a_completed_of_a_superseded_attempt_discards_its_staging(make_rig: MakeRig) -> None:
    rig = await make_rig()
    job_id, sid, attempt = await running_job(rig)
    old = rig.stage(job_id, attempt + 5, {"f.bin": b"x"})
    await rig.completed(sid, job_id, attempt + 5, {"f.bin": 1})
    await until(lambda: not old.exists(), "the stale staging folder to go")
    assert rig.dispatcher.ignored_events == 1
    assert rig.job(job_id).status is Status.RUNNING


# fmt: off
INVALID = [
    pytest.param("on_progress", "50%", id="progress_string"),
    pytest.param("on_progress", {"jobId": "<job>", "attempt": 1, "stage": "exploding"}, id="progress_stage"),
    pytest.param("on_progress", {"jobId": "<job>", "attempt": 1, "stage": "downloading", "progress": 101}, id="progress_over_100"),
    pytest.param("on_progress", {"jobId": "<job>", "attempt": True, "stage": "downloading"}, id="progress_attempt_true"),
    pytest.param("on_completed", {"jobId": "<job>", "attempt": 1, "files": []}, id="completed_no_files"),
    pytest.param("on_completed", {"jobId": "<job>", "attempt": 1, "files": [{"name": "../x", "size": 1}]}, id="completed_traversal"),
    pytest.param("on_completed", None, id="completed_null"),
    pytest.param("on_failed", {"jobId": "<job>", "attempt": 1, "errorCode": "Not Snake", "message": "m"}, id="failed_code"),
    pytest.param("on_failed", {"jobId": "<job>", "attempt": 1, "errorCode": "network"}, id="failed_no_message"),
    pytest.param("on_stopped", {"jobId": "not-a-uuid", "attempt": 1}, id="stopped_job_id"),
]
# fmt: on


@pytest.mark.parametrize(("handler", "payload"), INVALID)
async def test_an_invalid_payload_is_rejected_and_counted(
    make_rig: MakeRig, handler: str, payload: Any
) -> None:
    rig = await make_rig()
    job_id, sid, _ = await running_job(rig)
    if isinstance(payload, dict):
        payload = {k: job_id if v == "<job>" else v for k, v in payload.items()}
    row, seen = rig.job(job_id), len(rig.publisher.events)
    await getattr(rig.dispatcher, handler)(sid, payload)
    assert rig.dispatcher.ignored_events == 1
    assert rig.job(job_id) == row and len(rig.publisher.events) == seen
    assert rig.dispatcher.attempt(job_id).phase is Phase.RUNNING  # type: ignore[union-attr]


async def test_progress_is_kept_and_forwarded(make_rig: MakeRig) -> None:
    rig = await make_rig()
    job_id, sid, attempt = await running_job(rig)
    await rig.progress(sid, job_id, attempt, progress=33.0, speed=10, total_bytes=100)
    a = rig.dispatcher.attempt(job_id)
    assert a is not None and a.dirty and a.live.progress == 33.0
    assert rig.publisher.of("progress", job_id) == [(job_id, a.live)]
    assert rig.job(job_id).progress is None  # not written until the flusher runs
    assert await rig.upkeep.flush() == 1
    assert rig.job(job_id).progress == 33.0 and not a.dirty
    assert await rig.upkeep.flush() == 0


async def test_a_completed_job_has_its_files_promoted_and_is_announced(make_rig: MakeRig) -> None:
    rig = await make_rig()
    job_id, sid, attempt = await running_job(rig)
    staging = rig.stage(job_id, attempt, {"a.mp4": b"12345", "a.en.vtt": b"ab"})
    await rig.completed(sid, job_id, attempt, {"a.mp4": 5, "a.en.vtt": 2})
    job = rig.job(job_id)
    assert (job.status, job.filename, job.size) == (Status.COMPLETED, "a.mp4", 7)
    assert job.output_path == f"{job_id}/a.mp4"
    assert job.meta["files"] == [{"name": "a.mp4", "size": 5}, {"name": "a.en.vtt", "size": 2}]
    assert (staging.parent / "a.mp4").read_bytes() == b"12345" and not staging.exists()
    assert rig.publisher.names(job_id)[-2:] == ["completed", "job-update"]
    assert len(rig.dispatcher.roster) == 0 and rig.queue.processing_list == []


async def test_a_completed_with_a_missing_file_fails_as_tool_failed(make_rig: MakeRig) -> None:
    rig = await make_rig()
    job_id, sid, attempt = await running_job(rig)
    rig.stage(job_id, attempt, {"here.bin": b"x"})
    await rig.completed(sid, job_id, attempt, {"here.bin": 1, "ghost.bin": 1})
    job = rig.job(job_id)
    assert (job.status, job.error_code) == (Status.FAILED, "tool_failed")
    assert job.error_message == "the result file 'ghost.bin' is missing"
    assert rig.publisher.of("failed", job_id) == [(job_id, "tool_failed", job.error_message)]
    assert not (Path(rig.config.storage.data_dir) / job_id / "here.bin").exists()
    assert len(rig.dispatcher.roster) == 0


async def test_a_completed_that_lands_after_a_cancel_withdraws_its_files(
    make_rig: MakeRig,
) -> None:
    """The cancel's write lands between the promotion and the terminal write."""
    rig = await make_rig()
    job_id, sid, attempt = await running_job(rig)
    rig.stage(job_id, attempt, {"f.bin": b"x"})
    complete = rig.store.complete

    async def cancelled_first(uuid: UUID, n: int, **kw: Any) -> Any:
        assert (Path(rig.config.storage.data_dir) / job_id / "f.bin").exists()  # promoted
        await rig.store.transition(uuid, {Status.RUNNING}, Status.CANCELLED)
        return await complete(uuid, n, **kw)

    rig.store.complete = cancelled_first  # type: ignore[method-assign]
    await rig.completed(sid, job_id, attempt, {"f.bin": 1})
    assert rig.job(job_id).status is Status.CANCELLED
    assert not (Path(rig.config.storage.data_dir) / job_id / "f.bin").exists()
    assert "completed" not in rig.publisher.names(job_id)
    assert len(rig.dispatcher.roster) == 0 and rig.queue.processing_list == []


async def test_a_completed_after_a_cancel_is_the_stop_confirmation_and_leaves_no_file(
    make_rig: MakeRig,
) -> None:
    rig = await make_rig()
    job_id, sid, attempt = await running_job(rig)
    await rig.controller.apply(UUID(job_id), "cancel")
    staging = rig.stage(job_id, attempt, {"f.bin": b"x"})
    await rig.completed(sid, job_id, attempt, {"f.bin": 1})
    assert rig.job(job_id).status is Status.CANCELLED
    assert not staging.parent.exists()
    assert "completed" not in rig.publisher.names(job_id)
    assert len(rig.dispatcher.roster) == 0 and rig.dispatcher.ignored_events == 1


async def test_a_failure_of_the_tool_fails_at_once(make_rig: MakeRig) -> None:
    rig = await make_rig()
    job_id, sid, attempt = await running_job(rig)
    await rig.progress(sid, job_id, attempt, progress=40.0)
    await rig.failed(sid, job_id, attempt, "not_found", "HTTP 404")
    job = rig.job(job_id)
    assert (job.status, job.error_code, job.error_message) == (
        Status.FAILED,
        "not_found",
        "HTTP 404",
    )
    assert job.progress == 40.0  # the last progress is written with the failure
    assert rig.queue.waiting_list == []


async def test_a_transient_failure_is_retried_within_max_attempts(make_rig: MakeRig) -> None:
    rig = await make_rig(queue={"max_attempts": 2})
    job_id, sid, attempt = await running_job(rig)
    await rig.failed(sid, job_id, attempt, "network", "refused")
    assert rig.job(job_id).status is Status.QUEUED and rig.job(job_id).meta == {"failures": 1}
    _, attempt = await rig.started(job_id, 2)
    assert attempt == 2
    await rig.failed(sid, job_id, attempt, "network", "refused again")
    job = rig.job(job_id)
    assert (job.status, job.error_message) == (Status.FAILED, "refused again")


async def test_a_worker_crash_is_retried_with_backoff_then_fails_after_the_budget(
    make_rig: MakeRig, caplog: pytest.LogCaptureFixture
) -> None:
    rig = await make_rig(queue={"max_interruptions": 3, "retry_backoff_s": 0.01})
    caplog.set_level(logging.INFO, logger="mediad.outcomes")
    rig.connect("s1")
    rig.start()
    job_id = await rig.submit()
    for n in (1, 2, 3):
        sid, attempt = await rig.started(job_id, n)
        assert attempt == n
        await rig.dispatcher.worker_disconnected(sid)
        rig.connect(f"s{n + 1}")
    job = rig.job(job_id)
    assert (job.status, job.error_code) == (Status.FAILED, "worker_crashed")
    assert job.error_message == "the worker stopped during the job (3 attempts)"
    assert rig.publisher.of("failed", job_id) == [(job_id, "worker_crashed", job.error_message)]
    delays = [r.args[2] for r in caplog.records if r.msg.startswith("attempt %d lost")]  # type: ignore[index]
    assert delays == [0.01, 0.02]  # retry_backoff_s * 2^(n-1)
    assert job.meta == {"interruptions": 2} and len(rig.channel.starts) == 3


async def test_a_crash_retry_uses_none_of_max_attempts(make_rig: MakeRig) -> None:
    rig = await make_rig(queue={"max_attempts": 1, "max_interruptions": 5})
    job_id, sid, attempt = await running_job(rig)
    await rig.dispatcher.worker_disconnected(sid)
    rig.connect("s2")
    _, attempt = await rig.started(job_id, 2)
    assert rig.job(job_id).status is Status.RUNNING and attempt == 2


# -- stops


async def test_a_stop_the_worker_never_confirms_frees_the_slot_after_the_timeout(
    make_rig: MakeRig, quick_stops: None
) -> None:
    rig = await make_rig()
    job_id, sid, attempt = await running_job(rig)
    await rig.controller.apply(UUID(job_id), "pause")
    assert rig.channel.controls == [(sid, wire.JobControl(job_id, attempt, "pause"))]
    a = rig.dispatcher.attempt(job_id)
    assert a is not None and a.phase is Phase.STOPPING
    await until(lambda: rig.dispatcher.attempt(job_id) is None, "the slot to be freed")
    assert a.phase is Phase.RELEASED and rig.dispatcher.roster.idle_worker() is not None
    assert rig.queue.processing_list == [] and rig.job(job_id).status is Status.PAUSED


@pytest.mark.parametrize("order", ["stopped_first", "disconnect_first", "together"])
async def test_stopped_and_a_disconnect_run_the_follow_up_once(
    make_rig: MakeRig, quick_stops: None, order: str
) -> None:
    rig = await make_rig()
    job_id, sid, attempt = await running_job(rig)
    runs: list[str] = []

    async def then() -> None:
        runs.append(job_id)

    assert await rig.dispatcher.stop_job(job_id, "cancel", then) is True
    assert await rig.dispatcher.stop_job(job_id, "cancel") is True  # already stopping
    assert len(rig.channel.controls) == 1  # and no second stop is asked
    stopped = rig.stopped(sid, job_id, attempt, "cancel")
    gone = rig.dispatcher.worker_disconnected(sid)
    if order == "together":
        await asyncio.gather(stopped, gone)
    else:
        first, second = (stopped, gone) if order == "stopped_first" else (gone, stopped)
        await first
        await second
    assert runs == [job_id]
    assert len(rig.dispatcher.roster) == 0 and rig.queue.processing_list == []
    # The stop deadline finds nothing left to do.
    await until(lambda: not rig.dispatcher._tasks, "the stop deadline")
    assert runs == [job_id] and rig.queue.calls["done"] == 1


async def test_a_worker_that_leaves_while_stopping_is_no_crash(
    make_rig: MakeRig, quick_stops: None
) -> None:
    rig = await make_rig()
    job_id, sid, _ = await running_job(rig)
    await rig.controller.apply(UUID(job_id), "pause")
    await rig.dispatcher.worker_disconnected(sid)
    job = rig.job(job_id)
    assert job.status is Status.PAUSED and job.error_code is None
    assert len(rig.dispatcher.roster) == 0


async def test_finish_recording_sends_stop_and_keeps_the_slot(make_rig: MakeRig) -> None:
    rig = await make_rig()
    job_id, sid, attempt = await running_job(rig)
    assert await rig.dispatcher.finish_recording(job_id) is True
    assert rig.channel.controls == [(sid, wire.JobControl(job_id, attempt, "stop"))]
    assert rig.dispatcher.attempt(job_id).phase is Phase.RUNNING  # type: ignore[union-attr]
    assert await rig.dispatcher.finish_recording("1c8f6b63-7a8f-4e9d-8b62-4d2a1f7e3ba2") is False


async def test_drain_requeues_running_jobs_as_shutdown(make_rig: MakeRig) -> None:
    rig = await make_rig()
    rig.connect("s1")
    rig.connect("s2")
    first, s_first, a_first = await running_job(rig, "s1")
    second, s_second, _ = await running_job(rig, "s2")
    waiting = await rig.submit()  # no worker left: stays in the list
    drain = asyncio.create_task(rig.dispatcher.drain(2.0))
    await until(lambda: len(rig.channel.controls) == 2, "the two aborts")
    assert {m.action for _, m in rig.channel.controls} == {"abort"}
    await rig.stopped(s_first, first, a_first)
    await rig.dispatcher.worker_disconnected(s_second)  # leaving is part of the shutdown
    assert await asyncio.wait_for(drain, 2) == 2
    for job_id in (first, second):
        job = rig.job(job_id)
        assert (job.status, job.error_code) == (Status.QUEUED, "shutdown")
        assert job.meta == {"interruptions": 1}
    assert rig.queue.waiting_list.count(first) == 1 and rig.queue.waiting_list.count(second) == 1
    assert waiting in rig.queue.waiting_list and rig.channel.starts_for(waiting) == []
    assert rig.dispatcher.stopping


async def test_a_worker_that_leaves_during_a_drain_leaves_its_job_running(
    make_rig: MakeRig,
) -> None:
    """Its job is requeued at the next start (requeue_orphans), never failed."""
    rig = await make_rig()
    job_id, sid, _ = await running_job(rig)
    rig.dispatcher.begin_drain()
    await rig.dispatcher.worker_disconnected(sid)
    assert rig.job(job_id).status is Status.RUNNING and rig.job(job_id).error_code is None


# -- outages


async def test_terminal_writes_are_retried_through_a_store_outage(make_rig: MakeRig) -> None:
    rig = await make_rig()
    job_id, sid, attempt = await running_job(rig)
    rig.stage(job_id, attempt, {"f.bin": b"x"})
    rig.store.outage()
    done = asyncio.create_task(rig.completed(sid, job_id, attempt, {"f.bin": 1}))
    await until(lambda: rig.store.refused["complete"] == 1, "a refused write")
    assert rig.job(job_id).status is Status.RUNNING and not done.done()
    assert rig.dispatcher.attempt(job_id) is not None  # the slot stays taken meanwhile
    rig.store.outage(False)
    await asyncio.wait_for(done, 2)
    assert rig.store.calls["complete"] == 2  # retried once PostgreSQL was back
    assert rig.job(job_id).status is Status.COMPLETED
    assert len(rig.dispatcher.roster) == 0


async def test_a_failure_is_written_through_a_store_outage(make_rig: MakeRig) -> None:
    rig = await make_rig()
    job_id, sid, attempt = await running_job(rig)
    rig.store.outage()
    done = asyncio.create_task(rig.failed(sid, job_id, attempt, "not_found", "gone"))
    await until(lambda: rig.store.refused["fail"] == 1, "a refused write")
    rig.store.outage(False)
    await asyncio.wait_for(done, 2)
    assert rig.store.calls["fail"] == 2
    assert rig.job(job_id).status is Status.FAILED


async def test_a_redis_outage_pauses_dispatching_then_reconciles(make_rig: MakeRig) -> None:
    rig = await make_rig()
    rig.connect("s1")
    rig.start()
    await until(lambda: rig.queue.calls["take"] >= 1, "the loop to wait")
    rig.queue.outage()
    await until(lambda: rig.queue.refused["take"] == 1, "the take to fail")
    job_id = await rig.submit()  # the row is written, the push fails
    assert rig.job(job_id).status is Status.QUEUED and rig.queue.waiting_list == []
    rig.queue.flush_all()  # and Redis comes back empty
    rig.queue.outage(False)
    await rig.started(job_id, timeout_s=3)
    assert rig.queue.calls["restore"] >= 1 and rig.queue.is_marked


async def test_an_empty_restarted_redis_is_rebuilt_when_a_take_times_out(
    make_rig: MakeRig,
) -> None:
    rig = await make_rig()
    rig.connect("s1")
    job = rig.store.new_job(UUID("2d9a7c74-8b9a-4fae-9c73-5e3b2a8f4cb3"))  # only in PostgreSQL
    rig.queue.is_marked = False

    async def quick_take(timeout_s: float) -> Any:
        return await take(0.01)

    take = rig.queue.take
    rig.queue.take = quick_take  # type: ignore[method-assign]
    rig.start()
    await rig.started(str(job.id))


# -- upkeep


async def test_the_watchdog_stops_a_stalled_attempt_and_it_ends_as_stalled(
    make_rig: MakeRig,
) -> None:
    rig = await make_rig(queue={"watchdog_s": 5, "max_attempts": 1})
    job_id, sid, attempt = await running_job(rig)
    a = rig.dispatcher.attempt(job_id)
    assert a is not None
    assert await rig.upkeep.check_stalls(a.last_activity + 4.9) == 0
    rig.dispatcher.on_heartbeat(sid, {"jobId": job_id, "attempt": attempt, "active": True})
    beat = a.last_activity
    assert await rig.upkeep.check_stalls(beat + 5.1) == 1
    assert rig.channel.controls == [(sid, wire.JobControl(job_id, attempt, "abort"))]
    assert await rig.upkeep.check_stalls(beat + 100) == 0  # already being stopped
    await rig.stopped(sid, job_id, attempt)
    job = rig.job(job_id)
    assert (job.status, job.error_code) == (Status.FAILED, "stalled")
    assert job.error_message == "no progress for 5 s (1 attempt)"
    assert len(rig.dispatcher.roster) == 0


async def test_a_stalled_attempt_is_retried_within_max_attempts(make_rig: MakeRig) -> None:
    rig = await make_rig(queue={"watchdog_s": 5, "max_attempts": 2})
    job_id, sid, attempt = await running_job(rig)
    a = rig.dispatcher.attempt(job_id)
    assert a is not None
    await rig.upkeep.check_stalls(a.last_activity + 6)
    await rig.stopped(sid, job_id, attempt)
    _, attempt = await rig.started(job_id, 2)
    assert rig.job(job_id).meta == {"failures": 1} and attempt == 2


async def test_a_heartbeat_of_another_attempt_is_no_activity(make_rig: MakeRig) -> None:
    rig = await make_rig()
    job_id, sid, attempt = await running_job(rig)
    a = rig.dispatcher.attempt(job_id)
    assert a is not None
    a.last_activity = 0.0
    rig.dispatcher.on_heartbeat(sid, {"jobId": job_id, "attempt": attempt + 1, "active": True})
    rig.dispatcher.on_heartbeat(sid, {"jobId": job_id, "attempt": attempt, "active": False})
    rig.dispatcher.on_heartbeat(sid, "alive")
    assert a.last_activity == 0.0


async def test_the_reconciler_pushes_missing_ids_restores_stranded_ones_and_leaves_busy_ones(
    make_rig: MakeRig,
) -> None:
    rig = await make_rig()
    busy, _, _ = await running_job(rig)  # its id sits in processing, rightly
    missing = rig.store.new_job(UUID("3e8b6d85-9cab-4b0f-8d84-6f4c3b9a5dc4"))
    stranded = rig.store.new_job(UUID("4f9c7e96-adbc-4c1a-9e95-7a5d4cab6ed5"))
    listed = rig.store.new_job(UUID("5a0d8fa7-becd-4d2b-8fa6-8b6e5dbc7fe6"))
    rig.queue.processing_list.append(str(stranded.id))
    rig.queue.waiting_list.append(str(listed.id))
    assert await rig.upkeep.reconcile() == (1, 1)
    assert rig.queue.processing_list == [busy]
    # The stranded id is taken next, the missing one last.
    assert rig.queue.waiting_list == [str(missing.id), str(listed.id), str(stranded.id)]
    assert rig.queue.is_marked
    assert await rig.upkeep.reconcile() == (0, 0)  # nothing left to do


async def test_the_reconciler_at_start_up_requeues_orphans(make_rig: MakeRig) -> None:
    rig = await make_rig()
    orphan = rig.store.new_job(
        UUID("6b1e9ab8-cfde-4e3c-9ab7-9c7f6ecd8af7"), status=Status.RUNNING, attempts=1
    )
    assert await rig.upkeep.reconcile(startup=True) == (0, 1)
    job = rig.job(str(orphan.id))
    assert (job.status, job.error_code, job.meta) == (
        Status.QUEUED, "worker_lost", {"interruptions": 1}
    )  # fmt: skip
    assert rig.queue.waiting_list == [str(orphan.id)]


async def test_the_flusher_keeps_progress_dirty_through_an_outage(make_rig: MakeRig) -> None:
    from mediad.errors import StoreUnavailable

    rig = await make_rig()
    job_id, sid, attempt = await running_job(rig)
    await rig.progress(sid, job_id, attempt, progress=12.0)
    rig.store.outage()
    with pytest.raises(StoreUnavailable):
        await rig.upkeep.flush()
    rig.store.outage(False)
    assert await rig.upkeep.flush() == 1 and rig.job(job_id).progress == 12.0


async def test_snapshot_shows_in_memory_progress_of_the_current_attempt_only(
    make_rig: MakeRig,
) -> None:
    rig = await make_rig()
    job_id, sid, attempt = await running_job(rig)
    await rig.progress(sid, job_id, attempt, stage="merging", progress=42.0, speed=7, eta=3)
    row = rig.job(job_id)
    snap = rig.dispatcher.snapshot(row)
    assert (snap.stage, snap.progress, snap.speed, snap.eta) == ("merging", 42.0, 7, 3)
    newer = dataclasses.replace(row, attempts=attempt + 1)
    assert rig.dispatcher.snapshot(newer) is newer
    paused = dataclasses.replace(row, status=Status.PAUSED)
    assert rig.dispatcher.snapshot(paused) is paused
    other = rig.store.new_job(UUID("7c2fabc9-d0ef-4f4d-8bc8-ad80a7fe9b08"), status=Status.RUNNING)
    assert rig.dispatcher.snapshot(other) is other
    # The same rule for a page's rows (GET /downloads): by id and attempt.
    live = rig.dispatcher.live(job_id, attempt)
    assert live is not None and (live.stage, live.progress, live.speed) == ("merging", 42.0, 7)
    assert rig.dispatcher.live(job_id, attempt + 1) is None
    assert rig.dispatcher.live(str(other.id), other.attempts) is None


async def test_status_counts(make_rig: MakeRig) -> None:
    rig = await make_rig()
    await running_job(rig)
    rig.connect("s2")
    assert rig.dispatcher.status_counts() == {"connected": 2, "busy": 1, "running": 1}
    assert rig.dispatcher.has_worker("w-s2") and not rig.dispatcher.has_worker("w-s9")


def test_staging_dir_is_where_the_rig_stages(tmp_path: Path) -> None:
    rig = Rig(make_config(tmp_path))
    job_id = "0b7e5a52-6f7e-4d8c-9a51-3c1f0e6d2a91"
    assert rig.stage(job_id, 2, {}) == results.staging_dir(rig.config.data_path, job_id, 2)


async def test_a_completed_that_answers_a_pause_leaves_no_staging_folder(
    make_rig: MakeRig,
) -> None:
    """The tool finished as the pause arrived: its staged files are no result (the job
    is paused, and its next attempt stages anew), so they must not stay on disk."""
    rig = await make_rig()
    job_id, sid, attempt = await running_job(rig)
    await rig.controller.apply(UUID(job_id), "pause")
    staging = rig.stage(job_id, attempt, {"f.bin": b"x"})
    await rig.completed(sid, job_id, attempt, {"f.bin": 1})
    assert rig.dispatcher.attempt(job_id) is None and rig.job(job_id).status is Status.PAUSED
    assert not staging.exists(), "a paused job's data folder keeps a dead attempt's files"

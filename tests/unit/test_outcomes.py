"""mediad.outcomes.Outcomes against in-memory fakes: an attempt's end is recorded once,
its slot freed once, whatever fails on the way."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from mediad.attempts import Attempt, Phase
from mediad.errors import StoreUnavailable
from mediad.models import Status
from tests.support.fakes import Rig, make_config


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    rig = Rig(make_config(tmp_path, queue={"retry_backoff_s": 0}))
    yield rig
    await rig.close()


async def running(rig: Rig) -> tuple[Attempt, str]:
    rig.connect("s1")
    rig.start()
    job_id = await rig.submit()
    await rig.started(job_id)
    a = rig.dispatcher.attempt(job_id)
    assert a is not None
    return a, job_id


async def test_an_outcome_that_raises_fails_the_job_as_internal_error(rig: Rig) -> None:
    a, job_id = await running(rig)

    async def broken() -> None:
        raise RuntimeError("a bug")

    await rig.dispatcher.outcomes.settle(a, broken())
    job = rig.job(job_id)
    assert (job.status, job.error_code) == (Status.FAILED, "internal_error")
    assert a.phase is Phase.RELEASED and len(rig.dispatcher.roster) == 0


async def test_when_even_the_failure_cannot_be_written_the_slot_is_still_freed(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, job_id = await running(rig)

    async def broken(*args: Any, **kw: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(rig.store, "fail", broken)
    await rig.dispatcher.outcomes.settle(a, broken())
    assert a.phase is Phase.RELEASED and len(rig.dispatcher.roster) == 0
    assert rig.queue.processing_list == [] and rig.job(job_id).status is Status.RUNNING


async def test_release_frees_the_slot_once(rig: Rig) -> None:
    a, _ = await running(rig)
    a.settle()
    outcomes = rig.dispatcher.outcomes
    done = rig.queue.calls["done"]
    await outcomes.release(a)
    await outcomes.release(a)
    assert rig.queue.calls["done"] == done + 1 and len(rig.dispatcher.roster) == 0


async def test_release_while_redis_is_down_leaves_the_entry_to_the_reconciler(rig: Rig) -> None:
    a, job_id = await running(rig)
    a.settle()
    rig.queue.outage()
    await rig.dispatcher.outcomes.release(a)
    rig.queue.outage(False)
    assert len(rig.dispatcher.roster) == 0 and rig.queue.processing_list == [job_id]
    await rig.dispatcher.outcomes.fail(a, "not_found", "x")  # released: writes nothing more
    await rig.upkeep.reconcile()
    assert rig.queue.processing_list == []


async def test_stopped_after_a_release_runs_nothing(rig: Rig) -> None:
    a, _ = await running(rig)
    runs: list[int] = []

    async def then() -> None:
        runs.append(1)

    a.stop("cancel", then)
    await rig.dispatcher.outcomes.stopped(a)
    await rig.dispatcher.outcomes.stopped(a)
    assert runs == [1]


async def test_a_terminal_write_is_not_retried_once_the_service_stops(rig: Rig) -> None:
    a, job_id = await running(rig)
    rig.dispatcher.begin_drain()
    rig.store.outage()
    with pytest.raises(StoreUnavailable):
        await rig.dispatcher.outcomes.write_terminal(
            lambda: rig.store.fail(UUID(job_id), a.attempt, "not_found", "x")
        )
    assert rig.store.calls["fail"] == 1


async def test_a_retry_while_redis_is_down_is_pushed_by_the_reconciler(rig: Rig) -> None:
    a, job_id = await running(rig)
    rig.queue.outage()
    await rig.dispatcher.outcomes.lost(a, "worker_crashed", "gone")
    assert rig.job(job_id).status is Status.QUEUED
    await rig.dispatcher.stop()  # the delayed push has run (and failed) or is cancelled
    assert job_id not in rig.queue.waiting_list
    rig.queue.outage(False)
    await rig.upkeep.reconcile()
    assert rig.queue.waiting_list == [job_id]


async def test_a_shutdown_requeue_while_redis_is_down_is_left_to_the_next_start(
    rig: Rig,
) -> None:
    a, job_id = await running(rig)
    a.stop("abort", None)
    rig.queue.outage()
    assert await rig.dispatcher.outcomes.requeue_for_shutdown(a) is True
    job = rig.job(job_id)
    assert (job.status, job.error_code) == (Status.QUEUED, "shutdown")
    assert rig.publisher.updates(job_id)[-1] is Status.QUEUED


async def test_a_shutdown_requeue_of_an_attempt_that_ended_does_nothing(rig: Rig) -> None:
    a, job_id = await running(rig)
    await rig.controller.apply(UUID(job_id), "cancel")
    assert await rig.dispatcher.outcomes.requeue_for_shutdown(a) is False
    assert rig.job(job_id).status is Status.CANCELLED


@pytest.mark.parametrize(
    ("code", "interruptions", "failures", "retried"),
    [
        ("worker_crashed", 9, 0, False),  # the 10th interruption: max_interruptions is 10
        ("worker_crashed", 8, 2, True),  # failures do not count against interruptions
        ("network", 0, 2, False),  # the 3rd failure: max_attempts is 3
        ("network", 9, 1, True),
        ("stalled", 0, 1, True),
        ("not_found", 0, 0, False),
        ("pause", 0, 0, False),
    ],
)
def test_the_retry_budgets_are_counted_apart(
    rig: Rig, code: str, interruptions: int, failures: int, retried: bool
) -> None:
    a = Attempt("0b7e5a52-6f7e-4d8c-9a51-3c1f0e6d2a91", 1, "s1", "w-1")
    a.interruptions, a.failures = interruptions, failures
    assert rig.dispatcher.outcomes.retried(a, code) is retried


async def test_the_budget_counts_come_from_the_jobs_record(rig: Rig) -> None:
    rig.connect("s1")
    job = rig.store.new_job(
        UUID("2d9a7c74-8b9a-4fae-9c73-5e3b2a8f4cb3"), meta={"interruptions": 4, "failures": 2}
    )
    await rig.queue.push(str(job.id))
    rig.start()
    await rig.started(str(job.id))
    a = rig.dispatcher.attempt(str(job.id))
    assert a is not None and (a.interruptions, a.failures) == (4, 2)

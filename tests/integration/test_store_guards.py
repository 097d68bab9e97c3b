"""The store's guards against a real PostgreSQL: every client action from every status
lands exactly when ``states.action_target`` allows it, and the service's own changes
(mark_running, complete/fail/requeue, delete) only from the statuses the table names.
The in-memory ``FakeStore`` of the unit tests runs the same cases and must end with the
same rows."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import orjson
import pytest

from mediad import config as configuration
from mediad import states
from mediad.models import Job, JobType, Status
from mediad.notify.outbox import Outbox
from mediad.store import Store
from tests.support.fakes import FakeStore
from tests.support.harness import Databases

URL = "http://127.0.0.1:9/video.mp4"
# What both stores must agree on (timestamps and ids differ by nature).
COMPARED = ("status", "stage", "progress", "speed", "eta", "total_bytes", "filename",
            "output_path", "size", "error_code", "error_message", "meta", "attempts",
            "worker_id")  # fmt: skip


class Stores:
    def __init__(self, real: Store, conn: asyncpg.Connection) -> None:
        self.real = real
        self.conn = conn
        self.fake = FakeStore()

    async def job_in(self, status: Status, attempts: int = 1) -> UUID:
        """The same row in both stores, forced into ``status`` with some progress."""
        job_id = uuid4()
        await self.real.insert_job(job_id, URL, JobType.ARIA2, {})
        await self.conn.execute(
            "UPDATE jobs SET status = $2, attempts = $3, progress = 40, total_bytes = 100,"
            " stage = 'downloading', worker_id = 'w-1', error_code = 'network',"
            " error_message = 'refused' WHERE id = $1",
            job_id, status.value, attempts,
        )  # fmt: skip
        self.fake.new_job(
            job_id, status=status, attempts=attempts, progress=40.0, total_bytes=100,
            stage="downloading", worker_id="w-1", error_code="network", error_message="refused",
        )  # fmt: skip
        return job_id

    async def both(self, call: Any) -> tuple[Any, Any]:
        return await call(self.real), await call(self.fake)

    async def assert_same(self, job_id: UUID) -> Job | None:
        real, fake = await self.real.get_job(job_id), await self.fake.get_job(job_id)
        assert (real is None) == (fake is None)
        if real is not None and fake is not None:
            assert {k: _norm(getattr(real, k)) for k in COMPARED} == {
                k: _norm(getattr(fake, k)) for k in COMPARED
            }
            assert (real.finished_at is None) == (fake.finished_at is None)
        return real


def _norm(value: Any) -> Any:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


# Both stores record the jobs' ends for these targets (the outbox, notify/outbox.py).
NOTIFY = [
    {"name": "all", "url": "https://example.com/all"},
    {"name": "failures", "url": "https://example.com/f", "events": ["failed"]},
]


@pytest.fixture(scope="module")
async def stores(databases: Databases) -> AsyncIterator[Stores]:
    dsn = await databases.create()
    real = await Store.open(dsn)
    await real.migrate()
    conn = await asyncpg.connect(dsn)
    try:
        pair = Stores(real, conn)
        outbox = Outbox(configuration.build({"notify": NOTIFY}), real)
        real.outbox = pair.fake.outbox = outbox
        yield pair
    finally:
        await conn.close()
        await real.close()


CASES = list(itertools.product(sorted(states.ACTIONS), Status))


@pytest.mark.parametrize(("action", "status"), CASES, ids=[f"{a}-{s.value}" for a, s in CASES])
async def test_every_action_from_every_status(action: str, status: Status, stores: Stores) -> None:
    job_id = await stores.job_in(status)
    allowed, target = states.ACTIONS[action]
    real, fake = await stores.both(lambda s: s.transition(job_id, allowed, target))
    expected = states.action_target(action, status)
    if expected is None:
        assert real is None and fake is None
    else:
        assert real is not None and fake is not None
        assert real[1] is status and fake[1] is status
        assert real[0].status is expected
    job = await stores.assert_same(job_id)
    assert job is not None and job.status is (expected or status)


@pytest.mark.parametrize("status", list(Status), ids=[s.value for s in Status])
async def test_mark_running_only_from_queued(status: Status, stores: Stores) -> None:
    job_id = await stores.job_in(status)
    real, fake = await stores.both(lambda s: s.mark_running(job_id, "w-2"))
    assert (real is not None) == (fake is not None) == (status is Status.QUEUED)
    job = await stores.assert_same(job_id)
    assert job is not None
    if status is Status.QUEUED:
        assert (job.status, job.attempts, job.worker_id) == (Status.RUNNING, 2, "w-2")


END = [
    pytest.param(
        lambda s, j, n: s.complete(
            j,
            n,
            filename="f.bin",
            size=7,
            output_path="x/f.bin",
            meta={"files": [{"name": "f.bin", "size": 7}]},
        ),
        Status.COMPLETED,
        id="complete",
    ),
    pytest.param(lambda s, j, n: s.fail(j, n, "not_found", "404"), Status.FAILED, id="fail"),
    pytest.param(
        lambda s, j, n: s.requeue(j, n, "worker_crashed", "gone"), Status.QUEUED, id="requeue"
    ),
    pytest.param(
        lambda s, j, n: s.requeue(j, n, "stalled", "stuck"), Status.QUEUED, id="requeue_stalled"
    ),
]
END_CASES = [
    pytest.param(*end.values, status, attempt, id=f"{end.id}-{status.value}-{attempt}")
    for end in END
    for status in Status
    for attempt in ("current", "stale")
]


@pytest.mark.parametrize(("end", "target", "status", "attempt"), END_CASES)
async def test_an_attempt_ends_only_while_current_and_running(
    end: Any, target: Status, status: Status, attempt: str, stores: Stores
) -> None:
    job_id = await stores.job_in(status, attempts=2)
    n = 2 if attempt == "current" else 1
    real, fake = await stores.both(lambda s: end(s, job_id, n))
    lands = status is Status.RUNNING and attempt == "current"
    assert (real is not None) == (fake is not None) == lands
    job = await stores.assert_same(job_id)
    assert job is not None and job.status is (target if lands else status)


@pytest.mark.parametrize(("end", "target", "status", "attempt"), END_CASES)
async def test_a_terminal_write_records_its_notifications_only_when_it_lands(
    end: Any, target: Status, status: Status, attempt: str, stores: Stores
) -> None:
    job_id = await stores.job_in(status, attempts=2)
    n = 2 if attempt == "current" else 1
    await stores.both(lambda s: end(s, job_id, n))
    rows = await stores.conn.fetch(
        "SELECT target, event, payload FROM notifications WHERE job_id = $1", job_id
    )
    real = sorted((r["target"], r["event"]) for r in rows)
    fake = sorted((name, event) for j, name, event in stores.fake.notifications if j == job_id)
    assert real == fake
    lands = status is Status.RUNNING and attempt == "current"
    expected = {Status.COMPLETED: [("all", "completed")],
                Status.FAILED: [("all", "failed"), ("failures", "failed")]}  # fmt: skip
    assert real == (expected.get(target, []) if lands else [])
    job = await stores.real.get_job(job_id)
    assert job is not None
    for r in rows:  # the job as the API shows it, frozen when it ended
        assert orjson.loads(r["payload"])["job"] == job.to_api()


@pytest.mark.parametrize("status", list(Status), ids=[s.value for s in Status])
async def test_progress_lands_only_on_the_current_running_attempt(
    status: Status, stores: Stores
) -> None:
    from mediad.store import ProgressRow
    from mediad.wire import Live

    job_id = await stores.job_in(status, attempts=2)
    rows = [
        ProgressRow(job_id, 1, Live(progress=10.0)),
        ProgressRow(job_id, 2, Live(progress=60.0)),
    ]
    real, fake = await stores.both(lambda s: s.flush_progress(rows))
    assert real == fake == (1 if status is Status.RUNNING else 0)
    await stores.assert_same(job_id)


@pytest.mark.parametrize("status", list(Status), ids=[s.value for s in Status])
async def test_delete_refuses_only_a_running_job(status: Status, stores: Stores) -> None:
    job_id = await stores.job_in(status)
    real, fake = await stores.both(lambda s: s.delete_job(job_id))
    assert real == fake == (None if status is Status.RUNNING else status)
    await stores.assert_same(job_id)


async def test_orphans_and_queued_ids_agree(stores: Stores) -> None:
    await stores.conn.execute("DELETE FROM jobs")
    stores.fake.jobs.clear()
    ids = {status: await stores.job_in(status) for status in Status}
    real, fake = await stores.both(lambda s: s.requeue_orphans())
    assert real == fake == [ids[Status.RUNNING]]
    await stores.assert_same(ids[Status.RUNNING])
    real, fake = await stores.both(lambda s: s.queued_ids())
    assert real == fake == [ids[Status.QUEUED], ids[Status.RUNNING]]


def test_the_compared_fields_are_job_fields() -> None:
    names = {f.name for f in dataclasses.fields(Job)}
    assert set(COMPARED) <= names

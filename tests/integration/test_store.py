"""The schema the migrations build is the one the code reads, and the driver errors stay
inside store.py and queue.py."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid

import asyncpg
import pytest

from mediad import migrations
from mediad.errors import QueueUnavailable, StoreUnavailable
from mediad.models import Job, JobType
from mediad.queue import Queue
from mediad.store import ProgressRow, Store
from mediad.wire import Live
from tests.support.harness import Databases

# Every migration in schema/, oldest first: what a new database gets.
ALL_MIGRATIONS = [p.stem for p in sorted(migrations.schema_dir().glob("*.sql"))]
assert ALL_MIGRATIONS[:2] == ["001_init", "002_instances"]


async def test_migrations_build_the_schema_the_code_expects(databases: Databases) -> None:
    dsn = await databases.create()
    store = await Store.open(dsn)
    try:
        assert await store.migrate() == ALL_MIGRATIONS
        assert await store.migrate() == []  # applied once
        conn = await asyncpg.connect(dsn)
        try:
            columns = {
                r["column_name"]
                for r in await conn.fetch(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = 'jobs'"
                )
            }
            applied = await conn.fetchval("SELECT count(*) FROM schema_migrations")
            with pytest.raises(asyncpg.CheckViolationError):
                await conn.execute(
                    "INSERT INTO jobs (id, url, type, progress) VALUES ($1, 'http://x', 'ytdlp', 101)",
                    uuid.uuid4(),
                )
            with pytest.raises(asyncpg.CheckViolationError):
                await conn.execute(
                    "INSERT INTO jobs (id, url, type, status) VALUES ($1, 'http://x', 'ytdlp', 'zzz')",
                    uuid.uuid4(),
                )
        finally:
            await conn.close()
        assert {f.name for f in dataclasses.fields(Job)} <= columns
        assert columns - {f.name for f in dataclasses.fields(Job)} == {"headers"}
        assert applied == len(migrations.schema_files())
        # A row written by the store reads back into a Job.
        job = await store.insert_job(
            uuid.uuid4(), "http://a.example/v.mp4", JobType.ARIA2, {"k": 1}
        )
        assert job.options == {"k": 1} and job.status.value == "queued"
    finally:
        await store.close()


async def test_concurrent_starts_apply_each_migration_once(databases: Databases) -> None:
    dsn = await databases.create()
    conns = [await asyncpg.connect(dsn) for _ in range(4)]
    try:
        results = await asyncio.gather(*(migrations.apply(c) for c in conns))
        assert sorted(map(len, results)) == [0, 0, 0, len(ALL_MIGRATIONS)]
    finally:
        for conn in conns:
            await conn.close()


async def test_progress_flush_writes_only_the_current_attempt(databases: Databases) -> None:
    store = await Store.open(await databases.create())
    try:
        await store.migrate()
        job_id = uuid.uuid4()
        await store.insert_job(job_id, "http://a.example/x", JobType.YTDLP, {})
        job = await store.mark_running(job_id, "w1")
        assert job is not None and job.attempts == 1
        stale = ProgressRow(job_id, 2, Live("downloading", 50.0, 10, 1, 100))
        current = ProgressRow(job_id, 1, Live("downloading", 40.0, 10, 1, 100))
        assert await store.flush_progress([stale]) == 0
        assert await store.flush_progress([current]) == 1
        assert (
            await store.complete(job_id, 2, filename="f", size=1, output_path="p", meta={}) is None
        )
        done = await store.complete(job_id, 1, filename="f", size=1, output_path="p", meta={})
        assert done is not None and done.status.value == "completed"
        assert await store.flush_progress([current]) == 0  # terminal: no more writes
    finally:
        await store.close()


async def test_jobs_asked_for_together_share_one_query_and_see_every_write(
    databases: Databases,
) -> None:
    store = await Store.open(await databases.create())
    try:
        await store.migrate()
        jobs = [
            await store.insert_job(
                uuid.uuid4(), f"http://a.example/{i}.mp4", JobType.ARIA2, {"i": i}
            )
            for i in range(5)
        ]
        missing = uuid.uuid4()
        asked = [*(j.id for j in jobs), missing, jobs[0].id]
        batches = store._jobs.batches
        assert await asyncio.gather(*(store.get_job(i) for i in asked)) == [*jobs, None, jobs[0]]
        assert store._jobs.batches == batches + 1  # one round trip for all seven
        assert await store.get_job(missing) is None  # alone: the one-row query
        # Read-your-writes: a read asked after a write sees it.
        running = await store.mark_running(jobs[1].id, "w1")
        assert running is not None and await store.get_job(jobs[1].id) == running
        page = await store.list_jobs(limit=4)  # newest first: jobs 4, 3, 2 and 1
        assert [j.id for j in page] == [j.id for j in jobs[:0:-1]]
        assert page[-1] == running
    finally:
        await store.close()


async def test_a_read_while_postgres_is_down_raises_our_error_for_every_caller(
    databases: Databases,
) -> None:
    store = await Store.open(await databases.create())
    await store.migrate()
    await store.close()  # a closed pool answers like a dead server
    results = await asyncio.gather(
        *(store.get_job(uuid.uuid4()) for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, StoreUnavailable) for r in results), results


async def test_unreachable_servers_raise_our_own_errors() -> None:
    with pytest.raises(StoreUnavailable):
        await Store.open("postgresql://postgres@127.0.0.1:1/nothing")
    queue = Queue.from_url("redis://127.0.0.1:1/0")
    try:
        with pytest.raises(QueueUnavailable):
            await queue.ping()
        with pytest.raises(QueueUnavailable):
            await queue.push("x")
    finally:
        await queue.close()

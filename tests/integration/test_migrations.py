"""Upgrades: a store built at every schema version (files 1..k of schema/), filled with
jobs in every status through the columns that version has, then migrated to the latest
by the service's own code path. Nothing may be lost, and today's code must read every
row. Generic over the schema files, so each new migration is tested the day it lands."""

from __future__ import annotations

import shutil
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from mediad import migrations
from mediad.models import Job, JobType, Status
from mediad.store import Store, _init_connection
from tests.support.harness import Databases

SCHEMA = migrations.schema_dir()
FILES = migrations.schema_files(SCHEMA)

# Values that suit what each known column means (and its CHECK constraints); a column a
# later migration adds gets one from its type, or its default when it has one.
_NOW = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)


def _known(name: str, status: Status, n: int) -> Any:
    ended = status in (Status.COMPLETED, Status.FAILED, Status.CANCELLED)
    return {
        "id": uuid.UUID(int=n + 1),
        "url": f"https://example.com/video-{n}.mp4?q=é",
        "type": list(JobType)[n % len(JobType)].value,
        "status": status.value,
        "stage": "finalizing" if status is Status.COMPLETED else "downloading",
        "progress": 100.0 if status is Status.COMPLETED else 12.5,
        "speed": 1000 + n if status is Status.RUNNING else None,
        "eta": 7 if status is Status.RUNNING else None,
        "total_bytes": 4096 * (n + 1),
        "filename": f"video-{n}.mp4" if status is Status.COMPLETED else None,
        "output_path": f"/data/{n}/video-{n}.mp4" if status is Status.COMPLETED else None,
        "size": 4096 * (n + 1) if status is Status.COMPLETED else None,
        "error_code": "not_found" if status is Status.FAILED else None,
        "error_message": "HTTP Error 404" if status is Status.FAILED else None,
        "options": {"maxItems": n, "subtitles": ["en"], "nested": {"a": [1, None]}},
        "meta": {"files": [f"video-{n}.mp4"]} if status is Status.COMPLETED else {},
        "headers": {},
        "attempts": n % 3,
        "worker_id": "local-1" if status is Status.RUNNING else None,
        "created_at": _NOW + timedelta(seconds=n),
        "updated_at": _NOW + timedelta(seconds=n, milliseconds=500),
        "started_at": _NOW + timedelta(seconds=n + 1) if status is not Status.QUEUED else None,
        "finished_at": _NOW + timedelta(seconds=n + 2) if ended else None,
    }.get(name, _MISSING)


_MISSING = object()
_BY_TYPE = {
    "text": "x",
    "uuid": uuid.UUID(int=99),
    "integer": 1,
    "bigint": 1,
    "smallint": 1,
    "real": 1.0,
    "double precision": 1.0,
    "numeric": 1,
    "boolean": False,
    "jsonb": {},
    "json": {},
    "timestamp with time zone": _NOW,
}


async def _columns(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT column_name, data_type, is_nullable, column_default"
        " FROM information_schema.columns WHERE table_name = 'jobs' AND table_schema = 'public'"
        " ORDER BY ordinal_position"
    )


def _row(columns: list[asyncpg.Record], status: Status, n: int) -> dict[str, Any]:
    row = {}
    for column in columns:
        value = _known(column["column_name"], status, n)
        if value is _MISSING:
            if column["column_default"] is not None or column["is_nullable"] == "YES":
                continue  # the version's own default
            value = _BY_TYPE[column["data_type"]]
        row[column["column_name"]] = value
    return row


@pytest.mark.parametrize("k", range(1, len(FILES) + 1), ids=[name for name, _ in FILES])
async def test_a_store_at_every_schema_version_migrates_without_loss(
    k: int, databases: Databases, tmp_path: Path
) -> None:
    # The store as that version left it, by the same code path (schema_migrations too).
    earlier = tmp_path / "schema"
    earlier.mkdir()
    for _, path in FILES[:k]:
        shutil.copy(path, earlier / path.name)
    dsn = await databases.create()
    conn = await asyncpg.connect(dsn)
    await _init_connection(conn)
    try:
        assert await migrations.apply(conn, earlier) == [name for name, _ in FILES[:k]]
        columns = await _columns(conn)
        rows = [
            _row(columns, status, n)
            for n, status in enumerate(list(Status) * 2)  # every status, twice
        ]
        for row in rows:
            names = list(row)
            await conn.execute(
                f"INSERT INTO jobs ({', '.join(names)})"
                f" VALUES ({', '.join(f'${i + 1}' for i in range(len(names)))})",
                *row.values(),
            )
        before = {r["id"]: dict(r) for r in await conn.fetch("SELECT * FROM jobs")}

        assert await migrations.apply(conn, SCHEMA) == [name for name, _ in FILES[k:]]
        after = {r["id"]: dict(r) for r in await conn.fetch("SELECT * FROM jobs")}
        versions = [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")]
    finally:
        await conn.close()

    assert sorted(versions) == [name for name, _ in FILES]
    assert set(after) == set(before) and len(after) == 2 * len(Status)
    for job_id, old in before.items():
        kept = {name: after[job_id].get(name) for name in old}
        assert kept == old  # every column of that version, value for value

    # Today's code reads and lists every row.
    store = await Store.open(dsn, min_size=1, max_size=1)
    try:
        jobs = await store.list_jobs(limit=100)
        assert await store.migrate() == []  # and finds nothing left to apply
    finally:
        await store.close()
    assert {j.id for j in jobs} == set(before)
    assert Counter(j.status.value for j in jobs) == {s.value: 2 for s in Status}
    for job in jobs:
        assert isinstance(job, Job)
        api = job.to_api()
        assert api["options"] == before[job.id]["options"]
        assert api["status"] == before[job.id]["status"]

"""``mediad backup`` and ``mediad restore`` as processes: a round trip through an external
database with a token-protected service on each side (jobs in every status, their
options and files listed identically after the restore), and the embedded cluster,
started for the dump or used as it runs."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from pathlib import Path
from typing import Any

import asyncpg

from mediad import config as configuration
from mediad.daemons import ManagedPostgres, find_postgres_bin_dir
from mediad.service import Service
from tests.integration.test_store import ALL_MIGRATIONS
from tests.support.cli import clean_env, mediad
from tests.support.harness import Api, Databases, RedisServer, eventually, make_config, shared_tmp
from tests.support.harness import running_service as running
from tests.support.mediaserver import MediaServer

TOKEN = "backup-test-token-0123456789"


async def _listing(service: Service) -> list[dict[str, Any]]:
    env = clean_env(MEDIAD_URL=service.base_url, MEDIAD_TOKEN=TOKEN)
    run = await mediad("ls", "--json", "--limit", "100", env=env)
    assert run.code == 0, run.err
    return run.json()  # type: ignore[no-any-return]


async def _files(service: Service, jobs: list[dict[str, Any]]) -> dict[str, list[Any]]:
    api = Api(service.base_url, TOKEN)
    try:
        listed = {}
        for job in jobs:
            status, body = await api.request("GET", f"/files/{job['jobId']}")
            assert status == 200
            listed[job["jobId"]] = [(f["name"], f["size"], f["mimeType"]) for f in body["files"]]
        return listed
    finally:
        await api.close()


async def _rows(dsn: str) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(dsn)
    try:
        return [dict(r) for r in await conn.fetch("SELECT * FROM jobs ORDER BY id")]
    finally:
        await conn.close()


async def test_backup_and_restore_round_trip_with_tokens(
    new_config: Any,
    databases: Databases,
    redis_server: RedisServer,
    media_server: MediaServer,
    media_dir: Path,
    tmp_path: Path,
) -> None:
    source = await new_config(server={"api_tokens": [TOKEN]}, workers={"processes": 1})
    env = clean_env(MEDIAD_URL="", MEDIAD_TOKEN=TOKEN)
    # Completed and failed jobs need a worker…
    async with running(source) as service:
        env["MEDIAD_URL"] = service.base_url
        done = await mediad("get", media_server.url("blob.bin"), "--type", "aria2", env=env)
        assert done.code == 0, done.err
        failed = await mediad("get", media_server.url("gone.mp4"), env=env)
        assert failed.code == 1, failed.err
    # …queued, paused and cancelled ones none, and options of every kind.
    idle = configuration.replace(source, workers={"processes": 0})
    async with Service(idle) as service:
        env["MEDIAD_URL"] = service.base_url
        ids = []
        for options in (
            ["-o", "maxItems=3", "-o", "playlist=true"],
            ["-o", 'subtitles=["en"]'],
            [],
        ):
            run = await mediad("get", media_server.url("watch"), "--type", "ytdlp", "--no-wait", *options, env=env)  # fmt: skip
            assert run.code == 0, run.err
            ids.append(run.out.strip())
        assert (await mediad("pause", ids[0], env=env)).code == 0
        assert (await mediad("cancel", ids[1], env=env)).code == 0
        before = await _listing(service)
        files_before = await _files(service, before)
        assert sorted(j["status"] for j in before) == [
            "cancelled", "completed", "failed", "paused", "queued",
        ]  # fmt: skip
        # While the service runs: one consistent snapshot.
        dump = tmp_path / "mediad.dump"
        backup = await mediad("backup", str(dump), env=clean_env(DATABASE_URL=source.database.url))
        assert backup.code == 0, backup.err
        assert f"5 jobs, schema {ALL_MIGRATIONS[-1]}" in backup.out
        assert dump.stat().st_mode & 0o777 == 0o600
        assert dump.read_bytes()[:5] == b"PGDMP"  # pg_dump's custom format

    target_dsn = await databases.create()
    target_env = clean_env(DATABASE_URL=target_dsn)
    restored = await mediad("restore", str(dump), env=target_env)
    assert restored.code == 0, restored.err
    assert f"5 jobs, schema {ALL_MIGRATIONS[-1]}" in restored.out
    assert await _rows(target_dsn) == await _rows(source.database.url)
    # Not into a store with jobs, unless --force.
    again = await mediad("restore", str(dump), env=target_env)
    assert again.code == 4 and "has 5 jobs" in again.err and "--force" in again.err
    forced = await mediad("restore", str(dump), "--force", env=target_env)
    assert forced.code == 0, forced.err

    # The data folder copied beside it: the same jobs, statuses, options and files.
    state = shared_tmp("mediad-test-restored-")
    try:
        shutil.copytree(source.data_path, state / "data")
        target = make_config(
            state,
            target_dsn,
            redis_server.url,
            server={"api_tokens": [TOKEN]},
            workers={"processes": 0},
        )
        async with Service(target) as service:
            after = await _listing(service)
            assert after == before
            assert await _files(service, after) == files_before
            completed = next(j for j in after if j["status"] == "completed")
            env = clean_env(MEDIAD_URL=service.base_url, MEDIAD_TOKEN=TOKEN)
            run = await mediad("show", completed["jobId"], env=env)
            assert "blob.bin  4.0 MiB" in run.out
            api = Api(service.base_url, TOKEN)
            try:
                status, body = await api.request("GET", f"/files/{completed['jobId']}/download")
            finally:
                await api.close()
            assert status == 200 and body == (media_dir / "blob.bin").read_bytes()
    finally:
        shutil.rmtree(state, ignore_errors=True)


async def test_restore_refuses_what_is_not_a_backup(databases: Databases, tmp_path: Path) -> None:
    junk = tmp_path / "junk.dump"
    junk.write_bytes(b"not a dump\n")
    env = clean_env(DATABASE_URL=await databases.create())
    run = await mediad("restore", str(junk), env=env)
    assert run.code == 1 and "restore failed: pg_restore failed" in run.err, run.err
    missing = await mediad("restore", str(tmp_path / "nothing"), env=env)
    assert missing.code == 1 and "is not a file" in missing.err
    empty = await mediad("backup", str(tmp_path / "b.dump"), env=env)
    assert empty.code == 1 and "nothing to back up" in empty.err
    assert not (tmp_path / "b.dump").exists()


async def test_the_embedded_cluster_started_for_a_backup_or_used_as_it_runs(
    databases: Databases, tmp_path: Path
) -> None:
    # A store to begin with: one migrated database with jobs in it, dumped.
    seed_dsn = await databases.create()
    conn = await asyncpg.connect(seed_dsn)
    try:
        from mediad import migrations

        await migrations.apply(conn)
        for n, status in enumerate(("queued", "completed", "failed")):
            await conn.execute(
                "INSERT INTO jobs (id, url, type, status, options)"
                " VALUES (gen_random_uuid(), $1, 'aria2', $2, $3::jsonb)",
                f"https://example.com/{n}.mp4",
                status,
                json.dumps({"n": n}),
            )
    finally:
        await conn.close()
    seed = tmp_path / "seed.dump"
    assert (await mediad("backup", str(seed), env=clean_env(DATABASE_URL=seed_dsn))).code == 0

    state = shared_tmp("mediad-test-embedded-backup-")
    env = clean_env(MEDIAD_STORAGE_STATE_DIR=str(state))
    try:
        nothing = await mediad("backup", str(tmp_path / "none.dump"), env=env)
        assert nothing.code == 1 and "no embedded PostgreSQL cluster" in nothing.err
        assert not (state / "postgres").exists()  # no cluster made just to say so

        # Restore on a "new machine": the cluster is created, loaded and stopped.
        restored = await mediad("restore", str(seed), env=env)
        assert restored.code == 0, restored.err
        assert "3 jobs" in restored.out
        refused = await mediad("restore", str(seed), env=env)
        assert refused.code == 4 and "has 3 jobs" in refused.err

        # Not running: started for the dump, stopped after it.
        first = tmp_path / "first.dump"
        run = await mediad("backup", str(first), env=env)
        assert run.code == 0, run.err
        assert "3 jobs" in run.out
        assert not (state / "postgres" / "data" / "postmaster.pid").exists()

        # Running (as under mediad serve): used as it runs, and left running.
        cluster = ManagedPostgres(state / "postgres", bin_dir=find_postgres_bin_dir())
        await cluster.start()
        try:
            pid = cluster.pid
            second = tmp_path / "second.dump"
            run = await mediad("backup", str(second), env=env)
            assert run.code == 0, run.err
            assert cluster.pid == pid and pid is not None
            busy = await mediad("restore", str(seed), "--force", env=env)
            assert busy.code == 4 and "is running" in busy.err
            rows = await _rows(cluster.dsn)
        finally:
            await cluster.stop()

        # Both dumps hold the seed's jobs.
        for dump in (first, second):
            dsn = await databases.create()
            assert (await mediad("restore", str(dump), env=clean_env(DATABASE_URL=dsn))).code == 0
            assert await _rows(dsn) == rows == await _rows(seed_dsn)
    finally:
        shutil.rmtree(state, ignore_errors=True)


async def test_the_dump_is_one_snapshot_while_jobs_are_written(
    databases: Databases, tmp_path: Path
) -> None:
    """Jobs inserted all through the dump: the count it prints is exactly what it holds,
    and a restore refuses a store someone is connected to."""
    from mediad import migrations

    dsn = await databases.create()
    conn = await asyncpg.connect(dsn)
    await migrations.apply(conn)
    writing = await asyncpg.connect(dsn)
    stop = asyncio.Event()

    async def write() -> int:
        n = 0
        while not stop.is_set():
            await writing.execute(
                "INSERT INTO jobs (id, url, type, status) VALUES (gen_random_uuid(), $1, 'aria2', 'queued')",
                f"https://example.com/{n}.mp4",
            )
            n += 1
            await asyncio.sleep(0)
        return n

    writer = asyncio.ensure_future(write())
    try:
        await eventually(lambda: conn.fetchval("SELECT count(*) > 20 FROM jobs"), what="writes")
        dump = tmp_path / "live.dump"
        run = await mediad("backup", str(dump), env=clean_env(DATABASE_URL=dsn))
        assert run.code == 0, run.err
        written_meanwhile = await conn.fetchval("SELECT count(*) FROM jobs")
    finally:
        stop.set()
        await writer
    try:
        counted = int(re.search(r": (\d+) jobs", run.out)[1])  # type: ignore[index]
        target = await databases.create()
        holder = await asyncpg.connect(target)  # as a running service would be
        try:
            busy = await mediad("restore", str(dump), env=clean_env(DATABASE_URL=target))
            assert busy.code == 4 and "other connection" in busy.err, busy.err
        finally:
            await holder.close()
        restored = await mediad("restore", str(dump), env=clean_env(DATABASE_URL=target))
        assert restored.code == 0, restored.err
        assert f"{counted} jobs" in restored.out
        assert len(await _rows(target)) == counted <= written_meanwhile
    finally:
        await conn.close()
        await writing.close()

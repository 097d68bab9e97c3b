"""The dispatcher's promises: batched writes, the concurrency limit, authenticated
workers, and an honest /health."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import socketio

from mediad.service import Service
from tests.support.harness import Api, RedisServer, eventually, running_service
from tests.support.mediaserver import MediaServer
from tests.support.workers import ScriptedWorker

WORKER_TOKEN = "remote-worker-token-for-tests-0123456789"


async def _write_log(dsn: str) -> asyncpg.Connection:
    """Count every UPDATE of a job row with a trigger: the database's own record."""
    conn = await asyncpg.connect(dsn)
    await conn.execute(
        """
        CREATE TABLE test_job_writes (job_id uuid, at timestamptz DEFAULT clock_timestamp());
        CREATE FUNCTION test_log_job_write() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN INSERT INTO test_job_writes (job_id) VALUES (NEW.id); RETURN NEW; END $$;
        CREATE TRIGGER test_job_writes AFTER UPDATE ON jobs
            FOR EACH ROW EXECUTE FUNCTION test_log_job_write();
        """
    )
    return conn


async def test_progress_writes_are_batched(new_config: Any, media_server: MediaServer) -> None:
    config = await new_config(workers={"processes": 0, "token": WORKER_TOKEN})
    service = Service(config)
    await service.start()
    api = Api(service.base_url)
    worker = ScriptedWorker(service.base_url, token=WORKER_TOKEN, storage=service.config)
    assert config.database.url is not None
    log = await _write_log(config.database.url)
    try:
        await worker.connect()
        created = await api.submit(media_server.url("blob.bin"), type="aria2")
        job_id = created["jobId"]
        await eventually(lambda: worker.starts, what="job:start")
        attempt = worker.start_of(0)["attempt"]
        await log.execute("DELETE FROM test_job_writes")
        # 60 events a second for 3 seconds, paced by the clock.
        sent, started = 0, time.monotonic()
        while (elapsed := time.monotonic() - started) < 3.0:
            while sent < elapsed * 60:
                sent += 1
                await worker.emit(
                    "progress",
                    {"jobId": job_id, "attempt": attempt, "stage": "downloading",
                     "progress": min(99.0, sent / 3), "speed": 1000 + sent, "eta": 5,
                     "totalBytes": 4 * 1024 * 1024},
                )  # fmt: skip
            await asyncio.sleep(0.005)
        duration = time.monotonic() - started
        # The last flush lands within one throttle interval.
        await eventually(
            lambda: (
                service.dispatcher is not None and not service.dispatcher.roster.get(job_id).dirty
            ),
            what="the last flush",
        )
        await asyncio.sleep(config.progress.throttle_ms / 1000)
        writes = await log.fetchval(
            "SELECT count(*) FROM test_job_writes WHERE job_id = $1", created["jobId"]
        )
        assert sent / duration >= 50
        assert writes >= 2, "progress was never written"
        assert writes / duration <= 4, f"{writes} writes in {duration:.2f}s"
        row = await api.job(job_id)
        assert row["progress"] == pytest.approx(min(99.0, sent / 3), abs=0.01)
    finally:
        await log.close()
        await worker.close()
        await api.close()
        await service.stop()


async def test_never_more_than_concurrency_jobs_run(
    new_config: Any, media_server: MediaServer
) -> None:
    from tests.support.jobs_client import JobsClient

    # More workers than slots: only the limit can hold the 4th job back.
    config = await new_config(queue={"concurrency": 3}, workers={"processes": 4})
    async with running_service(config) as service, JobsClient(service.base_url) as client:
        api = Api(service.base_url)
        try:
            await client.subscribe(all=True)
            # 4 MiB at 2 MB/s: about two seconds each.
            url = media_server.url("blob.bin", rate=2_000_000)
            ids = [(await api.submit(url, type="aria2"))["jobId"] for _ in range(4)]
            for job_id in ids:
                await api.wait_status(job_id, "completed", timeout_s=60)
        finally:
            await api.close()
    running: set[str] = set()
    peak = 0
    fourth_started_after: set[str] | None = None
    finished: set[str] = set()
    for name, data in client.events:
        if name != "job-update" or data["jobId"] not in ids:
            continue
        if data["status"] == "running":
            running.add(data["jobId"])
            if data["jobId"] == ids[3]:
                fourth_started_after = set(finished)
        elif data["status"] in ("completed", "failed"):
            running.discard(data["jobId"])
            finished.add(data["jobId"])
        peak = max(peak, len(running))
    assert peak == 3
    assert fourth_started_after, "the 4th job started before any of the first 3 ended"
    assert fourth_started_after <= set(ids[:3])


async def test_worker_namespace_refuses_missing_and_wrong_tokens(shared_service: Service) -> None:
    # The shared service has no shared token; local-9 was never issued one.
    for token in (None, "", "x" * 43, WORKER_TOKEN):
        client = ScriptedWorker(
            shared_service.base_url, "local-9", token=token, storage=shared_service.config
        )
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect()
        await client.sio.disconnect()
    # Another worker's id with a made-up token, or the real token of another id.
    issued = shared_service.tokens._issued
    for worker_id, token in (("local-1", "y" * 43), ("local-9", issued["local-2"])):
        client = ScriptedWorker(
            shared_service.base_url, worker_id, token=token, storage=shared_service.config
        )
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect()
        await client.sio.disconnect()
    assert shared_service.dispatcher.roster.worker_count == 3  # type: ignore[union-attr]


async def test_events_for_jobs_not_bound_to_the_worker_are_ignored(
    new_config: Any, media_server: MediaServer
) -> None:
    config = await new_config(workers={"processes": 0, "token": WORKER_TOKEN})
    async with Service(config) as service:
        api = Api(service.base_url)
        owner = ScriptedWorker(
            service.base_url, "owner", token=WORKER_TOKEN, storage=service.config
        )
        intruder = ScriptedWorker(
            service.base_url, "intruder", token=WORKER_TOKEN, storage=service.config
        )
        try:
            await owner.connect()
            created = await api.submit(media_server.url("blob.bin"), type="aria2")
            job_id = created["jobId"]
            await eventually(lambda: owner.starts, what="job:start")
            await intruder.connect()
            dispatcher = service.dispatcher
            assert dispatcher is not None
            before = dispatcher.ignored_events
            forged = [
                (
                    "progress",
                    {"jobId": job_id, "attempt": 1, "stage": "downloading", "progress": 77},
                ),
                ("completed", {"jobId": job_id, "attempt": 1, "files": [{"name": "x", "size": 1}]}),
                ("failed", {"jobId": job_id, "attempt": 1, "errorCode": "x", "message": "forged"}),
            ]
            for event, data in forged:
                await intruder.emit(event, data)
            # The owner, with the wrong attempt, is ignored too.
            await owner.emit("progress", {**forged[0][1], "attempt": 2})
            await eventually(lambda: dispatcher.ignored_events >= before + 4, what="4 ignored")
            job = await api.job(job_id)
            assert job["status"] == "running" and job["progress"] is None
            # The bound worker is heard.
            await owner.emit("progress", {**forged[0][1], "progress": 12.5})
            await eventually(
                lambda: dispatcher.roster.get(job_id).live.progress == 12.5, what="owner's progress"
            )
            # After its `completed`, nothing more from it counts or reaches clients.
            from tests.support.jobs_client import JobsClient

            staging = config.data_path / job_id / ".attempt-1"  # where a worker stages
            staging.mkdir(parents=True)
            (staging / "x.bin").write_bytes(b"12345")
            async with JobsClient(service.base_url) as watcher:
                await watcher.subscribe(jobId=job_id)
                done = {"jobId": job_id, "attempt": 1, "files": [{"name": "x.bin", "size": 5}]}
                await owner.emit("completed", done)
                await owner.emit("progress", {**forged[0][1], "progress": 99})
                await owner.emit("failed", {**forged[2][1]})
                await owner.emit("completed", done)
                await eventually(lambda: dispatcher.ignored_events >= before + 7, what="3 more")
                await api.wait_status(job_id, "completed")
                await eventually(
                    lambda: ("completed", job_id) in [(n, d["jobId"]) for n, d in watcher.events],
                    what="completed",
                )
                names = [n for n, _ in watcher.events]
            assert names.count("completed") == 1 and "progress" not in names, names
            assert "failed" not in names
            job = await api.job(job_id)
            assert job["status"] == "completed" and job["size"] == 5
        finally:
            await owner.close()
            await intruder.close()
            await api.close()


async def test_health_is_503_while_redis_is_down(new_config: Any) -> None:
    redis = RedisServer()
    await redis.start()
    try:
        config = await new_config(redis_url=redis.url)
        async with running_service(config) as service:
            api = Api(service.base_url)
            try:
                status, body = await api.request("GET", "/health")
                assert status == 200, body
                assert set(body["checks"]) == {"postgres", "redis", "aria2", "twmd", "workers"}
                assert body["checks"]["twmd"] == {"status": "unconfigured"}
                assert body["checks"]["workers"]["connected"] == 3
                assert body["queue"] == {"depth": 0}
                await redis.stop()
                status, body = await api.request("GET", "/health")
                assert status == 503
                assert body["status"] == "unavailable"
                assert body["checks"]["redis"]["status"] == "down"
                assert body["checks"]["postgres"]["status"] == "ok"
                await redis.start()

                async def healthy() -> bool:
                    return (await api.request("GET", "/health"))[0] == 200

                await eventually(healthy, what="health 200 after Redis is back")
            finally:
                await api.close()
    finally:
        await redis.close()


async def test_a_worker_that_dies_is_restarted_and_its_old_token_refused(
    new_config: Any,
) -> None:
    import os
    import signal

    config = await new_config(queue={"concurrency": 1})
    async with running_service(config) as service:
        supervisor, dispatcher = service.supervisor, service.dispatcher
        assert supervisor is not None and dispatcher is not None
        old_pid = supervisor.procs["local-1"].pid
        old_token = service.tokens._issued["local-1"]
        os.kill(old_pid, signal.SIGKILL)
        await eventually(
            lambda: "local-1" in supervisor.procs and supervisor.procs["local-1"].pid != old_pid,
            what="a new worker process",
        )
        await eventually(
            lambda: dispatcher.roster.worker_count == 1, what="the new worker to connect"
        )
        assert supervisor.restarts == 1
        assert not service.tokens.check("local-1", old_token)


async def test_active_heartbeats_keep_a_silent_job_alive_and_silence_stalls_it(
    new_config: Any, media_server: MediaServer
) -> None:
    """A merge prints no progress but its worker says the tool is busy: not stalled.
    When the heartbeats stop saying so, the watchdog stops the attempt."""
    config = await new_config(
        workers={"processes": 0, "token": WORKER_TOKEN},
        queue={"watchdog_s": 1.5, "max_attempts": 1},
    )
    async with Service(config) as service:
        api = Api(service.base_url)
        worker = ScriptedWorker(service.base_url, token=WORKER_TOKEN, storage=service.config)
        controls = worker.controls
        try:
            await worker.connect()
            job_id = (await api.submit(media_server.url("blob.bin"), type="aria2"))["jobId"]
            await eventually(lambda: worker.starts, what="job:start")
            beat = {"jobId": job_id, "attempt": 1, "active": True}
            loop = asyncio.get_running_loop()
            end = loop.time() + 3.0  # twice the watchdog limit
            while loop.time() < end:
                await worker.emit("heartbeat", beat)
                await asyncio.sleep(0.2)
            assert controls == [] and (await api.job(job_id))["status"] == "running"
            # Alive but idle from now on.
            while not controls:
                await worker.emit("heartbeat", {**beat, "active": False})
                await asyncio.sleep(0.2)
            assert controls == [{"jobId": job_id, "attempt": 1, "action": "abort"}]
            await worker.emit("stopped", {"jobId": job_id, "attempt": 1, "action": "abort"})
            job = await api.wait_status(job_id, "failed")
            assert job["errorCode"] == "stalled"
        finally:
            await worker.close()
            await api.close()


async def test_a_killed_zygote_is_started_again_and_its_workers_with_it(
    new_config: Any, media_server: MediaServer
) -> None:
    """Every local worker is forked by the zygote: when it is SIGKILLed its workers go too
    (their parent-death signal), and the supervisor starts a new zygote and new workers,
    which take jobs again."""
    import os
    import signal

    config = await new_config(workers={"processes": 2})
    async with running_service(config) as service:
        supervisor, dispatcher = service.supervisor, service.dispatcher
        assert supervisor is not None and dispatcher is not None
        assert supervisor.zygote is not None and supervisor.zygote_starts == 1
        zygote = supervisor.zygote.pid
        old = {w: p.pid for w, p in supervisor.procs.items()}
        assert sorted(old) == ["local-1", "local-2"]
        for pid in old.values():  # the zygote's children, not the service's
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            assert int(stat[1]) == zygote
        os.kill(zygote, signal.SIGKILL)

        def gone(pid: int) -> bool:
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except FileNotFoundError:
                return True
            return state == "Z"

        await eventually(lambda: all(gone(p) for p in old.values()), what="the old workers gone")
        await eventually(
            lambda: (
                supervisor.zygote is not None
                and supervisor.zygote.pid != zygote
                and sorted(supervisor.procs) == ["local-1", "local-2"]
                and not set(old.values()) & {p.pid for p in supervisor.procs.values()}
            ),
            what="a new zygote and new workers",
            timeout_s=30,
        )
        assert supervisor.zygote_starts == 2
        await eventually(
            lambda: dispatcher.roster.worker_count == 2, what="the new workers to connect"
        )
        api = Api(service.base_url)
        try:
            job_id = (await api.submit(media_server.url("blob.bin"), type="aria2"))["jobId"]
            await api.wait_status(job_id, "completed", timeout_s=60)
        finally:
            await api.close()

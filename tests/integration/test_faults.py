"""Fault injection against the real processes. The promise: every accepted job reaches
exactly one terminal state; attempts are at-least-once; a job publishes at most one
result; never more than `queue.concurrency` jobs run at once."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import socketio

from mediad.daemons import ManagedPostgres, find_postgres_bin_dir
from mediad.service import Service
from tests.integration.test_dispatch import WORKER_TOKEN
from tests.integration.test_serve_cli import alive, descendants
from tests.support import media
from tests.support.harness import (
    Api,
    Databases,
    RedisServer,
    eventually,
    running_service,
    shared_tmp,
)
from tests.support.mediaserver import MediaServer
from tests.support.ports import fixed_port
from tests.support.proctree import forked_for
from tests.support.workers import ScriptedWorker

BLOB_SHA = None  # filled lazily from media_dir


def children(pid: int) -> list[int]:
    return sorted(descendants(pid))


def _cmdline(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    return ""


def _sha(media_dir: Path) -> str:
    global BLOB_SHA
    if BLOB_SHA is None:
        BLOB_SHA = media.sha256_file(media_dir / "blob.bin")
    return BLOB_SHA


def published(config: Any, job_id: str) -> list[str]:
    """Every entry under data/{jobId}: the result and nothing else (no staging left)."""
    folder = config.data_path / job_id
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


async def _running(api: Api, job_id: str, percent: float = 10) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        job = await api.job(job_id)
        ok = job["status"] == "running" and (job["progress"] or 0) >= percent
        return job if ok else None

    return await eventually(check, what=f"{job_id} running past {percent} %")


async def _verify_complete(api: Api, config: Any, job_id: str, media_dir: Path) -> dict[str, Any]:
    job = await api.wait_status(job_id, "completed", "failed", timeout_s=90)
    assert job["status"] == "completed", job
    _, body = await api.request("GET", f"/files/{job_id}/download")
    assert hashlib.sha256(body).hexdigest() == _sha(media_dir)
    assert published(config, job_id) == [job["filename"]]
    return job


@pytest.fixture(scope="module")
async def faulty(new_module_config: Any) -> AsyncIterator[Service]:
    config = await new_module_config(
        queue={"max_attempts": 3, "max_interruptions": 3, "retry_backoff_s": 0.1, "concurrency": 2},
        workers={"processes": 2},
    )
    async with running_service(config) as service:
        yield service


@pytest.mark.parametrize("job_type", ["ytdlp", "aria2"])
async def test_sigkill_a_worker_mid_download(
    job_type: str, faulty: Service, media_server: MediaServer, media_dir: Path
) -> None:
    api = Api(faulty.base_url)
    assert faulty.supervisor is not None and faulty.dispatcher is not None
    try:
        url = media_server.url("blob.bin", rate=1_000_000)
        job_id = (await api.submit(url, type=job_type))["jobId"]
        await _running(api, job_id)
        worker_pid = faulty.supervisor.procs[_worker_of(faulty, job_id)].pid
        tools = children(worker_pid)  # (aria2: the service's daemon, none of the worker's)
        if job_type == "ytdlp":
            tools += await eventually(lambda: forked_for(worker_pid), what="the job's yt-dlp")
        os.kill(worker_pid, signal.SIGKILL)
        # Its tools die with it (a parent-death signal; the zygote kills the yt-dlp it
        # forked for the worker when the worker's channel ends), a new worker starts.
        await eventually(lambda: not [p for p in tools if alive(p)], what="the tools to die")
        done = await _verify_complete(api, faulty.config, job_id, media_dir)
        assert done["attempts"] == 2
        await eventually(lambda: faulty.dispatcher.roster.worker_count == 2, what="2 workers again")  # type: ignore[union-attr]
    finally:
        await api.close()


def _worker_of(service: Service, job_id: str) -> str:
    assert service.dispatcher is not None
    return service.dispatcher.roster.get(job_id).worker_id


async def test_sigkill_only_the_tool_retries_the_job(
    faulty: Service, media_server: MediaServer, media_dir: Path
) -> None:
    api = Api(faulty.base_url)
    assert faulty.supervisor is not None
    try:
        url = media_server.url("blob.bin", rate=1_000_000)
        job_id = (await api.submit(url, type="ytdlp"))["jobId"]
        await _running(api, job_id)
        worker = faulty.supervisor.procs[_worker_of(faulty, job_id)]
        # The forked yt-dlp (the zygote, the worker's parent, is its parent too).
        zygote = int(Path(f"/proc/{worker.pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        (tool,) = [p for p in children(zygote) if _cmdline(p).strip() == f"mediad: yt-dlp {job_id}"]
        os.kill(tool, signal.SIGKILL)
        done = await _verify_complete(api, faulty.config, job_id, media_dir)
        assert done["attempts"] == 2
        assert worker.returncode is None  # the worker itself carried on
    finally:
        await api.close()


async def test_sigkill_the_aria2_daemon_retries_the_job(
    faulty: Service, media_server: MediaServer, media_dir: Path
) -> None:
    api = Api(faulty.base_url)
    assert faulty.aria2 is not None
    try:
        url = media_server.url("blob.bin", rate=1_000_000)
        job_id = (await api.submit(url, type="aria2"))["jobId"]
        await _running(api, job_id)
        daemon = faulty.aria2._proc
        assert daemon is not None
        os.kill(daemon.pid, signal.SIGKILL)
        done = await _verify_complete(api, faulty.config, job_id, media_dir)
        assert done["attempts"] == 2
        status, health = await api.request("GET", "/health")
        assert status == 200 and health["checks"]["aria2"]["status"] == "ok"
    finally:
        await api.close()


async def test_a_job_started_while_the_aria2_daemon_is_down_is_interrupted_not_failed(
    new_config: Any, media_server: MediaServer, media_dir: Path
) -> None:
    """Found by the chaos test: addUri refused while the daemon restarts is mediad's
    fault, so the job is retried (as `interrupted`, within `queue.max_interruptions`)
    instead of failing with `tool_failed`. The restart is held until two attempts met
    the dead daemon."""
    config = await new_config(queue={"retry_backoff_s": 0.05, "concurrency": 1})
    async with running_service(config) as service:
        api = Api(service.base_url)
        daemon, store = service.aria2, service.store
        assert daemon is not None and daemon._proc is not None and store is not None
        gate = asyncio.Event()
        restart = daemon.start

        async def held_start(*args: Any, **kwargs: Any) -> None:
            await gate.wait()
            await restart(*args, **kwargs)

        daemon.start = held_start  # type: ignore[method-assign]
        try:
            dead = daemon._proc
            os.kill(dead.pid, signal.SIGKILL)
            await eventually(lambda: dead.returncode is not None, what="the daemon to die")
            job_id = (await api.submit(media_server.url("blob.bin"), type="aria2"))["jobId"]

            async def met_it_twice() -> bool:
                job = await store.get_job(uuid.UUID(job_id))
                assert job is not None and job.status.value != "failed", job
                return job.meta.get("interruptions", 0) >= 2

            await eventually(met_it_twice, what="two attempts against the dead daemon")
            gate.set()
            done = await _verify_complete(api, config, job_id, media_dir)
            assert done["attempts"] >= 3
        finally:
            gate.set()
            await api.close()


async def test_a_poison_job_fails_after_max_attempts_without_harming_the_rest(
    faulty: Service, media_server: MediaServer, media_dir: Path
) -> None:
    """Its worker dies every time it runs it."""
    api = Api(faulty.base_url)
    assert faulty.supervisor is not None
    try:
        url = media_server.url("blob.bin", rate=500_000)
        job_id = (await api.submit(url, type="aria2"))["jobId"]
        for attempt in (1, 2, 3):

            async def on_attempt(n: int = attempt) -> bool:
                job = await api.job(job_id)
                return job["status"] == "running" and job["attempts"] == n

            await eventually(on_attempt, timeout_s=60, what=f"attempt {attempt}")
            os.kill(faulty.supervisor.procs[_worker_of(faulty, job_id)].pid, signal.SIGKILL)
        job = await api.wait_status(job_id, "failed", timeout_s=60)
        assert job["errorCode"] == "worker_crashed" and job["attempts"] == 3
        assert "3 attempts" in job["errorMessage"]
        assert published(faulty.config, job_id) == []
        other = (await api.submit(media_server.url("blob.bin"), type="aria2"))["jobId"]
        await _verify_complete(api, faulty.config, other, media_dir)
    finally:
        await api.close()


async def test_a_superseded_attempt_never_replaces_the_current_result(
    new_config: Any, media_server: MediaServer
) -> None:
    config = await new_config(
        workers={"processes": 0, "token": WORKER_TOKEN}, queue={"retry_backoff_s": 0}
    )
    async with Service(config) as service:
        api = Api(service.base_url)
        first = ScriptedWorker(service.base_url, "first", token=WORKER_TOKEN, storage=config)
        second = ScriptedWorker(service.base_url, "second", token=WORKER_TOKEN, storage=config)
        try:
            await first.connect()
            job_id = (await api.submit(media_server.url("blob.bin"), type="aria2"))["jobId"]
            await eventually(lambda: first.starts, what="attempt 1 on the first worker")
            await first.close()  # it "crashes": the job is requeued as attempt 2
            await second.connect()
            await eventually(lambda: second.starts, what="attempt 2 on the second worker")
            assert second.start_of(0)["attempt"] == 2
            # The first worker comes back and reports its stale attempt, files included.
            stale = config.data_path / job_id / ".attempt-1"
            stale.mkdir(parents=True)
            (stale / "result.bin").write_bytes(b"stale")
            late = ScriptedWorker(service.base_url, "first", token=WORKER_TOKEN, storage=config)
            await late.connect()
            files = [{"name": "result.bin", "size": 5}]
            await late.emit("completed", {"jobId": job_id, "attempt": 1, "files": files})
            await eventually(lambda: not stale.exists(), what="the stale staging to be dropped")
            assert (await api.job(job_id))["status"] == "running"
            # The current attempt completes with its own bytes.
            current = config.data_path / job_id / ".attempt-2"
            current.mkdir()
            (current / "result.bin").write_bytes(b"fresh!")
            files = [{"name": "result.bin", "size": 6}]
            await second.emit("completed", {"jobId": job_id, "attempt": 2, "files": files})
            job = await api.wait_status(job_id, "completed")
            assert job["attempts"] == 2 and job["size"] == 6
            assert published(config, job_id) == ["result.bin"]
            assert (config.data_path / job_id / "result.bin").read_bytes() == b"fresh!"
            await late.close()
        finally:
            await second.close()
            await api.close()


async def test_redis_restarted_empty_mid_run(
    new_config: Any, media_server: MediaServer, media_dir: Path
) -> None:
    redis = RedisServer()
    await redis.start()
    try:
        # Only the marker can notice: the periodic reconciler is out of the picture.
        config = await new_config(
            redis_url=redis.url, queue={"concurrency": 2, "reconcile_interval_s": 3600}
        )
        async with running_service(config) as service:
            api = Api(service.base_url)
            try:
                url = media_server.url("blob.bin", rate=2_000_000)
                ids = [(await api.submit(url, type="aria2"))["jobId"] for _ in range(5)]
                await _running(api, ids[0], 5)
                await redis.stop()  # no persistence: both lists are gone
                await redis.start()
                for job_id in ids:
                    await _verify_complete(api, config, job_id, media_dir)
            finally:
                await api.close()
    finally:
        await redis.close()


async def test_redis_down_at_start_up(
    new_config: Any, media_server: MediaServer, media_dir: Path
) -> None:
    redis = RedisServer()
    try:
        config = await new_config(redis_url=f"unix://{redis.server.socket_path}")
        service = Service(config)
        starting = asyncio.ensure_future(service.start())
        try:
            await eventually(lambda: service.port is not None, what="the HTTP server")
            api = Api(service.base_url)
            try:
                status, body = await api.request("GET", "/health")
                assert status == 503 and body["checks"]["redis"]["status"] == "down"
                assert not starting.done()
                await redis.start()
                await asyncio.wait_for(starting, 30)
                await eventually(lambda: service.dispatcher.roster.worker_count, what="workers")  # type: ignore[union-attr]
                job_id = (await api.submit(media_server.url("blob.bin"), type="aria2"))["jobId"]
                await _verify_complete(api, config, job_id, media_dir)
            finally:
                await api.close()
        finally:
            if not starting.done():
                starting.cancel()
            await service.stop()
    finally:
        await redis.close()


async def test_postgres_restarted_mid_run(
    redis_server: RedisServer, state_dir: Path, media_server: MediaServer, media_dir: Path
) -> None:
    from tests.support.harness import make_config

    root = shared_tmp("mediad-test-pgrestart-")
    postgres = ManagedPostgres(root / "postgres", bin_dir=find_postgres_bin_dir())
    try:
        dsn = await postgres.start()
        config = make_config(state_dir, dsn, redis_server.url, queue={"concurrency": 1})
        async with running_service(config) as service:
            api = Api(service.base_url)
            try:
                url = media_server.url("blob.bin", rate=1_000_000)
                job_id = (await api.submit(url, type="aria2"))["jobId"]
                await _running(api, job_id, 20)
                await postgres.stop()
                status, body = await api.request("GET", f"/downloads/{job_id}")
                assert status == 503 and body["error"]["code"] == "unavailable"
                await asyncio.sleep(1.5)  # the download goes on; progress cannot be written
                await postgres.start()
                job = await _verify_complete(api, config, job_id, media_dir)
                assert job["attempts"] == 1
            finally:
                await api.close()
    finally:
        await postgres.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def small_disk() -> Any:
    mount = shared_tmp("mediad-test-tmpfs-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
        shutil.rmtree(mount, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
@pytest.mark.parametrize("job_type", ["aria2", "ytdlp"])
async def test_disk_full_fails_the_job_and_removes_partial_files(
    job_type: str, small_disk: Path, new_config: Any, media_server: MediaServer, media_dir: Path
) -> None:
    config = await new_config(
        storage={"tmp_dir": str(small_disk / "tmp"), "data_dir": str(small_disk / "data")},
        queue={"concurrency": 1},
    )
    async with running_service(config) as service:
        api = Api(service.base_url)
        try:
            job_id = (await api.submit(media_server.url("blob.bin"), type=job_type))["jobId"]
            job = await api.wait_status(job_id, "failed", "completed", timeout_s=60)
            assert job["status"] == "failed" and job["errorCode"] == "disk_full", job
            await eventually(lambda: not (config.tmp_path / job_id).exists(), what="cleanup")
            assert published(config, job_id) == []
            # The service goes on: a small file fits.
            ok = (await api.submit(media_server.url("video.mp4")))["jobId"]
            assert (await api.wait_status(ok, "completed", "failed"))["status"] == "completed"
        finally:
            await api.close()


# -- the whole service killed ---------------------------------------------------------


class Serve:
    """`mediad serve` in a subprocess against the tests' PostgreSQL and Redis."""

    def __init__(self, state: Path, database_url: str, redis_url: str, prefix: str) -> None:
        self.state = state
        self.port = fixed_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIAD_")}
        self.env.update(
            DATABASE_URL=database_url,
            REDIS_URL=redis_url,
            WORKER_TOKEN=WORKER_TOKEN,
            MEDIAD_REDIS_PREFIX=prefix,
            MEDIAD_STORAGE_STATE_DIR=str(state),
            MEDIAD_NETWORK_ALLOW_HOSTS="127.0.0.1",
            MEDIAD_STORAGE_MIN_FREE_BYTES="0",
            MEDIAD_SERVER_PORT=str(self.port),
            MEDIAD_SERVER_RATE_LIMIT_PER_MIN="0",
            MEDIAD_LOGGING_FORMAT="text",
        )
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        with open(self.state / "serve.log", "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mediad", "serve"], env=self.env, stderr=log
            )
        api = Api(self.base)
        try:

            async def ready() -> bool:
                with contextlib.suppress(Exception):
                    status, body = await api.request("GET", "/health")
                    return status == 200 and body["checks"]["workers"]["connected"] == 3
                return False

            await eventually(ready, timeout_s=60, interval_s=0.1, what="mediad serve")
        finally:
            await api.close()

    async def worker_tokens(self) -> dict[str, str]:
        """The live workers' tokens, by worker id. They are in no environment (a worker
        reads its token from a descriptor), so: every 43-character token-like string
        object in the workers' memory, kept where the running service answers "already
        connected" (the token matched) rather than "invalid worker token"."""
        assert self.proc is not None
        candidates: set[str] = set()
        for pid in descendants(self.proc.pid):
            with contextlib.suppress(OSError):
                if "worker" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
                    candidates |= _token_strings(pid)
        tokens = {}
        for worker_id in ("local-1", "local-2", "local-3"):
            for token in sorted(candidates):
                if await _refusal(self.base, worker_id, token) == "worker id already connected":
                    tokens[worker_id] = token
                    break
        return tokens


# A CPython str object of 43 ASCII characters (secrets.token_urlsafe(32)): its length at
# offset 16, then hash and state (and, before 3.12, wstr), then the characters and a NUL.
_TOKEN_OBJECT = re.compile(rb"\x2b\x00{7}(?:.{24}|.{16})([A-Za-z0-9_-]{43})\x00", re.S)


def _token_strings(pid: int) -> set[str]:
    found: set[str] = set()
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            fields = line.split()
            if fields[1].startswith("rw") and (len(fields) < 6 or fields[5] == "[heap]"):
                start, end = (int(x, 16) for x in fields[0].split("-"))
                with contextlib.suppress(OSError, ValueError, OverflowError):
                    mem.seek(start)
                    data = mem.read(end - start)
                    found.update(m.group(1).decode() for m in _TOKEN_OBJECT.finditer(data))
    return found


async def _refusal(base: str, worker_id: str, token: str) -> str | None:
    """Why the service refuses a /worker connection with this id and token (None: it
    accepted it)."""
    client = ScriptedWorker(base, worker_id, token=token)
    reasons: list[str] = []
    client.sio.on(
        "connect_error",
        lambda data: reasons.append(data.get("message") if isinstance(data, dict) else data),
        namespace="/worker",
    )
    try:
        await client.connect()
    except socketio.exceptions.ConnectionError:
        return reasons[0] if reasons else "refused"
    finally:
        await client.sio.disconnect()
    return None


async def _transition_log(dsn: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(dsn)
    await conn.execute(
        """
        CREATE TABLE IF NOT EXISTS test_transitions (
            job_id uuid, old text, new text, at timestamptz DEFAULT clock_timestamp(),
            n bigserial);
        CREATE OR REPLACE FUNCTION test_log_transition() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.status IS DISTINCT FROM OLD.status THEN
                INSERT INTO test_transitions (job_id, old, new) VALUES (NEW.id, OLD.status, NEW.status);
            END IF;
            RETURN NEW;
        END $$;
        DROP TRIGGER IF EXISTS test_transitions ON jobs;
        CREATE TRIGGER test_transitions AFTER UPDATE ON jobs
            FOR EACH ROW EXECUTE FUNCTION test_log_transition();
        """
    )
    return conn


# Two start-ups of `mediad serve` and 13 rate-limited jobs: on a loaded machine this
# takes more than the suite's 120 s per test.
@pytest.mark.timeout(300)
async def test_sigkill_the_whole_service_loses_nothing(
    databases: Databases, redis_server: RedisServer, media_server: MediaServer, media_dir: Path
) -> None:
    state = shared_tmp("mediad-test-kill9-")
    dsn = await databases.create()
    serve = Serve(state, dsn, redis_server.url, f"mediad-kill9-{os.getpid()}:")
    log: asyncpg.Connection | None = None
    try:
        await serve.start()
        log = await _transition_log(dsn)
        api = Api(serve.base)
        try:
            url = media_server.url("blob.bin", rate=1_500_000)
            ids = [(await api.submit(url, type="aria2"))["jobId"] for _ in range(13)]

            async def three_running() -> bool:
                jobs = [await api.job(i) for i in ids]
                return sum(j["status"] == "running" and (j["progress"] or 0) > 5 for j in jobs) == 3

            await eventually(three_running, what="3 running, 10 queued")
        finally:
            await api.close()
        assert serve.proc is not None
        old_tree = descendants(serve.proc.pid)
        old_tokens = await serve.worker_tokens()
        assert len(old_tokens) == 3
        serve.proc.kill()
        serve.proc.wait()
        await eventually(lambda: not [p for p in old_tree if alive(p)], what="the old processes")

        await serve.start()
        api = Api(serve.base)
        try:
            for worker_id, token in old_tokens.items():
                ghost = ScriptedWorker(serve.base, worker_id, token=token)
                with pytest.raises(socketio.exceptions.ConnectionError):
                    await ghost.connect()
                await ghost.sio.disconnect()
            for job_id in ids:
                job = await api.wait_status(job_id, "completed", "failed", timeout_s=120)
                assert job["status"] == "completed", job
                _, body = await api.request("GET", f"/files/{job_id}/download")
                assert hashlib.sha256(body).hexdigest() == _sha(media_dir)
                assert sorted(p.name for p in (state / "data" / job_id).iterdir()) == ["blob.bin"]
        finally:
            await api.close()
        rows = await log.fetch("SELECT job_id, old, new FROM test_transitions ORDER BY n")
        running, peak = set(), 0
        for row in rows:
            if row["new"] == "running":
                running.add(row["job_id"])
            elif row["old"] == "running":
                running.discard(row["job_id"])
            peak = max(peak, len(running))
        assert peak == 3
        finals = [r["job_id"] for r in rows if r["new"] == "completed"]
        assert len(finals) == len(set(finals)) == 13  # exactly one terminal state each
    finally:
        if log is not None:
            await log.close()
        if serve.proc is not None and serve.proc.poll() is None:
            serve.proc.send_signal(signal.SIGTERM)
            serve.proc.wait(timeout=60)
        shutil.rmtree(state, ignore_errors=True)

"""`mediad worker --server URL` on "another host": with the shared WORKER_TOKEN and the
same storage.data_dir and storage.tmp_dir it serves the server's jobs like a local
worker; a wrong token or storage it does not share is refused at connect time (the
worker exits non-zero, saying why); a restart of its server costs no job and never has
one run twice at once. The server is a real `mediad serve` with `workers.processes: 0`."""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import media
from tests.support.cluster import (
    Cluster,
    Instance,
    RemoteWorker,
    completions,
    overlapping_attempts,
    starts,
)
from tests.support.harness import Databases, RedisServer, shared_tmp
from tests.support.mediaserver import MediaServer
from tests.support.polling import eventually

pytestmark = pytest.mark.slow


@pytest.fixture
async def server(databases: Databases, redis_server: RedisServer) -> AsyncIterator[Cluster]:
    """One `mediad serve` without local workers (instance "srv")."""
    root = shared_tmp("mediad-test-remote-")
    cluster = Cluster(
        root, await databases.create(), redis_server.url,
        queue={"concurrency": 1, "lease_s": 2, "retry_backoff_s": 0.1},
        workers={"processes": 0},
    )  # fmt: skip
    cluster.add("srv")
    await cluster.start()
    try:
        yield cluster
    finally:
        await cluster.close()
        print(cluster.logs())
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
async def remote_workers(server: Cluster) -> Any:
    """``remote_workers(name, **settings)``: a RemoteWorker sharing the server's storage
    unless told otherwise; all stopped afterwards."""
    made: list[RemoteWorker] = []

    def build(name: str, **kwargs: Any) -> RemoteWorker:
        kwargs.setdefault("data_dir", server.data_dir)
        kwargs.setdefault("tmp_dir", server.tmp_dir)
        worker = RemoteWorker(server.root / name, server["srv"].base, **kwargs)
        made.append(worker)
        return worker

    yield build
    for worker in made:
        await worker.stop()
        print(f"----- remote worker {worker.root.name} -----\n{worker.log_text()[-3000:]}")


async def connected_workers(instance: Instance) -> int:
    _, body = await instance.health()
    return int(body["checks"]["workers"]["connected"]) if isinstance(body, dict) else 0


async def test_a_remote_worker_with_the_shared_storage_completes_a_job(
    server: Cluster, remote_workers: Any, media_server: MediaServer, media_dir: Path
) -> None:
    srv = server["srv"]
    log = await server.transitions()
    worker = remote_workers("w1").start()
    api = srv.api()
    try:
        await eventually(lambda: _connected(srv, 1), timeout_s=60, what="the remote worker")
        job_id = (await api.submit(media_server.url("blob.bin"), type="aria2"))["jobId"]
        job = await api.wait_status(job_id, "completed", "failed", timeout_s=60)
        assert job["status"] == "completed", job
        _, body = await api.request("GET", f"/files/{job_id}/download")
        assert hashlib.sha256(body).hexdigest() == media.sha256_file(media_dir / "blob.bin")
        assert server.published(job_id) == ["blob.bin"]
        (run,) = starts(await log.rows(), job_id)
        assert run.worker_id is not None and not run.worker_id.startswith("local-"), run
    finally:
        await api.close()
        assert await worker.stop() == 0, worker.log_text()[-2000:]


async def _connected(instance: Instance, n: int) -> bool:
    return await connected_workers(instance) == n


async def test_a_wrong_token_is_refused(server: Cluster, remote_workers: Any) -> None:
    worker = remote_workers("bad-token", token="not-the-worker-token-0000000000").start()
    try:
        code = await worker.exited(timeout_s=20)
        assert code != 0
        assert "invalid worker token" in worker.log_text().lower(), worker.log_text()[-2000:]
        assert await connected_workers(server["srv"]) == 0
    finally:
        await worker.stop()


@pytest.mark.parametrize("key", ["storage.data_dir", "storage.tmp_dir"])
async def test_a_worker_that_does_not_share_the_storage_is_refused(
    key: str, server: Cluster, remote_workers: Any, media_server: MediaServer
) -> None:
    elsewhere = server.root / "elsewhere" / key.split(".")[1]
    elsewhere.mkdir(parents=True)
    folder = {"data_dir": elsewhere} if key == "storage.data_dir" else {"tmp_dir": elsewhere}
    worker = remote_workers(f"unshared-{key}", **folder).start()
    srv = server["srv"]
    api = srv.api()
    try:
        # Accepted means given work: a job that runs on it (a refusal may come a moment
        # after the socket connected, once the probe file was looked for).
        job_id = (await api.submit(media_server.url("video.mp4"), type="aria2"))["jobId"]

        async def refused_or_accepted() -> str | None:
            assert worker.proc is not None
            if worker.proc.poll() is not None:
                return "exited"
            return "accepted" if (await api.job(job_id))["status"] != "queued" else None

        outcome = await eventually(refused_or_accepted, timeout_s=30, what="the worker's fate")
        assert outcome == "exited", f"the server gave work to a worker whose {key} is not its own"
        code = await worker.exited()
        text = worker.log_text()
        assert code != 0, text[-2000:]
        assert re.search("share", text, re.I) and key in text, text[-2000:]
        assert await connected_workers(srv) == 0
        assert (await api.job(job_id))["status"] == "queued"
    finally:
        await api.close()
        await worker.stop()


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
async def test_a_remote_worker_outlives_a_restart_of_its_server(
    how: str, server: Cluster, remote_workers: Any, media_server: MediaServer, media_dir: Path
) -> None:
    """It reconnects by itself (backoff); its running job is reattached or given up
    cleanly, and completes exactly once, never two attempts at once."""
    srv = server["srv"]
    log = await server.transitions()
    worker = remote_workers("w1").start()
    api = srv.api()
    try:
        await eventually(lambda: _connected(srv, 1), timeout_s=60, what="the remote worker")
        url = media_server.url("blob.bin", rate=800_000)  # about 5 s
        job_id = (await api.submit(url, type="aria2"))["jobId"]

        async def past(percent: float) -> bool:
            job = await api.job(job_id)
            return job["status"] == "running" and (job["progress"] or 0) >= percent

        await eventually(lambda: past(10), timeout_s=30, what=f"{job_id} past 10 %")
        if how == "SIGKILL":
            srv.kill()
        else:
            assert await srv.terminate() == 0, srv.log_tail()
        await srv.gone()
        await api.close()
        await srv.start()  # /health answers; the worker reconnects by itself
        api = srv.api()
        await eventually(lambda: _connected(srv, 1), timeout_s=30, what="the worker back")
        assert worker.proc is not None and worker.proc.poll() is None  # the same process
        job = await api.wait_status(job_id, "completed", "failed", timeout_s=60)
        assert job["status"] == "completed", job
        assert job["attempts"] >= 1
        _, body = await api.request("GET", f"/files/{job_id}/download")
        assert hashlib.sha256(body).hexdigest() == media.sha256_file(media_dir / "blob.bin")
        assert server.published(job_id) == ["blob.bin"]
        rows = await log.rows()
        assert completions(rows) == {job_id: 1}
        assert not overlapping_attempts(rows), rows
        attempts = [r.new_attempts for r in starts(rows, job_id)]
        assert attempts == sorted(set(attempts)), rows  # each attempt started once, in order
    finally:
        await api.close()
        assert await worker.stop() == 0, worker.log_text()[-2000:]

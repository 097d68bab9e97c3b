"""cancel, pause, resume, retry, delete and the watchdog, against real tools; resumes are
checked byte by byte from the media server's log."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from mediad.service import Service
from tests.support import media
from tests.support.harness import Api, eventually, running_service
from tests.support.mediaserver import MediaServer

BLOB = 4 * 1024 * 1024  # tests/integration/conftest.py: blob.bin
TYPES = ("aria2", "ytdlp")


@pytest.fixture(scope="module")
async def idle_service(new_module_config: Any) -> Any:
    """A service with no workers: every job stays queued."""
    config = await new_module_config(workers={"processes": 0})
    async with Service(config) as service:
        yield service


async def _in_queue(service: Service, job_id: str) -> bool:
    assert service.queue is not None
    return job_id in await service.queue.waiting()


async def control(api: Api, job_id: str, action: str) -> tuple[int, Any]:
    return await api.request("POST", f"/downloads/{job_id}/{action}")


async def test_queued_jobs_cancel_pause_and_resume(
    idle_service: Service, media_server: MediaServer
) -> None:
    api = Api(idle_service.base_url)
    try:
        first = (await api.submit(media_server.url("blob.bin"), type="aria2"))["jobId"]
        second = (await api.submit(media_server.url("blob.bin"), type="aria2"))["jobId"]
        assert await _in_queue(idle_service, first) and await _in_queue(idle_service, second)

        status, job = await control(api, first, "cancel")
        assert status == 200 and job["status"] == "cancelled" and job["finishedAt"]
        assert not await _in_queue(idle_service, first)

        status, job = await control(api, second, "pause")
        assert status == 200 and job["status"] == "paused"
        assert not await _in_queue(idle_service, second)
        status, job = await control(api, second, "resume")
        assert status == 200 and job["status"] == "queued"
        assert await _in_queue(idle_service, second)

        status, job = await control(api, first, "retry")
        assert status == 200 and job["status"] == "queued" and job["finishedAt"] is None
        assert await _in_queue(idle_service, first)
    finally:
        await api.close()


ILLEGAL = {
    "queued": ("resume", "retry", "stop"),
    "paused": ("pause", "retry", "stop"),
    "cancelled": ("cancel", "pause", "resume", "stop"),
}


async def test_illegal_transitions_answer_409_with_the_current_status(
    idle_service: Service, media_server: MediaServer
) -> None:
    api = Api(idle_service.base_url)
    try:
        for status_wanted, actions in ILLEGAL.items():
            job_id = (await api.submit(media_server.url("blob.bin"), type="aria2"))["jobId"]
            if status_wanted == "paused":
                await control(api, job_id, "pause")
            elif status_wanted == "cancelled":
                await control(api, job_id, "cancel")
            for action in actions:
                status, body = await control(api, job_id, action)
                assert status == 409, (status_wanted, action, body)
                assert body["error"]["code"] == "invalid_transition"
                assert body["error"]["status"] == status_wanted
                assert action in body["error"]["message"]
        status, body = await control(api, "00000000-0000-4000-8000-000000000000", "cancel")
        assert status == 404
        status, body = await api.request("POST", "/downloads/not-a-uuid/cancel")
        assert status == 400 and body["error"]["code"] == "invalid_job_id"
        status, body = await api.request("POST", f"/downloads/{job_id}/explode")
        assert status == 404
    finally:
        await api.close()


async def test_finished_jobs_refuse_what_does_not_apply(
    api: Api, media_server: MediaServer
) -> None:
    done = (await api.submit(media_server.url("video.mp4")))["jobId"]
    failed = (await api.submit(media_server.url("missing.mp4")))["jobId"]
    await api.wait_status(done, "completed")
    await api.wait_status(failed, "failed")
    for job_id, current, actions in (
        (done, "completed", ("cancel", "pause", "resume", "retry", "stop")),
        (failed, "failed", ("cancel", "pause", "resume", "stop")),
    ):
        for action in actions:
            status, body = await control(api, job_id, action)
            assert status == 409 and body["error"]["status"] == current, (action, body)


async def _progress_at_least(api: Api, job_id: str, percent: float) -> Any:
    async def check() -> Any:
        job = await api.job(job_id)
        return job if job["status"] == "running" and (job["progress"] or 0) >= percent else None

    return await eventually(check, what=f"{percent}% of {job_id}")


@pytest.mark.parametrize("job_type", TYPES)
async def test_pause_keeps_the_bytes_and_resume_fetches_only_the_rest(
    job_type: str, shared_service: Service, api: Api, media_server: MediaServer, media_dir: Path
) -> None:
    dispatcher = shared_service.dispatcher
    assert dispatcher is not None
    name = f"resume-{job_type}.bin"
    media_server.add_file(name, media_dir / "blob.bin")
    job_id = (await api.submit(media_server.url(name, rate=1_000_000), type=job_type))["jobId"]
    await _progress_at_least(api, job_id, 25)

    status, job = await control(api, job_id, "pause")
    assert status == 200 and job["status"] == "paused"
    await eventually(lambda: job_id not in dispatcher.roster, what="the slot to be freed")
    work = Path(shared_service.config.storage.tmp_dir) / job_id
    kept = sum(f.stat().st_size for f in work.rglob("*") if f.suffix != ".aria2")
    assert kept > 0, list(work.rglob("*"))
    # The first attempt's request is recorded once the server has noticed it ended.
    await eventually(lambda: media_server.in_flight[name] == 0, what="the first request to end")
    served_before = media_server.bytes_served(name)
    requests_before = len([r for r in media_server.served if r.path.endswith(name)])
    job = await api.job(job_id)
    assert job["status"] == "paused" and job["speed"] is None

    status, job = await control(api, job_id, "resume")
    assert status == 200 and job["status"] == "queued"
    done = await api.wait_status(job_id, "completed", "failed")
    assert done["status"] == "completed", done
    assert done["attempts"] == 2

    status, body = await api.request("GET", f"/files/{job_id}/download")
    assert hashlib.sha256(body).hexdigest() == media.sha256_file(media_dir / "blob.bin")
    after = [r for r in media_server.served if r.path.endswith(name)][requests_before:]
    fetched_after = sum(r.bytes_sent for r in after)
    assert any((r.range_start or 0) > 0 for r in after), after
    # About (total - already downloaded): no more than what was missing plus 10 % slack.
    assert fetched_after <= (BLOB - served_before) + BLOB * 0.10, (fetched_after, served_before)
    assert fetched_after < BLOB * 0.85
    assert not work.exists()


@pytest.mark.parametrize("job_type", TYPES)
async def test_cancel_stops_the_tool_and_removes_its_files(
    job_type: str, shared_service: Service, api: Api, media_server: MediaServer, media_dir: Path
) -> None:
    dispatcher = shared_service.dispatcher
    assert dispatcher is not None
    name = f"cancel-{job_type}.bin"  # its own name: no other test's request is counted
    media_server.add_file(name, media_dir / "blob.bin")
    job_id = (await api.submit(media_server.url(name, rate=500_000), type=job_type))["jobId"]
    await _progress_at_least(api, job_id, 5)
    status, job = await control(api, job_id, "cancel")
    assert status == 200 and job["status"] == "cancelled"
    await eventually(lambda: job_id not in dispatcher.roster, what="the slot to be freed")
    tmp = Path(shared_service.config.storage.tmp_dir) / job_id
    data = Path(shared_service.config.storage.data_dir) / job_id
    await eventually(lambda: not tmp.exists() and not data.exists(), what="files removed")
    # The tool is gone: its request ends (the server records it then)…
    await eventually(lambda: media_server.in_flight[name] == 0, what="its request to end")
    served = media_server.bytes_served(name)
    # …and nothing more is fetched for it.
    assert await _stays(lambda: media_server.bytes_served(name) == served)
    assert (await api.job(job_id))["status"] == "cancelled"


async def _stays(check: Any, seconds: float = 1.0) -> bool:
    """True when ``check`` holds at every look for ``seconds`` (a negative observation)."""
    import asyncio

    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        if not check():
            return False
        await asyncio.sleep(0.05)
    return True


async def test_retry_runs_a_failed_job_again(
    api: Api, media_server: MediaServer, media_dir: Path
) -> None:
    name = "appears-later.mp4"
    job_id = (await api.submit(media_server.url(name)))["jobId"]
    failed = await api.wait_status(job_id, "failed")
    assert failed["errorCode"] == "not_found" and failed["attempts"] == 1
    media_server.add_file(name, media_dir / "video.mp4")
    status, job = await control(api, job_id, "retry")
    assert status == 200 and job["status"] == "queued"
    assert job["progress"] == 0 and job["errorCode"] is None
    done = await api.wait_status(job_id, "completed")
    assert done["attempts"] == 2 and done["errorCode"] is None


async def test_delete_removes_the_job_and_its_files(
    shared_service: Service, api: Api, media_server: MediaServer
) -> None:
    job_id = (await api.submit(media_server.url("video.mp4")))["jobId"]
    await api.wait_status(job_id, "completed")
    data = Path(shared_service.config.storage.data_dir) / job_id
    assert data.is_dir()
    status, _ = await api.request("DELETE", f"/downloads/{job_id}")
    assert status == 204
    assert not data.exists()
    status, body = await api.request("GET", f"/downloads/{job_id}")
    assert status == 404
    status, body = await api.request("DELETE", f"/downloads/{job_id}")
    assert status == 404

    running = (await api.submit(media_server.url("blob.bin", rate=500_000), type="aria2"))["jobId"]
    await api.wait_status(running, "running")
    status, body = await api.request("DELETE", f"/downloads/{running}")
    assert status == 409 and body["error"]["status"] == "running"
    await control(api, running, "cancel")
    await eventually(lambda: running not in shared_service.dispatcher.roster)  # type: ignore[union-attr]
    status, _ = await api.request("DELETE", f"/downloads/{running}")
    assert status == 204


async def test_a_multi_file_job_downloads_as_a_zip(
    shared_service: Service, api: Api, media_server: MediaServer
) -> None:
    import io
    import zipfile

    job_id = (await api.submit(media_server.url("video.mp4")))["jobId"]
    await api.wait_status(job_id, "completed")
    data = Path(shared_service.config.storage.data_dir) / job_id
    (data / "notes é.txt").write_bytes(b"second file")
    status, body = await api.request("GET", f"/files/{job_id}/download")
    assert status == 200
    with zipfile.ZipFile(io.BytesIO(body)) as zf:
        assert sorted(zf.namelist()) == ["notes é.txt", "video.mp4"]
        assert zf.read("notes é.txt") == b"second file"
        assert zf.read("video.mp4") == (data / "video.mp4").read_bytes()


@pytest.fixture(scope="module")
async def watchdog_service(new_module_config: Any) -> Any:
    config = await new_module_config(
        queue={"watchdog_s": 3, "max_attempts": 2, "retry_backoff_s": 0.1, "concurrency": 2},
        workers={"heartbeat_s": 0.25, "processes": 2},
    )
    async with running_service(config) as service:
        yield service


@pytest.mark.parametrize("job_type", TYPES)
async def test_a_stalled_download_is_retried_then_fails(
    job_type: str, watchdog_service: Service, media_server: MediaServer
) -> None:
    api = Api(watchdog_service.base_url)
    try:
        url = media_server.url("blob.bin", stall_after=1_000_000)
        job_id = (await api.submit(url, type=job_type))["jobId"]
        job = await api.wait_status(job_id, "failed", "completed", timeout_s=60)
        assert job["status"] == "failed", job
        assert job["errorCode"] == "stalled" and job["attempts"] == 2, job
    finally:
        await api.close()


async def test_a_slow_download_that_progresses_is_left_alone(
    watchdog_service: Service, media_server: MediaServer
) -> None:
    api = Api(watchdog_service.base_url)
    try:
        # 4 MiB at 600 kB/s: about 7 s, far over the 3 s watchdog, always moving.
        url = media_server.url("blob.bin", rate=600_000)
        job_id = (await api.submit(url, type="aria2"))["jobId"]
        job = await api.wait_status(job_id, "failed", "completed", timeout_s=60)
        assert job["status"] == "completed" and job["attempts"] == 1, job
    finally:
        await api.close()

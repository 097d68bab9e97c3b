"""A real worker's yt-dlp jobs: forked by its fork server (one thread, titled
``mediad: fork-server``), each child titled ``mediad: yt-dlp <jobId>`` in its own process
group, and gone once the job is cancelled."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from mediad.service import Service
from tests.integration.test_serve_cli import descendants
from tests.support.harness import Api, eventually, running_service
from tests.support.mediaserver import MediaServer


def cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")


def ppid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


async def test_a_yt_dlp_job_is_forked_by_the_single_threaded_fork_server(
    shared_service: Service, api: Api, media_server: MediaServer
) -> None:
    assert shared_service.dispatcher is not None and shared_service.supervisor is not None
    url = media_server.url("blob.bin", stall_after=100_000)  # stays running until cancelled
    job_id = (await api.submit(url, type="ytdlp"))["jobId"]
    roster = shared_service.dispatcher.roster
    await eventually(lambda: job_id in roster, what="the job to run")
    attempt = roster.get(job_id)
    assert attempt is not None
    worker = shared_service.supervisor.procs[attempt.worker_id].pid
    title = f"mediad: yt-dlp {job_id}"

    def the_child() -> int | None:
        return next((p for p in descendants(worker) if cmdline(p) == title), None)

    child = await eventually(the_child, what=f"a process titled {title!r}")
    server = ppid(child)
    assert cmdline(server) == "mediad: fork-server"
    assert ppid(server) == worker
    assert threads(server) == 1  # the forking process has one thread…
    assert threads(worker) > 1  # …while the worker has several (its loop's executor)
    assert os.getpgid(child) == child  # its own group: cancel signals all of it
    # Every worker has exactly one fork server, titled too.
    for other in shared_service.supervisor.procs.values():
        below = [cmdline(p) for p in descendants(other.pid) if ppid(p) == other.pid]
        assert below.count("mediad: fork-server") == 1, below

    status, job = await api.request("POST", f"/downloads/{job_id}/cancel")
    assert status == 200 and job["status"] == "cancelled"
    await eventually(lambda: not alive(child), what="the cancelled job's yt-dlp to be gone")
    assert alive(server) and cmdline(server) == "mediad: fork-server"  # ready for the next


async def test_a_worker_whose_fork_server_dies_is_replaced(
    new_config: Any, media_server: MediaServer, media_dir: Path
) -> None:
    """A fork server killed while idle: its worker notices at once and exits (a server
    forked again from the threaded worker would break the rule); the supervisor starts a
    fresh worker, with a fresh fork server, and yt-dlp jobs run on it."""
    config = await new_config(workers={"processes": 1})
    async with running_service(config) as service:
        assert service.supervisor is not None
        api = Api(service.base_url)
        try:
            (worker,) = [p.pid for p in service.supervisor.procs.values()]
            (server,) = [p for p in descendants(worker) if cmdline(p) == "mediad: fork-server"]
            os.kill(server, signal.SIGKILL)
            await eventually(lambda: not alive(worker), what="the worker to exit")

            def replaced() -> bool:
                procs = list(service.supervisor.procs.values())  # type: ignore[union-attr]
                return bool(procs) and procs[0].pid != worker and procs[0].returncode is None

            await eventually(replaced, timeout_s=60, what="a new worker")
            job = await api.submit(media_server.url("video.mp4"), type="ytdlp")
            done = await api.wait_status(job["jobId"], "completed", "failed", timeout_s=90)
            assert done["status"] == "completed", done
            assert done["size"] == (media_dir / "video.mp4").stat().st_size
        finally:
            await api.close()

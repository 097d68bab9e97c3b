"""A real worker's yt-dlp jobs: forked by the zygote (one thread, titled ``mediad:
zygote``) on the worker's channel, each child titled ``mediad: yt-dlp <jobId>`` in its own
process group, and gone once the job is cancelled or its worker killed."""

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


async def test_a_yt_dlp_job_is_forked_by_the_single_threaded_zygote(
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
    zygote = ppid(worker)
    title = f"mediad: yt-dlp {job_id}"

    def the_child() -> int | None:
        return next((p for p in descendants(zygote) if cmdline(p) == title), None)

    child = await eventually(the_child, what=f"a process titled {title!r}")
    assert ppid(child) == zygote and cmdline(zygote) == "mediad: zygote"
    assert threads(zygote) == 1  # the forking process has one thread…
    assert threads(worker) > 1  # …while the worker has several (its loop's executor)
    assert os.getpgid(child) == child  # its own group: cancel signals all of it
    # No worker has a fork server of its own: the zygote forks every worker's jobs.
    for other in shared_service.supervisor.procs.values():
        assert ppid(other.pid) == zygote
        assert [cmdline(p) for p in descendants(other.pid)] == [], "nothing below a worker"

    status, job = await api.request("POST", f"/downloads/{job_id}/cancel")
    assert status == 200 and job["status"] == "cancelled"
    await eventually(lambda: not alive(child), what="the cancelled job's yt-dlp to be gone")
    assert alive(zygote) and cmdline(zygote) == "mediad: zygote"  # ready for the next


async def test_a_killed_workers_yt_dlp_job_is_killed_with_it_and_runs_again(
    new_config: Any, media_server: MediaServer
) -> None:
    """A worker SIGKILLed while its yt-dlp job runs: the zygote sees the worker's channel
    end and kills that job's child (nobody could follow it any more), the supervisor
    starts a new worker, and the job, interrupted, runs again on it."""
    config = await new_config(workers={"processes": 1})
    async with running_service(config) as service:
        assert service.supervisor is not None and service.dispatcher is not None
        api = Api(service.base_url)
        try:
            url = media_server.url("blob.bin", stall_after=100_000)
            job_id = (await api.submit(url, type="ytdlp"))["jobId"]
            title = f"mediad: yt-dlp {job_id}"
            (worker,) = [p.pid for p in service.supervisor.procs.values()]
            zygote = ppid(worker)

            def children() -> list[int]:
                return [p for p in descendants(zygote) if cmdline(p) == title]

            (child,) = await eventually(children, what="the job's yt-dlp")
            os.kill(worker, signal.SIGKILL)
            await eventually(lambda: not alive(child), what="the job's yt-dlp killed too")

            def again() -> list[int]:
                procs = list(service.supervisor.procs.values())  # type: ignore[union-attr]
                if not procs or procs[0].pid == worker:
                    return []
                return [p for p in children() if p != child]

            await eventually(again, timeout_s=60, what="the job running again, new worker")
            status, job = await api.request("POST", f"/downloads/{job_id}/cancel")
            assert status == 200 and job["status"] == "cancelled"
        finally:
            await api.close()

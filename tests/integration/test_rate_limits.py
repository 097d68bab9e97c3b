"""Download speed limits against the real tools: ``tools.rate_limit`` and each job's share
of ``tools.total_rate_limit`` (yt-dlp ``-r``, aria2 ``max-download-limit``), and aria2's
overall limit on its daemon. Timed as a ratio with a generous margin, never as a speed:
the measured rate stays under 1.5 times the limit, the time over half of size / limit."""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from mediad.service import Service
from tests.support.harness import Api, eventually, running_service
from tests.support.jobs_client import JobsClient
from tests.support.mediaserver import MediaServer

pytestmark = pytest.mark.timeout(60)
SIZE = 3 * 1024 * 1024
PER_JOB = 1024 * 1024  # min(rate_limit 4M, total_rate_limit 2M / concurrency 2)


@pytest.fixture(scope="module")
async def service(new_module_config: Any) -> AsyncIterator[Service]:
    config = await new_module_config(
        tools={"rate_limit": "4M", "total_rate_limit": "2MiB"},
        queue={"concurrency": 2},
        workers={"processes": 2},
    )
    assert config.job_rate_limit == PER_JOB
    async with running_service(config) as svc:
        yield svc


@pytest.mark.parametrize("job_type", ["ytdlp", "aria2"])
async def test_each_job_is_held_to_its_share(
    service: Service, api: Api, media_server: MediaServer, job_type: str
) -> None:
    name = f"limits/{job_type}.bin"
    media_server.add_bytes(name, random.Random(7).randbytes(SIZE))
    # Timed from the tool's first progress to `completed`, as a client
    # sees them (the media server cannot time it: the egress proxy and the loopback
    # sockets buffer megabytes, so it sees the body leave at once).
    seen: list[tuple[float, str, dict[str, Any]]] = []
    async with JobsClient(service.base_url) as client:
        for event in ("progress", "completed", "failed"):

            async def record(data: dict[str, Any], event: str = event) -> None:
                seen.append((time.monotonic(), event, data))

            client.sio.on(event, record, namespace="/jobs")
        await client.subscribe(all=True)
        created = await api.submit(media_server.url(name), type=job_type)
        job = await api.wait_status(created["jobId"], "completed", "failed", timeout_s=30)
        await eventually(lambda: any(e == "completed" for _, e, _ in seen), what="completed")
    assert job["status"] == "completed", job
    assert job["size"] == SIZE
    mine = [(t, e, d) for t, e, d in seen if d.get("jobId") == created["jobId"]]
    first = next(t for t, e, _ in mine if e == "progress")
    done = next(t for t, e, _ in mine if e == "completed")
    seconds = done - first
    print(f"\n{job_type}: {seconds:.2f} s, {SIZE / seconds / PER_JOB:.2f} times the limit")
    assert seconds > 0.5 * SIZE / PER_JOB, seconds
    assert SIZE / seconds < 1.5 * PER_JOB, SIZE / seconds


async def test_the_aria2_daemon_has_the_overall_limit(service: Service) -> None:
    assert service.aria2 is not None
    rpc = service.aria2.client()
    try:
        options = await eventually(lambda: rpc.call("aria2.getGlobalOption"), what="aria2")
    finally:
        await rpc.close()
    assert options["max-overall-download-limit"] == str(2 * 1024 * 1024)

"""A job that cannot reach its site fails with the egress guard's cause, not the tool's
words for the 502 the guard answered: every tool (yt-dlp, aria2, ffmpeg, twmd through
its stand-in), the real service and the real proxy.

Causes: a name that does not resolve (``nowhere.invalid``, a reserved TLD: no resolver
answers it, and it is in ``network.allow_hosts`` so that nothing but DNS is in the way),
a closed port on 127.0.0.1 (allowed: the connection is refused) and a redirect to
127.0.0.2 (loopback, not allowed: blocked). A connection that could not be made is
``network``, worth another attempt (``queue.max_attempts`` here is 2); a blocked one is
final.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from mediad.service import Service
from tests.support import twmd_standin
from tests.support.harness import Api, running_service, shared_tmp
from tests.support.mediaserver import MediaServer

pytestmark = pytest.mark.timeout(90)

NOWHERE = "nowhere.invalid"
QUEUE = {"concurrency": 2, "max_attempts": 2, "retry_backoff_s": 0.2}
BLOCKED_MESSAGE = (
    "refused a connection to 127.0.0.2:9: loopback address 127.0.0.2"
    " (network.allow_private / network.allow_hosts)"
)


def closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    sock.close()  # nothing listens there: a connection to it is refused
    return port


@pytest.fixture(scope="module")
def twmd_wrapper() -> Iterator[Path]:
    root = shared_tmp("mediad-test-causes-")
    yield twmd_standin.write_wrapper(root)
    shutil.rmtree(root, ignore_errors=True)


@contextmanager
def environment(**values: str) -> Iterator[None]:
    """Variables the workers (and so the twmd stand-in) inherit from the service."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="module")
async def service(new_module_config: Any, twmd_wrapper: Path) -> AsyncIterator[Service]:
    # The stand-in fetches its media from a host that does not resolve.
    with environment(**{twmd_standin.MEDIA_URL_ENV: f"http://{NOWHERE}"}):
        config = await new_module_config(
            network={"allow_hosts": ["127.0.0.1", NOWHERE]},
            tools={"twmd": str(twmd_wrapper)},
            queue=QUEUE,
            workers={"processes": 2},
        )
        async with running_service(config) as service:
            yield service


async def failed(api: Api, url: str, job_type: str) -> dict[str, Any]:
    created = await api.submit(url, type=job_type)
    job = await api.wait_status(created["jobId"], "failed", "completed", timeout_s=75)
    assert job["status"] == "failed", job
    return job


# A URL each tool takes as its own, on any host.
def url_for(job_type: str, base: str) -> str:
    return {
        "ytdlp": f"{base}/watch/clip",
        "aria2": f"{base}/files/clip.mp4",
        "ffmpeg": f"{base}/live/index.m3u8",
        "twitter": "https://x.com/someone/status/1",  # its media come from the stand-in's host
    }[job_type]


@pytest.mark.parametrize(
    ("job_type", "scheme"),
    [
        ("ytdlp", "http"),
        ("ytdlp", "https"),  # a CONNECT tunnel: "Tunnel connection failed: 502"
        ("aria2", "http"),
        ("aria2", "https"),  # "Proxy connection failed."
        ("ffmpeg", "http"),
        ("twitter", "http"),
    ],
)
async def test_a_name_that_does_not_resolve(api: Api, job_type: str, scheme: str) -> None:
    job = await failed(api, url_for(job_type, f"{scheme}://{NOWHERE}"), job_type)
    assert job["errorCode"] == "network", job
    # The resolver's own words follow ("Name or service not known" here).
    assert job["errorMessage"].startswith(f"could not resolve {NOWHERE} ("), job
    assert "502" not in job["errorMessage"]
    assert job["attempts"] == 2  # network failures are retried within queue.max_attempts


@pytest.mark.parametrize("job_type", ["ytdlp", "aria2", "ffmpeg"])
async def test_a_refused_port(api: Api, job_type: str) -> None:
    port = closed_port()
    job = await failed(api, url_for(job_type, f"http://127.0.0.1:{port}"), job_type)
    assert (job["errorCode"], job["errorMessage"]) == (
        "network",
        f"connection to 127.0.0.1:{port} refused",
    ), job
    assert job["attempts"] == 2


@pytest.mark.parametrize("job_type", ["ytdlp", "aria2", "ffmpeg"])
async def test_a_blocked_address(api: Api, media_server: MediaServer, job_type: str) -> None:
    name = f"causes-to-internal-{job_type}" + (".m3u8" if job_type == "ffmpeg" else ".mp4")
    media_server.add_redirect(name, "http://127.0.0.2:9/x.mp4")
    job = await failed(api, media_server.url(name), job_type)
    assert (job["errorCode"], job["errorMessage"]) == ("blocked_address", BLOCKED_MESSAGE), job
    assert job["attempts"] == 1  # the policy's verdict is final


@pytest.mark.parametrize("job_type", ["ytdlp", "aria2", "ffmpeg"])
async def test_the_sites_own_answer_stands(
    api: Api, media_server: MediaServer, job_type: str
) -> None:
    """A site's own 502 and 404 are the site's verdict, and the guard recorded nothing
    for these jobs (a worker forgets the failures of its earlier jobs, such as those
    above), so the tool's words stand."""
    for status, code in ((502, "http_error"), (404, "not_found")):
        name = "causes/clip.m3u8" if job_type == "ffmpeg" else "causes/clip.mp4"
        for _ in range(2):  # two workers: at least one had a failed connection before
            job = await failed(api, media_server.url(name, status=status), job_type)
            assert job["errorCode"] == code, job
            assert not job["errorMessage"].startswith(("could not resolve", "connection to"))


async def test_a_successful_job_stays_successful(api: Api, media_server: MediaServer) -> None:
    for _ in range(2):
        created = await api.submit(media_server.url("blob.bin"), type="aria2")
        job = await api.wait_status(created["jobId"], "completed", "failed")
        assert job["status"] == "completed", job


async def test_twmd_a_refused_port(new_config: Any, twmd_wrapper: Path) -> None:
    port = closed_port()
    with environment(**{twmd_standin.MEDIA_URL_ENV: f"http://127.0.0.1:{port}"}):
        config = await new_config(
            tools={"twmd": str(twmd_wrapper)}, queue=QUEUE, workers={"processes": 1}
        )
        async with running_service(config) as service:
            api = Api(service.base_url)
            try:
                job = await failed(api, url_for("twitter", ""), "twitter")
            finally:
                await api.close()
    assert (job["errorCode"], job["errorMessage"]) == (
        "network",
        f"connection to 127.0.0.1:{port} refused",
    ), job
    assert job["attempts"] == 2

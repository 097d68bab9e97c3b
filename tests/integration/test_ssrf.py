"""The egress guard through the whole service: no tool reaches an address the policy
refuses, not through redirects, pages or playlists. The "internal" server listens on
127.0.0.2 (loopback, refused: only 127.0.0.1 is allowed by the test config) and must see
no request at all."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from tests.support.harness import Api
from tests.support.mediaserver import MediaServer


class Internal:
    """A server on 127.0.0.2 that counts every request it gets."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def __aenter__(self) -> Internal:
        async def anything(request: web.Request) -> web.Response:
            self.hits.append(request.path_qs)
            return web.Response(body=b"secret internal data", content_type="video/mp4")

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", anything)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.2", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()

    def url(self, path: str) -> str:
        return f"http://127.0.0.2:{self.port}/{path}"


@pytest.fixture(scope="module")
async def internal() -> AsyncIterator[Internal]:
    async with Internal() as server:
        yield server


async def _fails_blocked(api: Api, url: str, job_type: str) -> dict:
    job_id = (await api.submit(url, type=job_type))["jobId"]
    job = await api.wait_status(job_id, "failed", "completed", timeout_s=60)
    assert job["status"] == "failed", job
    assert job["errorCode"] == "blocked_address", job
    assert "127.0.0.2" in job["errorMessage"]
    return job


@pytest.mark.parametrize("job_type", ["aria2", "ytdlp", "ffmpeg"])
async def test_a_redirect_to_an_internal_address_is_refused(
    job_type: str, api: Api, media_server: MediaServer, internal: Internal
) -> None:
    name = f"redirect-{job_type}.m3u8" if job_type == "ffmpeg" else f"redirect-{job_type}.mp4"
    media_server.add_redirect(name, internal.url("x.mp4"))
    await _fails_blocked(api, media_server.url(name), job_type)
    assert internal.hits == []


async def test_a_page_embedding_an_internal_video_is_refused(
    api: Api, media_server: MediaServer, internal: Internal
) -> None:
    media_server.add_page(
        "embeds-internal.html",
        f'<html><head><title>t</title></head><body><video src="{internal.url("v.mp4")}"></video></body></html>',
    )
    await _fails_blocked(api, media_server.url("embeds-internal.html"), "ytdlp")
    assert internal.hits == []


async def test_an_hls_playlist_with_internal_segments_is_refused(
    api: Api, media_server: MediaServer, internal: Internal
) -> None:
    playlist = (
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n"
        f"#EXTINF:2.0,\n{internal.url('seg0.ts')}\n#EXT-X-ENDLIST\n"
    )
    media_server.add_bytes(
        "internal-segments.m3u8", playlist.encode(), "application/vnd.apple.mpegurl"
    )
    await _fails_blocked(api, media_server.url("internal-segments.m3u8"), "ffmpeg")
    assert internal.hits == []


async def test_allow_private_lets_the_same_download_through(
    new_config, media_server: MediaServer, internal: Internal, media_dir: Path
) -> None:
    from tests.support.harness import running_service

    config = await new_config(network={"allow_private": True}, queue={"concurrency": 1})
    async with running_service(config) as service:
        api = Api(service.base_url)
        try:
            media_server.add_redirect("to-internal.bin", internal.url("data.bin"))
            job_id = (await api.submit(media_server.url("to-internal.bin"), type="aria2"))["jobId"]
            job = await api.wait_status(job_id, "completed", "failed")
            assert job["status"] == "completed", job
            assert internal.hits == ["/data.bin"]
        finally:
            await api.close()
            internal.hits.clear()


async def test_no_proxy_in_the_environment_opens_no_way_around_the_guard(
    new_config, media_server: MediaServer, internal: Internal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every tool honours no_proxy even when given a proxy flag; workers inherit the
    service's environment. The tools must get it scrubbed."""
    from tests.support.harness import running_service

    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(name, "*")
    config = await new_config(queue={"concurrency": 1}, workers={"processes": 1})
    async with running_service(config) as service:
        api = Api(service.base_url)
        try:
            for job_type in ("aria2", "ytdlp", "ffmpeg"):
                name = f"noproxy-{job_type}" + (".m3u8" if job_type == "ffmpeg" else ".mp4")
                media_server.add_redirect(name, internal.url("x.mp4"))
                await _fails_blocked(api, media_server.url(name), job_type)
            assert internal.hits == []
        finally:
            await api.close()

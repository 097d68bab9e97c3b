"""The local media server the integration tests download from, checked on its own and with
the real tools (aria2c, yt-dlp, ffmpeg) that mediad runs against it."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from tests.support.media import (
    make_dash,
    make_hls,
    make_random_file,
    make_video,
    probe_duration,
    sha256_file,
)
from tests.support.mediaserver import (
    CHUNK_BYTES,
    MediaServer,
    Served,
    chunk_size_for,
    parse_range,
    resolve_range,
)

RANDOM_BYTES = 4 * 1024 * 1024
TOOL_TIMEOUT_S = 60.0
SHUTDOWN_BUDGET_S = 3.0


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("media")
    make_video(root / "video.mp4")
    make_random_file(root / "random.bin", RANDOM_BYTES)
    make_hls(root / "hls")
    return root


@pytest.fixture
async def server(media_dir: Path) -> AsyncIterator[MediaServer]:
    async with MediaServer(media_dir) as srv:
        yield srv


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def wait_until(predicate: Callable[[], bool], what: str, timeout_s: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.02)


def records(server: MediaServer, path: str) -> list[Served]:
    return [s for s in server.served if s.path == path]


async def run_tool(*args: str | Path, timeout_s: float = TOOL_TIMEOUT_S) -> str:
    """Run a tool without blocking the loop the server lives in; its output on success."""
    proc = await asyncio.create_subprocess_exec(
        *map(str, args), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        async with asyncio.timeout(timeout_s):
            out, _ = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        pytest.fail(f"{args[0]} did not finish within {timeout_s} s")
    text = out.decode(errors="replace")
    assert proc.returncode == 0, f"{args[0]} exited {proc.returncode}:\n{text[-3000:]}"
    return text


# -- pure helpers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-99", (0, 99)),
        ("bytes=100-", (100, None)),
        ("bytes=-500", (None, 500)),
        (" Bytes = 5 - 9 ", (5, 9)),
        ("bytes=0-1,5-6", None),
        ("bytes=9-5", None),
        ("bytes=-", None),
        ("items=0-1", None),
        ("bytes=a-b", None),
        (None, None),
    ],
)
def test_parse_range(header: str | None, expected: tuple[int | None, int | None] | None) -> None:
    assert parse_range(header) == expected


@pytest.mark.parametrize(
    ("first", "last", "size", "expected"),
    [
        (0, 99, 1000, (0, 99)),
        (900, 2000, 1000, (900, 999)),
        (10, None, 1000, (10, 999)),
        (None, 100, 1000, (900, 999)),
        (None, 5000, 1000, (0, 999)),
        (1000, None, 1000, None),
        (None, 0, 1000, None),
        (0, None, 0, None),
    ],
)
def test_resolve_range(
    first: int | None, last: int | None, size: int, expected: tuple[int, int] | None
) -> None:
    assert resolve_range(first, last, size) == expected


# -- plain HTTP behaviour ------------------------------------------------------------------


async def test_full_get_matches_source(
    server: MediaServer, http: aiohttp.ClientSession, media_dir: Path
) -> None:
    source = media_dir / "video.mp4"
    async with http.get(server.url("video.mp4")) as resp:
        body = await resp.read()
        assert resp.status == 200
        assert resp.headers["Accept-Ranges"] == "bytes"
        assert resp.headers["Content-Type"] == "video/mp4"
        assert int(resp.headers["Content-Length"]) == source.stat().st_size
        assert resp.headers["ETag"].startswith('"')
        assert resp.headers["Last-Modified"].endswith("GMT")
    assert hashlib.sha256(body).hexdigest() == sha256_file(source)
    await wait_until(lambda: bool(records(server, "video.mp4")), "the request record")
    [record] = records(server, "video.mp4")
    assert (record.method, record.status, record.range_start, record.range_end) == (
        "GET",
        200,
        None,
        None,
    )
    assert record.bytes_sent == source.stat().st_size
    assert server.bytes_served("video.mp4") == source.stat().st_size


@pytest.mark.parametrize(
    ("header", "start", "stop"),
    [
        ("bytes=100-199", 100, 200),
        ("bytes=1000-", 1000, None),
        ("bytes=-500", -500, None),
        ("bytes=50-99999999", 50, None),
    ],
)
async def test_range_returns_exactly_those_bytes(
    server: MediaServer,
    http: aiohttp.ClientSession,
    media_dir: Path,
    header: str,
    start: int,
    stop: int | None,
) -> None:
    data = (media_dir / "video.mp4").read_bytes()
    expected = data[start:stop]
    first = start if start >= 0 else len(data) + start
    async with http.get(server.url("video.mp4"), headers={"Range": header}) as resp:
        body = await resp.read()
        assert resp.status == 206
        assert resp.headers["Content-Range"] == (
            f"bytes {first}-{first + len(expected) - 1}/{len(data)}"
        )
        assert int(resp.headers["Content-Length"]) == len(expected)
    assert body == expected
    await wait_until(lambda: bool(server.served), "the request record")
    assert (server.served[0].range_start, server.served[0].range_end) == parse_range(header)
    assert server.served[0].bytes_sent == len(expected)


async def test_unsatisfiable_range_is_416(
    server: MediaServer, http: aiohttp.ClientSession, media_dir: Path
) -> None:
    size = (media_dir / "video.mp4").stat().st_size
    async with http.get(server.url("video.mp4"), headers={"Range": f"bytes={size}-"}) as resp:
        assert resp.status == 416
        assert resp.headers["Content-Range"] == f"bytes */{size}"


async def test_if_range_honoured(server: MediaServer, http: aiohttp.ClientSession) -> None:
    async with http.head(server.url("video.mp4")) as resp:
        etag, last_modified = resp.headers["ETag"], resp.headers["Last-Modified"]
    for validator, status in [(etag, 206), (last_modified, 206), ('"stale"', 200)]:
        headers = {"Range": "bytes=0-9", "If-Range": validator}
        async with http.get(server.url("video.mp4"), headers=headers) as resp:
            await resp.read()
            assert resp.status == status, validator


async def test_head_has_headers_and_no_body(
    server: MediaServer, http: aiohttp.ClientSession, media_dir: Path
) -> None:
    async with http.head(server.url("hls/index.m3u8")) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "application/vnd.apple.mpegurl"
        size = (media_dir / "hls" / "index.m3u8").stat().st_size
        assert int(resp.headers["Content-Length"]) == size
        assert await resp.read() == b""
    await wait_until(lambda: bool(server.served), "the request record")
    assert (server.served[0].method, server.served[0].bytes_sent) == ("HEAD", 0)


async def test_unknown_names_and_traversal_are_404(
    server: MediaServer, http: aiohttp.ClientSession
) -> None:
    outside = URL(f"{server.base_url}/hls/%2e%2e/%2e%2e/%2e%2e/etc/passwd", encoded=True)
    for url in (server.url("nope.mp4"), server.url("hls"), outside):
        async with http.get(url) as resp:
            assert resp.status == 404, url


async def test_status_override(server: MediaServer, http: aiohttp.ClientSession) -> None:
    async with http.get(server.url("video.mp4", status=500)) as resp:
        assert resp.status == 500
        assert await resp.text() == "500 Internal Server Error\n"
    await wait_until(lambda: bool(server.served), "the request record")
    assert server.served[0].status == 500


async def test_added_entries(server: MediaServer, http: aiohttp.ClientSession) -> None:
    server.add_page("watch/1.html", "<html><body>hi</body></html>")
    server.add_bytes("blob", b"\x00\x01\x02", "application/x-test")
    server.add_redirect("short", "/watch/1.html", status=301)
    async with http.get(server.url("short")) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
        assert await resp.text() == "<html><body>hi</body></html>"
        assert [r.status for r in resp.history] == [301]
    async with http.get(server.url("blob"), headers={"Range": "bytes=1-"}) as resp:
        assert (resp.status, await resp.read()) == (206, b"\x01\x02")
        assert resp.headers["Content-Type"] == "application/x-test"


async def test_delay_before_headers(server: MediaServer, http: aiohttp.ClientSession) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with http.get(server.url("hls/index.m3u8", delay_ms=300)) as resp:
        assert resp.status == 200
    assert loop.time() - started >= 0.29


# -- throttling, stalls, disconnects -------------------------------------------------------


async def receive_for(resp: aiohttp.ClientResponse, window_s: float) -> tuple[int, float]:
    """Bytes received during about ``window_s`` seconds from the first body byte."""
    loop = asyncio.get_running_loop()
    received = len(await resp.content.readany())
    started = loop.time()
    while (elapsed := loop.time() - started) < window_s:
        chunk = await resp.content.readany()
        assert chunk, "the body ended inside the window: the throttle did not hold"
        received += len(chunk)
    return received, elapsed


async def test_rate_query_limits_throughput(
    server: MediaServer, http: aiohttp.ClientSession
) -> None:
    rate = 200_000
    async with http.get(server.url("random.bin", rate=rate)) as resp:
        received, elapsed = await receive_for(resp, 1.0)
    # Generous: the pacing allows rate * t + one chunk; the machine is noisy.
    assert received <= rate * elapsed * 1.5 + chunk_size_for(rate) * 2


async def test_server_rate_changes_reach_requests_in_flight(
    server: MediaServer, http: aiohttp.ClientSession
) -> None:
    rate = 100_000
    server.rate_bytes_per_s = rate
    async with http.get(server.url("random.bin")) as resp:
        received, elapsed = await receive_for(resp, 0.5)
        assert received <= rate * elapsed * 1.5 + chunk_size_for(rate) * 2
        # At 100 kB/s the remaining 4 MB would take about 40 s; lifted, it takes moments.
        server.rate_bytes_per_s = None
        async with asyncio.timeout(15):
            rest = await resp.read()
    assert received + len(rest) == RANDOM_BYTES


async def test_stall_after_holds_the_connection(
    server: MediaServer, http: aiohttp.ClientSession
) -> None:
    stall_after = 100_000
    received = 0
    timeout = aiohttp.ClientTimeout(sock_read=0.5)
    async with http.get(server.url("random.bin", stall_after=stall_after), timeout=timeout) as r:
        with pytest.raises(TimeoutError):
            while chunk := await r.content.readany():
                received += len(chunk)
        assert received == stall_after
        # Held open: the response has not ended, so it is not in the log yet.
        assert records(server, "random.bin") == []
    await wait_until(lambda: bool(records(server, "random.bin")), "the stalled response to end")
    [record] = records(server, "random.bin")
    assert (record.status, record.bytes_sent) == (200, stall_after)


async def test_stop_ends_stalled_responses(media_dir: Path, http: aiohttp.ClientSession) -> None:
    server = MediaServer(media_dir, stall_after_bytes=0)
    await server.start()
    try:
        async with http.get(server.url("random.bin")) as resp:
            assert resp.status == 200
            # Headers are in and the body stalls at byte 0 until the server stops.
            reading = asyncio.ensure_future(resp.read())
            async with asyncio.timeout(SHUTDOWN_BUDGET_S):
                await server.stop()
            with pytest.raises(aiohttp.ClientPayloadError):
                await reading
    finally:
        await server.stop()
    [record] = server.served
    assert record.bytes_sent == 0


async def test_client_disconnect_mid_body_is_recorded(
    server: MediaServer, http: aiohttp.ClientSession
) -> None:
    async with http.get(server.url("random.bin", rate=1_000_000)) as resp:
        assert len(await resp.content.readexactly(CHUNK_BYTES)) == CHUNK_BYTES
        resp.close()
    await wait_until(lambda: bool(records(server, "random.bin")), "the disconnect record")
    [record] = records(server, "random.bin")
    assert record.status == 200
    assert CHUNK_BYTES <= record.bytes_sent < RANDOM_BYTES


# -- real tools ----------------------------------------------------------------------------


async def test_aria2c_downloads_identical_file(
    server: MediaServer, media_dir: Path, tmp_path: Path
) -> None:
    await run_tool(
        shutil.which("aria2c") or "aria2c",
        "--allow-overwrite=true",
        "--console-log-level=warn",
        "-d",
        tmp_path,
        server.url("video.mp4"),
    )
    assert sha256_file(tmp_path / "video.mp4") == sha256_file(media_dir / "video.mp4")


async def test_ytdlp_downloads_identical_file(
    server: MediaServer, media_dir: Path, tmp_path: Path
) -> None:
    ytdlp = Path(sys.executable).with_name("yt-dlp")
    await run_tool(
        ytdlp if ytdlp.exists() else shutil.which("yt-dlp") or "yt-dlp",
        "--ignore-config",
        "--no-cache-dir",
        "--no-progress",
        "-o",
        f"{tmp_path}/%(id)s.%(ext)s",
        server.url("video.mp4"),
    )
    assert sha256_file(tmp_path / "video.mp4") == sha256_file(media_dir / "video.mp4")
    # The generic extractor fetches the URL once to look at it, then downloads it.
    assert {r.status for r in records(server, "video.mp4")} == {200}


async def test_ffmpeg_copies_hls_through_the_server(server: MediaServer, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    await run_tool(
        shutil.which("ffmpeg") or "ffmpeg",
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",
        "-protocol_whitelist",
        "http,tcp",
        "-i",
        server.url("hls/index.m3u8"),
        "-c",
        "copy",
        out,
    )
    assert abs(probe_duration(out) - 6.0) <= 0.5
    assert {r.path for r in server.served} == {
        "hls/index.m3u8",
        "hls/seg0.ts",
        "hls/seg1.ts",
        "hls/seg2.ts",
    }


async def test_dash_manifest_is_served_with_its_type(
    server: MediaServer, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    manifest = make_dash(tmp_path / "dash")
    if manifest is None:
        pytest.skip("this ffmpeg has no dash muxer")
    server.add_file("dash/manifest.mpd", manifest)
    async with http.get(server.url("dash/manifest.mpd")) as resp:
        assert resp.headers["Content-Type"] == "application/dash+xml"
        assert await resp.read() == manifest.read_bytes()

"""HLS and DASH through the real service and real ffmpeg, from the local media server:
VOD copies, both containers, live streams that end or are stopped, and the failures."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mediad.service import Service
from mediad.worker import run_ffmpeg
from mediad.worker.jobs import JobContext, JobFailed, ProgressEmitter
from mediad.worker.progress import Progress
from mediad.worker.settings import WorkerSettings
from tests.support import media
from tests.support.harness import Api, eventually, shared_tmp
from tests.support.jobs_client import JobsClient
from tests.support.mediaserver import LiveSegment, MediaServer, render_live_playlist

VOD_S = 4.0
LIVE_SEGMENT_S = 0.4  # 10 frames at 25 fps: every segment lasts exactly this
LIVE_ENDS_AFTER = 5
PASSWD_MARK = b"root:x:0:0"


@dataclass(frozen=True)
class Streams:
    vod: Path  # an HLS VOD set: index.m3u8 + seg*.ts
    dash: Path | None  # a DASH manifest, None when this ffmpeg cannot make one
    live: Path  # short segments for the live playlists
    short: Path  # three of them: a live stream built on it stalls after 0.8 s


@pytest.fixture(scope="module")
def streams() -> Iterator[Streams]:
    root = shared_tmp("mediad-test-ffmpeg-")
    yield Streams(
        vod=media.make_hls(root / "vod", seconds=VOD_S, segment_s=1.0).parent,
        dash=media.make_dash(root / "dash", seconds=VOD_S),
        live=media.make_hls(root / "live", seconds=8.0, segment_s=LIVE_SEGMENT_S).parent,
        short=media.make_hls(
            root / "short", seconds=3 * LIVE_SEGMENT_S, segment_s=LIVE_SEGMENT_S
        ).parent,
    )
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def served(streams: Streams, media_server: MediaServer) -> Streams:
    """The sets on the media server: ``show/index.m3u8`` (fast), ``slowshow/index.m3u8``
    (each segment answered 250 ms late, so progress has time to show) and
    ``film/manifest.mpd``."""
    for path in streams.vod.iterdir():
        media_server.add_file(f"show/{path.name}", path)
        media_server.add_file(f"slowshow/{path.name}", path)
    slow = (streams.vod / "index.m3u8").read_text().replace(".ts\n", ".ts?delay_ms=250\n")
    media_server.add_bytes("slowshow/index.m3u8", slow.encode(), "application/vnd.apple.mpegurl")
    if streams.dash is not None:
        for path in streams.dash.parent.iterdir():
            media_server.add_file(f"film/{path.name}", path)
    return streams


async def fetch(api: Api, job_id: str, into: Path) -> Path:
    """The job's one file, downloaded through the API."""
    status, listing = await api.request("GET", f"/files/{job_id}")
    assert status == 200 and len(listing["files"]) == 1, listing
    name = listing["files"][0]["name"]
    async with api.session.get(f"/files/{job_id}/download") as resp:
        assert resp.status == 200
        target = into / name
        target.write_bytes(await resp.read())
    return target


async def finish(api: Api, job_id: str) -> dict[str, Any]:
    return await api.wait_status(job_id, "completed", "failed", timeout_s=30)


def progress_of(client: JobsClient, job_id: str) -> list[dict[str, Any]]:
    return [d for n, d in client.of(job_id) if n == "progress"]


# -- VOD ------------------------------------------------------------------------------------


async def test_hls_vod_becomes_an_mp4_with_steady_progress(
    shared_service: Service, api: Api, media_server: MediaServer, served: Streams, tmp_path: Path
) -> None:
    async with JobsClient(shared_service.base_url) as client:
        assert (await client.subscribe(all=True))["ok"] is True
        created = await api.submit(media_server.url("slowshow/index.m3u8"))
        assert created["type"] == "ffmpeg"
        job_id = created["jobId"]
        job = await finish(api, job_id)
        assert job["status"] == "completed", job
        await eventually(
            lambda: ("completed", job_id) in [(n, d["jobId"]) for n, d in client.events]
        )
        events = client.of(job_id)
    assert job["filename"] == "slowshow.mp4" and job["progress"] == 100
    output = await fetch(api, job_id, tmp_path)
    assert "mp4" in media.probe_format_name(output).split(",")
    source = media.probe_duration(served.vod / "index.m3u8")
    assert abs(media.probe_duration(output) - source) < 0.5

    names = [n for n, _ in events]
    progress = [d for n, d in events if n == "progress"]
    values = [p["progress"] for p in progress]
    assert None not in values, values  # the duration is known from the start
    assert values == sorted(values), values
    running = [v for v in values if v < 100]
    assert len(running) >= 2 and running[0] < 50, values
    assert values[-1] == 100 and values.count(100) == 1, values  # sent after success only
    assert names.index("completed") > max(i for i, n in enumerate(names) if n == "progress")
    assert {p["stage"] for p in progress} <= {"downloading", "finalizing"}


async def test_hls_vod_into_matroska_when_asked(
    api: Api, media_server: MediaServer, served: Streams, tmp_path: Path
) -> None:
    created = await api.submit(
        media_server.url("show/index.m3u8"), type="ffmpeg", options={"container": "mkv"}
    )
    job = await finish(api, created["jobId"])
    assert job["status"] == "completed", job
    assert job["filename"] == "show.mkv"
    output = await fetch(api, created["jobId"], tmp_path)
    assert media.probe_format_name(output).startswith("matroska")
    source = media.probe_duration(served.vod / "index.m3u8")
    assert abs(media.probe_duration(output) - source) < 0.5


async def test_dash_becomes_an_mp4(
    api: Api, media_server: MediaServer, served: Streams, tmp_path: Path
) -> None:
    if served.dash is None:
        pytest.skip("this ffmpeg has no dash muxer, so media.make_dash cannot make a DASH set")
    created = await api.submit(media_server.url("film/manifest.mpd"))
    assert created["type"] == "ffmpeg"
    job = await finish(api, created["jobId"])
    assert job["status"] == "completed", job
    assert job["filename"] == "film.mp4"
    output = await fetch(api, created["jobId"], tmp_path)
    assert "mp4" in media.probe_format_name(output).split(",")
    assert abs(media.probe_duration(output) - VOD_S) < 0.5


# -- live -----------------------------------------------------------------------------------


def test_live_playlist_reveals_segments_over_time() -> None:
    segments = [LiveSegment(f"seg{i}.ts", 0.4) for i in range(10)]

    def shown(elapsed_s: float, live: int | None, window: int | None = 3) -> list[str]:
        text = render_live_playlist(segments, 0.4, elapsed_s, live, window)
        return [line for line in text.splitlines() if not line.startswith("#EXTINF")][3:]

    assert shown(0.0, 5) == ["#EXT-X-MEDIA-SEQUENCE:0", "seg0.ts"]
    assert shown(0.85, 5) == ["#EXT-X-MEDIA-SEQUENCE:0", "seg0.ts", "seg1.ts", "seg2.ts"]
    assert shown(1.25, 5) == ["#EXT-X-MEDIA-SEQUENCE:1", "seg1.ts", "seg2.ts", "seg3.ts"]
    assert shown(1.65, 5)[-1] == "#EXT-X-ENDLIST"
    assert shown(60.0, 5) == ["#EXT-X-MEDIA-SEQUENCE:2", *[f"seg{i}.ts" for i in (2, 3, 4)],
                              "#EXT-X-ENDLIST"]  # fmt: skip
    assert shown(60.0, None)[-1] == "seg9.ts"  # never ends: stops growing
    assert len(shown(60.0, None, window=None)) == 11


async def test_live_hls_that_ends_completes_with_what_was_broadcast(
    shared_service: Service, api: Api, media_server: MediaServer, served: Streams, tmp_path: Path
) -> None:
    url = media_server.add_live_hls(
        "live-ends/index.m3u8", served.live, LIVE_SEGMENT_S, LIVE_ENDS_AFTER
    )
    async with JobsClient(shared_service.base_url) as client:
        assert (await client.subscribe(all=True))["ok"] is True
        created = await api.submit(url)
        job_id = created["jobId"]
        job = await finish(api, job_id)
        assert job["status"] == "completed", job
        await eventually(
            lambda: ("completed", job_id) in [(n, d["jobId"]) for n, d in client.events]
        )
        progress = progress_of(client, job_id)
    assert media_server.live_requests("live-ends/index.m3u8") >= LIVE_ENDS_AFTER - 1
    output = await fetch(api, job_id, tmp_path)
    expected = LIVE_ENDS_AFTER * LIVE_SEGMENT_S
    # ffmpeg joins at the live edge: it may miss the first segment on a slow start.
    assert expected - LIVE_SEGMENT_S - 0.1 <= media.probe_duration(output) <= expected + 0.3

    running = [p for p in progress if p["stage"] == "downloading"]
    assert running, progress
    # Unknown, never a made-up 0; and no speed or eta either.
    assert all(p["progress"] is None and p["speed"] is None for p in running), running
    assert all(p["eta"] is None for p in running), running
    assert [p["progress"] for p in progress if p["progress"] is not None] == [100]
    assert progress[-1] == {**progress[-1], "stage": "finalizing", "progress": 100}


async def test_live_hls_stopped_through_the_api_keeps_the_recording(
    shared_service: Service, api: Api, media_server: MediaServer, served: Streams, tmp_path: Path
) -> None:
    url = media_server.add_live_hls("live-forever/index.m3u8", served.live, LIVE_SEGMENT_S, None)
    async with JobsClient(shared_service.base_url) as client:
        assert (await client.subscribe(all=True))["ok"] is True
        created = await api.submit(url)
        job_id = created["jobId"]
        # Two progress blocks: ffmpeg (not ffprobe) is recording, about a second of it.
        await eventually(lambda: len(progress_of(client, job_id)) >= 2, what="recording")
        status, body = await api.request("POST", f"/downloads/{job_id}/stop")
        assert status == 200, body
        assert body["jobId"] == job_id and body["status"] == "running"
        job = await finish(api, job_id)
    assert job["status"] == "completed", job
    assert job["filename"] == "live-forever.mp4"
    output = await fetch(api, job_id, tmp_path)
    recorded = media.probe_duration(output)
    assert recorded > 0
    # The stream goes on for 8 s: the stop, not the stream, ended the recording.
    assert recorded < 6.0
    assert job["progress"] == 100


async def test_stop_is_refused_for_a_job_that_is_not_recording(
    api: Api, media_server: MediaServer, served: Streams
) -> None:
    created = await api.submit(media_server.url("show/index.m3u8"))
    job = await finish(api, created["jobId"])
    assert job["status"] == "completed"
    status, body = await api.request("POST", f"/downloads/{created['jobId']}/stop")
    assert status == 409, body


# -- failures -------------------------------------------------------------------------------


async def test_missing_playlist_fails_with_not_found(api: Api, media_server: MediaServer) -> None:
    created = await api.submit(media_server.url("nothing-here/index.m3u8"))
    job = await finish(api, created["jobId"])
    assert job["status"] == "failed", job
    assert job["errorCode"] == "not_found", job
    assert "404" in job["errorMessage"], job
    assert job["attempts"] == 1


@pytest.mark.parametrize(
    "segment",
    [
        "file:///etc/passwd",
        "file:///etc/passwd?.ts",  # passes the HLS reader's extension check
        "{live}/seg0.ts",  # real media: ffmpeg would copy it if it could read it
    ],
)
async def test_playlist_pointing_at_local_files_is_refused(
    api: Api, media_server: MediaServer, served: Streams, segment: str
) -> None:
    segment = segment.format(live=f"file://{served.live}")
    playlist = (
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n"
        f"#EXTINF:1.0,\n{segment}\n#EXTINF:1.0,\n{segment}\n#EXT-X-ENDLIST\n"
    )
    name = f"crafted/{abs(hash(segment))}/index.m3u8"
    media_server.add_bytes(name, playlist.encode(), "application/vnd.apple.mpegurl")
    created = await api.submit(media_server.url(name))
    job = await finish(api, created["jobId"])
    assert job["status"] == "failed", job
    assert job["errorCode"] == "unsupported_url", job
    assert "file" in job["errorMessage"], job
    status, listing = await api.request("GET", f"/files/{created['jobId']}")
    assert status == 200 and listing["files"] == [], listing
    async with api.session.get(f"/files/{created['jobId']}/download") as resp:
        assert resp.status == 404
        assert PASSWD_MARK not in await resp.read()


# -- the runner on its own: paths the service cannot time ------------------------------------


def runner_job(tmp_path: Path, url: str) -> tuple[JobContext, list[Progress]]:
    """A job context as the worker builds it, recording what the runner reports."""
    reported: list[Progress] = []

    async def send(p: Progress) -> None:
        reported.append(p)

    settings = WorkerSettings(
        server_url="http://unused", worker_id="w", token="t",
        data_dir=tmp_path / "data", tmp_dir=tmp_path / "tmp",
    )  # fmt: skip
    ctx = JobContext(
        job_id="job", attempt=1, url=url, type="ffmpeg", options={}, settings=settings,
        emitter=ProgressEmitter(send, 10.0),
    )  # fmt: skip
    ctx.work_dir.mkdir(parents=True)
    return ctx, reported


def gone(pid: int) -> bool:
    return not os.path.exists(f"/proc/{pid}")


async def test_stopping_a_stalled_stream_gives_up_after_the_grace(
    media_server: MediaServer, served: Streams, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stream that stops growing without ending: ffmpeg waits for the next segment and
    # heeds the one SIGINT only when it comes (a second would spoil the file).
    monkeypatch.setattr(run_ffmpeg, "STOP_GRACE_S", 1)
    name = "live-stalls/index.m3u8"
    url = media_server.add_live_hls(name, served.short, LIVE_SEGMENT_S, None)
    ctx, _ = runner_job(tmp_path, url)
    task = asyncio.create_task(run_ffmpeg.run(ctx))
    await eventually(
        lambda: any(s.path == "live-stalls/seg2.ts" for s in media_server.served),
        what="the last segment fetched",
    )
    reloads = media_server.live_requests(name)
    await eventually(lambda: media_server.live_requests(name) >= reloads + 2, what="reloads")
    ctx.stop_requested.set()
    async with asyncio.timeout(10):
        with pytest.raises(JobFailed) as caught:
            await task
    # Not "interrupted": that code is retried, and the user asked for the end.
    assert caught.value.error_code == "nothing_recorded"
    assert "within 1 s of the stop request" in caught.value.message
    assert all(gone(p.pid) for p in ctx.tools)


async def test_cancelling_the_job_kills_ffmpeg_at_once(
    media_server: MediaServer, served: Streams, tmp_path: Path
) -> None:
    url = media_server.add_live_hls("live-cancel/index.m3u8", served.live, LIVE_SEGMENT_S, None)
    ctx, reported = runner_job(tmp_path, url)
    task = asyncio.create_task(run_ffmpeg.run(ctx))
    await eventually(lambda: reported, what="ffmpeg recording")
    recorder = ctx.tools[-1]
    assert recorder.returncode is None
    task.cancel()
    async with asyncio.timeout(5):
        with pytest.raises(asyncio.CancelledError):
            await task
    assert recorder.returncode == -9
    await eventually(lambda: gone(recorder.pid), timeout_s=2, what="ffmpeg gone")

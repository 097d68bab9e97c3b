"""yt-dlp job options against real yt-dlp: playlists, audio extraction, subtitles, and
stages that never show 100 % before the end."""

from __future__ import annotations

import io
import json
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest

from mediad.service import Service
from tests.support import media
from tests.support.harness import Api, eventually, shared_tmp
from tests.support.jobs_client import JobsClient
from tests.support.mediaserver import MediaServer

VTT = b"WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nhello\n"


@pytest.fixture(scope="module")
def clips(media_server: MediaServer) -> Any:
    folder = shared_tmp("mediad-test-clips-")
    for n, seconds in (("one", 1.0), ("two", 1.5), ("three", 2.0)):
        media_server.add_file(f"clips/{n}.mp4", media.make_video(folder / f"{n}.mp4", seconds))
    media_server.add_page(
        "clips/index.html",
        "<html><head><title>Three clips</title></head><body>"
        '<video src="one.mp4"></video><video src="two.mp4"></video>'
        '<video src="three.mp4"></video></body></html>',
    )
    media_server.add_bytes("clips/one.en.vtt", VTT, "text/vtt")
    media_server.add_page(
        "clips/subtitled.html",
        "<html><head><title>Subtitled</title></head><body>"
        '<video src="one.mp4"><track kind="subtitles" srclang="en" src="one.en.vtt"></video>'
        "</body></html>",
    )
    return folder


def probe(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path)],
        capture_output=True, check=True, text=True,
    )  # fmt: skip
    return json.loads(out.stdout)  # type: ignore[no-any-return]


async def _files(api: Api, job_id: str) -> list[dict[str, Any]]:
    status, body = await api.request("GET", f"/files/{job_id}")
    assert status == 200
    return body["files"]  # type: ignore[no-any-return]


async def test_a_playlist_is_one_job_with_every_file(
    api: Api, media_server: MediaServer, clips: Path
) -> None:
    url = media_server.url("clips/index.html")
    job_id = (await api.submit(url, options={"playlist": True}))["jobId"]
    job = await api.wait_status(job_id, "completed", "failed")
    assert job["status"] == "completed", job
    files = await _files(api, job_id)
    assert len(files) == 3 and all(f["name"].endswith(".mp4") for f in files)
    assert job["size"] == sum(f["size"] for f in files)
    status, body = await api.request("GET", f"/files/{job_id}/download")
    assert status == 200
    with zipfile.ZipFile(io.BytesIO(body)) as zf:
        assert sorted(zf.namelist()) == sorted(f["name"] for f in files)
        sources = {(clips / f"{n}.mp4").read_bytes() for n in ("one", "two", "three")}
        assert {zf.read(n) for n in zf.namelist()} == sources


async def test_max_items_limits_a_playlist(
    api: Api, media_server: MediaServer, clips: Path
) -> None:
    url = media_server.url("clips/index.html")
    job_id = (await api.submit(url, options={"playlist": True, "maxItems": 2}))["jobId"]
    await api.wait_status(job_id, "completed")
    assert len(await _files(api, job_id)) == 2


async def test_audio_extraction_gives_mp3_with_sensible_stages(
    shared_service: Service, api: Api, media_server: MediaServer, clips: Path
) -> None:
    async with JobsClient(shared_service.base_url) as client:
        await client.subscribe(all=True)
        options = {"audioOnly": True, "audioFormat": "mp3"}
        job_id = (
            await api.submit(media_server.url("clips/two.mp4"), type="ytdlp", options=options)
        )["jobId"]
        job = await api.wait_status(job_id, "completed", "failed")
        assert job["status"] == "completed", job
        await eventually(
            lambda: ("completed", job_id) in [(n, d["jobId"]) for n, d in client.events]
        )
    files = await _files(api, job_id)
    assert [f["name"][-4:] for f in files] == [".mp3"]
    path = Path(shared_service.config.storage.data_dir) / job_id / files[0]["name"]
    info = probe(path)
    assert info["format"]["format_name"] == "mp3"
    assert [s["codec_name"] for s in info["streams"]] == ["mp3"]
    progress = [d for n, d in client.of(job_id) if n == "progress"]
    values = [p["progress"] for p in progress if p["progress"] is not None]
    assert values == sorted(values)
    # 100 % only once the file is final.
    assert all(p["progress"] < 100 for p in progress if p["stage"] != "finalizing")
    stages = [p["stage"] for p in progress]
    assert stages[-1] == "finalizing"
    order = {"downloading": 0, "merging": 1, "postprocessing": 1, "finalizing": 2}
    assert [order[s] for s in stages] == sorted(order[s] for s in stages), stages


async def test_subtitles_are_downloaded_beside_the_video(
    api: Api, media_server: MediaServer, clips: Path
) -> None:
    url = media_server.url("clips/subtitled.html")
    job_id = (await api.submit(url, options={"subtitles": ["en"]}))["jobId"]
    job = await api.wait_status(job_id, "completed", "failed")
    assert job["status"] == "completed", job
    names = sorted(f["name"] for f in await _files(api, job_id))
    assert any(n.endswith(".mp4") for n in names), names
    assert any(n.endswith(".en.vtt") for n in names), names


@pytest.mark.parametrize("fmt", ["best", "720p", "worst", "bv*+ba/b"])
async def test_format_presets_and_selectors(
    fmt: str, api: Api, media_server: MediaServer, media_dir: Path
) -> None:
    job_id = (
        await api.submit(media_server.url("video.mp4"), type="ytdlp", options={"format": fmt})
    )["jobId"]
    job = await api.wait_status(job_id, "completed", "failed")
    assert job["status"] == "completed", job
    assert job["size"] == (media_dir / "video.mp4").stat().st_size

"""Long URLs: whatever name a tool proposes (yt-dlp's generic extractor builds the id from
the URL, aria2 takes the URL's last segment), every name mediad writes fits 255 bytes per
component, multi-byte characters counted in bytes, and the job completes."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

import pytest

from mediad.service import Service
from tests.support.harness import Api
from tests.support.mediaserver import MediaServer

NAME_MAX = 255


def page(video_url: str, title: str) -> str:
    return (
        f"<html><head><title>{title}</title></head><body>"
        f'<video src="{video_url}"></video></body></html>'
    )


def every_name(root: Path) -> list[str]:
    names = []
    for _folder, dirs, files in os.walk(root):
        names += [*dirs, *files]
    return names


async def completed_names(api: Api, url: str, job_type: str | None = None) -> list[str]:
    fields = {"type": job_type} if job_type else {}
    job_id = (await api.submit(url, **fields))["jobId"]
    job = await api.wait_status(job_id, "completed", "failed", timeout_s=90)
    assert job["status"] == "completed", (job["errorCode"], job["errorMessage"])
    status, body = await api.request("GET", f"/files/{job_id}")
    assert status == 200
    names = [f["name"] for f in body["files"]]
    assert names and all(len(n.encode()) <= NAME_MAX for n in names), names
    status, data = await api.request("GET", f"/files/{job_id}/download")
    assert status == 200 and len(data) == body["files"][0]["size"] > 0
    return names


@pytest.mark.parametrize(
    ("path", "title"),
    [
        # The case: a 400-character generic-page URL (its id is the last segment).
        ("pages/" + "a" * 380, "A page"),
        # Two bytes a character in the id, and a title whose every character yt-dlp
        # would turn into a three-byte look-alike.
        ("pages/" + "é" * 150 + "-x", '/:?*<>|"\\' * 40),
        # Three bytes a character in both.
        ("pages/" + "日本" * 70, "日本語のタイトル" * 30),
    ],
    ids=["ascii-400", "multibyte-and-lookalikes", "cjk"],
)
async def test_a_long_generic_page_url_completes(
    api: Api, shared_service: Service, media_server: MediaServer, path: str, title: str
) -> None:
    media_server.add_page(path, page(media_server.url("video.mp4"), title))
    url = f"{media_server.base_url}/{quote(path)}"
    assert len(url) >= 400
    names = await completed_names(api, url, "ytdlp")
    assert names[0].endswith(".mp4"), names
    # Nothing longer was left in tmp either (the job's folder is gone once it completes).
    for name in every_name(shared_service.config.tmp_path) + every_name(
        shared_service.config.data_path
    ):
        assert len(name.encode()) <= NAME_MAX, name


async def test_a_direct_file_with_a_long_name_completes(
    api: Api, media_server: MediaServer
) -> None:
    """aria2 names the file after the URL's last segment: 300 bytes of it would not fit."""
    path = "files/" + "ü" * 150 + ".bin"
    media_server.add_bytes(path, b"x" * 10_000)
    names = await completed_names(api, f"{media_server.base_url}/{quote(path)}", "aria2")
    assert names[0].startswith("ü") and names[0].endswith(".bin"), names


async def test_a_long_name_proposed_by_the_server_completes(
    api: Api, media_server: MediaServer
) -> None:
    """aria2 takes a Content-Disposition name as it is: one of 300 bytes cannot be created,
    so the download is made again under that name cut to fit."""
    media_server.add_bytes("files/proposed.bin", b"y" * 10_000)
    proposed = "é" * 150 + ".bin"
    url = media_server.url("files/proposed.bin", filename=proposed)
    names = await completed_names(api, url, "aria2")
    assert names[0].startswith("é" * 50) and names[0].endswith(".bin"), names


def test_the_too_long_name_is_the_path_aria2_tried() -> None:
    from mediad.worker.run_aria2 import too_long_name

    long_name = "é" * 150 + ".bin"
    assert too_long_name("16", [f"/tmp/x/{long_name}"]) == long_name
    assert too_long_name("16", ["/tmp/x/short.bin"]) is None  # another reason
    assert too_long_name("3", [f"/tmp/x/{long_name}"]) is None  # not "could not create"

"""Named cookie files through the real service: PUT/GET/DELETE and their checks, a yt-dlp
job that needs a cookie to get its file (the media server answers 403 without it), a
cookie file deleted while its job waited, the content readable through no route and in
no log, and the private copy gone however the job ends."""

from __future__ import annotations

import io
import logging
import os
import stat
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from mediad.service import Service
from tests.support import media
from tests.support.harness import Api, eventually, running_service, shared_tmp
from tests.support.jobs_client import JobsClient
from tests.support.mediaserver import MediaServer

pytestmark = pytest.mark.timeout(90)
HEADERS = {"Content-Type": "text/plain"}
COPY = ".mediad-cookies.txt"


def cookies_txt(value: str, domain: str = "127.0.0.1") -> str:
    return (
        "# Netscape HTTP Cookie File\n"
        "# exported for a test\n\n"
        f"{domain}\tFALSE\t/\tFALSE\t0\tsession\t{value}\n"
        f"#HttpOnly_{domain}\tFALSE\t/\tFALSE\t2000000000\tother\tx\n"
    )


@pytest.fixture(scope="module")
async def service(new_module_config: Any) -> AsyncIterator[Service]:
    config = await new_module_config(queue={"concurrency": 1}, workers={"processes": 1})
    async with running_service(config) as svc:
        yield svc


@pytest.fixture(scope="module")
def private_video(media_server: MediaServer) -> tuple[str, str, bytes]:
    """A video behind a login: (its URL, the cookie value it needs, its bytes)."""
    folder = shared_tmp("mediad-test-cookies-")
    path = media.make_video(folder / "private.mp4", 1.0)
    value = f"secret-{uuid.uuid4().hex}"
    media_server.add_file("private/private.mp4", path)
    media_server.require_cookie("private/private.mp4", f"session={value}")
    return media_server.url("private/private.mp4"), value, path.read_bytes()


async def put(
    api: Api, name: str, body: str | bytes | io.BytesIO, **kwargs: Any
) -> tuple[int, Any]:
    headers = kwargs.pop("headers", HEADERS)
    return await api.request("PUT", f"/cookies/{name}", data=body, headers=headers, **kwargs)


def work_dir(service: Service, job_id: str) -> Path:
    return Path(service.config.storage.tmp_dir) / job_id


async def test_store_list_replace_and_delete(service: Service, api: Api) -> None:
    async with JobsClient(service.base_url) as client:
        updates: list[dict[str, Any]] = []

        async def record(data: dict[str, Any]) -> None:
            updates.append(data)

        client.sio.on("cookies-update", record, namespace="/jobs")
        await client.subscribe(all=True)
        status, body = await put(api, "site-a", cookies_txt("one"))
        assert status == 201, body
        assert body["name"] == "site-a" and body["entries"] == 2
        assert body["size"] == len(cookies_txt("one")) and body["updatedAt"].endswith("Z")
        status, again = await put(api, "site-a", cookies_txt("longer-value"))
        assert status == 200 and again["size"] == len(cookies_txt("longer-value"))
        status, listing = await api.request("GET", "/cookies")
        assert status == 200
        assert [i["name"] for i in listing["items"]] == ["site-a"]
        assert set(listing["items"][0]) == {"name", "size", "entries", "updatedAt"}
        # Stored under the state directory, for this user only.
        folder = service.config.state_path / "cookies"
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert stat.S_IMODE((folder / "site-a.txt").stat().st_mode) == 0o600
        assert [p.name for p in folder.iterdir()] == ["site-a.txt"]  # no temporary left
        status, _ = await api.request("DELETE", "/cookies/site-a")
        assert status == 204
        status, body = await api.request("DELETE", "/cookies/site-a")
        assert (status, body["error"]["code"]) == (404, "not_found")
        await eventually(lambda: len(updates) >= 3, what="three cookies-update events")
    assert [len(u["items"]) for u in updates] == [1, 1, 0]
    assert updates[1]["items"][0]["size"] == len(cookies_txt("longer-value"))


@pytest.mark.parametrize(
    ("body", "line"),
    [
        ("session\tvalue\n", 1),  # no header: http.cookiejar refuses it
        ("# Netscape HTTP Cookie File\n", 1),  # no cookie at all
        ("# Netscape HTTP Cookie File\n\nexample.com\tFALSE\t/\tFALSE\t0\ta\n", 3),
        ("# Netscape HTTP Cookie File\n.example.com\tFALSE\t/\tFALSE\t0\ta\tb\n", 2),
        ("# Netscape HTTP Cookie File\nexample.com\tyes\t/\tFALSE\t0\ta\tb\n", 2),
        ("# Netscape HTTP Cookie File\nexample.com\tFALSE\t/\tFALSE\tnever\ta\tb\n", 2),
        ('# Netscape HTTP Cookie File\n[{"name": "a"}]\n', 2),  # JSON
        (b"# Netscape HTTP Cookie File\n\xff\xfe\x00binary\n", 2),
    ],
)
async def test_a_file_yt_dlp_would_not_read_is_refused(
    api: Api, body: str | bytes, line: int
) -> None:
    status, answer = await put(api, "bad", body)
    assert status == 400, answer
    assert answer["error"]["code"] == "invalid_cookies"
    assert f"line {line}:" in answer["error"]["message"]
    status, listing = await api.request("GET", "/cookies")
    assert "bad" not in [i["name"] for i in listing["items"]]


async def test_names_types_and_sizes_are_checked(api: Api) -> None:
    for name in ("-dash", ".hidden", "a" * 65, "sp%20ace", "a%2Fb"):
        status, body = await put(api, name, cookies_txt("x"))
        assert (status, body["error"]["code"]) == (400, "invalid_name"), name
    status, body = await put(api, "ok", cookies_txt("x"), headers={"Content-Type": "text/csv"})
    assert (status, body["error"]["code"]) == (415, "unsupported_media_type")
    big = cookies_txt("x") + "#" * (1024 * 1024)
    status, body = await put(api, "ok", io.BytesIO(big.encode()))
    assert (status, body["error"]["code"]) == (413, "payload_too_large")
    # Over server.max_body_bytes (64 KiB) but within the route's own 1 MiB.
    lines = "".join(f"127.0.0.1\tFALSE\t/\tFALSE\t0\tc{n}\t{'v' * 200}\n" for n in range(1000))
    status, body = await put(api, "many", "# Netscape HTTP Cookie File\n" + lines)
    assert (status, body["entries"]) == (201, 1000), body
    assert (await api.request("DELETE", "/cookies/many"))[0] == 204


async def test_a_ytdlp_job_logs_in_with_a_named_file(
    service: Service, api: Api, private_video: tuple[str, str, bytes]
) -> None:
    url, value, data = private_video
    without = await api.submit(url, type="ytdlp")
    job = await api.wait_status(without["jobId"], "completed", "failed")
    assert (job["status"], job["errorCode"]) == ("failed", "http_error"), job
    assert "403" in job["errorMessage"]

    assert (await put(api, "login", cookies_txt(value)))[0] == 201
    created = await api.submit(url, type="ytdlp", options={"cookies": "login"})
    job = await api.wait_status(created["jobId"], "completed", "failed")
    assert job["status"] == "completed", job
    assert job["options"] == {"cookies": "login"}  # the name, never the content
    status, body = await api.request("GET", f"/files/{created['jobId']}/download")
    assert status == 200 and body == data
    assert not work_dir(service, created["jobId"]).exists()
    # The stored file is yt-dlp's to read, never to rewrite.
    stored = (service.config.state_path / "cookies" / "login.txt").read_text()
    assert stored == cookies_txt(value)


async def test_a_job_cannot_name_a_missing_file_nor_an_aria2_job_any(
    api: Api, media_server: MediaServer
) -> None:
    url = media_server.url("video.mp4")
    for options in ({"cookies": "nothing-here"},):
        status, body = await api.request(
            "POST", "/downloads", json={"url": url, "type": "ytdlp", "options": options}
        )
        assert (status, body["error"]["code"]) == (400, "unknown_cookies"), body
    status, body = await api.request(
        "POST", "/downloads", json={"url": url, "type": "ytdlp", "options": {"cookies": "../x"}}
    )
    assert (status, body["error"]["code"]) == (400, "invalid_options")
    assert (await put(api, "for-aria2", cookies_txt("v")))[0] == 201
    status, body = await api.request(
        "POST",
        "/downloads",
        json={"url": url, "type": "aria2", "options": {"cookies": "for-aria2"}},
    )
    assert (status, body["error"]["code"]) == (400, "invalid_options")


async def test_a_file_deleted_while_its_job_waits_fails_it(
    service: Service, api: Api, media_server: MediaServer, private_video: tuple[str, str, bytes]
) -> None:
    url, value, _ = private_video
    assert (await put(api, "short-lived", cookies_txt(value)))[0] == 201
    # concurrency 1: a slow job holds the only slot while the next one waits.
    blocker = await api.submit(media_server.url("blob.bin", rate=100_000), type="aria2")
    await api.wait_status(blocker["jobId"], "running")
    waiting = await api.submit(url, type="ytdlp", options={"cookies": "short-lived"})
    assert (await api.request("DELETE", "/cookies/short-lived"))[0] == 204
    await api.request("POST", f"/downloads/{blocker['jobId']}/cancel")
    job = await api.wait_status(waiting["jobId"], "completed", "failed")
    assert (job["status"], job["errorCode"]) == ("failed", "cookies_missing"), job
    assert "short-lived" in job["errorMessage"]


async def test_the_copy_goes_when_a_job_is_paused(
    service: Service, api: Api, media_server: MediaServer, private_video: tuple[str, str, bytes]
) -> None:
    _, value, _ = private_video
    assert (await put(api, "pausing", cookies_txt(value)))[0] == 201
    slow = media_server.url("blob.bin", rate=200_000)
    created = await api.submit(slow, type="ytdlp", options={"cookies": "pausing"})
    job_id = created["jobId"]
    copy = work_dir(service, job_id) / COPY
    await eventually(copy.exists, what="the job's private copy")
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    await api.wait_status(job_id, "running")
    status, _ = await api.request("POST", f"/downloads/{job_id}/pause")
    assert status == 200
    await api.wait_status(job_id, "paused")
    await eventually(lambda: not copy.exists(), what="the copy to be removed")
    assert work_dir(service, job_id).exists()  # the partial data stays for a resume
    await api.request("POST", f"/downloads/{job_id}/cancel")
    await api.wait_status(job_id, "cancelled")


async def test_the_content_is_readable_through_no_route_and_in_no_log(
    service: Service,
    api: Api,
    private_video: tuple[str, str, bytes],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    url, value, _ = private_video
    marker = f"marker-{uuid.uuid4().hex}"
    # The marker is a second cookie; the login one is real, so the job completes.
    body = cookies_txt(value) + f"127.0.0.1\tFALSE\t/\tFALSE\t0\tmark\t{marker}\n"
    assert (await put(api, "marked", body))[0] == 201
    status, answer = await put(api, "marked-bad", body + "broken line\n")
    assert status == 400 and marker not in str(answer)
    created = await api.submit(url, type="ytdlp", options={"cookies": "marked"})
    job_id = created["jobId"]
    await api.wait_status(job_id, "completed")
    seen: list[bytes] = []
    for path in (
        "/cookies",
        "/cookies/marked",
        f"/downloads/{job_id}",
        "/downloads",
        f"/files/{job_id}",
        f"/files/{job_id}/download",
        f"/files/{job_id}/download?name={COPY}",
        f"/files/{job_id}/download?name=../../cookies/marked.txt",
        "/metrics",
        "/health",
    ):
        async with api.session.get(path) as resp:
            seen.append(await resp.read())
    assert all(marker.encode() not in b for b in seen)
    # Nothing of it in the job's folders (tmp is gone, data holds the video only).
    for folder in (work_dir(service, job_id), Path(service.config.storage.data_dir) / job_id):
        for root, _, files in os.walk(folder):
            for name in files:
                assert marker.encode() not in (Path(root) / name).read_bytes()
    out, err = capfd.readouterr()
    assert marker not in out + err and value not in out + err
    assert marker not in caplog.text and value not in caplog.text

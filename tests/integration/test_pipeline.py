"""A URL in, a verified file out: real yt-dlp and aria2 against the local media server,
followed over a real Socket.IO client."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

from mediad.service import Service
from tests.support import media
from tests.support.harness import Api, eventually
from tests.support.jobs_client import JobsClient
from tests.support.mediaserver import MediaServer


async def download(api: Api, job_id: str, **params: str) -> tuple[int, bytes, dict[str, str]]:
    async with api.session.get(f"/files/{job_id}/download", params=params) as resp:
        return resp.status, await resp.read(), dict(resp.headers)


async def test_aria2_job_completes_with_the_same_bytes(
    api: Api, media_server: MediaServer, media_dir: Path
) -> None:
    # A media extension is detected as a direct download.
    created = await api.submit(media_server.url("video.mp4"))
    assert created["type"] == "aria2" and created["status"] == "queued"
    job = await api.wait_status(created["jobId"], "completed", "failed")
    assert job["status"] == "completed", job
    assert job["progress"] == 100 and job["attempts"] == 1
    size = (media_dir / "video.mp4").stat().st_size
    assert job["filename"] == "video.mp4" and job["size"] == size
    assert job["outputPath"] == f"{created['jobId']}/video.mp4"
    status, body, _ = await download(api, created["jobId"])
    assert status == 200
    assert hashlib.sha256(body).hexdigest() == media.sha256_file(media_dir / "video.mp4")


async def test_ytdlp_job_completes_with_the_same_bytes(
    api: Api, media_server: MediaServer, media_dir: Path
) -> None:
    created = await api.submit(media_server.url("video.mp4"), type="ytdlp")
    job = await api.wait_status(created["jobId"], "completed", "failed")
    assert job["status"] == "completed", job
    assert job["filename"].endswith(".mp4")
    status, body, headers = await download(api, created["jobId"])
    assert status == 200
    assert hashlib.sha256(body).hexdigest() == media.sha256_file(media_dir / "video.mp4")
    assert headers["Content-Type"] == "video/mp4"
    assert "filename*=UTF-8''" in headers["Content-Disposition"]


async def test_files_listing_and_range_requests(
    api: Api, media_server: MediaServer, media_dir: Path
) -> None:
    created = await api.submit(media_server.url("blob.bin"), type="aria2")
    await api.wait_status(created["jobId"], "completed")
    status, listing = await api.request("GET", f"/files/{created['jobId']}")
    assert status == 200
    assert listing == {
        "jobId": created["jobId"],
        "files": [
            {
                "name": "blob.bin",
                "size": 4 * 1024 * 1024,
                "mimeType": "application/octet-stream",
                "url": f"/files/{created['jobId']}/download?name=blob.bin",
            }
        ],
        "totalSize": 4 * 1024 * 1024,
        "zipUrl": None,
    }
    source = (media_dir / "blob.bin").read_bytes()
    headers = {"Range": "bytes=1000-1999"}
    async with api.session.get(f"/files/{created['jobId']}/download", headers=headers) as resp:
        assert resp.status == 206
        assert resp.headers["Content-Range"] == f"bytes 1000-1999/{len(source)}"
        assert await resp.read() == source[1000:2000]
    status, body, _ = await download(api, created["jobId"], name="blob.bin")
    assert status == 200 and body == source
    status, body, _ = await download(api, created["jobId"], name="other.bin")
    assert status == 404


async def test_socketio_client_sees_progress_then_completed_then_nothing(
    shared_service: Service, api: Api, media_server: MediaServer
) -> None:
    # 4 MiB at 1.5 MB/s: about three seconds of progress.
    url = media_server.url("blob.bin", rate=1_500_000)
    async with JobsClient(shared_service.base_url) as client:
        created = await api.submit(url, type="aria2")
        job_id = created["jobId"]
        ack = await client.subscribe(jobId=job_id)
        assert ack["ok"] is True and ack["job"]["jobId"] == job_id
        await eventually(lambda: client.ended(job_id), what="completed and its job-update")
        # Anything after them would arrive within a flush interval or two.
        seen = len(client.of(job_id))
        await asyncio.sleep(1.0)
        events = client.of(job_id)
    assert len(events) == seen
    names = [n for n, _ in events]
    progress = [d for n, d in events if n == "progress"]
    assert len(progress) >= 3, names
    values = [p["progress"] for p in progress]
    # Unknown (null) only until the size is known; then it never goes back or down.
    known = values[next(i for i, v in enumerate(values) if v is not None) :]
    assert None not in known and known == sorted(known), values
    assert all(p["stage"] in ("downloading", "finalizing") for p in progress)
    assert any(p["totalBytes"] == 4 * 1024 * 1024 for p in progress)
    assert any((p["speed"] or 0) > 0 for p in progress)
    assert any(p["eta"] is not None for p in progress)
    last_progress = max(i for i, n in enumerate(names) if n == "progress")
    completed = names.index("completed")
    assert last_progress < completed
    assert all(n == "job-update" for n in names[completed + 1 :]), names
    assert events[completed][1] == {
        "jobId": job_id,
        "filename": "blob.bin",
        "size": 4 * 1024 * 1024,
        "outputPath": f"{job_id}/blob.bin",
    }
    updates = [d["status"] for n, d in events if n == "job-update"]
    assert updates[-1] == "completed"


async def test_all_jobs_room_sees_every_job(
    shared_service: Service, api: Api, media_server: MediaServer
) -> None:
    async with JobsClient(shared_service.base_url) as client:
        assert (await client.subscribe(all=True))["ok"] is True
        first = await api.submit(media_server.url("blob.bin"), type="aria2")
        second = await api.submit(media_server.url("video.mp4"))
        for created in (first, second):
            await eventually(
                lambda c=created: (
                    ("completed", c["jobId"]) in [(n, d["jobId"]) for n, d in client.events]
                ),
                what="completed on the all-jobs room",
            )


async def test_url_answering_404_fails_with_not_found(api: Api, media_server: MediaServer) -> None:
    for url, job_type in (
        (media_server.url("missing.mp4"), "aria2"),
        (media_server.url("missing.mp4"), "ytdlp"),
    ):
        created = await api.submit(url, type=job_type)
        job = await api.wait_status(created["jobId"], "completed", "failed")
        assert job["status"] == "failed", job
        assert job["errorCode"] == "not_found", job
        assert "404" in job["errorMessage"] or "not found" in job["errorMessage"].lower(), job
        assert job["attempts"] == 1


async def test_job_listing_newest_first_with_filter_and_cursor(
    api: Api, media_server: MediaServer
) -> None:
    ids = [(await api.submit(media_server.url("missing.mp4")))["jobId"] for _ in range(3)]
    for job_id in ids:
        await api.wait_status(job_id, "failed")
    status, page = await api.request("GET", "/downloads", params={"status": "failed", "limit": "2"})
    assert status == 200
    assert [j["jobId"] for j in page["items"]] == ids[::-1][:2]
    assert all(j["status"] == "failed" for j in page["items"])
    status, rest = await api.request(
        "GET", "/downloads", params={"status": "failed", "limit": "2", "cursor": page["nextCursor"]}
    )
    assert status == 200
    assert rest["items"][0]["jobId"] == ids[0]
    status, everything = await api.request("GET", "/downloads", params={"limit": "200"})
    stamps = [j["createdAt"] for j in everything["items"]]
    assert stamps == sorted(stamps, reverse=True)


async def test_reads_asked_together_each_get_the_answer_they_would_alone(
    api: Api, media_server: MediaServer
) -> None:
    """Jobs asked for at once share a query, and equal pages one answer (coalesce.py):
    every request still gets exactly what it would have got on its own."""
    ids = [(await api.submit(media_server.url("missing.mp4")))["jobId"] for _ in range(3)]
    for job_id in ids:
        await api.wait_status(job_id, "failed")  # and stays so: nothing moves any more
    alone = {job_id: await api.job(job_id) for job_id in ids}
    pages = [{"status": "failed", "limit": "3"}, {"status": "failed", "limit": "2"}]
    pages_alone = [await api.request("GET", "/downloads", params=p) for p in pages]
    missing = "00000000-0000-4000-8000-000000000000"
    together = await asyncio.gather(
        *(api.request("GET", f"/downloads/{job_id}") for job_id in [*ids, missing] * 3),
        *(api.request("GET", "/downloads", params=p) for p in pages * 4),
    )
    jobs, listed = together[:12], together[12:]
    for k, (status, body) in enumerate(jobs):
        if k % 4 == 3:
            assert (status, body["error"]["code"]) == (404, "not_found")
        else:
            assert (status, body) == (200, alone[ids[k % 4]])
    assert listed == pages_alone * 4
    assert [j["jobId"] for j in pages_alone[0][1]["items"]] == ids[::-1]


async def test_bad_requests_get_clear_errors(api: Api) -> None:
    cases: list[tuple[str, str, dict[str, Any], int, str]] = [
        ("POST", "/downloads", {"json": {"url": "ftp://example.com/x"}}, 400, "unsupported_scheme"),
        ("POST", "/downloads", {"json": {}}, 400, "invalid_url"),
        ("POST", "/downloads", {"data": b"{nope", "headers": {"Content-Type": "application/json"}}, 400, "invalid_json"),
        ("POST", "/downloads", {"json": {"url": "http://a.example/x", "type": "bogus"}}, 400, "invalid_type"),
        ("GET", "/downloads/not-a-uuid", {}, 400, "invalid_job_id"),
        ("GET", "/downloads/00000000-0000-4000-8000-000000000000", {}, 404, "not_found"),
        ("GET", "/downloads", {"params": {"status": "nope"}}, 400, "bad_query"),
        ("GET", "/downloads", {"params": {"cursor": "!!!"}}, 400, "bad_cursor"),
        ("GET", "/files/00000000-0000-4000-8000-000000000000", {}, 404, "not_found"),
        ("GET", "/nowhere", {}, 404, "not_found"),
        ("DELETE", "/health", {}, 405, "method_not_allowed"),
    ]  # fmt: skip
    for method, path, kwargs, want_status, want_code in cases:
        status, body = await api.request(method, path, **kwargs)
        assert status == want_status, (path, kwargs, status, body)
        assert body["error"]["code"] == want_code, (path, body)
        assert body["error"]["message"]


async def test_loopback_and_private_literals_are_refused_up_front(api: Api) -> None:
    """The shared service allows 127.0.0.1 (the media server) and nothing else private.
    Nothing here is fetched: the API refuses before any job exists."""
    for url in (
        "http://127.0.0.2/x.mp4",
        "http://2130706434/x.mp4",
        "http://[::1]/x.mp4",
        "http://localhost:1/x.mp4",
        "http://169.254.169.254/latest/meta-data/",
    ):
        status, body = await api.request("POST", "/downloads", json={"url": url})
        assert status == 400 and body["error"]["code"] == "blocked_address", (url, body)
        assert "not allowed" in body["error"]["message"]

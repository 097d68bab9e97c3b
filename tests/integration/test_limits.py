"""Limits: per-client rate, queued jobs, free space, job size; and a graceful stop that
keeps partial data for the next start."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from mediad.service import Service
from tests.support import media
from tests.support.harness import Api, eventually, running_service
from tests.support.mediaserver import MediaServer


async def test_posting_too_fast_gets_429_with_retry_after(
    new_config: Any, media_server: MediaServer
) -> None:
    # 4 a minute: a burst of one, then one every 15 s (far beyond this test's duration).
    config = await new_config(server={"rate_limit_per_min": 4}, workers={"processes": 0})
    async with Service(config) as service:
        api = Api(service.base_url)
        try:
            body = {"url": media_server.url("video.mp4")}
            statuses = []
            for _ in range(5):
                async with api.session.post("/downloads", json=body) as resp:
                    statuses.append(resp.status)
                    if resp.status == 429:
                        error = (await resp.json())["error"]
                        retry_after = int(resp.headers["Retry-After"])
            assert statuses == [201, 429, 429, 429, 429]
            assert error["code"] == "rate_limited" and "a minute" in error["message"]
            assert 1 <= retry_after <= 15
            status, page = await api.request("GET", "/downloads")
            assert status == 200 and len(page["items"]) == 1  # nothing refused was kept
        finally:
            await api.close()


async def test_a_full_queue_refuses_new_jobs(new_config: Any, media_server: MediaServer) -> None:
    config = await new_config(queue={"max_queued": 3}, workers={"processes": 0})
    async with Service(config) as service:
        api = Api(service.base_url)
        try:
            for _ in range(3):
                await api.submit(media_server.url("video.mp4"))
            status, body = await api.request(
                "POST", "/downloads", json={"url": media_server.url("video.mp4")}
            )
            assert status == 429 and body["error"]["code"] == "queue_full"
        finally:
            await api.close()


async def test_low_free_space_refuses_new_jobs(new_config: Any, media_server: MediaServer) -> None:
    config = await new_config(storage={"min_free_bytes": 2**60}, workers={"processes": 0})
    async with Service(config) as service:
        api = Api(service.base_url)
        try:
            status, body = await api.request(
                "POST", "/downloads", json={"url": media_server.url("video.mp4")}
            )
            assert status == 507 and body["error"]["code"] == "insufficient_storage"
            assert "MiB free" in body["error"]["message"]
            status, body = await api.request("GET", "/downloads")
            assert status == 200 and body["items"] == []
        finally:
            await api.close()


@pytest.mark.parametrize("job_type", ["aria2", "ytdlp"])
async def test_a_job_larger_than_max_job_bytes_fails(
    job_type: str, new_config: Any, media_server: MediaServer
) -> None:
    config = await new_config(storage={"max_job_bytes": 1_000_000}, queue={"concurrency": 1})
    async with running_service(config) as service:
        api = Api(service.base_url)
        try:
            job_id = (await api.submit(media_server.url("blob.bin"), type=job_type))["jobId"]
            job = await api.wait_status(job_id, "failed", "completed")
            assert job["status"] == "failed" and job["errorCode"] == "too_large", job
            assert "max_job_bytes" in job["errorMessage"]
            assert not (config.tmp_path / job_id).exists()
            assert not (config.data_path / job_id).exists()
        finally:
            await api.close()


async def test_a_graceful_stop_requeues_running_jobs_and_keeps_their_bytes(
    new_config: Any, media_server: MediaServer, media_dir: Path
) -> None:
    config = await new_config(queue={"concurrency": 1})
    name = "graceful.bin"
    media_server.add_file(name, media_dir / "blob.bin")
    service = Service(config)
    await service.start()
    api = Api(service.base_url)
    try:
        await eventually(
            lambda: service.dispatcher and service.dispatcher.roster.worker_count, what="worker"
        )
        job_id = (await api.submit(media_server.url(name, rate=1_000_000), type="aria2"))["jobId"]

        async def a_third() -> bool:
            job = await api.job(job_id)
            return job["status"] == "running" and (job["progress"] or 0) >= 30

        await eventually(a_third, what="30 %")
    finally:
        await api.close()
        await service.stop()
    partial = config.tmp_path / job_id / name
    assert partial.stat().st_size > 0
    served_before = media_server.bytes_served(name)
    conn = await asyncpg.connect(config.database.url)
    try:
        row = await conn.fetchrow("SELECT status, error_code FROM jobs WHERE id = $1::uuid", job_id)
    finally:
        await conn.close()
    assert (row["status"], row["error_code"]) == ("queued", "shutdown")

    async with running_service(config) as again:
        api = Api(again.base_url)
        try:
            done = await api.wait_status(job_id, "completed", "failed")
            assert done["status"] == "completed", done
            _, body = await api.request("GET", f"/files/{job_id}/download")
            assert hashlib.sha256(body).hexdigest() == media.sha256_file(media_dir / "blob.bin")
        finally:
            await api.close()
    total = media_server.bytes_served(name)
    size = (media_dir / "blob.bin").stat().st_size
    assert total - served_before < size * 0.8  # continued, not started over

"""What the page announces by itself: toasts when jobs end, a bar when a part is down."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from mediad.service import Service
from tests.e2e.conftest import NewPage, _config, _running_service
from tests.e2e.pagekit import jobs_list, tag
from tests.support.harness import Api, Databases, RedisServer, shared_tmp
from tests.support.mediaserver import MediaServer

pytestmark = pytest.mark.timeout(90)


async def test_toasts_announce_completed_and_failed_jobs(
    page: Page, api: Api, service: Service, media_server: MediaServer, media_dir: Path
) -> None:
    await page.goto("/")
    await expect(page.get_by_text("Live", exact=True)).to_be_visible()
    name = f"toast-{tag()}.iso"
    media_server.add_file(name, media_dir / "small.bin")
    done = await api.submit(media_server.url(name))  # posted by another client
    await api.wait_status(done["jobId"], "completed")
    toast = page.get_by_role("status").filter(has_text="Download complete")
    await expect(toast).to_be_visible()
    await expect(toast).to_contain_text(name)
    link = toast.get_by_role("link").first
    href = await link.get_attribute("href")
    assert href is not None and href.startswith(f"/files/{done['jobId']}/download")

    failed = await api.submit(media_server.url(f"missing-{tag()}.mp4"))
    job = await api.wait_status(failed["jobId"], "failed")
    alert = page.get_by_role("alert").filter(has_text=job["errorMessage"])
    await expect(alert).to_be_visible()
    await alert.get_by_role("button", name="Dismiss").click()
    await expect(alert).to_have_count(0)


async def test_the_health_bar_names_what_is_down(
    new_page: NewPage, page_built: Path, databases: Databases
) -> None:
    """A service of its own on a Redis of its own, which the test stops and starts."""
    redis = RedisServer()
    root = shared_tmp("mediad-e2e-health-")
    try:
        await redis.start()
        config = _config(root, await databases.create(), redis.url)
        async with _running_service(config) as service:
            page = await new_page(base_url=service.base_url)
            await page.goto("/")
            await expect(jobs_list(page)).to_be_attached()
            bar = page.get_by_role("status", name="Service health")
            await expect(bar).to_have_count(0)

            await redis.stop()
            await page.reload()  # the page checks /health at once on load
            await expect(bar).to_be_visible()
            await expect(bar).to_contain_text(re.compile(r"down: .*redis"))

            await redis.start()
            await page.reload()
            await expect(bar).to_have_count(0, timeout=15_000)
    finally:
        await redis.close()
        shutil.rmtree(root, ignore_errors=True)

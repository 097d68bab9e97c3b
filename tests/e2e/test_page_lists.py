"""The page's Subscriptions, Cookies and Notifications views in a real browser, against a
real service (with notification targets pointed at a local webhook receiver), the local
media server (an RSS feed, a clip behind a login cookie) and real yt-dlp.

Names used here are the page's contract (docs/page.md, "Accessible names").
"""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, Route, expect

from mediad.service import Service
from tests.e2e.conftest import NewPage, _config
from tests.e2e.pagekit import confirm_delete, expect_status, row, tag
from tests.support import media
from tests.support.harness import Api, Databases, RedisServer, shared_tmp
from tests.support.harness import running_service as _running_service
from tests.support.mediaserver import MediaServer
from tests.support.polling import eventually
from tests.support.receiver import Receiver

pytestmark = pytest.mark.timeout(120)

COOKIE_VALUE = "s3cr3t-value-never-shown"


def cookies_txt(value: str = COOKIE_VALUE) -> str:
    return (
        "# Netscape HTTP Cookie File\n"
        f"127.0.0.1\tFALSE\t/\tFALSE\t0\tsession\t{value}\n"
        "127.0.0.1\tFALSE\t/\tFALSE\t0\tlang\ten\n"
    )


@pytest.fixture(scope="module")
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as r:
        yield r


@pytest.fixture(scope="module")
async def lists_service(
    page_built: Path, databases: Databases, redis_server: RedisServer, receiver: Receiver
) -> AsyncIterator[Service]:
    """A service with two webhook targets (one default) and subscriptions checked at once."""
    root = shared_tmp("mediad-e2e-lists-")
    config = _config(
        root,
        await databases.create(),
        redis_server.url,
        subscriptions={"min_interval_s": 1, "poll_s": 0.1, "startup_spread_s": 0},
        notify=[  # type: ignore[arg-type]  # a list: make_config takes it as it is
            {"name": "home", "url": receiver.url("home")},
            {"name": "phone", "url": receiver.url("phone"), "default": False},
        ],
        notifications={"retry_backoff_s": 0.05, "retry_max_s": 0.2, "poll_s": 0.2},
    )
    async with _running_service(config) as svc:
        yield svc
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
async def lists_api(lists_service: Service) -> AsyncIterator[Api]:
    client = Api(lists_service.base_url)
    yield client
    await client.close()


@pytest.fixture(scope="module")
def clip(media_dir: Path) -> Path:
    path = media_dir / "clip.mp4"
    if not path.exists():
        media.make_video(path, seconds=1.0)
    return path


async def open_view(page: Page, base_url: str, name: str) -> Any:
    """Opens the page and the view through its link in the Sections navigation."""
    response = await page.goto(base_url + "/")
    assert response is not None and response.status == 200
    nav = page.get_by_role("navigation", name="Sections")
    await nav.get_by_role("link", name=name, exact=True).click()
    await expect(nav.get_by_role("link", name=name, exact=True)).to_have_attribute(
        "aria-current", "page"
    )
    region = page.get_by_role("region", name=name, exact=True)
    await expect(region).to_be_visible()
    return region


async def job_by_url(api: Api, url: str) -> dict[str, Any]:
    async def found() -> dict[str, Any] | None:
        status, body = await api.request("GET", "/downloads", params={"limit": "200"})
        assert status == 200, body
        jobs = [j for j in body["items"] if j["url"] == url]
        return jobs[0] if jobs else None

    # None means "not yet" to eventually().
    job: dict[str, Any] = await eventually(found, timeout_s=10, what=f"the job of {url}")  # type: ignore[arg-type]
    return job


# -- subscriptions ----------------------------------------------------------------------------


async def test_a_subscription_to_a_feed_shows_its_checks_and_its_jobs(
    new_page: NewPage,
    lists_service: Service,
    lists_api: Api,
    media_server: MediaServer,
    clip: Path,
) -> None:
    t = tag()
    media_server.add_file(f"sub-{t}/ep.mp4", clip)
    items = [(f"ep{i}", f"Episode {i}", media_server.url(f"sub-{t}/ep.mp4", n=i)) for i in (1, 2)]
    feed = media_server.add_feed(f"sub-{t}/feed.xml", f"Feed {t}", items)
    page = await new_page(base_url=lists_service.base_url)
    region = await open_view(page, lists_service.base_url, "Subscriptions")

    await region.get_by_label("Subscription URL", exact=True).fill(feed)
    await region.get_by_label("Check", exact=True).select_option(label="Hourly")
    await region.get_by_label("Download existing items", exact=True).check()
    await region.get_by_role("button", name="Subscribe", exact=True).click()

    subs = region.get_by_role("list", name="Subscriptions", exact=True)
    item = subs.get_by_role("listitem").filter(has_text=feed)
    await expect(item).to_have_count(1)
    await expect(item.get_by_text("hourly", exact=True)).to_be_visible()
    # The first check runs by itself; its result arrives through subscription-update.
    await expect(item.get_by_text(re.compile(r"found 2, 2 new"))).to_be_visible(timeout=60_000)
    await expect(item.get_by_role("heading", name=f"Feed {t}")).to_be_visible()  # its title
    await expect(item.get_by_text(re.compile(r"^Next check in "))).to_be_visible()

    # Check now: nothing new the second time.
    check_now = item.get_by_role("button", name="Check now", exact=True)
    await expect(check_now).to_be_enabled()
    await check_now.click()
    await expect(item.get_by_text(re.compile(r"found 2, 0 new"))).to_be_visible(timeout=60_000)
    await expect(check_now).to_be_enabled()
    # Both in its history, newest first.
    await item.get_by_role("button", name="Checks", exact=True).click()
    history = item.get_by_role("list", name="Checks", exact=True).get_by_role("listitem")
    await expect(history).to_have_count(2)
    await expect(history.nth(0)).to_contain_text("found 2, 0 new")
    await expect(history.nth(1)).to_contain_text("found 2, 2 new")

    # Disabled: no next check, and the server agrees.
    status, listed = await lists_api.request("GET", "/subscriptions")
    assert status == 200, listed
    sub_id = next(s["subscriptionId"] for s in listed["items"] if s["url"] == feed)
    switch = item.get_by_role("switch", name="Enabled", exact=True)
    await expect(switch).to_be_checked()
    await switch.uncheck()
    await expect(switch).not_to_be_checked()
    await expect(item.get_by_text("No scheduled check", exact=True)).to_be_visible()
    status, sub = await lists_api.request("GET", f"/subscriptions/{sub_id}")
    assert (status, sub["enabled"], sub["nextCheckAt"]) == (200, False, None), sub

    # Its jobs, named after it in the jobs list.
    await (
        page.get_by_role("navigation", name="Sections")
        .get_by_role("link", name="Downloads", exact=True)
        .click()
    )
    for _, _, url in items:
        job = row(page, url)
        await expect(job).to_have_count(1, timeout=20_000)
        await expect(job.get_by_text(f"Subscription: Feed {t}")).to_be_visible()
        await expect_status(job, "completed", timeout_ms=60_000)

    # Delete, through the confirmation the jobs use; the jobs stay.
    await page.get_by_role("link", name="Subscriptions", exact=True).click()
    await confirm_delete(page, item)
    await expect(item).to_have_count(0)
    status, _ = await lists_api.request("GET", f"/subscriptions/{sub_id}")
    assert status == 404
    status, page_body = await lists_api.request("GET", "/downloads", params={"limit": "200"})
    assert sum(1 for j in page_body["items"] if j["subscriptionId"] == sub_id) == 2


# -- cookies ------------------------------------------------------------------------------------


async def test_cookies_are_uploaded_listed_used_by_a_job_and_deleted(
    new_page: NewPage,
    lists_service: Service,
    lists_api: Api,
    media_server: MediaServer,
    clip: Path,
) -> None:
    t = tag()
    name = f"site-{t}"
    page = await new_page(base_url=lists_service.base_url)
    region = await open_view(page, lists_service.base_url, "Cookies")
    form = region.get_by_role("form", name="Upload cookies", exact=True)

    # The server's refusal, next to the field: a line yt-dlp would not read.
    await form.get_by_label("Name", exact=True).fill(name)
    await form.get_by_label("Or paste cookies.txt", exact=True).fill(
        "# Netscape HTTP Cookie File\nexample.com\tyes\t/\tFALSE\t0\ta\tb\n"
    )
    await form.get_by_role("button", name="Upload", exact=True).click()
    paste = form.get_by_label("Or paste cookies.txt", exact=True)
    await expect(paste).to_have_attribute("aria-invalid", "true")
    error_id = await paste.get_attribute("aria-describedby")
    assert error_id
    await expect(page.locator(f"[id='{error_id}']")).to_contain_text(re.compile("line 2"))
    status, listed = await lists_api.request("GET", "/cookies")
    assert status == 200 and name not in [c["name"] for c in listed["items"]], listed

    # A file: its name proposes the name; the list shows entries, never the content.
    await form.get_by_label("Name", exact=True).fill("")
    await paste.fill("")
    await form.get_by_label("Cookies file", exact=True).set_input_files(
        {"name": f"{name}_cookies.txt", "mimeType": "text/plain", "buffer": cookies_txt().encode()}
    )
    await expect(form.get_by_label("Name", exact=True)).to_have_value(name)
    await form.get_by_role("button", name="Upload", exact=True).click()
    files = region.get_by_role("list", name="Cookie files", exact=True)
    item = files.get_by_role("listitem", name=name, exact=True)
    await expect(item).to_be_visible()
    await expect(item.get_by_text("2 cookies", exact=True)).to_be_visible()
    assert COOKIE_VALUE not in await page.content()

    # A yt-dlp job with them: the clip behind the login downloads.
    clip_name = f"members-{t}/clip"
    media_server.add_bytes(clip_name, clip.read_bytes(), "video/mp4")
    media_server.require_cookie(clip_name, f"session={COOKIE_VALUE}")
    url = media_server.url(clip_name)
    await page.get_by_role("link", name="Downloads", exact=True).click()
    await page.get_by_label("URL", exact=True).fill(url)
    cookies_select = page.get_by_label("Cookies", exact=True)
    await expect(cookies_select).to_be_visible()
    await expect(cookies_select).to_have_value("")  # none by default
    await cookies_select.select_option(name)
    await page.get_by_role("button", name="Download", exact=True).click()
    assert (await job_by_url(lists_api, url))["options"].get("cookies") == name
    await expect_status(row(page, url), "completed", timeout_ms=60_000)

    # Delete, with the confirmation; gone from the list, the server and the job options.
    await page.get_by_role("link", name="Cookies", exact=True).click()
    await confirm_delete(page, item)
    await expect(item).to_have_count(0)
    status, listed = await lists_api.request("GET", "/cookies")
    assert status == 200 and name not in [c["name"] for c in listed["items"]], listed
    await page.get_by_role("link", name="Downloads", exact=True).click()
    await page.get_by_label("URL", exact=True).fill(media_server.url(f"members-{t}/other"))
    await expect(page.get_by_label("Format", exact=True)).to_be_visible()
    await expect(page.locator("option", has_text=name)).to_have_count(0)


# -- notifications ------------------------------------------------------------------------------


async def test_a_test_notification_is_delivered_and_the_notify_choice_is_sent(
    new_page: NewPage,
    lists_service: Service,
    lists_api: Api,
    receiver: Receiver,
    media_server: MediaServer,
    media_dir: Path,
) -> None:
    page = await new_page(base_url=lists_service.base_url)
    region = await open_view(page, lists_service.base_url, "Notifications")
    targets = region.get_by_role("list", name="Targets", exact=True)
    home = targets.get_by_role("listitem", name="home", exact=True)
    await expect(home.get_by_text("default", exact=True)).to_be_visible()
    await expect(targets.get_by_role("listitem", name="phone", exact=True)).to_be_visible()

    before = len(receiver.at("home"))
    await home.get_by_role("button", name="Send test", exact=True).click()
    deliveries = region.get_by_role("list", name="Deliveries", exact=True)
    sent = deliveries.get_by_role("listitem", name="test to home", exact=True).first
    await expect(sent.get_by_text("delivered", exact=True)).to_be_visible(timeout=20_000)
    await eventually(lambda: len(receiver.at("home")) > before, what="the test at the receiver")
    assert receiver.at("home")[-1].headers.get("X-Mediad-Event") == "test"

    # Notify on a job: the default preselected; another picked instead is sent.
    t = tag()
    media_server.add_file(f"notify-{t}.bin", media_dir / "small.bin")
    url = media_server.url(f"notify-{t}.bin")
    await page.get_by_role("link", name="Downloads", exact=True).click()
    await page.get_by_label("URL", exact=True).fill(url)
    notify = page.get_by_role("group", name="Notify", exact=True)
    await expect(notify.get_by_label("home", exact=True)).to_be_checked()
    await expect(notify.get_by_label("phone", exact=True)).not_to_be_checked()
    await notify.get_by_label("phone", exact=True).check()
    await notify.get_by_label("home", exact=True).uncheck()
    await page.get_by_role("button", name="Download", exact=True).click()
    job = await job_by_url(lists_api, url)
    assert job["options"].get("notify") == ["phone"]

    # The choice stays for the next job; back to the defaults, no notify is sent at all.
    media_server.add_file(f"defaults-{t}.bin", media_dir / "small.bin")
    url2 = media_server.url(f"defaults-{t}.bin")
    await page.get_by_label("URL", exact=True).fill(url2)
    await expect(notify.get_by_label("phone", exact=True)).to_be_checked()
    await notify.get_by_label("home", exact=True).check()
    await notify.get_by_label("phone", exact=True).uncheck()
    await page.get_by_role("button", name="Download", exact=True).click()
    assert "notify" not in (await job_by_url(lists_api, url2))["options"]

    # The job's end, delivered to phone, is in the list live, with a link to the job.
    await page.get_by_role("link", name="Notifications", exact=True).click()
    done = deliveries.get_by_role("listitem", name="completed to phone", exact=True)
    await expect(done.get_by_text("delivered", exact=True)).to_be_visible(timeout=30_000)
    await done.get_by_role("link").click()
    await expect(page.get_by_role("region", name="Notifications")).to_have_count(0)
    await expect(page.locator(f"[id='job-{job['jobId']}']")).to_be_in_viewport()


# -- an older server, a phone, the dark ---------------------------------------------------------


async def test_views_say_unavailable_when_the_server_has_no_such_routes(
    page: Page, service: Service
) -> None:
    async def not_found(route: Route) -> None:
        await route.fulfill(
            status=404,
            content_type="application/json",
            body='{"error": {"code": "not_found", "message": "no such route"}}',
        )

    await page.route(re.compile(r"/(subscriptions|cookies|notifications)(/|\?|$)"), not_found)
    for name, what in (
        ("Subscriptions", "Subscriptions"),
        ("Cookies", "Cookies"),
        ("Notifications", "Notifications"),
    ):
        region = await open_view(page, service.base_url, name)
        await expect(region.get_by_text(f"{what} are unavailable on this server.")).to_be_visible()
    # And the job options offer neither cookies nor notify.
    await page.get_by_role("link", name="Downloads", exact=True).click()
    await page.get_by_label("URL", exact=True).fill("https://video.example.com/watch?v=1")
    await expect(page.get_by_label("Format", exact=True)).to_be_visible()
    await expect(page.get_by_label("Cookies", exact=True)).to_have_count(0)
    await expect(page.get_by_role("group", name="Notify")).to_have_count(0)


@pytest.mark.parametrize("scheme", ["light", "dark"])
async def test_the_views_fit_a_phone(
    new_page: NewPage, lists_service: Service, artifacts: Path, scheme: str
) -> None:
    page = await new_page(
        base_url=lists_service.base_url,
        viewport={"width": 360, "height": 740},
        color_scheme=scheme,
        device_scale_factor=2,
    )
    for name in ("Subscriptions", "Cookies", "Notifications"):
        region = await open_view(page, lists_service.base_url, name)
        await expect(region.get_by_role("list").first).to_be_attached()
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 360, f"{name} is {width} px wide at 360 px"
        dark = await page.evaluate("document.documentElement.classList.contains('dark')")
        assert dark == (scheme == "dark")
        await page.screenshot(
            path=str(artifacts / f"view-{name.lower()}-360-{scheme}.png"), full_page=True
        )

"""Subscriptions end to end: a real service, real yt-dlp listing an RSS feed the local
media server serves (and grows between checks), real jobs downloading its items."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from mediad.service import Service
from tests.support.harness import Api, eventually, running_service
from tests.support.mediaserver import MediaServer

_feeds = itertools.count(1)
SUBS = {"min_interval_s": 1, "poll_s": 0.1, "startup_spread_s": 0}


def feed_items(media: MediaServer, n: int, start: int = 1) -> list[tuple[str, str, str]]:
    return [
        (f"ep{i}", f"Episode {i}", media.url("video.mp4", n=i)) for i in range(start, start + n)
    ]


def new_feed(media: MediaServer, n: int) -> tuple[str, str]:
    name = f"feeds/feed{next(_feeds)}.xml"
    return name, media.add_feed(name, "Test feed", feed_items(media, n))


async def subscribe(api: Api, url: str, **fields: Any) -> dict[str, Any]:
    body = {"url": url, "intervalS": 3600, "enabled": False, **fields}
    status, sub = await api.request("POST", "/subscriptions", json=body)
    assert status == 201, sub
    return sub  # type: ignore[no-any-return]


async def check(api: Api, sub_id: str, *, timeout_s: float = 60) -> dict[str, Any]:
    """Ask for a check and wait for it to end; the finished check."""
    status, body = await api.request("POST", f"/subscriptions/{sub_id}/check")
    assert status == 202 and body["checking"] is True, body
    return await finished(api, sub_id, timeout_s=timeout_s)


async def finished(api: Api, sub_id: str, *, timeout_s: float = 60) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        status, sub = await api.request("GET", f"/subscriptions/{sub_id}")
        assert status == 200
        return sub if not sub["checking"] else None

    sub = await eventually(done, timeout_s=timeout_s, what=f"the check of {sub_id} to end")
    return sub["lastCheck"]  # type: ignore[no-any-return]


async def jobs_of(api: Api, sub_id: str) -> list[dict[str, Any]]:
    """The subscription's jobs, by ``GET /downloads?subscription=`` — the same as picking
    them out of the whole list."""
    status, page = await api.request("GET", "/downloads", params={"limit": 200})
    assert status == 200
    mine = [j for j in page["items"] if j["subscriptionId"] == sub_id]
    query = {"limit": 200, "subscription": sub_id}
    status, filtered = await api.request("GET", "/downloads", params=query)
    # The same jobs in the same order (their status may have moved on in between).
    assert status == 200 and [j["jobId"] for j in filtered["items"]] == [j["jobId"] for j in mine]
    return mine


async def duplicates(dsn: str) -> int:
    """Jobs of one subscription with the same URL, beyond the first (goal: 0)."""
    conn = await asyncpg.connect(dsn)
    try:
        return int(
            await conn.fetchval(
                "SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM jobs"
                " WHERE subscription_id IS NOT NULL GROUP BY subscription_id, url) t"
            )
        )
    finally:
        await conn.close()


@pytest.fixture(scope="module")
async def service(new_module_config: Any) -> AsyncIterator[Service]:
    config = await new_module_config(subscriptions=SUBS)
    async with running_service(config) as service:
        yield service


async def test_checks_create_jobs_for_new_entries_only(
    api: Api, service: Service, media_server: MediaServer
) -> None:
    name, url = new_feed(media_server, 3)
    sub = await subscribe(api, url)
    assert sub["checking"] is False and sub["lastCheck"] is None and sub["nextCheckAt"] is None
    first = await check(api, sub["subscriptionId"])
    assert (first["status"], first["found"], first["created"]) == ("ok", 3, 3), (
        first["errorCode"],
        first["errorMessage"],
    )
    jobs = await jobs_of(api, sub["subscriptionId"])
    assert len(jobs) == 3
    for job in jobs:
        await api.wait_status(job["jobId"], "completed")

    media_server.add_feed(name, "Test feed", feed_items(media_server, 5))  # two more
    second = await check(api, sub["subscriptionId"])
    assert (second["status"], second["found"], second["created"]) == ("ok", 5, 2), second
    jobs = await jobs_of(api, sub["subscriptionId"])
    assert sorted(j["url"] for j in jobs) == sorted(u for _, _, u in feed_items(media_server, 5))
    third = await check(api, sub["subscriptionId"])
    assert third["created"] == 0
    _, got = await api.request("GET", f"/subscriptions/{sub['subscriptionId']}")
    assert got["seen"] == 5 and got["title"] == "Test feed"
    _, history = await api.request("GET", f"/subscriptions/{sub['subscriptionId']}/checks")
    assert [c["created"] for c in history["items"]] == [0, 2, 3]
    assert await duplicates(service.config.database.url or "") == 0


async def test_without_backfill_the_first_check_only_marks_what_exists(
    api: Api, media_server: MediaServer
) -> None:
    name, url = new_feed(media_server, 4)
    sub = await subscribe(api, url, backfill=False)
    first = await check(api, sub["subscriptionId"])
    assert (first["found"], first["created"]) == (4, 0)
    _, got = await api.request("GET", f"/subscriptions/{sub['subscriptionId']}")
    assert got["seen"] == 4 and await jobs_of(api, sub["subscriptionId"]) == []
    media_server.add_feed(name, "Test feed", feed_items(media_server, 5))
    second = await check(api, sub["subscriptionId"])
    assert second["created"] == 1
    [job] = await jobs_of(api, sub["subscriptionId"])
    assert job["url"] == media_server.url("video.mp4", n=5)


async def test_a_failing_listing_records_its_error_and_the_next_check_works(
    api: Api, media_server: MediaServer
) -> None:
    name, url = new_feed(media_server, 2)
    sub = await subscribe(api, url)
    media_server.remove(name)
    failed = await check(api, sub["subscriptionId"])
    assert failed["status"] == "failed" and failed["errorCode"] == "not_found", failed
    assert failed["errorMessage"] and failed["created"] is None
    media_server.add_feed(name, "Test feed", feed_items(media_server, 2))
    ok = await check(api, sub["subscriptionId"])
    assert (ok["status"], ok["created"], ok["errorCode"]) == ("ok", 2, None)


async def test_a_second_check_while_one_runs_is_409(api: Api, media_server: MediaServer) -> None:
    name, url = new_feed(media_server, 1)
    sub = await subscribe(api, url)
    media_server.hold(name)
    try:
        path = f"/subscriptions/{sub['subscriptionId']}/check"
        status, _ = await api.request("POST", path)
        assert status == 202
        status, body = await api.request("POST", path)
        assert status == 409 and body["error"]["code"] == "check_running"
    finally:
        media_server.release(name)
    assert (await finished(api, sub["subscriptionId"]))["status"] == "ok"


async def test_patch_delete_and_bad_input(api: Api, media_server: MediaServer) -> None:
    _, url = new_feed(media_server, 1)
    sub = await subscribe(api, url)
    path = f"/subscriptions/{sub['subscriptionId']}"
    status, got = await api.request("PATCH", path, json={"intervalS": 120, "enabled": True})
    assert status == 200 and got["intervalS"] == 120 and got["nextCheckAt"] is not None
    status, got = await api.request("PATCH", path, json={"enabled": False})
    assert status == 200 and got["nextCheckAt"] is None
    status, got = await api.request("PATCH", path, json={"options": {"format": "audio"}})
    assert status == 200 and got["options"] == {"format": "audio"}
    bad = [
        ("POST", "/subscriptions", {"url": url, "intervalS": 0}, "invalid_body"),
        ("POST", "/subscriptions", {"url": url}, "invalid_body"),
        ("POST", "/subscriptions", {"url": url, "intervalS": 60, "x": 1}, "unknown_field"),
        ("POST", "/subscriptions", {"url": "ftp://a/b", "intervalS": 60}, "unsupported_scheme"),
        ("POST", "/subscriptions", {"url": url, "intervalS": 60, "type": "twitter"}, "invalid_type"),
        ("POST", "/subscriptions", {"url": url, "intervalS": 60, "options": {"playlist": True}},
         "invalid_options"),
        ("POST", "/subscriptions", {"url": url, "intervalS": 60, "options": {"nope": 1}},
         "invalid_options"),
        ("POST", "/subscriptions", {"url": "http://10.0.0.1/f", "intervalS": 60}, "blocked_address"),
        ("PATCH", path, {}, "invalid_body"),
        ("PATCH", path, {"maxItems": 0}, "invalid_body"),
        ("GET", "/subscriptions/not-a-uuid", None, "invalid_subscription_id"),
        ("POST", "/subscriptions/not-a-uuid/check", None, "invalid_subscription_id"),
    ]  # fmt: skip
    for method, where, body, code in bad:
        status, answer = await api.request(method, where, json=body)
        assert (status, answer["error"]["code"]) == (400, code), (method, where, body, answer)
    status, _ = await api.request("DELETE", path)
    assert status == 204
    for method in ("GET", "DELETE"):
        status, answer = await api.request(method, path)
        assert status == 404 and answer["error"]["code"] == "not_found"
    status, answer = await api.request("POST", path + "/check")
    assert status == 404


async def test_the_scheduler_checks_an_enabled_subscription_on_its_own(
    api: Api, media_server: MediaServer
) -> None:
    _, url = new_feed(media_server, 1)
    sub = await subscribe(api, url, enabled=True, intervalS=1)

    async def two_checks() -> bool:
        _, history = await api.request("GET", f"/subscriptions/{sub['subscriptionId']}/checks")
        return sum(c["status"] == "ok" for c in history["items"]) >= 2

    await eventually(two_checks, timeout_s=60, what="two scheduled checks")
    await api.request("DELETE", f"/subscriptions/{sub['subscriptionId']}")
    assert len(await jobs_of(api, sub["subscriptionId"])) == 1


async def test_a_check_holds_a_slot_like_a_job(new_config: Any, media_server: MediaServer) -> None:
    """With one slot and two workers, a job posted while a check lists waits for it."""
    config = await new_config(
        subscriptions=SUBS, queue={"concurrency": 1}, workers={"processes": 2}
    )
    name, url = new_feed(media_server, 1)
    async with running_service(config) as service:
        api = Api(service.base_url)
        try:
            sub = await subscribe(api, url)
            media_server.hold(name)
            try:
                status, _ = await api.request(
                    "POST", f"/subscriptions/{sub['subscriptionId']}/check"
                )
                assert status == 202
                await eventually(lambda: media_server.in_flight[name] > 0, what="the listing")
                job = await api.submit(media_server.url("video.mp4", n=999))
            finally:
                media_server.release(name)
            last = await finished(api, sub["subscriptionId"])
            done = await api.wait_status(job["jobId"], "completed")
            assert datetime.fromisoformat(done["startedAt"]) >= datetime.fromisoformat(
                last["finishedAt"]
            ), (done, last)
        finally:
            await api.close()


async def test_a_restart_between_checks_creates_no_duplicate(
    new_config: Any, media_server: MediaServer
) -> None:
    config = await new_config(subscriptions=SUBS)
    name, url = new_feed(media_server, 3)
    async with running_service(config) as service:
        api = Api(service.base_url)
        try:
            sub = await subscribe(api, url)
            assert (await check(api, sub["subscriptionId"]))["created"] == 3
        finally:
            await api.close()
    media_server.add_feed(name, "Test feed", feed_items(media_server, 4))
    async with running_service(config) as service:
        api = Api(service.base_url)
        try:
            assert (await check(api, sub["subscriptionId"]))["created"] == 1
            assert len(await jobs_of(api, sub["subscriptionId"])) == 4
            assert await duplicates(config.database.url) == 0
        finally:
            await api.close()


async def test_a_check_lost_with_its_worker_is_run_again(
    api: Api, service: Service, media_server: MediaServer
) -> None:
    name, url = new_feed(media_server, 2)
    sub = await subscribe(api, url)
    media_server.hold(name)
    try:
        await api.request("POST", f"/subscriptions/{sub['subscriptionId']}/check")
        await eventually(lambda: media_server.in_flight[name] > 0, what="the listing")
        assert service.dispatcher is not None
        [a] = [a for a in service.dispatcher.roster if a.check]
        assert service.supervisor is not None
        os.kill(service.supervisor.procs[a.worker_id].pid, signal.SIGKILL)
        await eventually(lambda: media_server.in_flight[name] == 0, what="the listing to go")
    finally:
        media_server.release(name)
    last = await finished(api, sub["subscriptionId"])
    assert (last["status"], last["created"]) == ("ok", 2)
    _, history = await api.request("GET", f"/subscriptions/{sub['subscriptionId']}/checks")
    assert len(history["items"]) == 1  # the same check, run again


async def test_one_check_of_a_200_item_playlist(
    api: Api, media_server: MediaServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """A measurement, not a timed assertion: how long one check of 200 entries takes
    (from the POST to its end, and the check's own startedAt → finishedAt)."""
    name = f"feeds/feed{next(_feeds)}.xml"
    url = media_server.add_feed(name, "Big feed", feed_items(media_server, 200))
    sub = await subscribe(api, url, backfill=False, maxItems=1000)
    loop = asyncio.get_running_loop()
    started = loop.time()
    last = await check(api, sub["subscriptionId"])
    wall = loop.time() - started
    assert (last["status"], last["found"], last["created"]) == ("ok", 200, 0)
    own = datetime.fromisoformat(last["finishedAt"]) - datetime.fromisoformat(last["startedAt"])
    with capsys.disabled():
        print(
            f"\n200-item check: {wall:.2f} s from POST to end, {own.total_seconds():.2f} s running"
        )


async def test_a_members_only_feed_is_listed_with_the_subscriptions_cookie_file(
    api: Api, service: Service, media_server: MediaServer
) -> None:
    """The cookie file a subscription's options name serves its listing too (a private
    playlist), through a private copy that is gone when the check ends."""
    from tests.integration.test_cookies import HEADERS, cookies_txt

    name, url = new_feed(media_server, 2)
    value = f"member-{uuid.uuid4().hex}"
    media_server.require_cookie(name, f"session={value}")
    put = await api.request("PUT", "/cookies/members", data=cookies_txt(value), headers=HEADERS)
    assert put[0] == 201, put
    bare = await subscribe(api, url)
    refused = await check(api, bare["subscriptionId"])
    assert (refused["status"], refused["errorCode"]) == ("failed", "http_error"), refused

    sub = await subscribe(api, url, options={"cookies": "members"})
    listed = await check(api, sub["subscriptionId"])
    assert (listed["status"], listed["found"], listed["created"]) == ("ok", 2, 2), listed
    assert not (Path(service.config.storage.tmp_dir) / listed["checkId"]).exists()
    for job in await jobs_of(api, sub["subscriptionId"]):
        assert job["options"]["cookies"] == "members"
        await api.wait_status(job["jobId"], "completed")

    body = {"url": url, "intervalS": 3600, "options": {"cookies": "nobody"}}
    status, answer = await api.request("POST", "/subscriptions", json=body)
    assert (status, answer["error"]["code"]) == (400, "unknown_cookies"), answer
    status, answer = await api.request(
        "PATCH", f"/subscriptions/{sub['subscriptionId']}", json={"options": {"notify": ["x"]}}
    )
    assert (status, answer["error"]["code"]) == (400, "unknown_target"), answer

"""Twitter/X jobs through the real service, with the twmd stand-in
(tests/support/twmd_standin.py) fetching its media from the local media server: tweets and
profiles, every failure twmd reports, the time limit, bad cookies, a missing twmd,
cancellation, and truncated files that must never be published."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mediad.service import Service
from tests.integration.test_pipeline import JobsClient
from tests.support import twmd_standin
from tests.support.harness import Api, eventually, running_service, shared_tmp
from tests.support.mediaserver import MediaServer
from tests.support.twmd_standin import USERS, media_blobs

IDLE_S = 3  # MEDIAD_TWMD_IDLE_S for this module's service
GOOD_COOKIES = [{"Name": "auth_token", "Value": "good", "Domain": "twitter.com"}]
BAD_COOKIES = [{"Name": "auth_token", "Value": "bad", "Domain": "twitter.com"}]
BLOBS = media_blobs()

pytestmark = pytest.mark.timeout(60)


@dataclass(frozen=True)
class Twmd:
    wrapper: Path  # tools.twmd
    cookies: Path  # twitter.cookies_path
    state: Path  # where each stand-in run leaves {pid}.json

    def runs_of(self, job_id: str) -> list[dict[str, Any]]:
        records = [json.loads(p.read_text()) for p in self.state.glob("*.json")]
        return [r for r in records if any(job_id in arg for arg in r["argv"])]


@pytest.fixture(scope="module")
def twmd() -> Iterator[Twmd]:
    root = shared_tmp("mediad-test-twmd-")
    (root / "state").mkdir()
    cookies = root / "cookies.json"
    cookies.write_text(json.dumps(GOOD_COOKIES))
    yield Twmd(twmd_standin.write_wrapper(root), cookies, root / "state")
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
async def service(
    new_module_config: Any, media_server: MediaServer, twmd: Twmd
) -> AsyncIterator[Service]:
    for path, data in BLOBS.items():
        media_server.add_bytes(path, data)
    # Workers inherit the service's environment: set it before they start.
    env = {
        twmd_standin.MEDIA_URL_ENV: media_server.base_url,
        twmd_standin.STATE_DIR_ENV: str(twmd.state),
        "MEDIAD_TWMD_IDLE_S": str(IDLE_S),
    }
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        config = await new_module_config(
            tools={"twmd": str(twmd.wrapper)},
            twitter={"cookies_path": str(twmd.cookies)},
            queue={"concurrency": 2, "max_attempts": 2, "retry_backoff_s": 0.2},
            workers={"processes": 2},
        )
        async with running_service(config) as service:
            yield service
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


async def finish(api: Api, job_id: str, timeout_s: float = 20) -> dict[str, Any]:
    return await api.wait_status(job_id, "completed", "failed", "cancelled", timeout_s=timeout_s)


async def run(api: Api, url: str, **fields: Any) -> dict[str, Any]:
    created = await api.submit(url, **fields)
    assert created["type"] == "twitter"
    return await finish(api, created["jobId"])


async def listing(api: Api, job_id: str) -> dict[str, int]:
    status, body = await api.request("GET", f"/files/{job_id}")
    assert status == 200, body
    return {f["name"]: f["size"] for f in body["files"]}


async def fetch(api: Api, job_id: str, name: str) -> bytes:
    # ?name= always: without it a job of several files may not be served as one zip yet.
    async with api.session.get(f"/files/{job_id}/download", params={"name": name}) as resp:
        assert resp.status == 200, name
        return await resp.read()


def expected_profile(
    user: str, kinds: set[str], retweets: bool = False, tweets: int = 3000
) -> dict[str, int]:
    """The files twmd writes for a profile: name → size."""
    names = {}
    for tweet in USERS[user][:tweets]:
        if tweet.retweet and not retweets:
            continue
        for m in tweet.media:
            if m.kind in kinds:
                names[("RE-" if tweet.retweet else "") + m.name] = m.size
    return names


def source_of(name: str) -> bytes:
    """The media server's bytes for a file twmd wrote (retweets as RE-NAME)."""
    name = name.removeprefix("RE-")
    return BLOBS[f"twmd/{'media' if name.endswith('.jpg') else 'video'}/{name}"]


def data_dir(service: Service, job_id: str) -> Path:
    return Path(service.config.storage.data_dir) / job_id


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


# -- success -------------------------------------------------------------------------------


async def test_a_tweet_video_completes_with_the_same_bytes(api: Api, twmd: Twmd) -> None:
    job = await run(api, "https://x.com/someone/status/1?s=20")
    assert job["status"] == "completed", job
    assert job["attempts"] == 1 and job["progress"] == 100
    source = source_of("Tw1VidClip.mp4")
    assert job["filename"] == "Tw1VidClip.mp4" and job["size"] == len(source)
    assert await fetch(api, job["jobId"], "Tw1VidClip.mp4") == source
    # Through the worker's egress guard, with the cookies.
    (record,) = twmd.runs_of(job["jobId"])
    argv = record["argv"]
    assert argv[: argv.index("-o")] == ["-B", "-t", "1"]
    assert argv[argv.index("-o") + 2 :] == ["-L", "-p", argv[-1]]
    assert argv[-1].startswith("http://127.0.0.1:")
    assert record["cookiesMode"] == 0o600 and record["cookiesUsable"] is True


async def test_a_tweet_with_two_images(api: Api) -> None:
    job = await run(api, "https://mobile.twitter.com/i/web/status/2")
    assert job["status"] == "completed", job
    files = await listing(api, job["jobId"])
    assert files == {name: len(source_of(name)) for name in ("Tw2PhotoA.jpg", "Tw2PhotoB.jpg")}


async def test_a_profile_with_retweets_lists_every_file_and_no_made_up_percent(
    service: Service, api: Api
) -> None:
    async with JobsClient(service.base_url) as client:
        assert (await client.subscribe(all=True))["ok"] is True
        job = await run(api, "https://x.com/alice", options={"includeRetweets": True})
        assert job["status"] == "completed", job
        await eventually(lambda: any(n == "completed" for n, _ in client.of(job["jobId"])))
        events = client.of(job["jobId"])
    files = await listing(api, job["jobId"])
    assert files == expected_profile("alice", {"img", "video"}, retweets=True)
    assert "RE-Bo3Photo.jpg" in files and "RE-Ca6Video.mp4" in files
    for name in ("RE-Bo3Photo.jpg", "Al2Video.mp4"):
        assert await fetch(api, job["jobId"], name) == source_of(name)
    progress = [d for n, d in events if n == "progress"]
    assert progress and all(
        d["progress"] is None for d in progress if d["stage"] == "downloading"
    ), progress
    assert all(d["progress"] in (None, 100) for d in progress)


@pytest.mark.parametrize(
    ("options", "kinds", "retweets", "tweets"),
    [
        ({"mediaType": "images", "maxTweets": 2}, {"img"}, False, 2),
        ({"mediaType": "videos"}, {"video"}, False, 3000),
        ({"mediaType": "all", "includeRetweets": True, "maxTweets": 3}, {"img", "video"}, True, 3),
    ],
    ids=["images-2", "videos", "all-retweets-3"],
)
async def test_profile_options(
    api: Api, options: dict[str, Any], kinds: set[str], retweets: bool, tweets: int
) -> None:
    job = await run(api, "https://twitter.com/alice/", options=options)
    assert job["status"] == "completed", job
    assert await listing(api, job["jobId"]) == expected_profile("alice", kinds, retweets, tweets)


async def test_a_reported_file_that_was_not_written_is_left_out(api: Api) -> None:
    job = await run(api, "https://x.com/someone/status/6")
    assert job["status"] == "completed", job
    assert await listing(api, job["jobId"]) == {"Tw6Kept.jpg": 30_000}


# -- failures ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "code", "words"),
    [
        ("https://x.com/someone/status/404", "not_found", "could not be retrieved"),
        ("https://x.com/someone/status/405", "not_found", "tweet 405"),
        ("https://x.com/someone/status/500", "http_error", "request(s) failed"),
        ("https://x.com/someone/status/3", "no_media", "no images or videos"),
        ("https://x.com/someone/status/888", "tool_failed", "Go panic"),
        ("https://x.com/ghost", "user_not_found", "does not exist"),
        ("https://x.com/banned", "account_suspended", "suspended"),
        ("https://x.com/hidden", "account_private", "@hidden"),
        ("https://x.com/panic", "tool_failed", "Go panic"),
        ("https://x.com/i/spaces/1YqKDqDXAbwKV", "unsupported_url", "tweet or profile"),
        ("https://x.com/someone/status/169", "blocked_address", "169.254.169.254"),
    ],
)
async def test_failures(service: Service, api: Api, url: str, code: str, words: str) -> None:
    job = await run(api, url)
    assert (job["status"], job["errorCode"]) == ("failed", code), job
    assert words in job["errorMessage"], job["errorMessage"]
    assert job["attempts"] == 1  # none of these is worth another attempt
    # A crash after a partial file (tweet 888) or any other failure publishes nothing.
    assert not data_dir(service, job["jobId"]).exists()


async def test_rate_limited_is_retried_then_fails(service: Service, api: Api) -> None:
    job = await run(api, "https://x.com/ratelimited")
    assert (job["status"], job["errorCode"]) == ("failed", "rate_limited"), job
    assert job["attempts"] == 2 and "429" in job["errorMessage"]
    assert not data_dir(service, job["jobId"]).exists()


async def test_silence_fails_with_timeout_and_kills_twmd(api: Api, twmd: Twmd) -> None:
    job = await run(api, "https://x.com/someone/status/777")
    assert (job["status"], job["errorCode"]) == ("failed", "timeout"), job
    assert "MEDIAD_TWMD_IDLE_S" in job["errorMessage"]
    (record,) = twmd.runs_of(job["jobId"])
    assert gone(record["pid"])


async def test_bad_cookies_fail_fast_with_auth_failed(api: Api, twmd: Twmd) -> None:
    twmd.cookies.write_text(json.dumps(BAD_COOKIES))
    try:
        created = await api.submit("https://x.com/someone/status/1")
        job = await finish(api, created["jobId"], timeout_s=IDLE_S + 3)
    finally:
        twmd.cookies.write_text(json.dumps(GOOD_COOKIES))
    assert (job["status"], job["errorCode"]) == ("failed", "auth_failed"), job
    assert "cookies" in job["errorMessage"]
    (record,) = twmd.runs_of(job["jobId"])
    assert record["cookiesMode"] == 0o600 and record["cookiesUsable"] is False
    assert "-L" in record["argv"]
    assert gone(record["pid"])


async def test_a_missing_twmd_fails_the_job_not_the_worker(
    service: Service, api: Api, twmd: Twmd
) -> None:
    aside = twmd.wrapper.with_name("twmd.aside")
    try:
        twmd.wrapper.chmod(0o644)
        job = await run(api, "https://x.com/someone/status/2")
        assert (job["status"], job["errorCode"]) == ("failed", "tool_missing"), job
        assert "TWMD_PATH" in job["errorMessage"]
        twmd.wrapper.chmod(0o755)
        twmd.wrapper.rename(aside)
        job = await run(api, "https://x.com/someone/status/2")
        assert (job["status"], job["errorCode"]) == ("failed", "tool_missing"), job
    finally:
        if aside.exists():
            aside.rename(twmd.wrapper)
        twmd.wrapper.chmod(0o755)
    assert service.dispatcher is not None and service.dispatcher.roster.worker_count == 2
    job = await run(api, "https://x.com/someone/status/2")
    assert job["status"] == "completed", job


async def test_cancel_kills_twmd(service: Service, api: Api, twmd: Twmd) -> None:
    created = await api.submit("https://x.com/someone/status/777")
    job_id = created["jobId"]
    (record,) = await eventually(lambda: twmd.runs_of(job_id), what="twmd to start")
    status, body = await api.request("POST", f"/downloads/{job_id}/cancel")
    assert status == 200, body
    job = await finish(api, job_id)
    assert job["status"] == "cancelled", job
    await eventually(lambda: gone(record["pid"]), timeout_s=5, what="twmd to be gone")
    assert not data_dir(service, job_id).exists()


def _netscape(auth_token: str) -> str:
    return (
        "# Netscape HTTP Cookie File\n"
        f".x.com\tTRUE\t/\tTRUE\t2000000000\tauth_token\t{auth_token}\n"
        ".x.com\tTRUE\t/\tTRUE\t0\tct0\tabc\n"
    )


async def test_a_named_cookie_file_overrides_the_configured_one(api: Api, twmd: Twmd) -> None:
    headers = {"Content-Type": "text/plain"}
    for name, token in (("tw-bad", "bad"), ("tw-good", "good")):
        status, _ = await api.request(
            "PUT", f"/cookies/{name}", data=_netscape(token), headers=headers
        )
        assert status == 201
    bad = await run(api, "https://x.com/someone/status/1", options={"cookies": "tw-bad"})
    assert (bad["status"], bad["errorCode"]) == ("failed", "auth_failed"), bad
    good = await run(api, "https://x.com/someone/status/1", options={"cookies": "tw-good"})
    assert good["status"] == "completed", good
    (record,) = twmd.runs_of(good["jobId"])
    assert record["cookiesMode"] == 0o600 and record["cookiesUsable"] is True
    assert "-L" in record["argv"]

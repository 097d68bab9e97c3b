"""The twmd runner: targets, arguments (checked against twmd's own parser rules), the
tool, limits, cookies, the files kept, the output reader, and a few runs of the twmd
stand-in that need no media server (limits, prompts, cancellation)."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from mediad.worker import run_twitter
from mediad.worker.jobs import JobContext, JobFailed, ProgressEmitter
from mediad.worker.progress import Progress
from mediad.worker.run_twitter import (
    build_args,
    collect,
    find_twmd,
    install_cookies,
    limits_from_env,
    option,
    output_lines,
    target_of,
)
from mediad.worker.settings import WorkerSettings
from tests.support import twmd_standin
from tests.support.polling import eventually

OUT = Path("/var/lib/mediad/tmp/job/twmd-out")
GOOD_COOKIES = [{"Name": "auth_token", "Value": "good", "Domain": "twitter.com"}]
BAD_COOKIES = [{"Name": "auth_token", "Value": "bad", "Domain": "twitter.com"}]


# -- targets -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://twitter.com/jack/status/20", ("tweet", "20")),
        ("https://x.com/jack/status/1234567890123456789", ("tweet", "1234567890123456789")),
        ("https://www.x.com/jack/status/20?s=20&t=abc", ("tweet", "20")),
        ("https://mobile.twitter.com/jack/status/20/photo/1", ("tweet", "20")),
        ("https://x.com/i/status/20", ("tweet", "20")),
        ("https://x.com/i/web/status/20", ("tweet", "20")),
        ("https://x.com/jack", ("user", "jack")),
        ("https://www.twitter.com/Some_User1/", ("user", "Some_User1")),
        ("https://mobile.x.com/jack/media?lang=en", ("user", "jack")),
    ],
)
def test_tweet_and_profile_urls(url: str, expected: tuple[str, str]) -> None:
    assert target_of(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "https://x.com/home",
        "https://x.com/jack/likes",
        "https://x.com/i/spaces/1YqKDqDXAbwKV",
        "https://x.com/",
        "https://example.com/jack/status/20",
    ],
)
def test_other_urls_are_unsupported(url: str) -> None:
    with pytest.raises(JobFailed) as failed:
        target_of(url)
    assert failed.value.error_code == "unsupported_url"


# -- arguments -----------------------------------------------------------------------------


def test_a_tweet() -> None:
    assert build_args(("tweet", "20"), {}, OUT) == ["-B", "-t", "20", "-o", str(OUT)]


def test_a_tweet_ignores_the_profile_options() -> None:
    options = {"mediaType": "images", "includeRetweets": True, "maxTweets": 5}
    assert build_args(("tweet", "20"), options, OUT) == ["-B", "-t", "20", "-o", str(OUT)]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, ["-a"]),
        ({"mediaType": "all"}, ["-a"]),
        ({"mediaType": "images"}, ["-i"]),
        ({"mediaType": "videos"}, ["-v"]),
        ({"includeRetweets": True}, ["-a", "-r"]),
        ({"includeRetweets": False}, ["-a"]),
        ({"maxTweets": 1}, ["-a", "-n", "1"]),
        (
            {"mediaType": "videos", "includeRetweets": True, "maxTweets": 3000},
            ["-v", "-r", "-n", "3000"],
        ),
    ],
)
def test_a_profile(options: dict[str, Any], expected: list[str]) -> None:
    args = build_args(("user", "jack"), options, OUT)
    assert args == ["-B", "-u", "jack", *expected, "-o", str(OUT)]


@pytest.mark.parametrize(
    "options", [{"mediaType": "gifs"}, {"maxTweets": 0}, {"maxTweets": "5"}, {"maxTweets": True}]
)
def test_options_twmd_would_misread_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(JobFailed) as failed:
        build_args(("user", "jack"), options, OUT)
    assert failed.value.error_code == "invalid_options"


def test_cookies_and_proxy() -> None:
    args = build_args(("tweet", "20"), {}, OUT, login=True, proxy="socks5://127.0.0.1:9050")
    assert args[-3:] == ["-L", "-p", "socks5://127.0.0.1:9050"]


def test_the_configured_proxy_wins_over_the_egress_guard() -> None:
    guard = "http://127.0.0.1:41000"
    assert run_twitter.pick_proxy(None, guard) == guard
    assert run_twitter.pick_proxy("socks5://p:1080", guard) == "socks5://p:1080"
    assert run_twitter.pick_proxy(None, None) is None


def test_values_starting_with_a_dash_go_inside_the_flag() -> None:
    assert option("-p", "--proxy", "-weird") == ["--proxy=-weird"]
    assert option("-p", "--proxy", "[::1]:80") == ["-p", "[::1]:80"]  # brackets kept
    assert option("-o", "--output", "/a b=c") == ["-o", "/a b=c"]
    with pytest.raises(ValueError):
        option("-p", "--proxy", "")  # "--proxy=" makes twmd's parser panic


@pytest.mark.parametrize(
    ("target", "options", "login", "proxy"),
    [
        (("tweet", "20"), {}, False, None),
        (("tweet", "20"), {}, True, "http://proxy:3128"),
        (("user", "jack"), {"mediaType": "images", "includeRetweets": True}, True, None),
        (("user", "jack"), {"mediaType": "videos", "maxTweets": 7}, False, "-odd-proxy"),
        (("user", "jack"), {"maxTweets": 3000}, True, "-odd-proxy"),
    ],
)
def test_twmd_parses_every_argument_list_as_meant(
    target: tuple[str, str], options: dict[str, Any], login: bool, proxy: str | None
) -> None:
    """Through the stand-in's copy of twmd's option parser: a parse that stopped early (an
    unknown flag, a value taken for a flag) would lose everything after it."""
    parsed = twmd_standin.parse_args(build_args(target, options, OUT, login=login, proxy=proxy))
    assert parsed.error is None and parsed.extra == [] and not parsed.help
    values = parsed.values
    assert values["banner"] is True  # -B: no banner
    assert values["output"] == str(OUT)
    assert values.get("login", False) is login
    assert values.get("proxy") == proxy
    mode, value = target
    assert values["tweet" if mode == "tweet" else "user"] == value
    if mode == "user":
        kind = {"images": "img", "videos": "video"}.get(options.get("mediaType", "all"), "all")
        assert values[kind] is True
        assert values.get("retweet", False) is bool(options.get("includeRetweets"))
        assert values.get("nbr") == (str(options["maxTweets"]) if "maxTweets" in options else None)
    assert "update" not in values  # -U would skip the truncated files of a killed run


def test_the_parser_traps_the_arguments_avoid() -> None:
    parse = twmd_standin.parse_args
    # Short flags do not combine, and an unknown flag stops the parsing silently.
    stopped = parse(["-B", "-ai", "-u", "jack"])
    assert stopped.error and "user" not in stopped.values and stopped.values["banner"] is True
    # A value starting with "-" is not taken as the value: the flag lacks one, parsing stops.
    stopped = parse(["-p", "-x", "-t", "20"])
    assert stopped.error and "tweet" not in stopped.values
    assert parse(["--proxy=-x", "-t", "20"]).values == {"proxy": "-x", "tweet": "20"}
    # "--no-banner" clears the flag that -B sets.
    assert parse(["--no-banner"]).values == {"banner": False}
    # A value written inside the flag loses surrounding brackets; a separate one does not.
    assert parse(["--proxy=[x]"]).values == {"proxy": "x"}
    assert parse(["-p", "[x]"]).values == {"proxy": "[x]"}
    with pytest.raises(twmd_standin.GoPanic):
        parse(["--proxy="])


# -- tool, limits, environment, cookies ----------------------------------------------------


def settings(tmp_path: Path, **kw: Any) -> WorkerSettings:
    return WorkerSettings(
        server_url="http://127.0.0.1:1",
        worker_id="test",
        token="t" * 16,
        data_dir=tmp_path / "data",
        tmp_dir=tmp_path / "tmp",
        **kw,
    )


def test_find_twmd(tmp_path: Path) -> None:
    def code(twmd: str | None) -> tuple[str, str]:
        with pytest.raises(JobFailed) as failed:
            find_twmd(settings(tmp_path, twmd=twmd))
        return failed.value.error_code, str(failed.value)

    assert code(None) == (
        "tool_missing",
        "twmd is not configured on this worker: set TWMD_PATH or tools.twmd to the twmd executable",
    )
    error, message = code(str(tmp_path / "nope"))
    assert error == "tool_missing" and "TWMD_PATH" in message and "nope" in message
    plain = tmp_path / "plain"
    plain.write_text("#!/bin/sh\n")
    assert code(str(plain))[0] == "tool_missing"  # not executable
    assert code(str(tmp_path))[0] == "tool_missing"  # a directory
    wrapper = twmd_standin.write_wrapper(tmp_path)
    assert find_twmd(settings(tmp_path, twmd=str(wrapper))) == str(wrapper)


@pytest.mark.parametrize(
    ("env", "idle_s", "total_s"),
    [
        ({}, run_twitter.IDLE_S, run_twitter.TIMEOUT_S),
        ({"MEDIAD_TWMD_IDLE_S": "1.5", "MEDIAD_TWMD_TIMEOUT_S": "60"}, 1.5, 60.0),
        ({"MEDIAD_TWMD_IDLE_S": " 2 "}, 2.0, run_twitter.TIMEOUT_S),
        ({"MEDIAD_TWMD_IDLE_S": "0"}, run_twitter.IDLE_S, run_twitter.TIMEOUT_S),
        ({"MEDIAD_TWMD_IDLE_S": "-3"}, run_twitter.IDLE_S, run_twitter.TIMEOUT_S),
        ({"MEDIAD_TWMD_TIMEOUT_S": "nan"}, run_twitter.IDLE_S, run_twitter.TIMEOUT_S),
        ({"MEDIAD_TWMD_TIMEOUT_S": "inf"}, run_twitter.IDLE_S, run_twitter.TIMEOUT_S),
        ({"MEDIAD_TWMD_TIMEOUT_S": "soon"}, run_twitter.IDLE_S, run_twitter.TIMEOUT_S),
        ({"MEDIAD_TWMD_TIMEOUT_S": ""}, run_twitter.IDLE_S, run_twitter.TIMEOUT_S),
    ],
)
def test_limits_from_the_environment(env: dict[str, str], idle_s: float, total_s: float) -> None:
    limits = limits_from_env(env)
    assert (limits.idle_s, limits.total_s) == (idle_s, total_s)


def test_cookies_are_copied_for_this_user_only(tmp_path: Path) -> None:
    source = tmp_path / "cookies.json"
    source.write_text(json.dumps(GOOD_COOKIES))
    source.chmod(0o644)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    old = os.umask(0)
    try:
        assert install_cookies(str(source), cwd) is True
    finally:
        os.umask(old)
    copy = cwd / "twmd_cookies.json"
    assert copy.read_text() == source.read_text()
    assert copy.stat().st_mode & 0o777 == 0o600
    assert install_cookies(None, tmp_path) is False
    with pytest.raises(JobFailed) as failed:
        install_cookies(str(tmp_path / "missing.json"), tmp_path)
    assert failed.value.error_code == "auth_failed" and "missing.json" in str(failed.value)


# -- files kept ----------------------------------------------------------------------------


def put(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    return path


def test_tweet_layout(tmp_path: Path) -> None:
    a = put(tmp_path / "A.jpg", 10)
    put(tmp_path / "B.jpg", 0)  # reported, copy failed
    put(tmp_path / "partial.mp4", 10)  # never reported: a killed download
    files, missing = collect(tmp_path, ["A.jpg", "B.jpg", "C.jpg"])
    assert files == [a] and missing == ["B.jpg", "C.jpg"]


def test_user_layout_with_retweets(tmp_path: Path) -> None:
    img = put(tmp_path / "jack" / "img" / "A.jpg", 5)
    rt_img = put(tmp_path / "jack" / "img" / "RE-B.jpg", 5)
    video = put(tmp_path / "jack" / "video" / "C.mp4", 5)
    rt_video = put(tmp_path / "jack" / "video" / "RE-C.mp4", 5)  # twmd fetches it twice
    real_re = put(tmp_path / "jack" / "img" / "RE-D.jpg", 5)  # a name that starts with RE-
    (tmp_path / "jack" / "img" / "E.jpg").symlink_to(img)
    files, missing = collect(tmp_path, ["A.jpg", "B.jpg", "C.mp4", "RE-D.jpg", "E.jpg"])
    assert sorted(files) == sorted([img, rt_img, video, rt_video, real_re])
    assert missing == ["E.jpg"]  # a symlink is not a file twmd wrote


def test_nothing_reported_nothing_kept(tmp_path: Path) -> None:
    put(tmp_path / "A.jpg", 5)
    assert collect(tmp_path, []) == ([], [])
    assert collect(tmp_path / "absent", ["A.jpg"]) == ([], ["A.jpg"])


# -- the output reader ---------------------------------------------------------------------


async def lines_of(*chunks: bytes, prompt_probe: bool = False) -> list[str]:
    reader = asyncio.StreamReader()
    got: list[str] = []

    async def consume() -> None:
        async for line in output_lines(reader):
            got.append(line)

    task = asyncio.create_task(consume())
    for chunk in chunks:
        reader.feed_data(chunk)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
    if prompt_probe:  # the prompt arrived while the stream is still open
        await eventually(lambda: bool(got), timeout_s=2)
    reader.feed_eof()
    await task
    return got


async def test_lines_across_chunks() -> None:
    got = await lines_of(b"Downloaded A.j", b"pg\nerr", b"or\r\n\nDownloaded \xc3", b"\xa9.jpg\rx")
    assert got == ["Downloaded A.jpg", "error", "Downloaded é.jpg", "x"]


async def test_a_prompt_without_newline_comes_out_at_once() -> None:
    assert await lines_of(b"username: ", prompt_probe=True) == ["username: "]


@pytest.mark.parametrize("split", [None, 10, run_twitter.CHUNK_BYTES, 100_000])
async def test_an_endless_line_is_dropped_whole(split: int | None) -> None:
    data = b"Downloaded A.jpg\n" + b"x" * (run_twitter.MAX_LINE_CHARS + 10) + b"y\nerror\n"
    chunks = [data] if split is None else [data[:split], data[split:]]
    assert await lines_of(*chunks) == ["Downloaded A.jpg", "error"]
    assert await lines_of(b"x" * (run_twitter.MAX_LINE_CHARS + 10)) == []


# -- runs of the stand-in (no media server needed) -----------------------------------------


class Job:
    def __init__(self, tmp_path: Path, url: str, **kw: Any) -> None:
        self.state = tmp_path / "state"
        self.state.mkdir(exist_ok=True)
        self.reports: list[Progress] = []

        async def send(p: Progress) -> None:
            self.reports.append(p)

        self.ctx = JobContext(
            job_id="7d4f4b1e-0000-4000-8000-000000000001",
            attempt=1,
            url=url,
            type="twitter",
            options={},
            settings=settings(tmp_path, twmd=str(twmd_standin.write_wrapper(tmp_path)), **kw),
            emitter=ProgressEmitter(send, 10),
        )
        self.ctx.work_dir.mkdir(parents=True)

    async def fail(self) -> JobFailed:
        with pytest.raises(JobFailed) as failed:
            await run_twitter.run(self.ctx)
        return failed.value

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(p.read_text()) for p in sorted(self.state.glob("*.json"))]


@pytest.fixture
def standin_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(twmd_standin.STATE_DIR_ENV, str(tmp_path / "state"))
    monkeypatch.setenv(twmd_standin.MEDIA_URL_ENV, "http://127.0.0.1:9")  # nothing there


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.usefixtures("standin_env")
async def test_a_run_starts_clean_and_leaves_no_cookies(tmp_path: Path) -> None:
    cookies = tmp_path / "cookies.json"
    cookies.write_text(json.dumps(GOOD_COOKIES))
    job = Job(
        tmp_path,
        "https://x.com/jack/status/404",
        twitter_cookies=str(cookies),
        twitter_proxy="http://127.0.0.1:9",
    )
    stale = put(job.ctx.work_dir / "twmd-out" / "old.jpg", 5)  # a killed attempt's file
    failed = await job.fail()
    assert failed.error_code == "not_found"
    (record,) = job.records()
    out = job.ctx.work_dir / "twmd-out"
    cwd = job.ctx.work_dir / "twmd-cwd"
    assert record["argv"] == ["-B", "-t", "404", "-o", str(out), "-L", "-p", "http://127.0.0.1:9"]
    assert record["cwd"] == str(cwd)
    assert record["cookiesMode"] == 0o600 and record["cookiesUsable"] is True
    assert record["outputFiles"] == []
    assert not stale.exists() and not cwd.exists() and not out.exists()


@pytest.mark.usefixtures("standin_env")
async def test_bad_cookies_fail_at_the_prompt(tmp_path: Path) -> None:
    cookies = tmp_path / "cookies.json"
    cookies.write_text(json.dumps(BAD_COOKIES))
    job = Job(tmp_path, "https://x.com/jack/status/1", twitter_cookies=str(cookies))
    started = time.monotonic()
    failed = await job.fail()
    assert failed.error_code == "auth_failed" and "cookies" in str(failed)
    assert time.monotonic() - started < 5
    (record,) = job.records()
    assert gone(record["pid"])


@pytest.mark.usefixtures("standin_env")
async def test_silence_hits_the_idle_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDIAD_TWMD_IDLE_S", "0.6")
    job = Job(tmp_path, "https://x.com/jack/status/777")
    failed = await job.fail()
    assert failed.error_code == "timeout" and "MEDIAD_TWMD_IDLE_S" in str(failed)
    (record,) = job.records()
    assert gone(record["pid"])
    assert all(p.progress is None for p in job.reports)


@pytest.mark.usefixtures("standin_env")
async def test_chatter_hits_the_total_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDIAD_TWMD_TIMEOUT_S", "1.2")  # the idle limit stays at 300 s
    job = Job(tmp_path, "https://x.com/endless")
    failed = await job.fail()
    assert failed.error_code == "timeout" and "MEDIAD_TWMD_TIMEOUT_S" in str(failed)
    (record,) = job.records()
    assert gone(record["pid"])


@pytest.mark.usefixtures("standin_env")
async def test_cancelling_kills_twmd_and_drops_its_files(tmp_path: Path) -> None:
    job = Job(tmp_path, "https://x.com/jack/status/777")
    task = asyncio.create_task(run_twitter.run(job.ctx))
    records = await eventually(job.records, timeout_s=10, what="the stand-in to start")
    put(job.ctx.work_dir / "twmd-out" / "half.mp4", 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert gone(records[0]["pid"])
    assert not (job.ctx.work_dir / "twmd-out").exists()


@pytest.mark.usefixtures("standin_env")
async def test_a_crash_after_a_partial_file_publishes_nothing(tmp_path: Path) -> None:
    # With no media server the download fails: the crash (exit 2) decides all the same.
    job = Job(tmp_path, "https://x.com/jack/status/888")
    failed = await job.fail()
    assert failed.error_code == "tool_failed" and "panic" in str(failed)
    assert not (job.ctx.work_dir / "twmd-out").exists()


async def test_an_unusable_twmd_fails_the_job_without_running(tmp_path: Path) -> None:
    job = Job(tmp_path, "https://x.com/jack/status/1")
    Path(job.ctx.settings.twmd or "").chmod(0o644)
    failed = await job.fail()
    assert failed.error_code == "tool_missing"
    job.ctx.url = "https://x.com/jack/likes"
    assert (await job.fail()).error_code == "unsupported_url"


async def test_the_disk_meter_counts_files_in_flight(tmp_path: Path) -> None:
    meter = run_twitter._DiskMeter(tmp_path)
    assert await meter.measure(10.0) is False and (meter.size, meter.speed) == (0, None)
    put(tmp_path / "jack" / "video" / "growing.mp4", 3000)  # not reported yet: counted
    assert await meter.measure(11.0) is True and (meter.size, meter.speed) == (3000, 3000)
    assert await meter.measure(13.0) is False and meter.speed == 0

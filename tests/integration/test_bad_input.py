"""Bad input of every kind gets a clear refusal and loses nothing.

Seven tables: REST bodies, query strings, ids and paths, API tokens, the ``/worker``
socket, the ``/jobs`` socket and SSRF addresses. Each case ends in a 4xx with
``{"error": {"code", "message"}}``, a refused socket, an ignored event or a failed job:
never a 500, a hang, a job stuck as running or a half-written file. After each case the
service it ran on is checked (a fixture's teardown: ``checked``, ``guarded``,
``ssrf_service``): still healthy, nothing left queued or running but a job held on
purpose, no job created by a refused request. So any case run alone (``-k``) is checked
too, in any order; and a normal job still completes.

Safety: the services that receive bad URLs have no worker processes; their only workers
are scripted clients in this file, which never fetch anything. The one service with a
real worker only ever gets loopback URLs.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import json
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import socketio

from mediad.attempts import Phase
from mediad.models import JobType, Status
from mediad.service import Service
from tests.support.harness import Api, eventually, running_service
from tests.support.jobs_client import JobsClient
from tests.support.mediaserver import MediaServer
from tests.support.workers import NO_PAYLOAD, ScriptedWorker

WORKER_TOKEN = "bad-input-worker-token-0123456789"
API_TOKEN = "bad-input-api-token-0123456789abcdef"
# Loopback, port 9 (discard): nothing in this file fetches it, and if something did it
# would stay on this machine.
GOOD_URL = "http://127.0.0.1:9/video.mp4"
# Scripted workers keep a job whose URL contains this running until the test ends it.
HOLD = "/hold/"
HOLD_URL = f"http://127.0.0.1:9{HOLD}video.mp4"
NO_SUCH_JOB = "0b7e5a52-6f7e-4d8c-9a51-3c1f0e6d2a91"
STAGED = b"bad-input-suite"
SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")


# -- helpers -------------------------------------------------------------------------


def assert_error(status: int, body: Any, want_status: Any, want_code: Any) -> None:
    """A clear refusal: the status, a snake_case code and a short human message."""
    statuses = {want_status} if isinstance(want_status, int) else want_status
    codes = {want_code} if isinstance(want_code, str) else want_code
    assert status in statuses, (status, body)
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert error["code"] in codes and SNAKE.fullmatch(error["code"]), error
    message = error["message"]
    assert isinstance(message, str) and " " in message.strip(), error
    assert len(message) <= 1000, f"a {len(message)}-character message echoes the input"


class Raw:
    """One HTTP/1.1 exchange with exactly the bytes given: paths, headers and bodies a
    normal client would clean up."""

    def __init__(self, base_url: str) -> None:
        self.port = int(base_url.rsplit(":", 1)[1])

    async def __call__(
        self, method: str, target: str, *, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> tuple[int, dict[str, str], Any]:
        headers = headers or {}
        lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if "Transfer-Encoding" not in headers:
            lines.append(f"Content-Length: {len(body)}")
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.write("\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + body)
        try:
            await writer.drain()
        except ConnectionError:
            pass  # the server answered (413) before reading it all
        try:
            data = await asyncio.wait_for(reader.read(), 10)
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except ConnectionError:
                pass
        top, _, payload = data.partition(b"\r\n\r\n")
        status_line, *header_lines = top.decode("latin-1").split("\r\n")
        answer_headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            answer_headers[name.strip().lower()] = value.strip()
        parsed: Any = payload
        if answer_headers.get("content-type", "").startswith("application/json"):
            parsed = orjson.loads(payload)
        return int(status_line.split()[1]), answer_headers, parsed


async def _complete_unless_held(worker: ScriptedWorker, start: dict[str, Any]) -> None:
    if HOLD not in start["url"]:
        await worker.complete(start["jobId"], start["attempt"], {"media.bin": STAGED})


def scripted(service: Service, worker_id: str, auth: Any = NO_PAYLOAD) -> ScriptedWorker:
    """A /worker client driven by this file. A job whose URL contains ``/hold/`` stays
    running until the test ends it; any other job completes at once with one small staged
    file. Stop requests are confirmed. It never fetches anything."""
    return ScriptedWorker(
        service.base_url, worker_id, token=WORKER_TOKEN, auth=auth,
        data_dir=service.config.data_path, on_start=_complete_unless_held, confirm_stops=True,
        storage=service.config,
    )  # fmt: skip


async def assert_healthy(service: Service, api: Api) -> None:
    """GET /health 200 with workers connected, and no background task died."""
    status, body = await api.request("GET", "/health")
    assert status == 200, body
    assert body["status"] == "ok" and body["checks"]["workers"]["connected"] >= 1, body
    assert service.failed is not None and not service.failed.done()


async def _settled(service: Service, api: Api, urls: dict[str, str]) -> Any:
    """GET /health's answer once nothing is queued and nothing runs but a job held on
    purpose (its URL contains ``/hold/``, its attempt still live); else None."""
    dispatcher = service.dispatcher
    assert dispatcher is not None
    answer = await api.request("GET", "/health")
    if answer[1]["queue"]["depth"] != 0:
        return None
    for a in dispatcher.roster:
        if a.job_id not in urls:
            urls[a.job_id] = (await api.job(a.job_id))["url"]
        if not a.counts_events or HOLD not in urls[a.job_id]:
            return None
    return answer


async def drained(service: Service, api: Api) -> None:
    """Whatever a case let through has ended (see _settled)."""
    urls: dict[str, str] = {}
    await eventually(lambda: _settled(service, api, urls), timeout_s=5, what="the queue to drain")


async def left_healthy(service: Service, api: Api, urls: dict[str, str]) -> None:
    """What every case on the main service must leave behind: drained, GET /health 200
    with workers connected, and no background task died (one /health when all is well)."""
    status, body = await eventually(
        lambda: _settled(service, api, urls), timeout_s=5, what="the queue to drain"
    )
    assert status == 200, body
    assert body["status"] == "ok" and body["checks"]["workers"]["connected"] >= 1, body
    assert service.failed is not None and not service.failed.done()


async def nothing_arrives_within(client: JobsClient, seconds: float) -> list[Any]:
    """A short negative window: the events a subscriber received meanwhile."""
    seen = len(client.events)
    await asyncio.sleep(seconds)
    return client.events[seen:]


async def submit(api: Api, url: str, **fields: Any) -> str:
    return (await api.submit(url, **fields))["jobId"]  # type: ignore[no-any-return]


async def download(api: Api, job_id: str, **params: str) -> tuple[int, bytes]:
    async with api.session.get(f"/files/{job_id}/download", params=params) as resp:
        return resp.status, await resp.read()


# -- services ------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def main(new_module_config: Any) -> AsyncIterator[Service]:
    """Groups 1, 2, 3, 5 and 6: no worker processes, scripted workers only."""
    config = await new_module_config(
        workers={"processes": 0, "token": WORKER_TOKEN},
        queue={"concurrency": 6, "watchdog_s": 600, "reconcile_interval_s": 3600},
        network={"allow_private": True},
    )
    async with Service(config) as service:
        yield service


@pytest.fixture(scope="module")
async def keeper(main: Service) -> AsyncIterator[ScriptedWorker]:
    worker = await scripted(main, "keeper").connect()
    yield worker
    await worker.close()


@pytest.fixture(scope="module")
async def rest(main: Service, keeper: ScriptedWorker) -> AsyncIterator[Api]:
    client = Api(main.base_url)
    yield client
    await client.close()


@pytest.fixture(scope="module")
def job_urls() -> dict[str, str]:
    return {}


@pytest.fixture
async def checked(main: Service, rest: Api, job_urls: dict[str, str]) -> AsyncIterator[None]:
    """The case that asks for it leaves the main service healthy (checked after it)."""
    yield
    await left_healthy(main, rest, job_urls)


@pytest.fixture
def raw(main: Service, keeper: ScriptedWorker, checked: None) -> Raw:
    return Raw(main.base_url)


# == 1. POST /downloads bodies =======================================================


def js(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode()  # orjson refuses ints over 64 bits


def url_body(url: Any, **more: Any) -> bytes:
    return js({"url": url, **more})


def opts(job_type: str, options: Any) -> bytes:
    return js({"url": GOOD_URL, "type": job_type, "options": options})


def deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def chunked(payload: bytes, size: int = 8192) -> bytes:
    pieces = [payload[i : i + size] for i in range(0, len(payload), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


J = "application/json"
INVALID_JSON = (400, "invalid_json")
INVALID_BODY = (400, "invalid_body")
INVALID_URL = (400, "invalid_url")
BAD_SCHEME = (400, "unsupported_scheme")
INVALID_TYPE = (400, "invalid_type")
INVALID_OPTIONS = (400, "invalid_options")
UNKNOWN_FIELD = (400, "unknown_field")
TOO_LARGE = (413, "payload_too_large")
JSON_OR_OPTIONS = (400, {"invalid_json", "invalid_options"})
JSON_OR_TOO_LARGE = ({400, 413}, {"invalid_json", "payload_too_large"})
P = pytest.param
NUM = b'{"url": "http://127.0.0.1:9/v.mp4", "options": {"maxItems": %s}}'

# fmt: off
BODY_CASES = [
    # not JSON, or not sent as JSON
    P(b"url=http://127.0.0.1:9/v.mp4", J, INVALID_JSON, id="form_data_as_json"),
    P(b'{"url": "http://127.0.0.1:9/v.mp4"', J, INVALID_JSON, id="truncated"),
    P(url_body(GOOD_URL) + b" x", J, INVALID_JSON, id="trailing_garbage"),
    P(b"{'url': 'http://127.0.0.1:9/v.mp4'}", J, INVALID_JSON, id="single_quotes"),
    P(b'{"url": "http://127.0.0.1:9/v.mp4",}', J, INVALID_JSON, id="trailing_comma"),
    P(b"", J, INVALID_JSON, id="empty_body"),
    P(b" \r\n\t", J, INVALID_JSON, id="whitespace_body"),
    P(url_body(GOOD_URL), "text/plain", INVALID_BODY, id="content_type_text"),
    P(url_body(GOOD_URL), "application/x-www-form-urlencoded", INVALID_BODY, id="content_type_form"),
    P(url_body(GOOD_URL), "multipart/form-data; boundary=x", INVALID_BODY, id="content_type_multipart"),
    P(url_body(GOOD_URL), "application/xml", INVALID_BODY, id="content_type_xml"),
    P(url_body(GOOD_URL), None, INVALID_BODY, id="content_type_missing"),
    P(url_body(GOOD_URL).decode().encode("utf-16"), "application/json; charset=utf-16", INVALID_JSON, id="utf16_body"),
    P(b"\xef\xbb\xbf" + url_body(GOOD_URL), J, INVALID_JSON, id="utf8_bom"),
    # JSON that is not an object
    P(b"[]", J, INVALID_BODY, id="array_empty"),
    P(js([{"url": GOOD_URL}]), J, INVALID_BODY, id="array_of_body"),
    P(js(GOOD_URL), J, INVALID_BODY, id="string"),
    P(b"42", J, INVALID_BODY, id="number"),
    P(b"null", J, INVALID_BODY, id="null"),
    P(b"true", J, INVALID_BODY, id="bool"),
    # url missing or of the wrong type
    P(b"{}", J, INVALID_URL, id="url_missing"),
    P(js({"type": "aria2"}), J, INVALID_URL, id="url_missing_type_given"),
    P(url_body(42), J, INVALID_URL, id="url_number"),
    P(url_body(1.5), J, INVALID_URL, id="url_float"),
    P(url_body([GOOD_URL]), J, INVALID_URL, id="url_list"),
    P(url_body({"href": GOOD_URL}), J, INVALID_URL, id="url_object"),
    P(url_body(True), J, INVALID_URL, id="url_true"),
    P(url_body(False), J, INVALID_URL, id="url_false"),
    P(url_body(None), J, INVALID_URL, id="url_null"),
    P(url_body(""), J, INVALID_URL, id="url_empty"),
    P(url_body("   "), J, INVALID_URL, id="url_spaces"),
    P(url_body("\t\r\n"), J, INVALID_URL, id="url_newlines_only"),
    P(url_body("\u00a0\u3000"), J, INVALID_URL, id="url_unicode_spaces_only"),
    # too long
    P(url_body("http://127.0.0.1:9/" + "a" * 2030), J, INVALID_URL, id="url_2049_chars"),
    P(url_body("http://127.0.0.1:9/" + "a" * 60_000), J, INVALID_URL, id="url_60k_chars"),
    P(url_body("http://127.0.0.1:9/" + "a" * 2**20), J, TOO_LARGE, id="url_1mb"),
    # spaces and control characters
    P(url_body("http://127.0.0.1:9/a b.mp4"), J, INVALID_URL, id="url_space"),
    P(url_body("http://127.0.0.1:9/a\nb.mp4"), J, INVALID_URL, id="url_newline"),
    P(url_body("http://127.0.0.1:9/x\r\nX-Injected: 1"), J, INVALID_URL, id="url_crlf_injection"),
    P(url_body("http://127.0.0.1:9/a\tb"), J, INVALID_URL, id="url_tab"),
    P(url_body("http://127.0.0.1:9/a\x00b"), J, INVALID_URL, id="url_nul"),
    P(url_body("http://127.0.0.1:9/a\x7fb"), J, INVALID_URL, id="url_del"),
    P(url_body("http://127.0.0.1:9/\x1b[31m"), J, INVALID_URL, id="url_escape"),
    P(url_body("http://127.0.0.1:9/a\u0085b"), J, INVALID_URL, id="url_c1_next_line"),
    P(url_body("http://127.0.0.1:9/a\u2028b"), J, INVALID_URL, id="url_line_separator"),
    # schemes other than http and https
    P(url_body("ftp://127.0.0.1/v.mp4"), J, BAD_SCHEME, id="scheme_ftp"),
    P(url_body("file:///etc/passwd"), J, BAD_SCHEME, id="scheme_file"),
    P(url_body("javascript:alert(1)"), J, BAD_SCHEME, id="scheme_javascript"),
    P(url_body("data:text/plain,hello"), J, BAD_SCHEME, id="scheme_data"),
    P(url_body("magnet:?xt=urn:btih:" + "0" * 40), J, BAD_SCHEME, id="scheme_magnet"),
    P(url_body("gopher://127.0.0.1:70/_x"), J, BAD_SCHEME, id="scheme_gopher"),
    P(url_body("ws://127.0.0.1:9/"), J, BAD_SCHEME, id="scheme_ws"),
    P(url_body("rtmp://127.0.0.1/live"), J, BAD_SCHEME, id="scheme_rtmp"),
    P(url_body("view-source:http://127.0.0.1:9/"), J, BAD_SCHEME, id="scheme_view_source"),
    P(url_body("127.0.0.1:9/v.mp4"), J, BAD_SCHEME, id="no_scheme"),
    P(url_body("http:/127.0.0.1/v.mp4"), J, BAD_SCHEME, id="http_one_slash"),
    P(url_body("http:127.0.0.1/v.mp4"), J, BAD_SCHEME, id="http_no_slash"),
    P(url_body("//127.0.0.1/v.mp4"), J, BAD_SCHEME, id="scheme_relative"),
    # no host, or a host that is not one
    P(url_body("http://"), J, INVALID_URL, id="host_missing"),
    P(url_body("http:///v.mp4"), J, INVALID_URL, id="host_empty_path"),
    P(url_body("http://:80/v.mp4"), J, INVALID_URL, id="host_port_only"),
    P(url_body("http://user@/v.mp4"), J, INVALID_URL, id="host_userinfo_only"),
    P(url_body("http://?q=1"), J, INVALID_URL, id="host_query_only"),
    P(url_body("http://#top"), J, INVALID_URL, id="host_fragment_only"),
    P(url_body("http://[/v.mp4"), J, INVALID_URL, id="host_open_bracket"),
    P(url_body("http://[::1/v.mp4"), J, INVALID_URL, id="host_unclosed_ipv6"),
    P(url_body("http://]/v.mp4"), J, INVALID_URL, id="host_close_bracket"),
    P(url_body("http://[::1/v.mp4", type="aria2"), J, INVALID_URL, id="host_unclosed_ipv6_typed"),
    P(url_body("http://127.0.0.1:99999/v.mp4"), J, INVALID_URL, id="port_too_big"),
    P(url_body("http://127.0.0.1:port/v.mp4"), J, INVALID_URL, id="port_not_a_number"),
    # type
    P(url_body(GOOD_URL, type="YTDLP"), J, INVALID_TYPE, id="type_uppercase"),
    P(url_body(GOOD_URL, type="curl"), J, INVALID_TYPE, id="type_unknown"),
    P(url_body(GOOD_URL, type=""), J, INVALID_TYPE, id="type_empty"),
    P(url_body(GOOD_URL, type="aria2 "), J, INVALID_TYPE, id="type_trailing_space"),
    P(url_body(GOOD_URL, type=5), J, INVALID_TYPE, id="type_number"),
    P(url_body(GOOD_URL, type=["ytdlp"]), J, INVALID_TYPE, id="type_list"),
    P(url_body(GOOD_URL, type={"name": "aria2"}), J, INVALID_TYPE, id="type_object"),
    P(url_body(GOOD_URL, type=True), J, INVALID_TYPE, id="type_bool"),
    # options that are not an object, or keys that do not apply
    P(url_body(GOOD_URL, options="best"), J, INVALID_OPTIONS, id="options_string"),
    P(url_body(GOOD_URL, options=[]), J, INVALID_OPTIONS, id="options_list"),
    P(url_body(GOOD_URL, options=5), J, INVALID_OPTIONS, id="options_number"),
    P(url_body(GOOD_URL, options=True), J, INVALID_OPTIONS, id="options_bool"),
    P(opts("ytdlp", {"exec": "id"}), J, INVALID_OPTIONS, id="ytdlp_exec"),
    P(opts("ytdlp", {"cookies": "/etc/passwd"}), J, INVALID_OPTIONS, id="ytdlp_cookies"),
    P(opts("ytdlp", {"": 1}), J, INVALID_OPTIONS, id="ytdlp_empty_key"),
    P(opts("ytdlp", {"Format": "best"}), J, INVALID_OPTIONS, id="ytdlp_key_case"),
    P(opts("ytdlp", {"k" * 50_000: 1}), J, INVALID_OPTIONS, id="ytdlp_50k_key_not_echoed"),
    P(opts("aria2", {"format": "best"}), J, INVALID_OPTIONS, id="aria2_format"),
    P(opts("aria2", {"dir": "/etc"}), J, INVALID_OPTIONS, id="aria2_dir"),
    P(opts("ffmpeg", {"format": "best"}), J, INVALID_OPTIONS, id="ffmpeg_format"),
    P(opts("twitter", {"container": "mp4"}), J, INVALID_OPTIONS, id="twitter_container"),
    # option values: types, ranges, shell metacharacters
    P(opts("ytdlp", {"format": "best;id"}), J, INVALID_OPTIONS, id="format_semicolon"),
    P(opts("ytdlp", {"format": "best|id"}), J, INVALID_OPTIONS, id="format_pipe"),
    P(opts("ytdlp", {"format": "best&&id"}), J, INVALID_OPTIONS, id="format_and"),
    P(opts("ytdlp", {"format": "$(id)"}), J, INVALID_OPTIONS, id="format_subshell"),
    P(opts("ytdlp", {"format": "`id`"}), J, INVALID_OPTIONS, id="format_backticks"),
    P(opts("ytdlp", {"format": "${IFS}"}), J, INVALID_OPTIONS, id="format_braces"),
    P(opts("ytdlp", {"format": "best\nid"}), J, INVALID_OPTIONS, id="format_newline"),
    P(opts("ytdlp", {"format": "best\r"}), J, INVALID_OPTIONS, id="format_cr"),
    P(opts("ytdlp", {"format": "best\x00"}), J, INVALID_OPTIONS, id="format_nul"),
    P(opts("ytdlp", {"format": ""}), J, INVALID_OPTIONS, id="format_empty"),
    P(opts("ytdlp", {"format": "b" * 201}), J, INVALID_OPTIONS, id="format_201_chars"),
    P(opts("ytdlp", {"format": 5}), J, INVALID_OPTIONS, id="format_number"),
    P(opts("ytdlp", {"format": ["best"]}), J, INVALID_OPTIONS, id="format_list"),
    P(opts("ytdlp", {"audioFormat": "wma"}), J, INVALID_OPTIONS, id="audio_format_unknown"),
    P(opts("ytdlp", {"audioFormat": "MP3"}), J, INVALID_OPTIONS, id="audio_format_case"),
    P(opts("ytdlp", {"audioFormat": 3}), J, INVALID_OPTIONS, id="audio_format_number"),
    P(opts("ytdlp", {"audioOnly": "yes"}), J, INVALID_OPTIONS, id="audio_only_string"),
    P(opts("ytdlp", {"audioOnly": 1}), J, INVALID_OPTIONS, id="audio_only_int"),
    P(opts("ytdlp", {"playlist": "true"}), J, INVALID_OPTIONS, id="playlist_string"),
    P(opts("ytdlp", {"maxItems": 0}), J, INVALID_OPTIONS, id="max_items_0"),
    P(opts("ytdlp", {"maxItems": -1}), J, INVALID_OPTIONS, id="max_items_negative"),
    P(opts("ytdlp", {"maxItems": 1001}), J, INVALID_OPTIONS, id="max_items_1001"),
    P(opts("ytdlp", {"maxItems": 1.5}), J, INVALID_OPTIONS, id="max_items_fraction"),
    P(opts("ytdlp", {"maxItems": "3"}), J, INVALID_OPTIONS, id="max_items_string"),
    P(opts("ytdlp", {"maxItems": True}), J, INVALID_OPTIONS, id="max_items_true"),
    P(opts("ytdlp", {"maxItems": None}), J, INVALID_OPTIONS, id="max_items_null"),
    P(opts("ytdlp", {"maxItems": 2**64}), J, JSON_OR_OPTIONS, id="max_items_2_pow_64"),
    P(NUM % (b"1" + b"0" * 400), J, JSON_OR_OPTIONS, id="max_items_10_pow_400"),
    P(NUM % b"1e400", J, JSON_OR_OPTIONS, id="max_items_1e400"),
    P(NUM % b"NaN", J, INVALID_JSON, id="max_items_nan"),
    P(NUM % b"Infinity", J, INVALID_JSON, id="max_items_infinity"),
    P(NUM % b"-Infinity", J, INVALID_JSON, id="max_items_minus_infinity"),
    P(opts("ytdlp", {"subtitles": []}), J, INVALID_OPTIONS, id="subtitles_empty"),
    P(opts("ytdlp", {"subtitles": "e"}), J, INVALID_OPTIONS, id="subtitles_one_letter"),
    P(opts("ytdlp", {"subtitles": ["en", 5]}), J, INVALID_OPTIONS, id="subtitles_number"),
    P(opts("ytdlp", {"subtitles": "en;rm"}), J, INVALID_OPTIONS, id="subtitles_shell"),
    P(opts("ytdlp", {"subtitles": ["../.."]}), J, INVALID_OPTIONS, id="subtitles_path"),
    P(opts("ytdlp", {"subtitles": ["en"] * 21}), J, INVALID_OPTIONS, id="subtitles_21"),
    P(opts("ytdlp", {"subtitles": {"en": True}}), J, INVALID_OPTIONS, id="subtitles_object"),
    P(opts("ffmpeg", {"container": "avi"}), J, INVALID_OPTIONS, id="container_avi"),
    P(opts("ffmpeg", {"container": "MP4"}), J, INVALID_OPTIONS, id="container_case"),
    P(opts("twitter", {"mediaType": "gifs"}), J, INVALID_OPTIONS, id="media_type_unknown"),
    P(opts("twitter", {"includeRetweets": 1}), J, INVALID_OPTIONS, id="retweets_int"),
    P(opts("twitter", {"maxTweets": 0}), J, INVALID_OPTIONS, id="max_tweets_0"),
    P(opts("twitter", {"maxTweets": 3001}), J, INVALID_OPTIONS, id="max_tweets_3001"),
    P(opts("twitter", {"maxTweets": "5"}), J, INVALID_OPTIONS, id="max_tweets_string"),
    # unknown top-level fields
    P(url_body(GOOD_URL, callback="http://x"), J, UNKNOWN_FIELD, id="field_callback"),
    P(js({"URL": GOOD_URL}), J, UNKNOWN_FIELD, id="field_url_uppercase"),
    P(url_body(GOOD_URL, __proto__={"admin": True}), J, UNKNOWN_FIELD, id="field_proto"),
    P(js({"url": GOOD_URL, "f" * 50_000: 1}), J, UNKNOWN_FIELD, id="field_50k_name_not_echoed"),
    # JSON edge cases: depth, duplicates, encodings
    P(deep(10_000), J, JSON_OR_TOO_LARGE, id="nested_10000_arrays"),
    P(b'{"url": "http://127.0.0.1:9/v.mp4", "options": {"format": ' + deep(5_000) + b"}}", J, JSON_OR_TOO_LARGE, id="nested_in_options"),
    P(b'{"url": "http://127.0.0.1:9/v.mp4", "url": "javascript:alert(1)"}', J, (400, {"unsupported_scheme", "duplicate_field"}), id="duplicate_url_last_bad"),
    P(b'{"url": "http://127.0.0.1:9/v.mp4", "type": "aria2", "type": "curl"}', J, (400, {"invalid_type", "duplicate_field"}), id="duplicate_type_last_bad"),
    P(b'{"url": NaN}', J, INVALID_JSON, id="url_nan"),
    P(b'{"url": "http://127.0.0.1:9/\xff.mp4"}', J, INVALID_JSON, id="invalid_utf8"),
    P(b'{"ur\xc0\xafl": 1}', J, INVALID_JSON, id="overlong_utf8_key"),
    P(b'{"url": "http://127.0.0.1:9/\\ud800.mp4"}', J, INVALID_JSON, id="lone_surrogate"),
    P(b'{"\\udfff": 1}', J, INVALID_JSON, id="lone_surrogate_key"),
    # bodies over server.max_body_bytes (64 KiB)
    P(opts("ytdlp", {"format": "b" * 70_000}), J, TOO_LARGE, id="body_70k"),
    P(b" " * 2**20, J, TOO_LARGE, id="body_1mb_of_spaces"),
]
# fmt: on


@pytest.mark.parametrize(("body", "content_type", "expected"), BODY_CASES)
async def test_bad_download_body_is_refused(
    body: bytes, content_type: str | None, expected: tuple[Any, Any], raw: Raw
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    status, _, answer = await raw("POST", "/downloads", headers=headers, body=body)
    assert_error(status, answer, *expected)


# fmt: off
ENCODED_BODIES = [
    P({"Content-Encoding": "gzip"}, gzip.compress(b" " * 10_000_000), TOO_LARGE, id="gzip_bomb_10mb"),
    P({"Content-Encoding": "gzip"}, b"\x1f\x8b\x08\x00garbage", (400, {"invalid_json", "invalid_body"}), id="gzip_garbage"),
    P({"Transfer-Encoding": "chunked"}, chunked(opts("ytdlp", {"format": "b" * 200_000})), TOO_LARGE, id="chunked_200k"),
]
# fmt: on


@pytest.mark.parametrize(("headers", "body", "expected"), ENCODED_BODIES)
async def test_bad_encoded_body_is_refused(
    headers: dict[str, str], body: bytes, expected: tuple[Any, Any], raw: Raw
) -> None:
    status, _, answer = await raw(
        "POST", "/downloads", headers={"Content-Type": J, **headers}, body=body
    )
    assert_error(status, answer, *expected)


@pytest.mark.parametrize("encoding", ["br", "zstd"])
async def test_body_the_http_parser_refuses_is_a_4xx(encoding: str, raw: Raw) -> None:
    """aiohttp has no decoder for these here and answers before any handler: a 4xx,
    though not our JSON."""
    headers = {"Content-Type": J, "Content-Encoding": encoding}
    status, _, _ = await raw("POST", "/downloads", headers=headers, body=b"\xff" * 64)
    assert status == 400


async def test_type_null_means_detect(rest: Api, checked: None) -> None:
    status, body = await rest.request("POST", "/downloads", json={"url": GOOD_URL, "type": None})
    assert status == 201 and body["type"] == "aria2", body


# == 2. Query strings ================================================================


def cursor(text: str | bytes) -> str:
    raw_bytes = text.encode() if isinstance(text, str) else text
    return base64.urlsafe_b64encode(raw_bytes).decode().rstrip("=")


BAD_QUERY = (400, "bad_query")
BAD_CURSOR = (400, "bad_cursor")
# fmt: off
QUERY_CASES = [
    P("status=bogus", BAD_QUERY, id="status_unknown"),
    P("status=RUNNING", BAD_QUERY, id="status_uppercase"),
    P("status=queued,failed,", BAD_QUERY, id="status_list_trailing_comma"),
    P("status=queued,,failed", BAD_QUERY, id="status_list_empty_item"),
    P("status=queued,done", BAD_QUERY, id="status_list_unknown_item"),
    P("q=" + "a" * 201, BAD_QUERY, id="search_too_long"),
    P("q=a%0Ab", BAD_QUERY, id="search_newline"),
    P("status=queued%20", BAD_QUERY, id="status_trailing_space"),
    P("status=%00", BAD_QUERY, id="status_nul"),
    P("limit=0", BAD_QUERY, id="limit_0"),
    P("limit=201", BAD_QUERY, id="limit_201"),
    P("limit=-1", BAD_QUERY, id="limit_negative"),
    P("limit=abc", BAD_QUERY, id="limit_word"),
    P("limit=1e3", BAD_QUERY, id="limit_exponent"),
    P("limit=5.0", BAD_QUERY, id="limit_fraction"),
    P("limit=%C2%B2", BAD_QUERY, id="limit_superscript_two"),
    P("limit=%D9%A1%D9%A2", BAD_QUERY, id="limit_arabic_indic_digits"),
    P("limit=%EF%BC%95", BAD_QUERY, id="limit_fullwidth_digit"),
    P("limit=%205", BAD_QUERY, id="limit_leading_space"),
    P("limit=%2B5", BAD_QUERY, id="limit_plus"),
    P("limit=0x10", BAD_QUERY, id="limit_hex"),
    P("limit=", BAD_QUERY, id="limit_empty"),
    P("limit=" + "9" * 1000, BAD_QUERY, id="limit_1000_digits"),
    P("limit=" + "9" * 5000, BAD_QUERY, id="limit_5000_digits"),
    P("cursor=!!!", BAD_CURSOR, id="cursor_punctuation"),
    P("cursor=x", BAD_CURSOR, id="cursor_one_char"),
    P("cursor=" + cursor("garbage"), BAD_CURSOR, id="cursor_base64_garbage"),
    P("cursor=" + cursor(b"\xff\xfe\x00\x01"), BAD_CURSOR, id="cursor_binary"),
    P("cursor=" + cursor(f"2024-01-01T00:00:00|{NO_SUCH_JOB}"), BAD_CURSOR, id="cursor_naive_timestamp"),
    P("cursor=" + cursor("2024-01-01T00:00:00+00:00|not-a-uuid"), BAD_CURSOR, id="cursor_non_uuid"),
    P("cursor=" + cursor(f"9999-12-31T23:59:59-14:00|{NO_SUCH_JOB}"), BAD_CURSOR, id="cursor_after_year_9999"),
    P("cursor=" + cursor(f"0001-01-01T00:00:00+14:00|{NO_SUCH_JOB}"), BAD_CURSOR, id="cursor_before_year_1"),
    P("cursor=" + "A" * 6000, BAD_CURSOR, id="cursor_6000_chars"),
    P("foo=1", BAD_QUERY, id="unknown_param"),
    P("offset=10", BAD_QUERY, id="offset_param"),
    P("Limit=5", BAD_QUERY, id="param_case"),
]
# fmt: on


@pytest.mark.parametrize(("query", "expected"), QUERY_CASES)
async def test_bad_list_query_is_refused(query: str, expected: tuple[int, str], raw: Raw) -> None:
    status, _, answer = await raw("GET", f"/downloads?{query}")
    assert_error(status, answer, *expected)


async def test_the_largest_page_is_answered(rest: Api, checked: None) -> None:
    status, body = await rest.request("GET", "/downloads", params={"limit": "200"})
    assert status == 200 and isinstance(body["items"], list)


# == 3. Job ids and paths ============================================================

# fmt: off
ID_ROUTES = [
    ("GET", "/downloads/{}", "get"), ("DELETE", "/downloads/{}", "delete"),
    ("POST", "/downloads/{}/cancel", "cancel"), ("POST", "/downloads/{}/pause", "pause"),
    ("POST", "/downloads/{}/resume", "resume"), ("POST", "/downloads/{}/retry", "retry"),
    ("POST", "/downloads/{}/stop", "stop"), ("GET", "/files/{}", "files"),
    ("GET", "/files/{}/download", "download"),
]
BAD_ID = (400, "invalid_job_id")
TRAVERSAL = ({400, 404}, {"invalid_job_id", "not_found"})
BAD_IDS = [
    ("word", "not-a-uuid", BAD_ID),
    ("digits", "1234", BAD_ID),
    ("short", NO_SUCH_JOB[:-1], BAD_ID),
    ("non_hex", "g" + NO_SUCH_JOB[1:], BAD_ID),
    ("4000_chars", "a" * 4000, BAD_ID),
    ("encoded_traversal", "..%2F..%2Fetc%2Fpasswd", TRAVERSAL),
    ("encoded_dotdot", "%2e%2e", TRAVERSAL),
    ("nul", "%00", BAD_ID),
    ("bidi_override", "%E2%80%AE" + NO_SUCH_JOB, BAD_ID),
    ("unknown", NO_SUCH_JOB, (404, "not_found")),
]
# fmt: on
ID_CASES = [
    P(method, template.format(job_id), expected, id=f"{route}_{label}")
    for method, template, route in ID_ROUTES
    for label, job_id, expected in BAD_IDS
]


@pytest.mark.parametrize(("method", "path", "expected"), ID_CASES)
async def test_bad_job_id_is_refused(
    method: str, path: str, expected: tuple[Any, Any], raw: Raw
) -> None:
    status, _, answer = await raw(method, path)
    assert_error(status, answer, *expected)


async def test_a_path_over_the_line_limit_is_a_4xx(raw: Raw) -> None:
    """aiohttp's parser answers this one before any handler: a 4xx, though not our JSON."""
    status, _, _ = await raw("GET", "/downloads/" + "a" * 20_000)
    assert status in (400, 414)


@pytest.fixture(scope="module")
async def done_job(main: Service, rest: Api) -> str:
    """A completed job with one file, a stale staging folder and a planted symlink."""
    job_id = await submit(rest, GOOD_URL, type="aria2")
    await rest.wait_status(job_id, "completed", timeout_s=10)
    folder = main.config.data_path / job_id
    (folder / ".attempt-7").mkdir()
    (folder / ".attempt-7" / "secret.bin").write_bytes(b"not a result")
    (folder / "passwd").symlink_to("/etc/passwd")
    return job_id


INVALID_NAME = (400, "invalid_name")
NO_SUCH_FILE = (404, "no_such_file")
EITHER = ({400, 404}, {"invalid_name", "no_such_file"})
# fmt: off
NAME_CASES = [
    P("../x", INVALID_NAME, id="dotdot_slash"),
    P("..", INVALID_NAME, id="dotdot"),
    P(".", INVALID_NAME, id="dot"),
    P("/etc/passwd", INVALID_NAME, id="absolute"),
    P("a/b", INVALID_NAME, id="slash"),
    P("a%5Cb", INVALID_NAME, id="backslash"),
    P("..%5C..%5Cwin.ini", INVALID_NAME, id="backslash_traversal"),
    P("%00", INVALID_NAME, id="nul"),
    P("media.bin%00.txt", INVALID_NAME, id="nul_inside"),
    P("%01", INVALID_NAME, id="control"),
    P("%7F", INVALID_NAME, id="del"),
    P("%1B%5B31m", INVALID_NAME, id="escape"),
    P("media.bin%0A", INVALID_NAME, id="newline"),
    P("x" * 300, INVALID_NAME, id="300_bytes"),
    P("", INVALID_NAME, id="empty"),
    P("..%2F..%2Fetc%2Fpasswd", INVALID_NAME, id="encoded_traversal"),
    P("%2e%2e", INVALID_NAME, id="encoded_dotdot"),
    P("%252e%252e%252fetc", NO_SUCH_FILE, id="double_encoded"),
    P("media.bin%2F", INVALID_NAME, id="trailing_slash"),
    P("~%2F.ssh%2Fid_rsa", INVALID_NAME, id="home"),
    P(".attempt-7", NO_SUCH_FILE, id="staging_folder"),
    P(".attempt-7%2Fsecret.bin", INVALID_NAME, id="staging_file"),
    P("passwd", NO_SUCH_FILE, id="planted_symlink"),
    P("MEDIA.BIN", NO_SUCH_FILE, id="other_case"),
    P("%FF%FE", EITHER, id="invalid_utf8"),
    P("%ED%A0%80", EITHER, id="surrogate_utf8"),
]
# fmt: on


@pytest.mark.parametrize(("name", "expected"), NAME_CASES)
async def test_bad_file_name_is_refused(
    name: str, expected: tuple[Any, Any], done_job: str, raw: Raw
) -> None:
    status, _, answer = await raw("GET", f"/files/{done_job}/download?name={name}")
    assert_error(status, answer, *expected)


async def test_file_list_shows_no_staging_folder_or_symlink(
    done_job: str, rest: Api, checked: None
) -> None:
    status, listing = await rest.request("GET", f"/files/{done_job}")
    assert status == 200
    assert [f["name"] for f in listing["files"]] == ["media.bin"]


@pytest.mark.parametrize("action", ["cancel", "pause", "resume", "retry", "stop"])
async def test_action_the_status_does_not_allow_is_409(
    action: str, done_job: str, raw: Raw
) -> None:
    status, _, answer = await raw("POST", f"/downloads/{done_job}/{action}")
    assert_error(status, answer, 409, "invalid_transition")


# fmt: off
METHOD_CASES = [
    P("PUT", "/downloads", id="put_downloads"),
    P("PATCH", "/downloads", id="patch_downloads"),
    P("DELETE", "/downloads", id="delete_downloads"),
    P("PUT", f"/downloads/{NO_SUCH_JOB}", id="put_job"),
    P("PATCH", f"/downloads/{NO_SUCH_JOB}", id="patch_job"),
    P("GET", f"/downloads/{NO_SUCH_JOB}/cancel", id="get_cancel"),
    P("POST", f"/files/{NO_SUCH_JOB}", id="post_files"),
    P("DELETE", f"/files/{NO_SUCH_JOB}/download", id="delete_file"),
    P("POST", "/health", id="post_health"),
]
ROUTE_CASES = [
    P("POST", f"/downloads/{NO_SUCH_JOB}/explode", id="action_explode"),
    P("POST", f"/downloads/{NO_SUCH_JOB}/Cancel", id="action_case"),
    P("POST", f"/downloads/{NO_SUCH_JOB}/cancel/now", id="action_suffix"),
    P("GET", f"/downloads/{NO_SUCH_JOB}/", id="trailing_slash"),
    P("GET", f"/files/{NO_SUCH_JOB}/download/x", id="download_suffix"),
    P("GET", "/files", id="files_root"),
    P("GET", "/admin", id="admin"),
    P("GET", "/static/../../etc/passwd", id="dotdot_path"),
]
# fmt: on


@pytest.mark.parametrize(("method", "path"), METHOD_CASES)
async def test_wrong_method_is_405(method: str, path: str, raw: Raw) -> None:
    status, _, answer = await raw(method, path)
    assert_error(status, answer, 405, "method_not_allowed")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        P("PUT", "/downloads", {"GET", "POST"}, id="downloads"),
        P("POST", "/health", {"GET"}, id="health"),
    ],
)
async def test_405_says_which_methods_are_allowed(
    method: str, path: str, allowed: set[str], raw: Raw
) -> None:
    """RFC 9110 §15.5.6: a 405 MUST carry Allow."""
    status, headers, _ = await raw(method, path)
    assert status == 405
    assert allowed <= {m.strip() for m in headers.get("allow", "").split(",")}, headers


@pytest.mark.parametrize(("method", "path"), ROUTE_CASES)
async def test_unknown_route_is_404(method: str, path: str, raw: Raw) -> None:
    status, _, answer = await raw(method, path)
    assert_error(status, answer, 404, "not_found")


# == 4. API tokens ===================================================================


@pytest.fixture(scope="module")
async def guarded_service(new_module_config: Any) -> AsyncIterator[Service]:
    """A token-protected service with one real worker (it only ever sees loopback URLs)."""
    config = await new_module_config(
        server={"api_tokens": [API_TOKEN]},
        workers={"processes": 1},
        network={"allow_private": True},
    )
    async with running_service(config) as service:
        yield service


@pytest.fixture(scope="module")
async def guarded_api(guarded_service: Service) -> AsyncIterator[Api]:
    client = Api(guarded_service.base_url, token=API_TOKEN)
    yield client
    await client.close()


async def job_count(service: Service) -> int:
    assert service.store is not None
    return sum((await service.store.count_by_status()).values())


@pytest.fixture
async def guarded(guarded_service: Service, guarded_api: Api) -> AsyncIterator[Service]:
    """The token-protected service; after the case: still healthy, and the case's
    requests (none with a valid token but for reading) created no job."""
    before = await job_count(guarded_service)
    yield guarded_service
    await assert_healthy(guarded_service, guarded_api)
    assert await job_count(guarded_service) == before, (
        "a request without a valid token created a job"
    )


# fmt: off
BAD_AUTH_HEADERS = [
    # "bearer", "BEARER" and runs of spaces are accepted (RFC 7235): test_small_things.py.
    P(None, id="no_header"),
    P("Basic dXNlcjpwYXNz", id="basic"),
    P("Basic " + base64.b64encode(f":{API_TOKEN}".encode()).decode(), id="basic_with_the_token"),
    P("Bearer", id="bearer_no_token"),
    P("Bearer wrong-token-0123456789abcdef", id="wrong_token"),
    P(f"Bearer {API_TOKEN}x", id="token_plus_a_char"),
    P(f"Bearer {API_TOKEN[:-1]}", id="token_prefix"),
    P(f"Token {API_TOKEN}", id="other_scheme"),
    P(API_TOKEN, id="bare_token"),
    P(f"Bearer {API_TOKEN},{API_TOKEN}", id="two_tokens"),
    P("Bearer " + "x" * 6000, id="6000_char_token"),
]
TOKEN_ROUTES = [
    P(("GET", "/downloads"), id="list"),
    P(("POST", "/downloads"), id="create"),
    P(("GET", f"/files/{NO_SUCH_JOB}/download"), id="file"),
]
OTHER_ROUTES = [
    P("GET", f"/downloads/{NO_SUCH_JOB}", id="job"),
    P("POST", f"/downloads/{NO_SUCH_JOB}/cancel", id="cancel"),
    P("DELETE", f"/downloads/{NO_SUCH_JOB}", id="delete"),
    P("GET", f"/files/{NO_SUCH_JOB}", id="files"),
    P("GET", "/no-such-route", id="unknown_route"),
]
# fmt: on


@pytest.mark.parametrize("route", TOKEN_ROUTES)
@pytest.mark.parametrize("header", BAD_AUTH_HEADERS)
async def test_bad_api_token_is_401(header: str | None, route: Any, guarded: Service) -> None:
    method, path = route
    headers = {"Content-Type": J} | ({"Authorization": header} if header is not None else {})
    body = url_body(GOOD_URL) if method == "POST" else b""
    status, _, answer = await Raw(guarded.base_url)(method, path, headers=headers, body=body)
    assert_error(status, answer, 401, "unauthorized")


@pytest.mark.parametrize(("method", "path"), OTHER_ROUTES)
async def test_every_route_wants_a_token(method: str, path: str, guarded: Service) -> None:
    status, _, answer = await Raw(guarded.base_url)(method, path)
    assert_error(status, answer, 401, "unauthorized")


@pytest.mark.parametrize(
    "header", [f"Bearer {API_TOKEN}\x0b", f"Bearer {API_TOKEN}\x00"], ids=["vertical_tab", "nul"]
)
async def test_header_the_http_parser_refuses_is_a_4xx(header: str, guarded: Service) -> None:
    """Refused by aiohttp's parser before any handler: a 4xx, though not our JSON."""
    status, _, _ = await Raw(guarded.base_url)(
        "GET", "/downloads", headers={"Authorization": header}
    )
    assert status == 400


@pytest.mark.parametrize(
    "header", [None, "Basic dXNlcjpwYXNz", "Bearer wrong-token-0123456789abcdef"]
)
async def test_health_needs_no_token(header: str | None, guarded: Service) -> None:
    headers = {"Authorization": header} if header else {}
    status, _, body = await Raw(guarded.base_url)("GET", "/health", headers=headers)
    assert status == 200 and body["status"] == "ok", body


async def test_401_says_how_to_authenticate(guarded: Service) -> None:
    """RFC 9110 §15.5.2: a 401 MUST carry WWW-Authenticate."""
    status, headers, _ = await Raw(guarded.base_url)("GET", "/downloads")
    assert status == 401
    assert headers.get("www-authenticate", "").startswith("Bearer"), headers


async def test_the_right_token_is_accepted(guarded: Service) -> None:
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    status, _, body = await Raw(guarded.base_url)("GET", "/downloads", headers=headers)
    assert status == 200 and len(body["items"]) == await job_count(guarded)


# fmt: off
JOBS_AUTH_REFUSED = [
    P(None, None, id="no_auth"),
    P({"token": "wrong-token-0123456789abcdef"}, None, id="wrong_token"),
    P({"token": API_TOKEN + " "}, None, id="trailing_space"),
    P({"token": API_TOKEN + "\n"}, None, id="trailing_newline"),
    P({"token": 12345}, None, id="token_number"),
    P({"token": [API_TOKEN]}, None, id="token_list"),
    P(API_TOKEN, None, id="auth_not_a_dict"),
    P({"token": "x" * 10_000}, None, id="token_10k"),
    P(None, {"Authorization": "Basic dXNlcjpwYXNz"}, id="basic_header"),
    P(None, {"Authorization": "Bearer wrong-token-0123456789"}, id="wrong_header"),
]
# fmt: on


async def _connect_jobs(base_url: str, auth: Any, headers: Any) -> socketio.AsyncClient:
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(
        base_url, namespaces=["/jobs"], auth=auth, headers=headers or {},
        transports=["websocket"], wait_timeout=5,
    )  # fmt: skip
    return client


@pytest.mark.parametrize(("auth", "headers"), JOBS_AUTH_REFUSED)
async def test_jobs_socket_refuses_bad_tokens(auth: Any, headers: Any, guarded: Service) -> None:
    with pytest.raises(socketio.exceptions.ConnectionError):
        client = await _connect_jobs(guarded.base_url, auth, headers)
        await client.disconnect()


@pytest.mark.parametrize(
    ("auth", "headers"),
    [
        P({"token": API_TOKEN}, None, id="auth_token"),
        P(None, {"Authorization": f"Bearer {API_TOKEN}"}, id="bearer_header"),
    ],
)
async def test_jobs_socket_accepts_the_right_token(
    auth: Any, headers: Any, guarded: Service
) -> None:
    client = await _connect_jobs(guarded.base_url, auth, headers)
    try:
        answer = await client.call("subscribe", {"all": True}, namespace="/jobs", timeout=5)
        assert answer == {"ok": True}
    finally:
        await client.disconnect()


# == 5. The /worker socket ===========================================================

# fmt: off
WORKER_AUTH_REFUSED = [
    P(None, id="no_auth"),
    P(WORKER_TOKEN, id="auth_string"),
    P([WORKER_TOKEN, "w-1"], id="auth_list"),
    P({}, id="auth_empty"),
    P({"workerId": "w-1"}, id="token_missing"),
    P({"token": None, "workerId": "w-1"}, id="token_null"),
    P({"token": 12345, "workerId": "w-1"}, id="token_number"),
    P({"token": [WORKER_TOKEN], "workerId": "w-1"}, id="token_list"),
    P({"token": "", "workerId": "w-1"}, id="token_empty"),
    P({"token": "wrong-worker-token-0123456789", "workerId": "w-1"}, id="token_wrong"),
    P({"token": WORKER_TOKEN + " ", "workerId": "w-1"}, id="token_trailing_space"),
    P({"token": WORKER_TOKEN + "\n", "workerId": "w-1"}, id="token_trailing_newline"),
    P({"token": WORKER_TOKEN[:-1], "workerId": "w-1"}, id="token_prefix"),
    P({"token": "x" * 10_000, "workerId": "w-1"}, id="token_10k"),
    P({"token": API_TOKEN, "workerId": "w-1"}, id="token_of_the_api"),
    P({"token": WORKER_TOKEN}, id="worker_id_missing"),
    P({"token": WORKER_TOKEN, "workerId": None}, id="worker_id_null"),
    P({"token": WORKER_TOKEN, "workerId": 7}, id="worker_id_number"),
    P({"token": WORKER_TOKEN, "workerId": {"id": "w"}}, id="worker_id_object"),
    P({"token": WORKER_TOKEN, "workerId": "keeper"}, id="worker_id_already_connected"),
    P({"token": WORKER_TOKEN, "workerId": ""}, id="worker_id_empty"),
    P({"token": WORKER_TOKEN, "workerId": "w\n1"}, id="worker_id_newline"),
    P({"token": WORKER_TOKEN, "workerId": "w" * 1000}, id="worker_id_1000_chars"),
]
# fmt: on


@pytest.mark.parametrize("auth", WORKER_AUTH_REFUSED)
async def test_worker_socket_refuses_bad_auth(
    auth: Any, main: Service, keeper: ScriptedWorker, checked: None
) -> None:
    dispatcher = main.dispatcher
    assert dispatcher is not None
    before = set(dispatcher.roster.worker_ids())
    intruder = scripted(main, "w-1", auth=auth)
    try:
        with pytest.raises(socketio.exceptions.ConnectionError):
            await intruder.connect()
    finally:
        await intruder.close()
        # If it did get in, it must not linger into the next case.
        await eventually(
            lambda: set(dispatcher.roster.worker_ids()) == before, timeout_s=5, what="cleanup"
        )
    assert keeper.sio.connected


def baseline(job_id: str, attempt: int) -> dict[str, Any]:
    return {"jobId": job_id, "attempt": attempt, "stage": "downloading", "progress": 12.5,
            "speed": 100, "eta": 9, "totalBytes": 4096}  # fmt: skip


ROW_FIELDS = ("status", "stage", "progress", "speed", "eta", "totalBytes", "filename", "size",
              "outputPath", "errorCode", "errorMessage", "attempts")  # fmt: skip


def row_state(job: dict[str, Any]) -> dict[str, Any]:
    return {k: job[k] for k in ROW_FIELDS}


class Bench:
    """Group 5's stage: a job held running by one scripted worker, another worker to
    forge events with, and a /jobs client subscribed to every job."""

    def __init__(self, service: Service, api: Api, watcher: JobsClient) -> None:
        self.service = service
        self.api = api
        self.watcher = watcher
        self.crew: list[ScriptedWorker] = []
        self.job: tuple[str, int, ScriptedWorker] | None = None
        self._hired = 0

    @property
    def dispatcher(self) -> Any:
        return self.service.dispatcher

    async def hire(self) -> ScriptedWorker:
        self._hired += 1
        worker = await scripted(self.service, f"crew-{self._hired}").connect()
        self.crew.append(worker)
        await eventually(
            lambda: self.dispatcher.has_worker(worker.worker_id),
            what="the new worker to be registered",
        )
        return worker

    async def start_job(self, url: str = HOLD_URL) -> tuple[str, int, ScriptedWorker]:
        """A new job, running on whichever scripted worker was idle."""
        if self.dispatcher.roster.idle_worker() is None:
            await self.hire()
        job_id = await submit(self.api, url, type="aria2")
        owner = await eventually(
            lambda: next((w for w in self.crew if job_id in w.starts), None),
            timeout_s=5,
            what="a worker to start the job",
        )
        return job_id, owner.starts[job_id]["attempt"], owner

    async def held(self) -> tuple[str, int, ScriptedWorker]:
        """The held job, started anew if a previous case ended it."""
        if self.job is not None:
            a = self.dispatcher.attempt(self.job[0])
            if a is not None and a.counts_events:
                return self.job
        job_id, attempt, owner = await self.start_job()
        await owner.emit("progress", baseline(job_id, attempt))
        await eventually(
            lambda: self.dispatcher.attempt(job_id).live.progress == 12.5, what="baseline"
        )
        self.job = (job_id, attempt, owner)
        return self.job

    def other_than(self, owner: ScriptedWorker) -> ScriptedWorker:
        return next(w for w in self.crew if w is not owner and w.sio.connected)

    async def counted(self, before: int, what: str) -> None:
        await eventually(
            lambda: self.dispatcher.ignored_events > before,
            timeout_s=2,
            interval_s=0.005,
            what=what,
        )

    async def fence(self, worker: ScriptedWorker) -> None:
        """Send an invalid event and wait until it is counted: the worker's earlier events
        have been handled by then."""
        before = self.dispatcher.ignored_events
        await worker.emit("progress", "fence")
        await self.counted(before, "the fence")


@pytest.fixture(scope="module")
async def stage(main: Service, rest: Api, keeper: ScriptedWorker) -> AsyncIterator[Bench]:
    async with JobsClient(main.base_url) as watcher:
        assert (await watcher.subscribe(all=True))["ok"] is True
        bench = Bench(main, rest, watcher)
        bench.crew.append(keeper)
        await bench.hire()  # a second worker, to forge events about jobs it does not own
        yield bench
        for worker in bench.crew[1:]:
            await worker.close()


@pytest.fixture
def bench(stage: Bench, checked: None) -> Bench:
    """The stage, for one case that must leave the service healthy (``checked``)."""
    return stage


# Placeholders filled in at run time.
JOB, ATTEMPT, NEXT_ATTEMPT, DROP = "<job>", "<attempt>", "<attempt+1>", "<drop>"


def fill(template: Any, job_id: str, attempt: int) -> Any:
    if isinstance(template, dict):
        return {k: fill(v, job_id, attempt) for k, v in template.items() if v != DROP}
    if isinstance(template, list):
        return [fill(v, job_id, attempt) for v in template]
    if isinstance(template, str):
        return {JOB: job_id, ATTEMPT: attempt, NEXT_ATTEMPT: attempt + 1}.get(template, template)
    return template


PROGRESS = {"jobId": JOB, "attempt": ATTEMPT, "stage": "downloading", "progress": 50.0,
            "speed": 1000, "eta": 5, "totalBytes": 4096}  # fmt: skip
COMPLETED = {"jobId": JOB, "attempt": ATTEMPT, "files": [{"name": "media.bin", "size": 15}]}
FAILED = {"jobId": JOB, "attempt": ATTEMPT, "errorCode": "forged", "message": "a forged failure"}


def pg(**over: Any) -> dict[str, Any]:
    return {**PROGRESS, **over}


def cp(*files: Any, **over: Any) -> dict[str, Any]:
    return {**COMPLETED, "files": list(files), **over}


def fl(**over: Any) -> dict[str, Any]:
    return {**FAILED, **over}


def one(**over: Any) -> dict[str, Any]:
    return cp({"name": "media.bin", "size": 15, **over})


# fmt: off
FORGED = [
    # someone else's job, or an attempt that is not the current one
    P("owner", "progress", pg(jobId=NO_SUCH_JOB), id="progress_unknown_job"),
    P("owner", "completed", {**COMPLETED, "jobId": NO_SUCH_JOB}, id="completed_unknown_job"),
    P("owner", "failed", fl(jobId=NO_SUCH_JOB), id="failed_unknown_job"),
    P("other", "progress", PROGRESS, id="progress_other_worker"),
    P("other", "completed", COMPLETED, id="completed_other_worker"),
    P("other", "failed", FAILED, id="failed_other_worker"),
    P("owner", "progress", pg(attempt=NEXT_ATTEMPT), id="progress_next_attempt"),
    P("owner", "completed", {**COMPLETED, "attempt": NEXT_ATTEMPT}, id="completed_next_attempt"),
    P("owner", "failed", fl(attempt=NEXT_ATTEMPT), id="failed_next_attempt"),
    # not an object
    P("owner", "progress", "50%", id="payload_string"),
    P("owner", "progress", [PROGRESS], id="payload_list"),
    P("owner", "progress", 42, id="payload_number"),
    P("owner", "completed", None, id="payload_null"),
    P("owner", "completed", NO_PAYLOAD, id="payload_absent"),
    # jobId
    P("owner", "progress", pg(jobId="not-a-uuid"), id="job_id_word"),
    P("owner", "progress", pg(jobId=123), id="job_id_number"),
    P("owner", "progress", pg(jobId=None), id="job_id_null"),
    P("owner", "progress", pg(jobId=DROP), id="job_id_missing"),
    P("owner", "progress", pg(jobId="a" * 100), id="job_id_100_chars"),
    P("owner", "failed", fl(jobId=[JOB]), id="job_id_list"),
    P("owner", "failed", fl(jobId="\ud800"), id="job_id_lone_surrogate"),
    # attempt
    P("owner", "progress", pg(attempt=0), id="attempt_0"),
    P("owner", "progress", pg(attempt=-1), id="attempt_negative"),
    P("owner", "progress", pg(attempt=True), id="attempt_true"),
    P("owner", "progress", pg(attempt="1"), id="attempt_string"),
    P("owner", "progress", pg(attempt=10**9), id="attempt_10_pow_9"),
    P("owner", "progress", pg(attempt=1.0), id="attempt_float"),
    P("owner", "progress", pg(attempt=None), id="attempt_null"),
    P("owner", "progress", pg(attempt=DROP), id="attempt_missing"),
    P("owner", "completed", {**COMPLETED, "attempt": 2**70}, id="attempt_2_pow_70"),
    P("owner", "failed", fl(attempt="1"), id="failed_attempt_string"),
    # stage
    P("owner", "progress", pg(stage="exploding"), id="stage_unknown"),
    P("owner", "progress", pg(stage=["downloading"]), id="stage_list"),
    P("owner", "progress", pg(stage=None), id="stage_null"),
    P("owner", "progress", pg(stage=""), id="stage_empty"),
    P("owner", "progress", pg(stage="DOWNLOADING"), id="stage_uppercase"),
    P("owner", "progress", pg(stage="completed"), id="stage_terminal_word"),
    P("owner", "progress", pg(stage=DROP), id="stage_missing"),
    # progress
    P("owner", "progress", pg(progress=float("nan")), id="progress_nan"),
    P("owner", "progress", pg(progress=float("inf")), id="progress_infinity"),
    P("owner", "progress", pg(progress=float("-inf")), id="progress_minus_infinity"),
    P("owner", "progress", pg(progress=-1), id="progress_negative"),
    P("owner", "progress", pg(progress=100.5), id="progress_100_5"),
    P("owner", "progress", pg(progress="50"), id="progress_string"),
    P("owner", "progress", pg(progress=True), id="progress_true"),
    P("owner", "progress", pg(progress=[50]), id="progress_list"),
    P("owner", "progress", pg(progress={"v": 50}), id="progress_object"),
    P("owner", "progress", pg(progress=10**400), id="progress_10_pow_400"),
    # speed, eta, totalBytes
    P("owner", "progress", pg(speed=-1), id="speed_negative"),
    P("owner", "progress", pg(speed=1.5), id="speed_fraction"),
    P("owner", "progress", pg(speed="100"), id="speed_string"),
    P("owner", "progress", pg(speed=True), id="speed_true"),
    P("owner", "progress", pg(speed=float("nan")), id="speed_nan"),
    P("owner", "progress", pg(speed=float("inf")), id="speed_infinity"),
    P("owner", "progress", pg(speed=2**70), id="speed_2_pow_70"),
    P("owner", "progress", pg(eta=-5), id="eta_negative"),
    P("owner", "progress", pg(eta="soon"), id="eta_string"),
    P("owner", "progress", pg(eta=2.5), id="eta_fraction"),
    P("owner", "progress", pg(totalBytes=2**70), id="total_bytes_2_pow_70"),
    P("owner", "progress", pg(totalBytes=-1), id="total_bytes_negative"),
    P("owner", "progress", pg(totalBytes=1.5), id="total_bytes_fraction"),
    P("owner", "progress", pg(totalBytes="4096"), id="total_bytes_string"),
    # completed: files
    P("owner", "completed", cp(), id="files_empty"),
    P("owner", "completed", {**COMPLETED, "files": "media.bin"}, id="files_string"),
    P("owner", "completed", {**COMPLETED, "files": None}, id="files_null"),
    P("owner", "completed", {**COMPLETED, "files": DROP}, id="files_missing"),
    P("owner", "completed", {**COMPLETED, "files": {"name": "media.bin"}}, id="files_object"),
    P("owner", "completed", cp("media.bin"), id="file_entry_string"),
    P("owner", "completed", one(name="../x"), id="name_dotdot_slash"),
    P("owner", "completed", one(name=".."), id="name_dotdot"),
    P("owner", "completed", one(name="."), id="name_dot"),
    P("owner", "completed", one(name="a/b"), id="name_slash"),
    P("owner", "completed", one(name="/etc/passwd"), id="name_absolute"),
    P("owner", "completed", one(name="a\\b"), id="name_backslash"),
    P("owner", "completed", one(name=""), id="name_empty"),
    P("owner", "completed", one(name="x" * 300), id="name_300_bytes"),
    P("owner", "completed", one(name="\u00e9" * 128), id="name_256_utf8_bytes"),
    P("owner", "completed", one(name="x\n.bin"), id="name_newline"),
    P("owner", "completed", one(name="x\x00.bin"), id="name_nul"),
    P("owner", "completed", one(name="\ud800.bin"), id="name_lone_surrogate"),
    P("owner", "completed", one(name=5), id="name_number"),
    P("owner", "completed", one(name=None), id="name_null"),
    P("owner", "completed", one(size=-1), id="size_negative"),
    P("owner", "completed", one(size="15"), id="size_string"),
    P("owner", "completed", one(size=True), id="size_true"),
    P("owner", "completed", one(size=1.5), id="size_fraction"),
    P("owner", "completed", one(size=2**70), id="size_2_pow_70"),
    P("owner", "completed", one(size=DROP), id="size_missing"),
    # failed: errorCode and message
    P("owner", "failed", fl(errorCode="Not Snake"), id="error_code_words"),
    P("owner", "failed", fl(errorCode="bad\ncode"), id="error_code_newline"),
    P("owner", "failed", fl(errorCode=""), id="error_code_empty"),
    P("owner", "failed", fl(errorCode=5), id="error_code_number"),
    P("owner", "failed", fl(errorCode=None), id="error_code_null"),
    P("owner", "failed", fl(errorCode=DROP), id="error_code_missing"),
    P("owner", "failed", fl(errorCode="x" * 41), id="error_code_41_chars"),
    P("owner", "failed", fl(errorCode="1abc"), id="error_code_digit_first"),
    P("owner", "failed", fl(errorCode="a-b"), id="error_code_dash"),
    P("owner", "failed", fl(errorCode="ERROR"), id="error_code_uppercase"),
    P("owner", "failed", fl(message=5), id="message_number"),
    P("owner", "failed", fl(message=None), id="message_null"),
    P("owner", "failed", fl(message=DROP), id="message_missing"),
    P("owner", "failed", fl(message=["x"]), id="message_list"),
    # binary payloads
    P("owner", "progress", b"\x00\x01\xff" * 10, id="binary_progress"),
    P("owner", "completed", b"\x89PNG\r\n", id="binary_completed"),
    P("owner", "failed", b"\xde\xad\xbe\xef", id="binary_failed"),
    P("owner", "progress", pg(jobId=b"\x00" * 16), id="binary_job_id"),
    P("owner", "progress", pg(progress=b"50"), id="binary_progress_value"),
    P("owner", "completed", one(name=b"media.bin"), id="binary_file_name"),
    P("owner", "failed", fl(message=b"\xff" * 100), id="binary_message"),
    P("other", "completed", b"\x00" * 1000, id="binary_from_other_worker"),
]
# fmt: on


@pytest.mark.parametrize(("sender", "event", "template"), FORGED)
async def test_forged_worker_event_is_ignored(
    sender: str, event: str, template: Any, bench: Bench
) -> None:
    job_id, attempt, owner = await bench.held()
    worker = owner if sender == "owner" else bench.other_than(owner)
    before = row_state(await bench.api.job(job_id))
    seen, ignored = len(bench.watcher.events), bench.dispatcher.ignored_events
    await worker.emit(event, fill(template, job_id, attempt))
    await bench.counted(ignored, "the event to be counted as ignored")
    assert row_state(await bench.api.job(job_id)) == before
    assert bench.watcher.events[seen:] == []
    assert worker.sio.connected and owner.sio.connected
    _, listing = await bench.api.request("GET", f"/files/{job_id}")
    assert listing["files"] == [], "a forged event published files"


# fmt: off
HARMLESS = [
    P("owner", "heartbeat", "alive", id="heartbeat_string"),
    P("owner", "heartbeat", b"\x00\x01", id="heartbeat_binary"),
    P("owner", "heartbeat", {"jobId": JOB, "attempt": "1", "active": "yes"}, id="heartbeat_bad_fields"),
    P("owner", "heartbeat", {"jobId": JOB, "attempt": 2**70, "active": True}, id="heartbeat_huge_attempt"),
    P("other", "heartbeat", {"jobId": JOB, "attempt": ATTEMPT, "active": True}, id="heartbeat_other_worker"),
    P("other", "stopped", {"jobId": JOB, "attempt": ATTEMPT}, id="stopped_other_worker"),
    P("owner", "stopped", {"jobId": JOB, "attempt": ATTEMPT}, id="stopped_nobody_asked"),
    P("owner", "stopped", {"jobId": JOB, "attempt": 2**70}, id="stopped_huge_attempt"),
    P("owner", "stopped", "now", id="stopped_string"),
    P("owner", "explode", {"jobId": JOB}, id="unknown_event"),
    P("owner", "job:start", {"jobId": JOB, "url": GOOD_URL}, id="server_event_name"),
    P("owner", "subscribe", {"all": True}, id="jobs_event_name"),
]
# fmt: on


@pytest.mark.parametrize(("sender", "event", "template"), HARMLESS)
async def test_odd_worker_event_changes_nothing(
    sender: str, event: str, template: Any, bench: Bench
) -> None:
    job_id, attempt, owner = await bench.held()
    worker = owner if sender == "owner" else bench.other_than(owner)
    before = row_state(await bench.api.job(job_id))
    seen = len(bench.watcher.events)
    await worker.emit(event, fill(template, job_id, attempt))
    await bench.fence(worker)
    assert row_state(await bench.api.job(job_id)) == before
    assert bench.watcher.events[seen:] == []
    a = bench.dispatcher.attempt(job_id)
    assert a.phase is Phase.RUNNING and a.stop_action is None
    assert worker.sio.connected and owner.sio.connected


# fmt: off
RAW_PACKETS = [
    P('2/worker,["progress",' + "[" * 5000 + "]" * 5000 + "]", id="nested_5000"),
    P('2/worker,["progress",{"progress":' + "9" * 5000 + "}]", id="int_5000_digits"),
    P('2/worker,["progress",{', id="invalid_json"),
    P("2/worker,[]", id="empty_event"),
    P('2/worker,{"event":"progress"}', id="event_not_a_list"),
    P("2/worker,[123]", id="event_name_number"),
    P("9/worker,", id="unknown_packet_type"),
    P('5/worker,1-["progress",{"_placeholder":true,"num":0}]', id="binary_without_attachment"),
    P('2/jobs,["subscribe",{"all":true}]', id="namespace_not_joined"),
]
# fmt: on


@pytest.mark.parametrize("packet", RAW_PACKETS)
async def test_malformed_socketio_packet_is_harmless(packet: str, bench: Bench) -> None:
    job_id, _, owner = await bench.held()
    before = row_state(await bench.api.job(job_id))
    sender = await scripted(bench.service, f"raw-{uuid.uuid4().hex[:8]}").connect()
    try:
        await sender.sio.eio.send(packet)
        await asyncio.sleep(0.05)  # a drop, if any, is immediate
        if sender.sio.connected:
            await bench.fence(sender)  # still heard
    finally:
        await sender.close()
    assert row_state(await bench.api.job(job_id)) == before
    assert owner.sio.connected
    _, health = await bench.api.request("GET", "/health")
    assert health["status"] == "ok"


# fmt: off
OVERSIZED = [
    P("failed", fl(message="m" * 2**20), id="failed_message_1mb"),
    P("progress", pg(pad="x" * 70_000), id="progress_70k"),
    P("progress", b"\x00" * 70_000, id="binary_70k"),
    P("completed", cp(*[{"name": f"f{i}.bin", "size": 1} for i in range(5000)]), id="completed_5000_files"),
]
# fmt: on


@pytest.mark.parametrize(("event", "template"), OVERSIZED)
async def test_oversized_event_drops_the_sender_only(
    event: str, template: Any, bench: Bench
) -> None:
    job_id, attempt, owner = await bench.held()
    before = row_state(await bench.api.job(job_id))
    name = f"big-{uuid.uuid4().hex[:8]}"
    sender = await scripted(bench.service, name).connect()
    try:
        await sender.emit(event, fill(template, job_id, attempt))
        await eventually(lambda: not sender.sio.connected, timeout_s=5, what="the drop")
    finally:
        await sender.close()
    await eventually(
        lambda: not bench.dispatcher.has_worker(name),
        what="the server to forget the dropped worker",
    )
    assert row_state(await bench.api.job(job_id)) == before
    assert owner.sio.connected and bench.watcher.sio.connected
    again = await scripted(bench.service, name).connect()  # it may come back
    await again.close()


@pytest.fixture(scope="module")
async def finished_job(stage: Bench) -> tuple[str, int, ScriptedWorker, dict[str, Any]]:
    """A job its worker completed; late events about it follow."""
    await stage.held()  # so that the job below goes to another worker
    job_id, attempt, owner = await stage.start_job(GOOD_URL)
    job = await stage.api.wait_status(job_id, "completed", timeout_s=10)
    return job_id, attempt, owner, job


# fmt: off
LATE = [
    P("owner", "progress", pg(progress=99.0), id="progress"),
    P("owner", "completed", one(), id="completed_again"),
    P("owner", "completed", cp({"name": "evil.bin", "size": 4}), id="completed_other_file"),
    P("owner", "failed", FAILED, id="failed"),
    P("owner", "progress", pg(attempt=NEXT_ATTEMPT), id="progress_next_attempt"),
    P("owner", "completed", {**COMPLETED, "attempt": NEXT_ATTEMPT}, id="completed_next_attempt"),
    P("owner", "failed", fl(attempt=NEXT_ATTEMPT), id="failed_next_attempt"),
    P("other", "progress", PROGRESS, id="progress_other_worker"),
    P("other", "completed", one(), id="completed_other_worker"),
    P("other", "failed", FAILED, id="failed_other_worker"),
]
# fmt: on


@pytest.mark.parametrize(("sender", "event", "template"), LATE)
async def test_event_after_completion_is_ignored(
    sender: str, event: str, template: Any, bench: Bench, finished_job: Any
) -> None:
    job_id, attempt, owner, job = finished_job
    worker = owner if sender == "owner" else bench.other_than(owner)
    payload = fill(template, job_id, attempt)
    if event == "completed":  # files the late event would like to see published
        worker.stage(job_id, payload["attempt"], {"evil.bin": b"evil", "media.bin": b"x" * 15})
    seen, ignored = len(bench.watcher.events), bench.dispatcher.ignored_events
    await worker.emit(event, payload)
    await bench.counted(ignored, "the late event to be ignored")
    assert row_state(await bench.api.job(job_id)) == row_state(job)
    assert bench.watcher.events[seen:] == []
    _, listing = await bench.api.request("GET", f"/files/{job_id}")
    assert [f["name"] for f in listing["files"]] == ["media.bin"]
    assert await download(bench.api, job_id) == (200, STAGED), "a late event replaced the result"


async def test_late_events_reached_no_subscriber(bench: Bench, finished_job: Any) -> None:
    assert await nothing_arrives_within(bench.watcher, 0.5) == []
    assert [n for n, _ in bench.watcher.of(finished_job[0]) if n == "completed"] == ["completed"]


# A bound worker's last word, odd but its own: the job must end (failed with an errorCode,
# or completed) or the event be ignored; never a job stuck as running.
# fmt: off
LAST_WORDS = [
    P("completed", cp({"name": "media.bin", "size": 15}, {"name": "media.bin", "size": 15}),
      {"ignored", "failed", "completed"}, id="completed_duplicate_names"),
    P("completed", one(name="ghost.bin"), {"failed"}, id="completed_file_missing"),
    P("completed", one(name="link.bin"), {"failed"}, id="completed_symlink_to_etc_passwd"),
    P("completed", one(name="dir.bin"), {"failed"}, id="completed_directory"),
    P("failed", fl(errorCode="tool_failed", message="boom\x00after a nul"), {"failed"}, id="failed_message_with_nul"),
    P("failed", fl(errorCode="tool_failed", message="broken \ud800 surrogate"), {"failed"}, id="failed_message_lone_surrogate"),
    P("failed", fl(errorCode="tool_failed", message="\x1b[31m" + "m" * 60_000), {"failed"}, id="failed_message_60k"),
]
# fmt: on


@pytest.mark.parametrize(("event", "template", "outcomes"), LAST_WORDS)
async def test_odd_last_word_never_leaves_a_stuck_job(
    event: str, template: Any, outcomes: set[str], bench: Bench
) -> None:
    await bench.held()  # so that the job below goes to another worker
    job_id, attempt, owner = await bench.start_job()
    staging = owner.stage(job_id, attempt, {"media.bin": STAGED})
    (staging / "link.bin").symlink_to("/etc/passwd")
    (staging / "dir.bin").mkdir()
    ignored = bench.dispatcher.ignored_events
    await owner.emit(event, fill(template, job_id, attempt))

    async def outcome() -> str | None:
        a = bench.dispatcher.attempt(job_id)
        if bench.dispatcher.ignored_events > ignored and a is not None and a.counts_events:
            return "ignored"
        job = await bench.api.job(job_id)
        return job["status"] if job["status"] in ("failed", "completed") and a is None else None  # type: ignore[no-any-return]

    try:
        result = await eventually(outcome, timeout_s=3, what="an outcome, not a stuck job")
        assert result in outcomes
        job = await bench.api.job(job_id)
        if result == "failed":
            assert job["errorCode"] and SNAKE.fullmatch(job["errorCode"]), job
            assert job["errorMessage"] and len(job["errorMessage"]) <= 2000, job
        _, listing = await bench.api.request("GET", f"/files/{job_id}")
        names = {f["name"] for f in listing["files"]}
        assert names <= ({"media.bin"} if result == "completed" else set()), names
        assert (await download(bench.api, job_id, name="link.bin"))[0] == 404
    finally:
        if bench.dispatcher.attempt(job_id) is not None:  # leave no slot taken
            await bench.api.request("POST", f"/downloads/{job_id}/cancel")


async def test_the_held_job_can_still_be_cancelled(bench: Bench, main: Service, rest: Api) -> None:
    job_id, _, _ = await bench.held()
    status, body = await rest.request("POST", f"/downloads/{job_id}/cancel")
    assert status == 200, body
    await rest.wait_status(job_id, "cancelled", timeout_s=5)
    await drained(main, rest)
    assert main.dispatcher is not None and not len(main.dispatcher.roster)


# == 6. The /jobs socket =============================================================

# fmt: off
SUBSCRIBE_GARBAGE = [
    P(None, id="no_payload"),
    P("all", id="string"),
    P(42, id="number"),
    P([], id="list"),
    P([{"jobId": NO_SUCH_JOB}], id="list_of_object"),
    P({}, id="empty_object"),
    P({"jobId": "not-a-uuid"}, id="job_id_word"),
    P({"jobId": 42}, id="job_id_number"),
    P({"jobId": None}, id="job_id_null"),
    P({"jobId": [NO_SUCH_JOB]}, id="job_id_list"),
    P({"jobId": "x" * 1000}, id="job_id_1000_chars"),
    P({"jobId": "../../etc/passwd"}, id="job_id_traversal"),
    P({"jobId": NO_SUCH_JOB}, id="job_id_unknown"),
    P({"all": "yes"}, id="all_string"),
    P({"all": 1}, id="all_number"),
    P({"all": None}, id="all_null"),
    P(b"\x00\x01", id="binary"),
    P({"jobId": b"\x00" * 16}, id="binary_job_id"),
]
UNSUBSCRIBE_GARBAGE = [
    P(None, id="no_payload"),
    P("x", id="string"),
    P([], id="list"),
    P({"jobId": "not-a-uuid"}, id="job_id_word"),
    P({"jobId": 42}, id="job_id_number"),
    P({"all": "yes"}, id="all_string"),
    P({"jobId": NO_SUCH_JOB}, id="never_subscribed"),
    P(b"\xff", id="binary"),
]
# fmt: on


@pytest.fixture(scope="module")
async def jobs_listener(main: Service) -> AsyncIterator[JobsClient]:
    async with JobsClient(main.base_url) as client:
        yield client


@pytest.fixture
async def listener(jobs_listener: JobsClient, checked: None) -> AsyncIterator[JobsClient]:
    """A /jobs client that stays connected through the case, which leaves the service
    healthy (``checked``)."""
    yield jobs_listener
    assert jobs_listener.sio.connected, "another client's abuse dropped this one"


@pytest.mark.parametrize("payload", SUBSCRIBE_GARBAGE)
async def test_bad_subscribe_answers_an_error(payload: Any, listener: JobsClient) -> None:
    answer = await listener.sio.call("subscribe", payload, namespace="/jobs", timeout=5)
    assert answer["ok"] is False, answer
    error = answer["error"]
    assert SNAKE.fullmatch(error["code"]) and " " in error["message"], error
    assert listener.sio.connected


@pytest.mark.parametrize("payload", UNSUBSCRIBE_GARBAGE)
async def test_bad_unsubscribe_is_harmless(payload: Any, listener: JobsClient) -> None:
    answer = await listener.sio.call("unsubscribe", payload, namespace="/jobs", timeout=5)
    assert isinstance(answer, dict) and isinstance(answer.get("ok"), bool), answer
    if answer["ok"] is False:
        assert SNAKE.fullmatch(answer["error"]["code"]) and answer["error"]["message"]
    assert listener.sio.connected


@pytest.mark.parametrize(
    "packet",
    [
        P('2/jobs,["subscribe",{"jobId":"\\ud800"}]', id="job_id_lone_surrogate"),
        P('2/jobs,["subscribe",' + "[" * 5000 + "]" * 5000 + "]", id="nested_5000"),
        P('2/jobs,["subscribe",{"jobId":' + "9" * 5000 + "}]", id="int_5000_digits"),
        P('2/jobs,["subscribe"', id="invalid_json"),
    ],
)
async def test_malformed_jobs_packet_is_harmless(
    packet: str, main: Service, listener: JobsClient
) -> None:
    async with JobsClient(main.base_url) as client:
        await client.sio.eio.send(packet)
        await asyncio.sleep(0.05)
        if client.sio.connected:  # still answers
            answer = await client.sio.call("subscribe", {"jobId": 1}, namespace="/jobs", timeout=5)
            assert answer["ok"] is False
    assert listener.sio.connected


async def test_the_101st_subscription_is_refused(main: Service, checked: None) -> None:
    store = main.store
    assert store is not None
    ids = [uuid.uuid4() for _ in range(101)]
    for job_id in ids:  # rows only: never queued in Redis, never run
        await store.insert_job(job_id, GOOD_URL, JobType.ARIA2, {})
        await store.transition(job_id, {Status.QUEUED}, Status.CANCELLED)
    async with JobsClient(main.base_url) as client:
        for job_id in ids[:100]:
            answer = await client.subscribe(jobId=str(job_id))
            assert answer["ok"] is True, answer
        for refused in ({"jobId": str(ids[100])}, {"all": True}):
            answer = await client.subscribe(**refused)
            assert answer["ok"] is False and answer["error"]["code"] == "too_many_subscriptions"
            assert answer["error"]["message"]
        # Leaving one room makes space again.
        await client.sio.call("unsubscribe", {"jobId": str(ids[0])}, namespace="/jobs", timeout=5)
        assert (await client.subscribe(jobId=str(ids[100])))["ok"] is True


async def test_unknown_event_on_jobs_is_ignored(listener: JobsClient) -> None:
    await listener.sio.emit("explode", {"all": True}, namespace="/jobs")
    await listener.sio.emit("progress", {"jobId": NO_SUCH_JOB}, namespace="/jobs")
    answer = await listener.sio.call("subscribe", {"jobId": 1}, namespace="/jobs", timeout=5)
    assert answer["ok"] is False and listener.sio.connected


async def test_oversized_subscribe_drops_only_that_client(
    main: Service, listener: JobsClient
) -> None:
    async with JobsClient(main.base_url) as client:
        await client.sio.emit("subscribe", {"jobId": "x" * 100_000}, namespace="/jobs")
        await eventually(lambda: not client.sio.connected, timeout_s=5, what="the drop")
    assert listener.sio.connected


async def test_unknown_namespace_is_refused(main: Service, checked: None) -> None:
    client = socketio.AsyncClient(reconnection=False)
    try:
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect(
                main.base_url, namespaces=["/admin"], transports=["websocket"], wait_timeout=5
            )
    finally:
        await client.disconnect()


async def test_a_listener_can_still_follow_every_job(listener: JobsClient) -> None:
    assert (await listener.subscribe(all=True))["ok"] is True


# == 7. SSRF at the API ==============================================================
# These URLs reach only the SSRF service, which has no worker of any kind: they are
# checked, never fetched. No name here needs DNS ("localhost" is in /etc/hosts).


@pytest.fixture(scope="module")
async def ssrf_module(new_module_config: Any) -> AsyncIterator[Service]:
    config = await new_module_config(
        network={"allow_private": False, "allow_hosts": []}, workers={"processes": 0}
    )
    async with Service(config) as service:
        yield service


async def assert_ssrf_service_up(service: Service) -> None:
    status, _, body = await Raw(service.base_url)("GET", "/health")
    # No workers by design: the parts that exist are all up.
    assert status == 503 and body["checks"]["workers"]["connected"] == 0, body
    for part in ("postgres", "redis", "aria2"):
        assert body["checks"][part]["status"] == "ok", body
    assert service.failed is not None and not service.failed.done()


async def assert_no_job(service: Service) -> None:
    status, _, body = await Raw(service.base_url)("GET", "/downloads")
    assert status == 200 and body["items"] == [], [j["url"] for j in body["items"]]


@pytest.fixture
async def ssrf_service(ssrf_module: Service) -> AsyncIterator[Service]:
    """The service without workers; after the case: no job was created, and it is up."""
    yield ssrf_module
    await assert_no_job(ssrf_module)
    await assert_ssrf_service_up(ssrf_module)


# fmt: off
SSRF_URLS = [
    P("http://127.0.0.1/", id="loopback"),
    P("http://127.5.6.7/v.mp4", id="loopback_other"),
    P("http://2130706433/", id="loopback_decimal"),
    P("http://0177.0.0.1/", id="loopback_octal"),
    P("http://017700000001/", id="loopback_octal_integer"),
    P("http://0x7f.0.0.1/", id="loopback_hex"),
    P("http://0x7f000001/", id="loopback_hex_integer"),
    P("http://127.1/", id="loopback_short"),
    P("http://127.0.0.1:6379/", id="loopback_redis_port"),
    P("https://127.0.0.1/v.mp4", id="loopback_https"),
    P("http://user:pw@127.0.0.1/", id="loopback_userinfo"),
    P("http://media.example.com@127.0.0.1/", id="loopback_after_fake_host"),
    P("http://[::1]/", id="ipv6_loopback"),
    P("http://[::ffff:127.0.0.1]/", id="ipv4_mapped_dotted"),
    P("http://[::ffff:7f00:1]/", id="ipv4_mapped_hex"),
    P("http://[::127.0.0.1]/", id="ipv4_compatible"),
    P("http://[2002:7f00:1::]/", id="6to4_loopback"),
    P("http://[64:ff9b::7f00:1]/", id="nat64_loopback"),
    P("http://[64:ff9b::a9fe:a9fe]/", id="nat64_metadata"),
    P("http://[fe80::1]/", id="ipv6_link_local"),
    P("http://[fe80::1%25eth0]/", id="ipv6_link_local_zone"),
    P("http://[fd00::1]/", id="ipv6_unique_local"),
    P("http://[fd00:ec2::254]/", id="ipv6_aws_metadata"),
    P("http://[::]/", id="ipv6_unspecified"),
    P("http://[ff02::1]/", id="ipv6_multicast"),
    P("http://10.0.0.1/", id="private_10"),
    P("http://172.16.0.1/", id="private_172_16"),
    P("http://172.31.255.254/", id="private_172_31"),
    P("http://192.168.1.1/", id="private_192_168"),
    P("http://169.254.169.254/latest/meta-data/", id="cloud_metadata"),
    P("http://2852039166/", id="cloud_metadata_decimal"),
    P("http://[::ffff:169.254.169.254]/", id="cloud_metadata_mapped"),
    P("http://100.64.0.1/", id="cgnat"),
    P("http://100.100.100.200/", id="cgnat_alibaba_metadata"),
    P("http://224.0.0.1/", id="multicast"),
    P("http://255.255.255.255/", id="broadcast"),
    P("http://0.0.0.0/", id="unspecified"),
    P("http://0/", id="zero"),
    P("http://localhost/", id="localhost"),
    P("http://LOCALHOST:8080/", id="localhost_uppercase"),
    P("http://127.0.0.1/live.m3u8", id="loopback_stream"),
    P("http://10.0.0.1/file.zip", id="private_archive"),
]
# fmt: on


@pytest.mark.parametrize("url", SSRF_URLS)
async def test_ssrf_private_address_is_refused_at_the_api(url: str, ssrf_service: Service) -> None:
    status, _, answer = await Raw(ssrf_service.base_url)(
        "POST", "/downloads", headers={"Content-Type": J}, body=url_body(url)
    )
    assert_error(status, answer, 400, "blocked_address")


@pytest.mark.parametrize("job_type", ["ytdlp", "aria2", "ffmpeg", "twitter"])
async def test_ssrf_refused_whatever_the_type(job_type: str, ssrf_service: Service) -> None:
    body = url_body("http://169.254.169.254/latest/meta-data/", type=job_type)
    status, _, answer = await Raw(ssrf_service.base_url)(
        "POST", "/downloads", headers={"Content-Type": J}, body=body
    )
    assert_error(status, answer, 400, "blocked_address")


async def test_ssrf_service_without_workers_is_up_and_empty(ssrf_module: Service) -> None:
    await assert_no_job(ssrf_module)
    await assert_ssrf_service_up(ssrf_module)


# == After everything ================================================================


async def test_after_all_that_a_normal_job_still_completes(
    main: Service, rest: Api, guarded_service: Service, guarded_api: Api,
    media_server: MediaServer, media_dir: Path, checked: None,
) -> None:  # fmt: skip
    # On the service that took the bad REST input and the forged events.
    await assert_healthy(main, rest)
    job_id = await submit(rest, GOOD_URL, type="aria2")
    job = await rest.wait_status(job_id, "completed", "failed", timeout_s=10)
    assert job["status"] == "completed", job
    assert await download(rest, job_id) == (200, STAGED)
    # And a real download by a real tool on the token-protected one.
    job_id = await submit(guarded_api, media_server.url("video.mp4"))
    job = await guarded_api.wait_status(job_id, "completed", "failed", timeout_s=30)
    assert job["status"] == "completed", job
    status, body = await download(guarded_api, job_id)
    assert status == 200
    assert (
        hashlib.sha256(body).digest()
        == hashlib.sha256((media_dir / "video.mp4").read_bytes()).digest()
    )
    await assert_healthy(guarded_service, guarded_api)

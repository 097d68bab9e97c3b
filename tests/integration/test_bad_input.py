"""Bad input of every kind gets a clear refusal and loses nothing.

Seven tables: REST bodies, query strings, ids and paths, API tokens, the ``/worker``
socket, the ``/jobs`` socket and SSRF addresses. Each case must end in a 4xx with
``{"error": {"code", "message"}}``, a refused socket, an ignored event or a failed job:
never a 500, a hang, a stuck job or a half-written file. After each group the service is
still healthy, and a normal job completes at the end of the module.

Safety: the services that receive bad URLs have no worker processes (``workers.processes
0``); their only workers are scripted clients in this file that never fetch anything.
The one service with a real worker only ever gets loopback URLs.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import socketio

from mediad import results
from mediad.models import JobType, Status
from mediad.service import Service
from tests.integration.test_pipeline import JobsClient
from tests.support.harness import Api, eventually, running_service
from tests.support.mediaserver import MediaServer

WORKER_TOKEN = "bad-input-worker-token-0123456789"
API_TOKEN = "bad-input-api-token-0123456789abcdef"
# Loopback, port 9 (discard): nothing here ever fetches it, and if something did it
# would stay on this machine.
GOOD_URL = "http://127.0.0.1:9/video.mp4"
# Scripted workers keep a job whose URL contains this running until the test ends it.
HOLD = "/hold/"
HOLD_URL = f"http://127.0.0.1:9{HOLD}video.mp4"
SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")
NO_SUCH_JOB = "0b7e5a52-6f7e-4d8c-9a51-3c1f0e6d2a91"
STAGED = b"bad-input-suite"


# -- helpers -------------------------------------------------------------------------


def assert_error(status: int, body: Any, want_status: int | set[int], want_code: str | set[str]):  # type: ignore[no-untyped-def]
    """A clear refusal: the status, the code, and a short human message."""
    statuses = {want_status} if isinstance(want_status, int) else want_status
    codes = {want_code} if isinstance(want_code, str) else want_code
    assert status in statuses, (status, body)
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert error["code"] in codes, error
    assert SNAKE.fullmatch(error["code"]), error
    message = error["message"]
    assert isinstance(message, str) and " " in message.strip(), error
    assert len(message) <= 1000, f"a {len(message)}-character message echoes the input"
    assert "Traceback" not in message


class Raw:
    """One HTTP/1.1 exchange with exactly the bytes given (paths, headers and bodies that
    a normal client would clean up)."""

    def __init__(self, base_url: str) -> None:
        self.port = int(base_url.rsplit(":", 1)[1])

    async def __call__(
        self,
        method: str,
        target: str,
        *,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        head: bytes = b"",
    ) -> tuple[int, dict[str, str], Any]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if "Transfer-Encoding" not in (headers or {}):
            lines.append(f"Content-Length: {len(body)}")
        writer.write("\r\n".join(lines).encode("latin-1") + b"\r\n" + head + b"\r\n" + body)
        try:
            await writer.drain()
        except ConnectionError:
            pass  # the server answered (413) before reading everything
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

    async def post_json(self, body: bytes, content_type: str = "application/json") -> Any:
        return await self("POST", "/downloads", headers={"Content-Type": content_type}, body=body)


class ScriptedWorker:
    """A /worker client driven by this file. A job whose URL contains ``/hold/`` stays
    running until the test ends it; any other job completes at once with one small staged
    file. Stop requests are confirmed. It never fetches anything."""

    def __init__(self, service: Service, worker_id: str, auth: Any = None) -> None:
        self.service = service
        self.worker_id = worker_id
        self.auth = {"token": WORKER_TOKEN, "workerId": worker_id} if auth is None else auth
        self.sio = socketio.AsyncClient(reconnection=False)
        self.starts: dict[str, dict[str, Any]] = {}
        self.sio.on("job:start", self._on_start, namespace="/worker")
        self.sio.on("job:control", self._on_control, namespace="/worker")

    async def connect(self) -> ScriptedWorker:
        await self.sio.connect(
            self.service.base_url, namespaces=["/worker"], auth=self.auth,
            transports=["websocket"], wait_timeout=5,
        )  # fmt: skip
        return self

    async def close(self) -> None:
        await self.sio.disconnect()

    async def emit(self, event: str, data: Any) -> None:
        await self.sio.emit(event, data, namespace="/worker")

    def stage(self, job_id: str, attempt: int, files: dict[str, bytes]) -> None:
        staging = results.staging_dir(self.service.config.data_path, job_id, attempt)
        staging.mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            (staging / name).write_bytes(content)

    async def complete(self, job_id: str, attempt: int, files: dict[str, bytes]) -> None:
        self.stage(job_id, attempt, files)
        entries = [{"name": n, "size": len(c)} for n, c in files.items()]
        await self.emit("completed", {"jobId": job_id, "attempt": attempt, "files": entries})

    async def _on_start(self, data: dict[str, Any]) -> None:
        self.starts[data["jobId"]] = data
        if HOLD not in data["url"]:
            await self.complete(data["jobId"], data["attempt"], {"media.bin": STAGED})

    async def _on_control(self, data: dict[str, Any]) -> None:
        await self.emit("stopped", {"jobId": data["jobId"], "attempt": data["attempt"]})


async def assert_healthy(service: Service, api: Api) -> None:
    """GET /health 200 with workers connected, and no background task died."""
    status, body = await api.request("GET", "/health")
    assert status == 200, body
    assert body["status"] == "ok" and body["checks"]["workers"]["connected"] >= 1, body
    assert service.failed is not None and not service.failed.done()


async def nothing_arrives_within(client: JobsClient, seconds: float) -> list[Any]:
    """A short negative window: the events a subscriber received meanwhile (none, we hope)."""
    seen = len(client.events)
    await asyncio.sleep(seconds)
    return client.events[seen:]


async def submit(api: Api, url: str, **fields: Any) -> str:
    return (await api.submit(url, **fields))["jobId"]  # type: ignore[no-any-return]


# -- services ------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def main(new_module_config: Any) -> AsyncIterator[Service]:
    """Groups 1, 2, 3, 5 and 6: no worker processes; scripted workers only."""
    config = await new_module_config(
        workers={"processes": 0, "token": WORKER_TOKEN},
        queue={"concurrency": 6, "watchdog_s": 600, "reconcile_interval_s": 3600},
        network={"allow_private": True},
    )
    async with Service(config) as service:
        yield service


@pytest.fixture(scope="module")
async def keeper(main: Service) -> AsyncIterator[ScriptedWorker]:
    worker = await ScriptedWorker(main, "keeper").connect()
    yield worker
    await worker.close()


@pytest.fixture(scope="module")
async def rest(main: Service, keeper: ScriptedWorker) -> AsyncIterator[Api]:
    client = Api(main.base_url)
    yield client
    await client.close()


@pytest.fixture(scope="module")
def raw(main: Service) -> Raw:
    return Raw(main.base_url)


async def _drained(service: Service, api: Api) -> None:
    """Whatever a group let through has finished: nothing queued, nothing running."""
    dispatcher = service.dispatcher
    assert dispatcher is not None

    async def idle() -> bool:
        _, body = await api.request("GET", "/health")
        return body["queue"]["depth"] == 0 and not dispatcher.running

    await eventually(idle, timeout_s=10, what="the queue to drain")


# == 1. POST /downloads bodies =======================================================


def js(obj: Any) -> bytes:
    return orjson.dumps(obj)


def with_url(url: Any, **more: Any) -> bytes:
    return js({"url": url, **more})


def opts(job_type: str, options: Any) -> bytes:
    return js({"url": GOOD_URL, "type": job_type, "options": options})


def deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


JSON = "application/json"
INVALID_JSON = (400, "invalid_json")
INVALID_BODY = (400, "invalid_body")
INVALID_URL = (400, "invalid_url")
BAD_SCHEME = (400, "unsupported_scheme")
INVALID_TYPE = (400, "invalid_type")
INVALID_OPTIONS = (400, "invalid_options")
TOO_LARGE = (413, "payload_too_large")

BODY_CASES = [
    # not JSON, or not sent as JSON
    pytest.param(b"url=http://127.0.0.1:9/v.mp4", JSON, INVALID_JSON, id="form_data_as_json"),
    pytest.param(b'{"url": "http://127.0.0.1:9/v.mp4"', JSON, INVALID_JSON, id="truncated"),
    pytest.param(with_url(GOOD_URL) + b" x", JSON, INVALID_JSON, id="trailing_garbage"),
    pytest.param(b"{'url': 'http://127.0.0.1:9/v.mp4'}", JSON, INVALID_JSON, id="single_quotes"),
    pytest.param(b'{"url": "http://127.0.0.1:9/v.mp4",}', JSON, INVALID_JSON, id="trailing_comma"),
    pytest.param(b"", JSON, INVALID_JSON, id="empty_body"),
    pytest.param(b" \r\n\t", JSON, INVALID_JSON, id="whitespace_body"),
    pytest.param(with_url(GOOD_URL), "text/plain", INVALID_BODY, id="content_type_text"),
    pytest.param(
        with_url(GOOD_URL), "application/x-www-form-urlencoded", INVALID_BODY, id="content_type_form"
    ),
    pytest.param(
        with_url(GOOD_URL), "multipart/form-data; boundary=x", INVALID_BODY, id="content_type_multipart"
    ),
    pytest.param(with_url(GOOD_URL), "application/xml", INVALID_BODY, id="content_type_xml"),
    pytest.param(with_url(GOOD_URL), None, INVALID_BODY, id="content_type_missing"),
    pytest.param(
        '{"url": "http://127.0.0.1:9/v.mp4"}'.encode("utf-16"),
        "application/json; charset=utf-16",
        INVALID_JSON,
        id="utf16_body",
    ),
    pytest.param(b"\xef\xbb\xbf" + with_url(GOOD_URL), JSON, INVALID_JSON, id="utf8_bom"),
    # JSON that is not an object
    pytest.param(b"[]", JSON, INVALID_BODY, id="array_empty"),
    pytest.param(js([{"url": GOOD_URL}]), JSON, INVALID_BODY, id="array_of_body"),
    pytest.param(js(GOOD_URL), JSON, INVALID_BODY, id="string"),
    pytest.param(b"42", JSON, INVALID_BODY, id="number"),
    pytest.param(b"null", JSON, INVALID_BODY, id="null"),
    pytest.param(b"true", JSON, INVALID_BODY, id="bool"),
    # url missing or of the wrong type
    pytest.param(b"{}", JSON, INVALID_URL, id="url_missing"),
    pytest.param(js({"type": "aria2"}), JSON, INVALID_URL, id="url_missing_type_given"),
    pytest.param(with_url(42), JSON, INVALID_URL, id="url_number"),
    pytest.param(with_url(1.5), JSON, INVALID_URL, id="url_float"),
    pytest.param(with_url([GOOD_URL]), JSON, INVALID_URL, id="url_list"),
    pytest.param(with_url({"href": GOOD_URL}), JSON, INVALID_URL, id="url_object"),
    pytest.param(with_url(True), JSON, INVALID_URL, id="url_true"),
    pytest.param(with_url(False), JSON, INVALID_URL, id="url_false"),
    pytest.param(with_url(None), JSON, INVALID_URL, id="url_null"),
    pytest.param(with_url(""), JSON, INVALID_URL, id="url_empty"),
    pytest.param(with_url("   "), JSON, INVALID_URL, id="url_spaces"),
    pytest.param(with_url("\t\r\n"), JSON, INVALID_URL, id="url_newlines_only"),
    pytest.param(with_url("\u00a0\u3000"), JSON, INVALID_URL, id="url_unicode_spaces_only"),
    # too long
    pytest.param(
        with_url("http://127.0.0.1:9/" + "a" * 2030), JSON, INVALID_URL, id="url_2049_chars"
    ),
    pytest.param(
        with_url("http://127.0.0.1:9/" + "a" * 60_000), JSON, INVALID_URL, id="url_60k_chars"
    ),
    pytest.param(with_url("http://127.0.0.1:9/" + "a" * 2**20), JSON, TOO_LARGE, id="url_1mb"),
    # spaces and control characters
    pytest.param(with_url("http://127.0.0.1:9/a b.mp4"), JSON, INVALID_URL, id="url_space"),
    pytest.param(with_url("http://127.0.0.1:9/a\nb.mp4"), JSON, INVALID_URL, id="url_newline"),
    pytest.param(
        with_url("http://127.0.0.1:9/x\r\nX-Injected: 1"), JSON, INVALID_URL, id="url_crlf_injection"
    ),
    pytest.param(with_url("http://127.0.0.1:9/a\tb"), JSON, INVALID_URL, id="url_tab"),
    pytest.param(with_url("http://127.0.0.1:9/a\x00b"), JSON, INVALID_URL, id="url_nul"),
    pytest.param(with_url("http://127.0.0.1:9/a\x7fb"), JSON, INVALID_URL, id="url_del"),
    pytest.param(with_url("http://127.0.0.1:9/\x1b[31m"), JSON, INVALID_URL, id="url_escape"),
    pytest.param(with_url("http://127.0.0.1:9/a\u0085b"), JSON, INVALID_URL, id="url_c1_next_line"),
    pytest.param(
        with_url("http://127.0.0.1:9/a\u2028b"), JSON, INVALID_URL, id="url_line_separator"
    ),
    # schemes other than http and https
    pytest.param(with_url("ftp://127.0.0.1/v.mp4"), JSON, BAD_SCHEME, id="scheme_ftp"),
    pytest.param(with_url("file:///etc/passwd"), JSON, BAD_SCHEME, id="scheme_file"),
    pytest.param(with_url("javascript:alert(1)"), JSON, BAD_SCHEME, id="scheme_javascript"),
    pytest.param(with_url("data:text/plain,hello"), JSON, BAD_SCHEME, id="scheme_data"),
    pytest.param(
        with_url("magnet:?xt=urn:btih:" + "0" * 40), JSON, BAD_SCHEME, id="scheme_magnet"
    ),
    pytest.param(with_url("gopher://127.0.0.1:70/_x"), JSON, BAD_SCHEME, id="scheme_gopher"),
    pytest.param(with_url("ws://127.0.0.1:9/"), JSON, BAD_SCHEME, id="scheme_ws"),
    pytest.param(with_url("rtmp://127.0.0.1/live"), JSON, BAD_SCHEME, id="scheme_rtmp"),
    pytest.param(
        with_url("view-source:http://127.0.0.1:9/"), JSON, BAD_SCHEME, id="scheme_view_source"
    ),
    pytest.param(with_url("127.0.0.1:9/v.mp4"), JSON, BAD_SCHEME, id="no_scheme"),
    pytest.param(with_url("http:/127.0.0.1/v.mp4"), JSON, BAD_SCHEME, id="http_one_slash"),
    pytest.param(with_url("http:127.0.0.1/v.mp4"), JSON, BAD_SCHEME, id="http_no_slash"),
    pytest.param(with_url("//127.0.0.1/v.mp4"), JSON, BAD_SCHEME, id="scheme_relative"),
    # no host, or a host that is not one
    pytest.param(with_url("http://"), JSON, INVALID_URL, id="host_missing"),
    pytest.param(with_url("http:///v.mp4"), JSON, INVALID_URL, id="host_empty_path"),
    pytest.param(with_url("http://:80/v.mp4"), JSON, INVALID_URL, id="host_port_only"),
    pytest.param(with_url("http://user@/v.mp4"), JSON, INVALID_URL, id="host_userinfo_only"),
    pytest.param(with_url("http://?q=1"), JSON, INVALID_URL, id="host_query_only"),
    pytest.param(with_url("http://#top"), JSON, INVALID_URL, id="host_fragment_only"),
    pytest.param(with_url("http://[/v.mp4"), JSON, INVALID_URL, id="host_open_bracket"),
    pytest.param(with_url("http://[::1/v.mp4"), JSON, INVALID_URL, id="host_unclosed_ipv6"),
    pytest.param(with_url("http://]/v.mp4"), JSON, INVALID_URL, id="host_close_bracket"),
    pytest.param(
        with_url("http://[::1/v.mp4", type="aria2"), JSON, INVALID_URL, id="host_unclosed_typed"
    ),
    pytest.param(with_url("http://127.0.0.1:99999/v.mp4"), JSON, INVALID_URL, id="port_too_big"),
    pytest.param(with_url("http://127.0.0.1:port/v.mp4"), JSON, INVALID_URL, id="port_not_number"),
    # type
    pytest.param(with_url(GOOD_URL, type="YTDLP"), JSON, INVALID_TYPE, id="type_uppercase"),
    pytest.param(with_url(GOOD_URL, type="curl"), JSON, INVALID_TYPE, id="type_unknown"),
    pytest.param(with_url(GOOD_URL, type=""), JSON, INVALID_TYPE, id="type_empty"),
    pytest.param(with_url(GOOD_URL, type="aria2 "), JSON, INVALID_TYPE, id="type_trailing_space"),
    pytest.param(with_url(GOOD_URL, type=5), JSON, INVALID_TYPE, id="type_number"),
    pytest.param(with_url(GOOD_URL, type=["ytdlp"]), JSON, INVALID_TYPE, id="type_list"),
    pytest.param(with_url(GOOD_URL, type={"name": "aria2"}), JSON, INVALID_TYPE, id="type_object"),
    pytest.param(with_url(GOOD_URL, type=True), JSON, INVALID_TYPE, id="type_bool"),
    # options that are not an object, or keys that do not apply
    pytest.param(with_url(GOOD_URL, options="best"), JSON, INVALID_OPTIONS, id="options_string"),
    pytest.param(with_url(GOOD_URL, options=[]), JSON, INVALID_OPTIONS, id="options_list"),
    pytest.param(with_url(GOOD_URL, options=5), JSON, INVALID_OPTIONS, id="options_number"),
    pytest.param(with_url(GOOD_URL, options=True), JSON, INVALID_OPTIONS, id="options_bool"),
    pytest.param(opts("ytdlp", {"exec": "id"}), JSON, INVALID_OPTIONS, id="ytdlp_exec"),
    pytest.param(opts("ytdlp", {"cookies": "/etc/passwd"}), JSON, INVALID_OPTIONS, id="ytdlp_cookies"),
    pytest.param(opts("ytdlp", {"": 1}), JSON, INVALID_OPTIONS, id="ytdlp_empty_key"),
    pytest.param(opts("ytdlp", {"Format": "best"}), JSON, INVALID_OPTIONS, id="ytdlp_key_case"),
    pytest.param(opts("aria2", {"format": "best"}), JSON, INVALID_OPTIONS, id="aria2_format"),
    pytest.param(opts("aria2", {"dir": "/etc"}), JSON, INVALID_OPTIONS, id="aria2_dir"),
    pytest.param(opts("ffmpeg", {"format": "best"}), JSON, INVALID_OPTIONS, id="ffmpeg_format"),
    pytest.param(opts("twitter", {"container": "mp4"}), JSON, INVALID_OPTIONS, id="twitter_container"),
    pytest.param(
        opts("ytdlp", {"k" * 50_000: 1}), JSON, INVALID_OPTIONS, id="ytdlp_50k_key_not_echoed"
    ),
    # option values: types, ranges, shell metacharacters
    pytest.param(opts("ytdlp", {"format": "best;id"}), JSON, INVALID_OPTIONS, id="format_semicolon"),
    pytest.param(opts("ytdlp", {"format": "best|id"}), JSON, INVALID_OPTIONS, id="format_pipe"),
    pytest.param(opts("ytdlp", {"format": "best&&id"}), JSON, INVALID_OPTIONS, id="format_and"),
    pytest.param(opts("ytdlp", {"format": "$(id)"}), JSON, INVALID_OPTIONS, id="format_subshell"),
    pytest.param(opts("ytdlp", {"format": "`id`"}), JSON, INVALID_OPTIONS, id="format_backticks"),
    pytest.param(opts("ytdlp", {"format": "${IFS}"}), JSON, INVALID_OPTIONS, id="format_braces"),
    pytest.param(opts("ytdlp", {"format": "best\nid"}), JSON, INVALID_OPTIONS, id="format_newline"),
    pytest.param(opts("ytdlp", {"format": "best\r"}), JSON, INVALID_OPTIONS, id="format_cr"),
    pytest.param(opts("ytdlp", {"format": "best\x00"}), JSON, INVALID_OPTIONS, id="format_nul"),
    pytest.param(opts("ytdlp", {"format": ""}), JSON, INVALID_OPTIONS, id="format_empty"),
    pytest.param(opts("ytdlp", {"format": "b" * 201}), JSON, INVALID_OPTIONS, id="format_201"),
    pytest.param(opts("ytdlp", {"format": 5}), JSON, INVALID_OPTIONS, id="format_number"),
    pytest.param(opts("ytdlp", {"format": ["best"]}), JSON, INVALID_OPTIONS, id="format_list"),
    pytest.param(opts("ytdlp", {"audioFormat": "wma"}), JSON, INVALID_OPTIONS, id="audio_unknown"),
    pytest.param(opts("ytdlp", {"audioFormat": "MP3"}), JSON, INVALID_OPTIONS, id="audio_case"),
    pytest.param(opts("ytdlp", {"audioFormat": 3}), JSON, INVALID_OPTIONS, id="audio_number"),
    pytest.param(opts("ytdlp", {"audioOnly": "yes"}), JSON, INVALID_OPTIONS, id="audio_only_str"),
    pytest.param(opts("ytdlp", {"audioOnly": 1}), JSON, INVALID_OPTIONS, id="audio_only_int"),
    pytest.param(opts("ytdlp", {"playlist": "true"}), JSON, INVALID_OPTIONS, id="playlist_str"),
    pytest.param(opts("ytdlp", {"maxItems": 0}), JSON, INVALID_OPTIONS, id="max_items_0"),
    pytest.param(opts("ytdlp", {"maxItems": -1}), JSON, INVALID_OPTIONS, id="max_items_neg"),
    pytest.param(opts("ytdlp", {"maxItems": 1001}), JSON, INVALID_OPTIONS, id="max_items_1001"),
    pytest.param(opts("ytdlp", {"maxItems": 1.5}), JSON, INVALID_OPTIONS, id="max_items_float"),
    pytest.param(opts("ytdlp", {"maxItems": "3"}), JSON, INVALID_OPTIONS, id="max_items_str"),
    pytest.param(opts("ytdlp", {"maxItems": True}), JSON, INVALID_OPTIONS, id="max_items_bool"),
    pytest.param(opts("ytdlp", {"maxItems": None}), JSON, INVALID_OPTIONS, id="max_items_null"),
    pytest.param(opts("ytdlp", {"maxItems": 2**64}), JSON, INVALID_OPTIONS, id="max_items_2_64"),
    pytest.param(opts("ytdlp", {"subtitles": []}), JSON, INVALID_OPTIONS, id="subs_empty"),
    pytest.param(opts("ytdlp", {"subtitles": "e"}), JSON, INVALID_OPTIONS, id="subs_one_letter"),
    pytest.param(opts("ytdlp", {"subtitles": ["en", 5]}), JSON, INVALID_OPTIONS, id="subs_number"),
    pytest.param(opts("ytdlp", {"subtitles": "en;rm"}), JSON, INVALID_OPTIONS, id="subs_shell"),
    pytest.param(opts("ytdlp", {"subtitles": ["../.."]}), JSON, INVALID_OPTIONS, id="subs_path"),
    pytest.param(opts("ytdlp", {"subtitles": ["en"] * 21}), JSON, INVALID_OPTIONS, id="subs_21"),
    pytest.param(opts("ytdlp", {"subtitles": {"en": True}}), JSON, INVALID_OPTIONS, id="subs_obj"),
    pytest.param(opts("ffmpeg", {"container": "avi"}), JSON, INVALID_OPTIONS, id="container_avi"),
    pytest.param(opts("ffmpeg", {"container": "MP4"}), JSON, INVALID_OPTIONS, id="container_case"),
    pytest.param(opts("twitter", {"mediaType": "gifs"}), JSON, INVALID_OPTIONS, id="media_type"),
    pytest.param(opts("twitter", {"includeRetweets": 1}), JSON, INVALID_OPTIONS, id="retweets_int"),
    pytest.param(opts("twitter", {"maxTweets": 0}), JSON, INVALID_OPTIONS, id="max_tweets_0"),
    pytest.param(opts("twitter", {"maxTweets": 3001}), JSON, INVALID_OPTIONS, id="max_tweets_3001"),
    pytest.param(opts("twitter", {"maxTweets": "5"}), JSON, INVALID_OPTIONS, id="max_tweets_str"),
    # unknown top-level fields
    pytest.param(with_url(GOOD_URL, callback="http://x"), JSON, (400, "unknown_field"), id="field_callback"),
    pytest.param(js({"URL": GOOD_URL}), JSON, (400, "unknown_field"), id="field_url_uppercase"),
    pytest.param(
        with_url(GOOD_URL, __proto__={"admin": True}), JSON, (400, "unknown_field"), id="field_proto"
    ),
    pytest.param(
        js({"url": GOOD_URL, "f" * 50_000: 1}), JSON, (400, "unknown_field"), id="field_50k_name_not_echoed"
    ),
    # JSON edge cases: depth, huge numbers, duplicates, NaN, encodings
    pytest.param(deep(10_000), JSON, ({400, 413}, {"invalid_json", "payload_too_large"}), id="deep_10000_arrays"),
    pytest.param(
        b'{"url": "http://127.0.0.1:9/v.mp4", "options": {"format": ' + deep(5_000) + b"}}",
        JSON,
        ({400, 413}, {"invalid_json", "payload_too_large"}),
        id="deep_in_options",
    ),
    pytest.param(
        b'{"url": "http://127.0.0.1:9/v.mp4", "options": {"maxItems": 1' + b"0" * 400 + b"}}",
        JSON,
        (400, {"invalid_json", "invalid_options"}),
        id="int_10_pow_400",
    ),
    pytest.param(
        b'{"url": "http://127.0.0.1:9/v.mp4", "options": {"maxItems": 1e400}}',
        JSON,
        (400, {"invalid_json", "invalid_options"}),
        id="float_1e400",
    ),
    pytest.param(
        b'{"url": "http://127.0.0.1:9/v.mp4", "url": "javascript:alert(1)"}',
        JSON,
        (400, {"unsupported_scheme", "invalid_json", "duplicate_field"}),
        id="duplicate_url_last_bad",
    ),
    pytest.param(
        b'{"url": "http://127.0.0.1:9/v.mp4", "type": "aria2", "type": "curl"}',
        JSON,
        (400, {"invalid_type", "invalid_json", "duplicate_field"}),
        id="duplicate_type_last_bad",
    ),
    pytest.param(
        b'{"url": "http://127.0.0.1:9/v.mp4", "options": {"maxItems": NaN}}', JSON, INVALID_JSON, id="nan"
    ),
    pytest.param(
        b'{"url": "http://127.0.0.1:9/v.mp4", "options": {"maxItems": Infinity}}',
        JSON,
        INVALID_JSON,
        id="infinity",
    ),
    pytest.param(
        b'{"url": "http://127.0.0.1:9/v.mp4", "options": {"maxItems": -Infinity}}',
        JSON,
        INVALID_JSON,
        id="minus_infinity",
    ),
    pytest.param(b'{"url": NaN}', JSON, INVALID_JSON, id="url_nan"),
    pytest.param(b'{"url": "http://127.0.0.1:9/\xff.mp4"}', JSON, INVALID_JSON, id="invalid_utf8"),
    pytest.param(b'{"ur\xc0\xafl": 1}', JSON, INVALID_JSON, id="overlong_utf8_key"),
    pytest.param(b'{"url": "http://127.0.0.1:9/\\ud800.mp4"}', JSON, INVALID_JSON, id="lone_surrogate"),
    pytest.param(b'{"\\udfff": 1}', JSON, INVALID_JSON, id="lone_surrogate_key"),
    # bodies over server.max_body_bytes (64 KiB)
    pytest.param(opts("ytdlp", {"format": "b" * 70_000}), JSON, TOO_LARGE, id="body_70k"),
    pytest.param(b" " * (2**20), JSON, TOO_LARGE, id="body_1mb_spaces"),
]


@pytest.mark.parametrize(("body", "content_type", "expected"), BODY_CASES)
async def test_bad_download_body_is_refused(
    body: bytes, content_type: str | None, expected: tuple[Any, Any], raw: Raw
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    status, _, answer = await raw("POST", "/downloads", headers=headers, body=body)
    assert_error(status, answer, *expected)


def _chunked(payload: bytes, size: int = 8192) -> bytes:
    out = b""
    for i in range(0, len(payload), size):
        piece = payload[i : i + size]
        out += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    return out + b"0\r\n\r\n"


ENCODED_BODIES = [
    pytest.param(
        {"Content-Encoding": "gzip"}, gzip.compress(b" " * 10_000_000), TOO_LARGE, id="gzip_bomb_10mb"
    ),
    pytest.param(
        {"Content-Encoding": "gzip"}, b"\x1f\x8b\x08\x00garbage", ({400}, {"invalid_json", "invalid_body", "bad_request"}), id="gzip_garbage"
    ),
    pytest.param(
        {"Transfer-Encoding": "chunked"}, _chunked(opts("ytdlp", {"format": "b" * 200_000})), TOO_LARGE, id="chunked_200k"
    ),
]


@pytest.mark.parametrize(("headers", "body", "expected"), ENCODED_BODIES)
async def test_bad_encoded_body_is_refused(
    headers: dict[str, str], body: bytes, expected: tuple[Any, Any], raw: Raw
) -> None:
    status, _, answer = await raw(
        "POST", "/downloads", headers={"Content-Type": JSON, **headers}, body=body
    )
    assert_error(status, answer, *expected)


async def test_type_null_means_detect(rest: Api) -> None:
    status, body = await rest.request("POST", "/downloads", json={"url": GOOD_URL, "type": None})
    assert status == 201 and body["type"] == "aria2", body


async def test_rest_bodies_left_the_service_healthy(main: Service, rest: Api) -> None:
    await _drained(main, rest)
    await assert_healthy(main, rest)


# == 2. Query strings ================================================================


def cursor(text: bytes) -> str:
    return base64.urlsafe_b64encode(text).decode().rstrip("=")


BAD_QUERY = (400, "bad_query")
BAD_CURSOR = (400, "bad_cursor")
QUERY_CASES = [
    pytest.param("status=bogus", BAD_QUERY, id="status_unknown"),
    pytest.param("status=RUNNING", BAD_QUERY, id="status_uppercase"),
    pytest.param("status=queued,failed", BAD_QUERY, id="status_list"),
    pytest.param("status=queued%20", BAD_QUERY, id="status_trailing_space"),
    pytest.param("status=%00", BAD_QUERY, id="status_nul"),
    pytest.param("limit=0", BAD_QUERY, id="limit_0"),
    pytest.param("limit=201", BAD_QUERY, id="limit_201"),
    pytest.param("limit=-1", BAD_QUERY, id="limit_negative"),
    pytest.param("limit=abc", BAD_QUERY, id="limit_word"),
    pytest.param("limit=1e3", BAD_QUERY, id="limit_exponent"),
    pytest.param("limit=5.0", BAD_QUERY, id="limit_float"),
    pytest.param("limit=%C2%B2", BAD_QUERY, id="limit_superscript_two"),
    pytest.param("limit=%D9%A1%D9%A2", BAD_QUERY, id="limit_arabic_indic_digits"),
    pytest.param("limit=%205", BAD_QUERY, id="limit_leading_space"),
    pytest.param("limit=%2B5", BAD_QUERY, id="limit_plus"),
    pytest.param("limit=0x10", BAD_QUERY, id="limit_hex"),
    pytest.param("limit=", BAD_QUERY, id="limit_empty"),
    pytest.param("limit=" + "9" * 1000, BAD_QUERY, id="limit_1000_digits"),
    pytest.param("limit=" + "9" * 5000, BAD_QUERY, id="limit_5000_digits"),
    pytest.param("cursor=!!!", BAD_CURSOR, id="cursor_punctuation"),
    pytest.param("cursor=x", BAD_CURSOR, id="cursor_one_char"),
    pytest.param("cursor=" + cursor(b"garbage"), BAD_CURSOR, id="cursor_base64_garbage"),
    pytest.param("cursor=" + cursor(b"\xff\xfe\x00\x01"), BAD_CURSOR, id="cursor_binary"),
    pytest.param(
        "cursor=" + cursor(f"2024-01-01T00:00:00|{NO_SUCH_JOB}".encode()),
        BAD_CURSOR,
        id="cursor_naive_timestamp",
    ),
    pytest.param(
        "cursor=" + cursor(b"2024-01-01T00:00:00+00:00|not-a-uuid"), BAD_CURSOR, id="cursor_non_uuid"
    ),
    pytest.param(
        "cursor=" + cursor(f"9999-12-31T23:59:59-14:00|{NO_SUCH_JOB}".encode()),
        BAD_CURSOR,
        id="cursor_after_year_9999",
    ),
    pytest.param(
        "cursor=" + cursor(f"0001-01-01T00:00:00+14:00|{NO_SUCH_JOB}".encode()),
        BAD_CURSOR,
        id="cursor_before_year_1",
    ),
    pytest.param("cursor=" + "A" * 6000, BAD_CURSOR, id="cursor_6000_chars"),
    pytest.param("foo=1", BAD_QUERY, id="unknown_param"),
    pytest.param("offset=10", BAD_QUERY, id="offset_param"),
    pytest.param("Limit=5", BAD_QUERY, id="param_case"),
]


@pytest.mark.parametrize(("query", "expected"), QUERY_CASES)
async def test_bad_list_query_is_refused(query: str, expected: tuple[int, str], raw: Raw) -> None:
    status, _, answer = await raw("GET", f"/downloads?{query}")
    assert_error(status, answer, *expected)


async def test_queries_left_the_service_healthy(main: Service, rest: Api) -> None:
    await assert_healthy(main, rest)
    status, body = await rest.request("GET", "/downloads", params={"limit": "200"})
    assert status == 200 and isinstance(body["items"], list)


# == 3. Job ids and paths ============================================================

ID_ROUTES = [
    ("GET", "/downloads/{}"),
    ("DELETE", "/downloads/{}"),
    ("POST", "/downloads/{}/cancel"),
    ("POST", "/downloads/{}/pause"),
    ("POST", "/downloads/{}/resume"),
    ("POST", "/downloads/{}/retry"),
    ("POST", "/downloads/{}/stop"),
    ("GET", "/files/{}"),
    ("GET", "/files/{}/download"),
]
BAD_ID = (400, "invalid_job_id")
TRAVERSAL = ({400, 404}, {"invalid_job_id", "not_found"})
BAD_IDS = [
    ("not-a-uuid", BAD_ID),
    ("1234", BAD_ID),
    (NO_SUCH_JOB[:-1], BAD_ID),
    ("g" + NO_SUCH_JOB[1:], BAD_ID),
    ("a" * 4000, BAD_ID),
    ("..%2F..%2Fetc%2Fpasswd", TRAVERSAL),
    ("%2e%2e", TRAVERSAL),
    ("%00", BAD_ID),
    ("%E2%80%AE" + NO_SUCH_JOB, BAD_ID),
    (NO_SUCH_JOB, (404, "not_found")),
]
ID_CASES = [
    pytest.param(method, template.format(job_id), expected, id=f"{method}_{template.split('/')[1]}{'_' + template.split('/')[-1] if template.count('/') > 2 else ''}_{label}")
    for method, template in ID_ROUTES
    for (job_id, expected), label in zip(
        BAD_IDS,
        ["word", "digits", "short", "non_hex", "4000_chars", "encoded_traversal", "encoded_dotdot", "nul", "bidi_override", "unknown"],
        strict=True,
    )
]


@pytest.mark.parametrize(("method", "path", "expected"), ID_CASES)
async def test_bad_job_id_is_refused(
    method: str, path: str, expected: tuple[Any, Any], raw: Raw
) -> None:
    status, _, answer = await raw(method, path)
    assert_error(status, answer, *expected)


async def test_a_path_over_the_line_limit_is_a_4xx(main: Service, raw: Raw, rest: Api) -> None:
    """aiohttp's parser answers before any handler: a 4xx, though not our JSON."""
    status, _, _ = await raw("GET", "/downloads/" + "a" * 20_000)
    assert status in (400, 414)
    await assert_healthy(main, rest)


@pytest.fixture(scope="module")
async def done_job(main: Service, rest: Api) -> str:
    """A completed job with one file, plus a stale staging folder and a planted symlink."""
    job_id = await submit(rest, GOOD_URL, type="aria2")
    await rest.wait_status(job_id, "completed", timeout_s=10)
    folder = main.config.data_path / job_id
    (folder / ".attempt-7").mkdir()
    (folder / ".attempt-7" / "secret.bin").write_bytes(b"not a result")
    (folder / "passwd").symlink_to("/etc/passwd")
    return job_id


INVALID_NAME = (400, "invalid_name")
NO_SUCH_FILE = (404, "no_such_file")
NAME_CASES = [
    pytest.param("../x", INVALID_NAME, id="dotdot_slash"),
    pytest.param("..", INVALID_NAME, id="dotdot"),
    pytest.param(".", INVALID_NAME, id="dot"),
    pytest.param("/etc/passwd", INVALID_NAME, id="absolute"),
    pytest.param("a/b", INVALID_NAME, id="slash"),
    pytest.param("a%5Cb", INVALID_NAME, id="backslash"),
    pytest.param("..%5C..%5Cwin.ini", INVALID_NAME, id="backslash_traversal"),
    pytest.param("%00", INVALID_NAME, id="nul"),
    pytest.param("media.bin%00.txt", INVALID_NAME, id="nul_inside"),
    pytest.param("%01", INVALID_NAME, id="control"),
    pytest.param("%7F", INVALID_NAME, id="del"),
    pytest.param("%1B%5B31m", INVALID_NAME, id="escape"),
    pytest.param("media.bin%0A", INVALID_NAME, id="newline"),
    pytest.param("x" * 300, INVALID_NAME, id="300_bytes"),
    pytest.param("", INVALID_NAME, id="empty"),
    pytest.param("..%2F..%2Fetc%2Fpasswd", INVALID_NAME, id="encoded_traversal"),
    pytest.param("%2e%2e", INVALID_NAME, id="encoded_dotdot"),
    pytest.param("%252e%252e%252fetc", NO_SUCH_FILE, id="double_encoded"),
    pytest.param("media.bin%2F", INVALID_NAME, id="trailing_slash"),
    pytest.param("~%2F.ssh%2Fid_rsa", INVALID_NAME, id="home"),
    pytest.param(".attempt-7", NO_SUCH_FILE, id="staging_folder"),
    pytest.param(".attempt-7%2Fsecret.bin", INVALID_NAME, id="staging_file"),
    pytest.param("passwd", NO_SUCH_FILE, id="planted_symlink"),
    pytest.param("MEDIA.BIN", NO_SUCH_FILE, id="other_case"),
    pytest.param("%FF%FE", ({400, 404}, {"invalid_name", "no_such_file"}), id="invalid_utf8"),
    pytest.param("%ED%A0%80", ({400, 404}, {"invalid_name", "no_such_file"}), id="surrogate_utf8"),
]


@pytest.mark.parametrize(("name", "expected"), NAME_CASES)
async def test_bad_file_name_is_refused(
    name: str, expected: tuple[Any, Any], done_job: str, raw: Raw
) -> None:
    status, _, answer = await raw("GET", f"/files/{done_job}/download?name={name}")
    assert_error(status, answer, *expected)


async def test_file_list_shows_no_staging_folder_or_symlink(done_job: str, rest: Api) -> None:
    status, listing = await rest.request("GET", f"/files/{done_job}")
    assert status == 200
    assert [f["name"] for f in listing["files"]] == ["media.bin"]


@pytest.mark.parametrize("action", ["cancel", "pause", "resume", "retry", "stop"])
async def test_action_the_status_does_not_allow_is_409(
    action: str, done_job: str, raw: Raw
) -> None:
    status, _, answer = await raw("POST", f"/downloads/{done_job}/{action}")
    assert_error(status, answer, 409, "invalid_transition")


METHOD_CASES = [
    pytest.param("PUT", "/downloads", id="put_downloads"),
    pytest.param("PATCH", "/downloads", id="patch_downloads"),
    pytest.param("DELETE", "/downloads", id="delete_downloads"),
    pytest.param("PUT", f"/downloads/{NO_SUCH_JOB}", id="put_job"),
    pytest.param("PATCH", f"/downloads/{NO_SUCH_JOB}", id="patch_job"),
    pytest.param("GET", f"/downloads/{NO_SUCH_JOB}/cancel", id="get_cancel"),
    pytest.param("POST", f"/files/{NO_SUCH_JOB}", id="post_files"),
    pytest.param("DELETE", f"/files/{NO_SUCH_JOB}/download", id="delete_file"),
    pytest.param("POST", "/health", id="post_health"),
]


@pytest.mark.parametrize(("method", "path"), METHOD_CASES)
async def test_wrong_method_is_405(method: str, path: str, raw: Raw) -> None:
    status, _, answer = await raw(method, path)
    assert_error(status, answer, 405, "method_not_allowed")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        pytest.param("PUT", "/downloads", {"GET", "POST"}, id="downloads"),
        pytest.param("POST", "/health", {"GET"}, id="health"),
    ],
)
async def test_405_says_which_methods_are_allowed(
    method: str, path: str, allowed: set[str], raw: Raw
) -> None:
    """RFC 9110 §15.5.6: a 405 MUST carry Allow."""
    status, headers, _ = await raw(method, path)
    assert status == 405
    assert "allow" in headers, headers
    assert allowed <= {m.strip() for m in headers["allow"].split(",")}


ROUTE_CASES = [
    pytest.param("POST", f"/downloads/{NO_SUCH_JOB}/explode", id="action_explode"),
    pytest.param("POST", f"/downloads/{NO_SUCH_JOB}/Cancel", id="action_case"),
    pytest.param("POST", f"/downloads/{NO_SUCH_JOB}/cancel/now", id="action_suffix"),
    pytest.param("GET", f"/downloads/{NO_SUCH_JOB}/", id="trailing_slash"),
    pytest.param("GET", f"/files/{NO_SUCH_JOB}/download/x", id="download_suffix"),
    pytest.param("GET", "/files", id="files_root"),
    pytest.param("GET", "/admin", id="admin"),
    pytest.param("GET", "/static/../../etc/passwd", id="dotdot_path"),
]


@pytest.mark.parametrize(("method", "path"), ROUTE_CASES)
async def test_unknown_route_is_404(method: str, path: str, raw: Raw) -> None:
    status, _, answer = await raw(method, path)
    assert_error(status, answer, 404, "not_found")


async def test_ids_and_paths_left_the_service_healthy(main: Service, rest: Api) -> None:
    await _drained(main, rest)
    await assert_healthy(main, rest)


# == 4. API tokens ===================================================================


@pytest.fixture(scope="module")
async def guarded(new_module_config: Any) -> AsyncIterator[Service]:
    """A token-protected service with one real worker (it only ever sees loopback URLs)."""
    config = await new_module_config(
        server={"api_tokens": [API_TOKEN]},
        workers={"processes": 1},
        network={"allow_private": True},
    )
    async with running_service(config) as service:
        yield service


@pytest.fixture(scope="module")
async def guarded_api(guarded: Service) -> AsyncIterator[Api]:
    client = Api(guarded.base_url, token=API_TOKEN)
    yield client
    await client.close()


NO_HEADER = None
BAD_AUTH_HEADERS = [
    pytest.param(NO_HEADER, id="no_header"),
    pytest.param("Basic dXNlcjpwYXNz", id="basic"),
    pytest.param("Basic " + base64.b64encode(f":{API_TOKEN}".encode()).decode(), id="basic_token"),
    pytest.param(f"bearer {API_TOKEN}", id="lowercase_scheme"),
    pytest.param(f"BEARER {API_TOKEN}", id="uppercase_scheme"),
    pytest.param("Bearer", id="bearer_no_token"),
    pytest.param("Bearer wrong-token-0123456789abcdef", id="wrong_token"),
    pytest.param(f"Bearer {API_TOKEN}x", id="token_plus_char"),
    pytest.param(f"Bearer {API_TOKEN[:-1]}", id="token_prefix"),
    pytest.param(f"Bearer  {API_TOKEN}", id="two_spaces"),
    pytest.param(f"Bearer {API_TOKEN}\x0b", id="token_vertical_tab"),
    pytest.param(f"Token {API_TOKEN}", id="token_scheme"),
    pytest.param(API_TOKEN, id="bare_token"),
    pytest.param(f"Bearer {API_TOKEN},{API_TOKEN}", id="two_tokens"),
    pytest.param("Bearer " + "x" * 6000, id="6000_char_token"),
]
TOKEN_ROUTES = [
    pytest.param("GET", "/downloads", id="list"),
    pytest.param("POST", "/downloads", id="create"),
    pytest.param("GET", f"/files/{NO_SUCH_JOB}/download", id="file"),
]


@pytest.mark.parametrize("route", TOKEN_ROUTES)
@pytest.mark.parametrize("header", BAD_AUTH_HEADERS)
async def test_bad_api_token_is_401(header: str | None, route: Any, guarded: Service) -> None:
    method, path = route
    headers = {"Content-Type": JSON} | ({"Authorization": header} if header is not None else {})
    body = with_url(GOOD_URL) if method == "POST" else b""
    status, _, answer = await Raw(guarded.base_url)(method, path, headers=headers, body=body)
    assert_error(status, answer, 401, "unauthorized")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        pytest.param("GET", f"/downloads/{NO_SUCH_JOB}", id="job"),
        pytest.param("POST", f"/downloads/{NO_SUCH_JOB}/cancel", id="cancel"),
        pytest.param("DELETE", f"/downloads/{NO_SUCH_JOB}", id="delete"),
        pytest.param("GET", f"/files/{NO_SUCH_JOB}", id="files"),
        pytest.param("GET", "/no-such-route", id="unknown_route"),
    ],
)
async def test_every_route_wants_a_token(method: str, path: str, guarded: Service) -> None:
    status, _, answer = await Raw(guarded.base_url)(method, path)
    assert_error(status, answer, 401, "unauthorized")


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
    assert status == 200 and body["items"] == []


JOBS_AUTH_REFUSED = [
    pytest.param(None, None, id="no_auth"),
    pytest.param({"token": "wrong-token-0123456789abcdef"}, None, id="wrong_token"),
    pytest.param({"token": API_TOKEN + " "}, None, id="trailing_space"),
    pytest.param({"token": API_TOKEN + "\n"}, None, id="trailing_newline"),
    pytest.param({"token": 12345}, None, id="token_number"),
    pytest.param({"token": [API_TOKEN]}, None, id="token_list"),
    pytest.param(API_TOKEN, None, id="auth_not_a_dict"),
    pytest.param({"token": "x" * 10_000}, None, id="token_10k"),
    pytest.param(None, {"Authorization": "Basic dXNlcjpwYXNz"}, id="basic_header"),
    pytest.param(None, {"Authorization": "Bearer wrong-token-0123456789"}, id="wrong_header"),
]


@pytest.mark.parametrize(("auth", "headers"), JOBS_AUTH_REFUSED)
async def test_jobs_socket_refuses_bad_tokens(auth: Any, headers: Any, guarded: Service) -> None:
    client = socketio.AsyncClient(reconnection=False)
    try:
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect(
                guarded.base_url, namespaces=["/jobs"], auth=auth, headers=headers or {},
                transports=["websocket"], wait_timeout=5,
            )  # fmt: skip
    finally:
        await client.disconnect()


@pytest.mark.parametrize(
    ("auth", "headers"),
    [
        pytest.param({"token": API_TOKEN}, None, id="auth_token"),
        pytest.param(None, {"Authorization": f"Bearer {API_TOKEN}"}, id="bearer_header"),
    ],
)
async def test_jobs_socket_accepts_the_right_token(
    auth: Any, headers: Any, guarded: Service
) -> None:
    client = socketio.AsyncClient(reconnection=False)
    try:
        await client.connect(
            guarded.base_url, namespaces=["/jobs"], auth=auth, headers=headers or {},
            transports=["websocket"], wait_timeout=5,
        )  # fmt: skip
        answer = await client.call("subscribe", {"all": True}, namespace="/jobs", timeout=5)
        assert answer == {"ok": True}
    finally:
        await client.disconnect()


async def test_bad_tokens_left_the_service_healthy(guarded: Service, guarded_api: Api) -> None:
    await assert_healthy(guarded, guarded_api)
    _, body = await guarded_api.request("GET", "/downloads")
    assert body["items"] == [], "a request without a valid token created a job"


# == 5. The /worker socket ===========================================================

WORKER_AUTH_REFUSED = [
    pytest.param(None, id="no_auth"),
    pytest.param(WORKER_TOKEN, id="auth_string"),
    pytest.param([WORKER_TOKEN, "w-1"], id="auth_list"),
    pytest.param({}, id="auth_empty"),
    pytest.param({"workerId": "w-1"}, id="token_missing"),
    pytest.param({"token": None, "workerId": "w-1"}, id="token_null"),
    pytest.param({"token": 12345, "workerId": "w-1"}, id="token_number"),
    pytest.param({"token": [WORKER_TOKEN], "workerId": "w-1"}, id="token_list"),
    pytest.param({"token": "", "workerId": "w-1"}, id="token_empty"),
    pytest.param({"token": "wrong-worker-token-0123456789", "workerId": "w-1"}, id="token_wrong"),
    pytest.param({"token": WORKER_TOKEN + " ", "workerId": "w-1"}, id="token_trailing_space"),
    pytest.param({"token": WORKER_TOKEN + "\n", "workerId": "w-1"}, id="token_trailing_newline"),
    pytest.param({"token": WORKER_TOKEN[:-1], "workerId": "w-1"}, id="token_prefix"),
    pytest.param({"token": "x" * 10_000, "workerId": "w-1"}, id="token_10k"),
    pytest.param({"token": API_TOKEN, "workerId": "w-1"}, id="token_of_the_api"),
    pytest.param({"token": WORKER_TOKEN}, id="worker_id_missing"),
    pytest.param({"token": WORKER_TOKEN, "workerId": None}, id="worker_id_null"),
    pytest.param({"token": WORKER_TOKEN, "workerId": 7}, id="worker_id_number"),
    pytest.param({"token": WORKER_TOKEN, "workerId": {"id": "w"}}, id="worker_id_object"),
    pytest.param({"token": WORKER_TOKEN, "workerId": "keeper"}, id="worker_id_already_connected"),
    pytest.param({"token": WORKER_TOKEN, "workerId": ""}, id="worker_id_empty"),
    pytest.param({"token": WORKER_TOKEN, "workerId": "w\n1"}, id="worker_id_newline"),
    pytest.param({"token": WORKER_TOKEN, "workerId": "w" * 1000}, id="worker_id_1000_chars"),
]


@pytest.mark.parametrize("auth", WORKER_AUTH_REFUSED)
async def test_worker_socket_refuses_bad_auth(
    auth: Any, main: Service, keeper: ScriptedWorker
) -> None:
    dispatcher = main.dispatcher
    assert dispatcher is not None
    before = set(dispatcher.workers)
    intruder = ScriptedWorker(main, "w-1", auth=auth)
    try:
        with pytest.raises(socketio.exceptions.ConnectionError):
            await intruder.connect()
    finally:
        await intruder.close()
    assert set(dispatcher.workers) == before
    assert keeper.sio.connected


class Bench:
    """Group 5's stage: a job held running by one scripted worker, another worker to
    forge events, and a /jobs client that sees every job's events."""

    def __init__(self, service: Service, api: Api, watcher: JobsClient) -> None:
        self.service = service
        self.api = api
        self.watcher = watcher
        self.crew: list[ScriptedWorker] = []
        self.job: tuple[str, int, ScriptedWorker] | None = None
        self._spares = 0

    @property
    def dispatcher(self) -> Any:
        return self.service.dispatcher

    async def hire(self) -> ScriptedWorker:
        self._spares += 1
        worker = await ScriptedWorker(self.service, f"crew-{self._spares}").connect()
        self.crew.append(worker)
        await eventually(
            lambda: any(w.worker_id == worker.worker_id for w in self.dispatcher.workers.values()),
            what="the new worker to be registered",
        )
        return worker

    async def start_job(self, url: str = HOLD_URL) -> tuple[str, int, ScriptedWorker]:
        """A new job running on whichever scripted worker was idle."""
        if self.dispatcher.idle_workers() == 0:
            await self.hire()
        job_id = await submit(self.api, url, type="aria2")
        owner = await eventually(
            lambda: next((w for w in self.crew if job_id in w.starts), None),
            timeout_s=10,
            what="a worker to start the job",
        )
        return job_id, owner.starts[job_id]["attempt"], owner

    async def held(self) -> tuple[str, int, ScriptedWorker]:
        """The held job, started anew if a previous case ended it."""
        if self.job is not None:
            a = self.dispatcher.running.get(self.job[0])
            if a is not None and not a.finished:
                return self.job
        job_id, attempt, owner = await self.start_job()
        await owner.emit("progress", baseline(job_id, attempt))
        await eventually(
            lambda: self.dispatcher.running[job_id].progress == 12.5, what="the baseline"
        )
        self.job = (job_id, attempt, owner)
        return self.job

    def other_than(self, owner: ScriptedWorker) -> ScriptedWorker:
        return next(w for w in self.crew if w is not owner and w.sio.connected)

    async def fence(self, worker: ScriptedWorker) -> None:
        """Send an invalid event and wait until it is counted: the worker's earlier events
        have been handled by then."""
        before = self.dispatcher.ignored_events
        await worker.emit("progress", "fence")
        await eventually(
            lambda: self.dispatcher.ignored_events > before, interval_s=0.005, what="the fence"
        )


def baseline(job_id: str, attempt: int) -> dict[str, Any]:
    return {"jobId": job_id, "attempt": attempt, "stage": "downloading", "progress": 12.5,
            "speed": 100, "eta": 9, "totalBytes": 4096}  # fmt: skip


ROW_FIELDS = ("status", "stage", "progress", "speed", "eta", "totalBytes", "filename", "size",
              "outputPath", "errorCode", "errorMessage", "attempts")  # fmt: skip


def row_state(job: dict[str, Any]) -> dict[str, Any]:
    return {k: job[k] for k in ROW_FIELDS}


@pytest.fixture(scope="module")
async def bench(main: Service, rest: Api, keeper: ScriptedWorker) -> AsyncIterator[Bench]:
    async with JobsClient(main.base_url) as watcher:
        assert (await watcher.subscribe(all=True))["ok"] is True
        stage = Bench(main, rest, watcher)
        stage.crew.append(keeper)
        await stage.hire()  # a second worker, to forge events for jobs it does not own
        yield stage
        for worker in stage.crew[1:]:
            await worker.close()


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


P = {"jobId": JOB, "attempt": ATTEMPT, "stage": "downloading", "progress": 50.0, "speed": 1000,
     "eta": 5, "totalBytes": 4096}  # fmt: skip
C = {"jobId": JOB, "attempt": ATTEMPT, "files": [{"name": "media.bin", "size": 15}]}
F = {"jobId": JOB, "attempt": ATTEMPT, "errorCode": "forged", "message": "a forged failure"}


def progress(**over: Any) -> dict[str, Any]:
    return {**P, **over}


def completed(*files: Any, **over: Any) -> dict[str, Any]:
    return {**C, "files": list(files), **over}


def failed(**over: Any) -> dict[str, Any]:
    return {**F, **over}


def one_file(**over: Any) -> dict[str, Any]:
    return completed({"name": "media.bin", "size": 15, **over})


FORGED = [
    # someone else's job, or an attempt that is not the current one
    pytest.param("owner", "progress", progress(jobId=NO_SUCH_JOB), id="progress_unknown_job"),
    pytest.param("owner", "completed", {**C, "jobId": NO_SUCH_JOB}, id="completed_unknown_job"),
    pytest.param("owner", "failed", failed(jobId=NO_SUCH_JOB), id="failed_unknown_job"),
    pytest.param("other", "progress", P, id="progress_other_worker"),
    pytest.param("other", "completed", C, id="completed_other_worker"),
    pytest.param("other", "failed", F, id="failed_other_worker"),
    pytest.param("owner", "progress", progress(attempt=NEXT_ATTEMPT), id="progress_next_attempt"),
    pytest.param("owner", "completed", {**C, "attempt": NEXT_ATTEMPT}, id="completed_next_attempt"),
    pytest.param("owner", "failed", failed(attempt=NEXT_ATTEMPT), id="failed_next_attempt"),
    # not an object
    pytest.param("owner", "progress", "50%", id="payload_string"),
    pytest.param("owner", "progress", [P], id="payload_list"),
    pytest.param("owner", "progress", 42, id="payload_number"),
    pytest.param("owner", "completed", None, id="payload_null"),
    # jobId
    pytest.param("owner", "progress", progress(jobId="not-a-uuid"), id="job_id_word"),
    pytest.param("owner", "progress", progress(jobId=123), id="job_id_number"),
    pytest.param("owner", "progress", progress(jobId=None), id="job_id_null"),
    pytest.param("owner", "progress", progress(jobId=DROP), id="job_id_missing"),
    pytest.param("owner", "progress", progress(jobId="a" * 100), id="job_id_100_chars"),
    pytest.param("owner", "failed", failed(jobId=[JOB]), id="job_id_list"),
    # attempt
    pytest.param("owner", "progress", progress(attempt=0), id="attempt_0"),
    pytest.param("owner", "progress", progress(attempt=-1), id="attempt_negative"),
    pytest.param("owner", "progress", progress(attempt=True), id="attempt_true"),
    pytest.param("owner", "progress", progress(attempt="1"), id="attempt_string"),
    pytest.param("owner", "progress", progress(attempt=10**9), id="attempt_10_pow_9"),
    pytest.param("owner", "progress", progress(attempt=1.0), id="attempt_float"),
    pytest.param("owner", "progress", progress(attempt=None), id="attempt_null"),
    pytest.param("owner", "progress", progress(attempt=DROP), id="attempt_missing"),
    pytest.param("owner", "completed", {**C, "attempt": 2**70}, id="attempt_2_pow_70"),
    pytest.param("owner", "failed", failed(attempt="1"), id="failed_attempt_string"),
    # stage
    pytest.param("owner", "progress", progress(stage="exploding"), id="stage_unknown"),
    pytest.param("owner", "progress", progress(stage=["downloading"]), id="stage_list"),
    pytest.param("owner", "progress", progress(stage=None), id="stage_null"),
    pytest.param("owner", "progress", progress(stage=""), id="stage_empty"),
    pytest.param("owner", "progress", progress(stage="DOWNLOADING"), id="stage_uppercase"),
    pytest.param("owner", "progress", progress(stage="completed"), id="stage_terminal_word"),
    pytest.param("owner", "progress", progress(stage=DROP), id="stage_missing"),
    # progress
    pytest.param("owner", "progress", progress(progress=float("nan")), id="progress_nan"),
    pytest.param("owner", "progress", progress(progress=float("inf")), id="progress_inf"),
    pytest.param("owner", "progress", progress(progress=float("-inf")), id="progress_minus_inf"),
    pytest.param("owner", "progress", progress(progress=-1), id="progress_negative"),
    pytest.param("owner", "progress", progress(progress=100.5), id="progress_100_5"),
    pytest.param("owner", "progress", progress(progress="50"), id="progress_string"),
    pytest.param("owner", "progress", progress(progress=True), id="progress_true"),
    pytest.param("owner", "progress", progress(progress=[50]), id="progress_list"),
    pytest.param("owner", "progress", progress(progress={"v": 50}), id="progress_object"),
    pytest.param("owner", "progress", progress(progress=10**400), id="progress_10_pow_400"),
    # speed, eta, totalBytes
    pytest.param("owner", "progress", progress(speed=-1), id="speed_negative"),
    pytest.param("owner", "progress", progress(speed=1.5), id="speed_fraction"),
    pytest.param("owner", "progress", progress(speed="100"), id="speed_string"),
    pytest.param("owner", "progress", progress(speed=True), id="speed_true"),
    pytest.param("owner", "progress", progress(speed=float("nan")), id="speed_nan"),
    pytest.param("owner", "progress", progress(speed=2**70), id="speed_2_pow_70"),
    pytest.param("owner", "progress", progress(eta=-5), id="eta_negative"),
    pytest.param("owner", "progress", progress(eta="soon"), id="eta_string"),
    pytest.param("owner", "progress", progress(eta=2.5), id="eta_fraction"),
    pytest.param("owner", "progress", progress(totalBytes=2**70), id="total_2_pow_70"),
    pytest.param("owner", "progress", progress(totalBytes=-1), id="total_negative"),
    pytest.param("owner", "progress", progress(totalBytes=1.5), id="total_fraction"),
    pytest.param("owner", "progress", progress(totalBytes="4096"), id="total_string"),
    # completed: files
    pytest.param("owner", "completed", completed(), id="files_empty"),
    pytest.param("owner", "completed", {**C, "files": "media.bin"}, id="files_string"),
    pytest.param("owner", "completed", {**C, "files": None}, id="files_null"),
    pytest.param("owner", "completed", {**C, "files": DROP}, id="files_missing"),
    pytest.param("owner", "completed", {**C, "files": {"name": "media.bin"}}, id="files_object"),
    pytest.param("owner", "completed", completed("media.bin"), id="file_entry_string"),
    pytest.param("owner", "completed", one_file(name="../x"), id="name_dotdot_slash"),
    pytest.param("owner", "completed", one_file(name=".."), id="name_dotdot"),
    pytest.param("owner", "completed", one_file(name="."), id="name_dot"),
    pytest.param("owner", "completed", one_file(name="a/b"), id="name_slash"),
    pytest.param("owner", "completed", one_file(name="/etc/passwd"), id="name_absolute"),
    pytest.param("owner", "completed", one_file(name="a\\b"), id="name_backslash"),
    pytest.param("owner", "completed", one_file(name=""), id="name_empty"),
    pytest.param("owner", "completed", one_file(name="x" * 300), id="name_300_bytes"),
    pytest.param("owner", "completed", one_file(name="\u00e9" * 128), id="name_256_utf8_bytes"),
    pytest.param("owner", "completed", one_file(name="x\n.bin"), id="name_newline"),
    pytest.param("owner", "completed", one_file(name="x\x00.bin"), id="name_nul"),
    pytest.param("owner", "completed", one_file(name="\ud800.bin"), id="name_lone_surrogate"),
    pytest.param("owner", "completed", one_file(name=5), id="name_number"),
    pytest.param("owner", "completed", one_file(name=None), id="name_null"),
    pytest.param("owner", "completed", one_file(size=-1), id="size_negative"),
    pytest.param("owner", "completed", one_file(size="15"), id="size_string"),
    pytest.param("owner", "completed", one_file(size=True), id="size_true"),
    pytest.param("owner", "completed", one_file(size=1.5), id="size_fraction"),
    pytest.param("owner", "completed", one_file(size=2**70), id="size_2_pow_70"),
    pytest.param("owner", "completed", one_file(size=DROP), id="size_missing"),
    # failed: errorCode and message
    pytest.param("owner", "failed", failed(errorCode="Not Snake"), id="code_words"),
    pytest.param("owner", "failed", failed(errorCode="bad\ncode"), id="code_newline"),
    pytest.param("owner", "failed", failed(errorCode=""), id="code_empty"),
    pytest.param("owner", "failed", failed(errorCode=5), id="code_number"),
    pytest.param("owner", "failed", failed(errorCode=None), id="code_null"),
    pytest.param("owner", "failed", failed(errorCode=DROP), id="code_missing"),
    pytest.param("owner", "failed", failed(errorCode="x" * 41), id="code_41_chars"),
    pytest.param("owner", "failed", failed(errorCode="1abc"), id="code_digit_first"),
    pytest.param("owner", "failed", failed(errorCode="a-b"), id="code_dash"),
    pytest.param("owner", "failed", failed(errorCode="ERROR"), id="code_uppercase"),
    pytest.param("owner", "failed", failed(message=5), id="message_number"),
    pytest.param("owner", "failed", failed(message=None), id="message_null"),
    pytest.param("owner", "failed", failed(message=DROP), id="message_missing"),
    pytest.param("owner", "failed", failed(message=["x"]), id="message_list"),
    # binary payloads
    pytest.param("owner", "progress", b"\x00\x01\xff" * 10, id="binary_progress"),
    pytest.param("owner", "completed", b"\x89PNG\r\n", id="binary_completed"),
    pytest.param("owner", "failed", b"\xde\xad\xbe\xef", id="binary_failed"),
    pytest.param("owner", "progress", progress(jobId=b"\x00" * 16), id="binary_job_id"),
    pytest.param("owner", "progress", progress(progress=b"50"), id="binary_progress_value"),
    pytest.param("owner", "completed", one_file(name=b"media.bin"), id="binary_file_name"),
    pytest.param("owner", "failed", failed(message=b"\xff" * 100), id="binary_message"),
    pytest.param("other", "completed", b"\x00" * 1000, id="binary_from_other_worker"),
]


@pytest.mark.parametrize(("sender", "event", "template"), FORGED)
async def test_forged_worker_event_is_ignored(
    sender: str, event: str, template: Any, bench: Bench
) -> None:
    job_id, attempt, owner = await bench.held()
    worker = owner if sender == "owner" else bench.other_than(owner)
    before = row_state(await bench.api.job(job_id))
    seen, ignored = len(bench.watcher.events), bench.dispatcher.ignored_events
    await worker.emit(event, fill(template, job_id, attempt))
    await eventually(
        lambda: bench.dispatcher.ignored_events > ignored,
        timeout_s=5,
        interval_s=0.005,
        what="the event to be counted as ignored",
    )
    assert row_state(await bench.api.job(job_id)) == before
    assert bench.watcher.events[seen:] == []
    assert worker.sio.connected and owner.sio.connected
    listing = (await bench.api.request("GET", f"/files/{job_id}"))[1]
    assert listing["files"] == [], "a forged event published files"


HARMLESS = [
    pytest.param("owner", "heartbeat", "alive", id="heartbeat_string"),
    pytest.param("owner", "heartbeat", b"\x00\x01", id="heartbeat_binary"),
    pytest.param(
        "owner", "heartbeat", {"jobId": JOB, "attempt": "1", "active": "yes"}, id="heartbeat_bad_fields"
    ),
    pytest.param(
        "other", "heartbeat", {"jobId": JOB, "attempt": ATTEMPT, "active": True}, id="heartbeat_other_worker"
    ),
    pytest.param("other", "stopped", {"jobId": JOB, "attempt": ATTEMPT}, id="stopped_other_worker"),
    pytest.param(
        "owner", "stopped", {"jobId": JOB, "attempt": ATTEMPT}, id="stopped_nobody_asked"
    ),
    pytest.param("owner", "stopped", {"jobId": JOB, "attempt": 2**70}, id="stopped_bad_attempt"),
    pytest.param("owner", "explode", {"jobId": JOB}, id="unknown_event"),
    pytest.param("owner", "job:start", {"jobId": JOB, "url": GOOD_URL}, id="server_event_name"),
    pytest.param("owner", "subscribe", {"all": True}, id="jobs_event_name"),
]


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
    a = bench.dispatcher.running[job_id]
    assert not a.finished and not a.released and a.stopping is None
    assert worker.sio.connected and owner.sio.connected


RAW_PACKETS = [
    pytest.param('2/worker,["progress",' + "[" * 5000 + "]" * 5000 + "]", id="nested_5000"),
    pytest.param('2/worker,["progress",{"progress":' + "9" * 5000 + "}]", id="int_5000_digits"),
    pytest.param('2/worker,["progress",{', id="invalid_json"),
    pytest.param("2/worker,[]", id="empty_event"),
    pytest.param('2/worker,{"event":"progress"}', id="event_not_a_list"),
    pytest.param("2/worker,[123]", id="event_name_number"),
    pytest.param("9/worker,", id="unknown_packet_type"),
    pytest.param('5/worker,1-["progress",{"_placeholder":true,"num":0}]', id="binary_without_attachment"),
    pytest.param('2/jobs,["subscribe",{"all":true}]', id="namespace_not_joined"),
]


@pytest.mark.parametrize("packet", RAW_PACKETS)
async def test_malformed_socketio_packet_is_harmless(packet: str, bench: Bench) -> None:
    job_id, _, owner = await bench.held()
    before = row_state(await bench.api.job(job_id))
    sender = await ScriptedWorker(bench.service, f"raw-{uuid.uuid4().hex[:8]}").connect()
    bench.crew.append(sender)
    try:
        await sender.sio.eio.send(packet)
        if sender.sio.connected:
            await bench.fence(sender)  # still heard
    finally:
        await sender.close()
        bench.crew.remove(sender)
    assert row_state(await bench.api.job(job_id)) == before
    assert owner.sio.connected
    _, health = await bench.api.request("GET", "/health")
    assert health["status"] == "ok"


OVERSIZED = [
    pytest.param("failed", failed(message="m" * 2**20), id="failed_message_1mb"),
    pytest.param("progress", progress(pad="x" * 70_000), id="progress_70k"),
    pytest.param("progress", b"\x00" * 70_000, id="binary_70k"),
    pytest.param("completed", completed(*[{"name": f"f{i}.bin", "size": 1} for i in range(5000)]), id="completed_5000_files"),
]


@pytest.mark.parametrize(("event", "template"), OVERSIZED)
async def test_oversized_event_drops_the_sender_only(
    event: str, template: Any, bench: Bench
) -> None:
    job_id, attempt, owner = await bench.held()
    before = row_state(await bench.api.job(job_id))
    name = f"big-{uuid.uuid4().hex[:8]}"
    sender = await ScriptedWorker(bench.service, name).connect()
    try:
        await sender.emit(event, fill(template, job_id, attempt))
        await eventually(lambda: not sender.sio.connected, timeout_s=5, what="the drop")
    finally:
        await sender.close()
    await eventually(
        lambda: all(w.worker_id != name for w in bench.dispatcher.workers.values()),
        what="the server to forget the dropped worker",
    )
    assert row_state(await bench.api.job(job_id)) == before
    assert owner.sio.connected and bench.watcher.sio.connected
    again = await ScriptedWorker(bench.service, name).connect()  # it may come back
    await again.close()


@pytest.fixture(scope="module")
async def finished_job(bench: Bench) -> tuple[str, int, ScriptedWorker, dict[str, Any]]:
    """A job its worker completed; late events about it follow."""
    job_id, attempt, owner = await bench.start_job(GOOD_URL)
    job = await bench.api.wait_status(job_id, "completed", timeout_s=10)
    return job_id, attempt, owner, job


LATE = [
    pytest.param("owner", "progress", progress(progress=99.0), id="progress"),
    pytest.param("owner", "completed", one_file(), id="completed_again"),
    pytest.param("owner", "completed", completed({"name": "evil.bin", "size": 4}), id="completed_other_file"),
    pytest.param("owner", "failed", F, id="failed"),
    pytest.param("owner", "progress", progress(attempt=NEXT_ATTEMPT), id="progress_next_attempt"),
    pytest.param("owner", "failed", failed(attempt=NEXT_ATTEMPT), id="failed_next_attempt"),
    pytest.param("other", "progress", P, id="progress_other_worker"),
    pytest.param("other", "completed", one_file(), id="completed_other_worker"),
    pytest.param("other", "failed", F, id="failed_other_worker"),
]


@pytest.mark.parametrize(("sender", "event", "template"), LATE)
async def test_event_after_completion_is_ignored(
    sender: str, event: str, template: Any, bench: Bench, finished_job: Any
) -> None:
    job_id, attempt, owner, job = finished_job
    worker = owner if sender == "owner" else bench.other_than(owner)
    payload = fill(template, job_id, attempt)
    if event == "completed":
        worker.stage(job_id, payload["attempt"], {"evil.bin": b"evil", "media.bin": b"x" * 15})
    seen, ignored = len(bench.watcher.events), bench.dispatcher.ignored_events
    await worker.emit(event, payload)
    await eventually(
        lambda: bench.dispatcher.ignored_events > ignored, timeout_s=5, interval_s=0.005,
        what="the late event to be ignored",
    )  # fmt: skip
    assert row_state(await bench.api.job(job_id)) == row_state(job)
    assert bench.watcher.events[seen:] == []
    status, body, _ = await _download(bench.api, job_id)
    assert status == 200 and body == STAGED, "a late event replaced the result"


async def _download(api: Api, job_id: str, **params: str) -> tuple[int, bytes, dict[str, str]]:
    async with api.session.get(f"/files/{job_id}/download", params=params) as resp:
        return resp.status, await resp.read(), dict(resp.headers)


async def test_late_events_reached_no_subscriber(bench: Bench, finished_job: Any) -> None:
    job_id = finished_job[0]
    late = await nothing_arrives_within(bench.watcher, 0.5)
    assert late == []
    assert [n for n, _ in bench.watcher.of(job_id) if n == "completed"] == ["completed"]


def _symlink(folder: Path) -> None:
    (folder / "link.bin").symlink_to("/etc/passwd")


def _directory(folder: Path) -> None:
    (folder / "dir.bin").mkdir()


# A bound worker's last word, strange but its own: the job must end (failed with an
# errorCode, or completed) or the event be ignored — never a job stuck as running.
LAST_WORDS = [
    pytest.param(
        "completed", completed({"name": "media.bin", "size": 15}, {"name": "media.bin", "size": 15}),
        {"ignored", "failed", "completed"}, id="completed_duplicate_names",
    ),
    pytest.param(
        "completed", one_file(name="ghost.bin"), {"failed"}, id="completed_file_missing",
    ),
    pytest.param(
        "completed", one_file(name="link.bin"), {"failed"}, id="completed_symlink_to_etc_passwd",
    ),
    pytest.param(
        "completed", one_file(name="dir.bin"), {"failed"}, id="completed_directory",
    ),
    pytest.param(
        "failed", failed(errorCode="tool_failed", message="boom\x00after nul"), {"failed"},
        id="failed_message_with_nul",
    ),
    pytest.param(
        "failed", failed(errorCode="tool_failed", message="broken \ud800 surrogate"), {"failed"},
        id="failed_message_lone_surrogate",
    ),
    pytest.param(
        "failed", failed(errorCode="tool_failed", message="\x1b[31m" + "m" * 60_000), {"failed"},
        id="failed_message_60k",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("event", "template", "outcomes"), LAST_WORDS)
async def test_odd_last_word_never_leaves_a_stuck_job(
    event: str, template: Any, outcomes: set[str], bench: Bench, main: Service
) -> None:
    job_id, attempt, owner = await bench.start_job()
    folder = results.staging_dir(main.config.data_path, job_id, attempt)
    owner.stage(job_id, attempt, {"media.bin": STAGED})
    _symlink(folder)
    _directory(folder)
    ignored = bench.dispatcher.ignored_events
    await owner.emit(event, fill(template, job_id, attempt))

    async def outcome() -> str | None:
        a = bench.dispatcher.running.get(job_id)
        if bench.dispatcher.ignored_events > ignored and a is not None and not a.finished:
            return "ignored"
        job = await bench.api.job(job_id)
        if job["status"] in ("failed", "completed") and a is None:
            return job["status"]  # type: ignore[no-any-return]
        return None

    try:
        result = await eventually(outcome, timeout_s=5, what="an outcome (not a stuck job)")
        assert result in outcomes
        job = await bench.api.job(job_id)
        if result == "failed":
            assert job["errorCode"] and SNAKE.fullmatch(job["errorCode"]), job
            assert job["errorMessage"] and len(job["errorMessage"]) <= 2000, job
        listing = (await bench.api.request("GET", f"/files/{job_id}"))[1]
        names = {f["name"] for f in listing["files"]}
        assert names <= ({"media.bin"} if result == "completed" else set()), names
        status, body, _ = await _download(bench.api, job_id, name="link.bin")
        assert status == 404
    finally:
        if bench.dispatcher.running.get(job_id) is not None:
            await bench.api.request("POST", f"/downloads/{job_id}/cancel")


async def test_worker_events_left_the_service_healthy(
    bench: Bench, main: Service, rest: Api
) -> None:
    job_id, _, _ = await bench.held()
    status, body = await rest.request("POST", f"/downloads/{job_id}/cancel")
    assert status == 200, body
    await rest.wait_status(job_id, "cancelled", timeout_s=10)
    await eventually(lambda: job_id not in bench.dispatcher.running, what="the slot to be freed")
    await _drained(main, rest)
    await assert_healthy(main, rest)


# == 6. The /jobs socket =============================================================

SUBSCRIBE_GARBAGE = [
    pytest.param(None, id="no_payload"),
    pytest.param("all", id="string"),
    pytest.param(42, id="number"),
    pytest.param([], id="list"),
    pytest.param([{"jobId": NO_SUCH_JOB}], id="list_of_object"),
    pytest.param({}, id="empty_object"),
    pytest.param({"jobId": "not-a-uuid"}, id="job_id_word"),
    pytest.param({"jobId": 42}, id="job_id_number"),
    pytest.param({"jobId": None}, id="job_id_null"),
    pytest.param({"jobId": [NO_SUCH_JOB]}, id="job_id_list"),
    pytest.param({"jobId": "x" * 1000}, id="job_id_1000_chars"),
    pytest.param({"jobId": "../../etc/passwd"}, id="job_id_traversal"),
    pytest.param({"jobId": "\ud800"}, id="job_id_surrogate"),
    pytest.param({"jobId": NO_SUCH_JOB}, id="job_id_unknown"),
    pytest.param({"all": "yes"}, id="all_string"),
    pytest.param({"all": 1}, id="all_number"),
    pytest.param({"all": None}, id="all_null"),
    pytest.param(b"\x00\x01", id="binary"),
    pytest.param({"jobId": b"\x00" * 16}, id="binary_job_id"),
]


@pytest.fixture(scope="module")
async def listener(main: Service) -> AsyncIterator[JobsClient]:
    async with JobsClient(main.base_url) as client:
        yield client


@pytest.mark.parametrize("payload", SUBSCRIBE_GARBAGE)
async def test_bad_subscribe_answers_an_error(payload: Any, listener: JobsClient) -> None:
    answer = await listener.sio.call("subscribe", payload, namespace="/jobs", timeout=5)
    assert answer["ok"] is False, answer
    error = answer["error"]
    assert SNAKE.fullmatch(error["code"]) and " " in error["message"], error
    assert listener.sio.connected


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(None, id="no_payload"),
        pytest.param("x", id="string"),
        pytest.param([], id="list"),
        pytest.param({"jobId": "not-a-uuid"}, id="job_id_word"),
        pytest.param({"jobId": 42}, id="job_id_number"),
        pytest.param({"all": "yes"}, id="all_string"),
        pytest.param({"jobId": NO_SUCH_JOB}, id="never_subscribed"),
        pytest.param(b"\xff", id="binary"),
    ],
)
async def test_bad_unsubscribe_is_harmless(payload: Any, listener: JobsClient) -> None:
    answer = await listener.sio.call("unsubscribe", payload, namespace="/jobs", timeout=5)
    assert isinstance(answer, dict) and isinstance(answer.get("ok"), bool), answer
    if answer["ok"] is False:
        assert SNAKE.fullmatch(answer["error"]["code"]) and answer["error"]["message"]
    assert listener.sio.connected


async def test_the_101st_subscription_is_refused(main: Service) -> None:
    store = main.store
    assert store is not None
    ids = [uuid.uuid4() for _ in range(101)]
    for job_id in ids:  # rows only: never queued, never run
        await store.insert_job(job_id, GOOD_URL, JobType.ARIA2, {})
        await store.transition(job_id, {Status.QUEUED}, Status.CANCELLED)
    async with JobsClient(main.base_url) as client:
        for job_id in ids[:100]:
            answer = await client.subscribe(jobId=str(job_id))
            assert answer["ok"] is True, answer
        answer = await client.subscribe(jobId=str(ids[100]))
        assert answer["ok"] is False and answer["error"]["code"] == "too_many_subscriptions"
        assert answer["error"]["message"]
        answer = await client.subscribe(all=True)
        assert answer["ok"] is False and answer["error"]["code"] == "too_many_subscriptions"
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


async def test_unknown_namespace_is_refused(main: Service) -> None:
    client = socketio.AsyncClient(reconnection=False)
    try:
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect(
                main.base_url, namespaces=["/admin"], transports=["websocket"], wait_timeout=5
            )
    finally:
        await client.disconnect()


async def test_jobs_socket_abuse_left_the_service_healthy(
    main: Service, rest: Api, listener: JobsClient
) -> None:
    assert listener.sio.connected
    assert (await listener.subscribe(all=True))["ok"] is True
    await assert_healthy(main, rest)


# == 7. SSRF at the API ==============================================================
# These URLs reach only the SSRF service, which has no worker of any kind: they are
# checked, never fetched. No name here needs DNS ("localhost" is in /etc/hosts).


@pytest.fixture(scope="module")
async def ssrf_service(new_module_config: Any) -> AsyncIterator[Service]:
    config = await new_module_config(
        network={"allow_private": False, "allow_hosts": []}, workers={"processes": 0}
    )
    async with Service(config) as service:
        yield service


SSRF_URLS = [
    pytest.param("http://127.0.0.1/", id="loopback"),
    pytest.param("http://127.5.6.7/v.mp4", id="loopback_other"),
    pytest.param("http://2130706433/", id="loopback_decimal"),
    pytest.param("http://0177.0.0.1/", id="loopback_octal"),
    pytest.param("http://017700000001/", id="loopback_octal_integer"),
    pytest.param("http://0x7f.0.0.1/", id="loopback_hex"),
    pytest.param("http://0x7f000001/", id="loopback_hex_integer"),
    pytest.param("http://127.1/", id="loopback_short"),
    pytest.param("http://127.0.0.1:6379/", id="loopback_redis_port"),
    pytest.param("https://127.0.0.1/v.mp4", id="loopback_https"),
    pytest.param("http://user:pw@127.0.0.1/", id="loopback_userinfo"),
    pytest.param("http://media.example.com@127.0.0.1/", id="loopback_after_fake_host"),
    pytest.param("http://[::1]/", id="ipv6_loopback"),
    pytest.param("http://[::ffff:127.0.0.1]/", id="ipv4_mapped_dotted"),
    pytest.param("http://[::ffff:7f00:1]/", id="ipv4_mapped_hex"),
    pytest.param("http://[::127.0.0.1]/", id="ipv4_compatible"),
    pytest.param("http://[2002:7f00:1::]/", id="6to4_loopback"),
    pytest.param("http://[64:ff9b::7f00:1]/", id="nat64_loopback"),
    pytest.param("http://[64:ff9b::a9fe:a9fe]/", id="nat64_metadata"),
    pytest.param("http://[fe80::1]/", id="ipv6_link_local"),
    pytest.param("http://[fe80::1%25eth0]/", id="ipv6_link_local_zone"),
    pytest.param("http://[fd00::1]/", id="ipv6_unique_local"),
    pytest.param("http://[fd00:ec2::254]/", id="ipv6_aws_metadata"),
    pytest.param("http://[::]/", id="ipv6_unspecified"),
    pytest.param("http://[ff02::1]/", id="ipv6_multicast"),
    pytest.param("http://10.0.0.1/", id="private_10"),
    pytest.param("http://172.16.0.1/", id="private_172_16"),
    pytest.param("http://172.31.255.254/", id="private_172_31"),
    pytest.param("http://192.168.1.1/", id="private_192_168"),
    pytest.param("http://169.254.169.254/latest/meta-data/", id="cloud_metadata"),
    pytest.param("http://2852039166/", id="cloud_metadata_decimal"),
    pytest.param("http://[::ffff:169.254.169.254]/", id="cloud_metadata_mapped"),
    pytest.param("http://100.64.0.1/", id="cgnat"),
    pytest.param("http://100.100.100.200/", id="cgnat_alibaba_metadata"),
    pytest.param("http://224.0.0.1/", id="multicast"),
    pytest.param("http://255.255.255.255/", id="broadcast"),
    pytest.param("http://0.0.0.0/", id="unspecified"),
    pytest.param("http://0/", id="zero"),
    pytest.param("http://localhost/", id="localhost"),
    pytest.param("http://LOCALHOST:8080/", id="localhost_uppercase"),
    pytest.param("http://127.0.0.1/live.m3u8", id="loopback_stream"),
    pytest.param("http://10.0.0.1/file.zip", id="private_archive"),
]


@pytest.mark.parametrize("url", SSRF_URLS)
async def test_ssrf_private_address_is_refused_at_the_api(url: str, ssrf_service: Service) -> None:
    status, _, answer = await Raw(ssrf_service.base_url).post_json(with_url(url))
    assert_error(status, answer, 400, "blocked_address")


@pytest.mark.parametrize("job_type", ["ytdlp", "aria2", "ffmpeg", "twitter"])
async def test_ssrf_refused_whatever_the_type(job_type: str, ssrf_service: Service) -> None:
    body = with_url("http://169.254.169.254/latest/meta-data/", type=job_type)
    status, _, answer = await Raw(ssrf_service.base_url).post_json(body)
    assert_error(status, answer, 400, "blocked_address")


async def test_ssrf_refusals_created_no_job(ssrf_service: Service) -> None:
    status, _, body = await Raw(ssrf_service.base_url)("GET", "/downloads")
    assert status == 200 and body["items"] == [], [j["url"] for j in body["items"]]


async def test_ssrf_service_stays_up(ssrf_service: Service) -> None:
    status, _, body = await Raw(ssrf_service.base_url)("GET", "/health")
    # No workers by design: only the parts that exist are checked.
    assert status == 503 and body["checks"]["workers"]["connected"] == 0
    for part in ("postgres", "redis", "aria2"):
        assert body["checks"][part]["status"] == "ok", body
    assert ssrf_service.failed is not None and not ssrf_service.failed.done()


# == After everything ================================================================


async def test_after_all_that_a_normal_job_still_completes(
    main: Service, rest: Api, guarded: Service, guarded_api: Api, media_server: MediaServer,
    media_dir: Path,
) -> None:  # fmt: skip
    # On the service that took the bad REST input and the forged events.
    await assert_healthy(main, rest)
    job_id = await submit(rest, GOOD_URL, type="aria2")
    job = await rest.wait_status(job_id, "completed", "failed", timeout_s=10)
    assert job["status"] == "completed", job
    status, body, _ = await _download(rest, job_id)
    assert status == 200 and body == STAGED
    # And a real download with a real tool on the token-protected one.
    job_id = await submit(guarded_api, media_server.url("video.mp4"))
    job = await guarded_api.wait_status(job_id, "completed", "failed", timeout_s=60)
    assert job["status"] == "completed", job
    status, body, _ = await _download(guarded_api, job_id)
    assert status == 200
    assert hashlib.sha256(body).hexdigest() == hashlib.sha256(
        (media_dir / "video.mp4").read_bytes()
    ).hexdigest()
    await assert_healthy(guarded, guarded_api)

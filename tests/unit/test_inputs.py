"""mediad.inputs: validation of REST bodies and query strings."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID, uuid4

import pytest

from mediad.errors import ApiError, BadRequest
from mediad.inputs import (
    MAX_URL_LENGTH,
    ListQuery,
    encode_cursor,
    option_names,
    parse_detect_query,
    parse_job_id,
    parse_list_query,
    parse_new_download,
    parse_options,
)
from mediad.models import JobType, Status

URL = "https://www.youtube.com/watch?v=dQw4w9WgXcQ"


def bad_request(func: Any, *args: Any) -> BadRequest:
    with pytest.raises(BadRequest) as info:
        func(*args)
    exc = info.value
    assert exc.status == 400
    assert isinstance(exc, ApiError)
    assert exc.message and "\n" not in exc.message
    return exc


def new(**body: Any) -> tuple[str, JobType, dict[str, Any]]:
    return parse_new_download(body)


# --- body and url ---------------------------------------------------------------------------


def test_minimal_body() -> None:
    assert new(url=URL) == (URL, JobType.YTDLP, {})


def test_url_is_stripped() -> None:
    assert new(url=f"  {URL}\n")[0] == URL


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com",
        "HTTPS://EXAMPLE.COM/A",
        "https://user:pass@example.com/x",
        "http://127.0.0.1:8080/a.mp4",
        "http://[::1]:8080/a.mp4",
        "https://example.com/path?q=1#frag",
        "https://例え.jp/動画",
    ],
)
def test_good_urls(url: str) -> None:
    assert new(url=url)[0] == url


def test_url_at_max_length() -> None:
    url = "https://example.com/" + "a" * (MAX_URL_LENGTH - len("https://example.com/"))
    assert len(url) == MAX_URL_LENGTH
    assert new(url=url)[0] == url


@pytest.mark.parametrize("body", [None, [], "https://example.com", 1, True])
def test_body_must_be_an_object(body: Any) -> None:
    assert bad_request(parse_new_download, body).code == "invalid_body"


@pytest.mark.parametrize(
    "body",
    [{}, {"url": None}, {"url": ""}, {"url": "   "}, {"url": 5}, {"url": ["http://a"]},
     {"url": {"href": URL}}, {"type": "ytdlp"}],
)  # fmt: skip
def test_missing_or_non_string_url(body: dict[str, Any]) -> None:
    assert bad_request(parse_new_download, body).code == "invalid_url"


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/" + "a" * MAX_URL_LENGTH,
        "https://example.com/a b",
        "https://exa mple.com/",
        "https://example.com/a\tb",
        "https://example.com/a\nb",
        "https://example.com/a\x00b",
        "https://example.com/a\x1bb",
        "https://example.com/a\x7fb",
        "http://",
        "https://",
        "http:///path",
        "http://?q=1",
        "http://#frag",
        "http://user@/path",
        "http://:8080/path",
    ],
)
def test_bad_urls(url: str) -> None:
    assert bad_request(parse_new_download, {"url": url}).code == "invalid_url"


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/a.mp4",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567",
        "data:text/plain,hello",
        "ws://example.com/",
        "example.com/video.mp4",
        "//example.com/video.mp4",
        "http:/example.com",
        "httpx://example.com",
        "gopher://example.com",
    ],
)
def test_unsupported_schemes(url: str) -> None:
    assert bad_request(parse_new_download, {"url": url}).code == "unsupported_scheme"


@pytest.mark.parametrize(
    "body", [{"url": URL, "extra": 1}, {"url": URL, "Type": "ytdlp"}, {"url": URL, "opts": {}}]
)
def test_unknown_top_level_fields(body: dict[str, Any]) -> None:
    assert bad_request(parse_new_download, body).code == "unknown_field"


# --- type -----------------------------------------------------------------------------------


@pytest.mark.parametrize("job_type", list(JobType))
def test_explicit_type(job_type: JobType) -> None:
    assert new(url=URL, type=job_type.value)[1] is job_type


@pytest.mark.parametrize("value", ["YTDLP", "youtube", "", "http", 1, True, ["ytdlp"], {"t": 1}])
def test_invalid_type(value: Any) -> None:
    assert bad_request(parse_new_download, {"url": URL, "type": value}).code == "invalid_type"


@pytest.mark.parametrize(
    ("url", "job_type"),
    [
        (URL, JobType.YTDLP),
        ("https://x.com/jack/status/20", JobType.TWITTER),
        ("https://twitter.com/jack", JobType.TWITTER),
        ("https://cdn.example.com/a/index.m3u8?t=1", JobType.FFMPEG),
        ("https://cdn.example.com/a/manifest.mpd", JobType.FFMPEG),
        ("https://files.example.com/a.mp4", JobType.ARIA2),
        ("https://files.example.com/a.zip", JobType.ARIA2),
    ],
)
def test_type_detected_when_absent(url: str, job_type: JobType) -> None:
    assert new(url=url)[1] is job_type
    assert new(url=url, type=None)[1] is job_type


def test_explicit_type_beats_detection() -> None:
    assert new(url="https://files.example.com/a.mp4", type="ytdlp")[1] is JobType.YTDLP


# --- options --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("job_type", "options"),
    [
        ("ytdlp", {"format": "best"}),
        ("ytdlp", {"format": "1080p"}),
        ("ytdlp", {"format": "720p"}),
        ("ytdlp", {"format": "480p"}),
        ("ytdlp", {"format": "audio"}),
        ("ytdlp", {"format": "bestvideo+bestaudio/best"}),
        ("ytdlp", {"format": "bv*[height<=720][ext=mp4]+ba[ext=m4a]/b[height<=720]"}),
        ("ytdlp", {"format": "(bv*+ba/b)[protocol^=http][ext$=mp4]"}),
        ("ytdlp", {"format": "137,140"}),
        ("ytdlp", {"format": "bv*[format_id~=^dash]"}),
        ("ytdlp", {"audioOnly": True}),
        ("ytdlp", {"audioOnly": False}),
        ("ytdlp", {"audioOnly": True, "audioFormat": "mp3"}),
        ("ytdlp", {"playlist": True}),
        ("ytdlp", {"playlist": False}),
        ("ytdlp", {"maxItems": 1}),
        ("ytdlp", {"maxItems": 1000}),
        ("ytdlp", {"subtitles": ["en"]}),
        ("ytdlp", {"subtitles": ["en", "pt-BR", "zh_Hans", "all"]}),
        ("ytdlp", {"playlist": True, "maxItems": 5, "format": "best", "subtitles": ["de"]}),
        ("ffmpeg", {"container": "mp4"}),
        ("ffmpeg", {"container": "mkv"}),
        ("twitter", {"mediaType": "images"}),
        ("twitter", {"mediaType": "videos"}),
        ("twitter", {"mediaType": "all"}),
        ("twitter", {"includeRetweets": True}),
        ("twitter", {"includeRetweets": False}),
        ("twitter", {"maxTweets": 1}),
        ("twitter", {"maxTweets": 3000}),
        ("twitter", {"mediaType": "videos", "includeRetweets": False, "maxTweets": 10}),
        ("aria2", {}),
        ("ffmpeg", {}),
    ],
)
def test_valid_options(job_type: str, options: dict[str, Any]) -> None:
    assert new(url=URL, type=job_type, options=options)[2] == options


@pytest.mark.parametrize("job_type", ["ytdlp", "aria2", "ffmpeg", "twitter"])
def test_no_options(job_type: str) -> None:
    assert new(url=URL, type=job_type)[2] == {}
    assert new(url=URL, type=job_type, options=None)[2] == {}


def test_single_subtitle_string_becomes_a_list() -> None:
    assert new(url=URL, options={"subtitles": "en"})[2] == {"subtitles": ["en"]}


@pytest.mark.parametrize("audio_format", ["mp3", "m4a", "opus", "flac", "wav"])
def test_audio_format_implies_audio_only(audio_format: str) -> None:
    options = new(url=URL, options={"audioFormat": audio_format})[2]
    assert options == {"audioFormat": audio_format, "audioOnly": True}


def test_options_are_copied() -> None:
    given = {"playlist": True}
    options = new(url=URL, options=given)[2]
    options["maxItems"] = 3
    assert given == {"playlist": True}


@pytest.mark.parametrize("options", [[], "best", 1, True, [("format", "best")]])
def test_options_must_be_an_object(options: Any) -> None:
    exc = bad_request(parse_new_download, {"url": URL, "options": options})
    assert exc.code == "invalid_options"


@pytest.mark.parametrize(
    ("job_type", "options"),
    [
        # format presets and selectors
        ("ytdlp", {"format": ""}),
        ("ytdlp", {"format": "best; rm -rf /"}),
        ("ytdlp", {"format": "best;id"}),
        ("ytdlp", {"format": "`id`"}),
        ("ytdlp", {"format": "best`id`"}),
        ("ytdlp", {"format": "$(id)"}),
        ("ytdlp", {"format": "best/$(rm -rf ~)"}),
        ("ytdlp", {"format": "best && id"}),
        ("ytdlp", {"format": "best | id"}),
        ("ytdlp", {"format": "best\n"}),
        ("ytdlp", {"format": "best\nid"}),
        ("ytdlp", {"format": "'best'"}),
        ("ytdlp", {"format": '"best"'}),
        ("ytdlp", {"format": "best\\"}),
        ("ytdlp", {"format": "b" * 201}),
        ("ytdlp", {"format": None}),
        ("ytdlp", {"format": 22}),
        ("ytdlp", {"format": ["best"]}),
        # booleans
        ("ytdlp", {"audioOnly": "true"}),
        ("ytdlp", {"audioOnly": 1}),
        ("ytdlp", {"audioOnly": None}),
        ("ytdlp", {"playlist": "yes"}),
        ("ytdlp", {"playlist": 0}),
        ("twitter", {"includeRetweets": "false"}),
        # choices
        ("ytdlp", {"audioFormat": "ogg"}),
        ("ytdlp", {"audioFormat": "MP3"}),
        ("ytdlp", {"audioFormat": ""}),
        ("ytdlp", {"audioFormat": None}),
        ("ytdlp", {"audioFormat": 3}),
        ("ytdlp", {"audioFormat": ["mp3"]}),
        ("ytdlp", {"audioFormat": {"f": "mp3"}}),
        ("ffmpeg", {"container": "avi"}),
        ("ffmpeg", {"container": ["mp4"]}),
        ("ffmpeg", {"container": None}),
        ("twitter", {"mediaType": "gifs"}),
        ("twitter", {"mediaType": ["all"]}),
        # whole numbers
        ("ytdlp", {"maxItems": 0}),
        ("ytdlp", {"maxItems": 1001}),
        ("ytdlp", {"maxItems": -1}),
        ("ytdlp", {"maxItems": 5.0}),
        ("ytdlp", {"maxItems": "5"}),
        ("ytdlp", {"maxItems": True}),
        ("twitter", {"maxTweets": 0}),
        ("twitter", {"maxTweets": 3001}),
        ("twitter", {"maxTweets": 1.5}),
        ("twitter", {"maxTweets": False}),
        # languages
        ("ytdlp", {"subtitles": []}),
        ("ytdlp", {"subtitles": ["e"]}),
        ("ytdlp", {"subtitles": ["english!"]}),
        ("ytdlp", {"subtitles": ["en", 1]}),
        ("ytdlp", {"subtitles": ["en;id"]}),
        ("ytdlp", {"subtitles": ["en\n"]}),
        ("ytdlp", {"subtitles": "en\n"}),
        ("ytdlp", {"subtitles": ["en"] * 21}),
        ("ytdlp", {"subtitles": {"en": True}}),
        ("ytdlp", {"subtitles": 1}),
        # unknown keys, and keys of another type
        ("ytdlp", {"bogus": 1}),
        ("ytdlp", {"Format": "best"}),
        ("ytdlp", {"container": "mp4"}),
        ("ytdlp", {"mediaType": "all"}),
        ("aria2", {"format": "best"}),
        ("aria2", {"anything": 1}),
        ("ffmpeg", {"format": "best"}),
        ("twitter", {"playlist": True}),
        ("twitter", {"format": "best"}),
    ],
    ids=lambda v: v if isinstance(v, str) else repr(v),
)
def test_invalid_options(job_type: str, options: dict[str, Any]) -> None:
    exc = bad_request(parse_new_download, {"url": URL, "type": job_type, "options": options})
    assert exc.code == "invalid_options"


def test_option_error_names_the_option() -> None:
    exc = bad_request(parse_new_download, {"url": URL, "options": {"maxItems": 0}})
    assert "maxItems" in exc.message
    exc = bad_request(parse_new_download, {"url": URL, "type": "aria2", "options": {"x": 1}})
    assert "'x'" in exc.message


def test_options_checked_against_the_detected_type() -> None:
    body = {"url": "https://files.example.com/a.mp4", "options": {"format": "best"}}
    assert bad_request(parse_new_download, body).code == "invalid_options"


# --- job ids --------------------------------------------------------------------------------


def test_parse_job_id() -> None:
    job_id = uuid4()
    assert parse_job_id(str(job_id)) == job_id
    assert parse_job_id(str(job_id).upper()) == job_id


@pytest.mark.parametrize(
    "value", ["", "1", "not-a-uuid", "0b9e4a6e-3c1f-4d0e-9a57-2f1f3c0e8d1", "g" * 32, "../etc"]
)
def test_bad_job_id(value: str) -> None:
    assert bad_request(parse_job_id, value).code == "invalid_job_id"


# --- list query -----------------------------------------------------------------------------


def test_list_query_defaults() -> None:
    assert parse_list_query({}) == ListQuery(statuses=None, search=None, limit=50, after=None)


@pytest.mark.parametrize("status", list(Status))
def test_list_query_status(status: Status) -> None:
    assert parse_list_query({"status": status.value}).statuses == (status,)


def test_empty_status_means_all() -> None:
    assert parse_list_query({"status": ""}).statuses is None


def test_several_statuses() -> None:
    query = parse_list_query({"status": "running,paused,running"})
    assert query.statuses == (Status.RUNNING, Status.PAUSED)  # in order, once each


@pytest.mark.parametrize(
    "status",
    ["done", "QUEUED", "queued,", ",queued", "queued,,running", " queued", "queued, paused"],
)
def test_bad_status(status: str) -> None:
    assert bad_request(parse_list_query, {"status": status}).code == "bad_query"


@pytest.mark.parametrize(("text", "limit"), [("1", 1), ("50", 50), ("200", 200), ("007", 7)])
def test_limit(text: str, limit: int) -> None:
    assert parse_list_query({"limit": text}).limit == limit


@pytest.mark.parametrize(
    "text", ["0", "201", "1000", "-1", "+5", "1.5", "1e2", "", " 5", "5 ", "ten", "²", "١٢", "0x10"]
)
def test_bad_limit(text: str) -> None:
    assert bad_request(parse_list_query, {"limit": text}).code == "bad_query"


def test_list_query_subscription() -> None:
    sub = uuid.uuid4()
    assert parse_list_query({"subscription": str(sub)}).subscription == sub
    assert parse_list_query({}).subscription is None
    for bad in ("", "nope", str(sub)[:-1]):
        assert bad_request(parse_list_query, {"subscription": bad}).code == "bad_query"


@pytest.mark.parametrize("query", [{"page": "2"}, {"offset": "0"}, {"Status": "queued"}])
def test_unknown_query_params(query: dict[str, str]) -> None:
    assert bad_request(parse_list_query, query).code == "bad_query"


@pytest.mark.parametrize(
    "created_at",
    [
        datetime(2024, 5, 1, 12, 30, 45, 123456, tzinfo=UTC),
        datetime(2024, 5, 1, tzinfo=UTC),
        datetime(1999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-5))),
    ],
)
def test_cursor_round_trip(created_at: datetime) -> None:
    job_id = uuid4()
    cursor = encode_cursor(created_at, job_id)
    assert "=" not in cursor and "/" not in cursor and "+" not in cursor
    query = parse_list_query({"cursor": cursor, "limit": "10", "status": "failed"})
    assert (query.statuses, query.limit) == ((Status.FAILED,), 10)
    after = query.after
    assert after is not None
    assert after == (created_at, job_id)  # the same instant…
    assert after[0].utcoffset() == timedelta(0)  # …in UTC, as PostgreSQL compares it


def test_empty_cursor_means_first_page() -> None:
    assert parse_list_query({"cursor": ""}).after is None


@pytest.mark.parametrize("text", ["video", "50%_off", "é 名", "a" * 200])
def test_search(text: str) -> None:
    assert parse_list_query({"q": text}).search == text


def test_empty_search_means_all() -> None:
    assert parse_list_query({"q": ""}).search is None


@pytest.mark.parametrize("text", ["a" * 201, "line\nbreak", "nul\x00", "\x7f"])
def test_bad_search(text: str) -> None:
    assert bad_request(parse_list_query, {"q": text}).code == "bad_query"


def test_detect_query() -> None:
    assert parse_detect_query({"url": " https://example.com/v "}) == "https://example.com/v"
    assert bad_request(parse_detect_query, {}).code == "invalid_url"
    assert bad_request(parse_detect_query, {"url": "ftp://x/y"}).code == "unsupported_scheme"
    assert bad_request(parse_detect_query, {"url": "https://a/b", "x": "1"}).code == "bad_query"


def test_option_names_are_the_ones_validated() -> None:
    assert option_names(JobType.ARIA2) == ["notify"]  # every type takes notify
    assert option_names(JobType.FFMPEG) == ["container", "notify"]
    for job_type in JobType:
        for name in option_names(job_type):
            # every listed option is accepted by its type; an unlisted one is refused
            assert name in str(bad_request(parse_options, job_type, {name: object()}))
        assert bad_request(parse_options, job_type, {"nope": 1}).code == "invalid_options"


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "x",
        "garbage!!",
        "====",
        "é",
        "a" * 5,
        _b64("no separator"),
        _b64("2024-05-01T12:00:00+00:00|"),
        _b64("2024-05-01T12:00:00+00:00|not-a-uuid"),
        _b64(f"2024-05-01T12:00:00|{UUID(int=1)}"),  # naive time
        _b64(f"yesterday|{UUID(int=1)}"),
        _b64(f"|{UUID(int=1)}"),
        "_w_w",  # decodes to bytes that are not UTF-8
    ],
)
def test_garbage_cursor(cursor: str) -> None:
    assert bad_request(parse_list_query, {"cursor": cursor}).code == "bad_cursor"

"""mediad.wire: the worker protocol, its encodings and the validation of every message."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from mediad import wire
from mediad.errors import InvalidEvent, MediadError

JOB = "0b9e4a6e-3c1f-4d0e-9a57-2f1f3c0e8d11"


def progress(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"jobId": JOB, "attempt": 1, "stage": "downloading", "progress": 42.5}
    data.update(changes)
    return data


def completed(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"jobId": JOB, "attempt": 1, "files": [{"name": "a.mp4", "size": 10}]}
    data.update(changes)
    return data


def failed(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"jobId": JOB, "attempt": 2, "errorCode": "network", "message": "boom"}
    data.update(changes)
    return data


PARSERS = [
    pytest.param(wire.parse_progress, progress, id="progress"),
    pytest.param(wire.parse_completed, completed, id="completed"),
    pytest.param(wire.parse_failed, failed, id="failed"),
]


# --- good payloads --------------------------------------------------------------------------


def test_progress_minimal() -> None:
    event = wire.parse_progress(progress())
    assert event == wire.ProgressEvent(
        job_id=JOB,
        attempt=1,
        live=wire.Live(stage="downloading", progress=42.5, speed=None, eta=None, total_bytes=None),
    )


def test_progress_full() -> None:
    event = wire.parse_progress(
        progress(stage="merging", progress=100, speed=1_000_000, eta=0, totalBytes=2**40)
    ).live
    assert event.stage == "merging"
    assert event.progress == 100.0
    assert isinstance(event.progress, float)
    assert event.speed == 1_000_000
    assert event.eta == 0
    assert event.total_bytes == 2**40


@pytest.mark.parametrize("stage", sorted(wire.WORKER_STAGES))
def test_every_worker_stage_is_accepted(stage: str) -> None:
    assert wire.parse_progress(progress(stage=stage)).live.stage == stage


@pytest.mark.parametrize("value", [0, 0.0, 1e-9, 50, 99.99, 100, 100.0, None])
def test_progress_bounds_accepted(value: Any) -> None:
    parsed = wire.parse_progress(progress(progress=value)).live.progress
    assert parsed == (None if value is None else float(value))


def test_progress_key_may_be_absent() -> None:
    data = progress()
    del data["progress"]
    assert wire.parse_progress(data).live.progress is None


@pytest.mark.parametrize("value", [0, 1, 3.0, wire.MAX_INT])
def test_counts_accepted(value: Any) -> None:
    event = wire.parse_progress(progress(speed=value, eta=value, totalBytes=value)).live
    assert event.speed == event.eta == event.total_bytes == int(value)
    assert type(event.speed) is int


def test_job_id_is_made_canonical() -> None:
    assert wire.parse_progress(progress(jobId=JOB.upper())).job_id == JOB
    assert wire.parse_progress(progress(jobId=JOB.replace("-", ""))).job_id == JOB


def test_extra_keys_are_ignored() -> None:
    assert wire.parse_progress(progress(extra="x")).job_id == JOB


def test_completed() -> None:
    event = wire.parse_completed(
        completed(files=[{"name": "a.mp4", "size": 10}, {"name": "a.en.vtt", "size": 0}])
    )
    assert event.job_id == JOB
    assert event.attempt == 1
    assert event.files == (wire.FileEntry("a.mp4", 10), wire.FileEntry("a.en.vtt", 0))
    assert event.size == 10


def test_completed_unicode_names() -> None:
    event = wire.parse_completed(completed(files=[{"name": "vidéo 日本 (1).mp4", "size": 1}]))
    assert event.files[0].name == "vidéo 日本 (1).mp4"


def test_failed() -> None:
    event = wire.parse_failed(failed())
    assert event == wire.FailedEvent(job_id=JOB, attempt=2, error_code="network", message="boom")


@pytest.mark.parametrize("code", ["a", "network", "http_404", "worker_crashed", "x" * 40])
def test_failed_error_codes_accepted(code: str) -> None:
    assert wire.parse_failed(failed(errorCode=code)).error_code == code


def test_failed_message_is_truncated() -> None:
    event = wire.parse_failed(failed(message="é" * 5000))
    assert event.message == "é" * wire.MAX_MESSAGE
    assert len(event.message) == 2000


def test_failed_message_may_be_empty() -> None:
    assert wire.parse_failed(failed(message="")).message == ""


# --- bad payloads, common to all three ------------------------------------------------------


@pytest.mark.parametrize(("parse", "make"), PARSERS)
@pytest.mark.parametrize("payload", [None, [], "x", 1, (), [("jobId", JOB)]])
def test_non_dict_payload(parse: Any, make: Any, payload: Any) -> None:
    with pytest.raises(InvalidEvent):
        parse(payload)


@pytest.mark.parametrize(("parse", "make"), PARSERS)
@pytest.mark.parametrize(
    "job_id",
    [
        None,
        "",
        "not-a-uuid",
        JOB[:-1],
        JOB + "0",
        "x" * 65,
        "0" * 32 + " " * 40,
        "{" + JOB + "}" + " " * 40,
        12345,
        1.5,
        True,
        [JOB],
        {"id": JOB},
    ],
)
def test_bad_job_id(parse: Any, make: Any, job_id: Any) -> None:
    with pytest.raises(InvalidEvent, match="jobId"):
        parse(make(jobId=job_id))


@pytest.mark.parametrize(("parse", "make"), PARSERS)
def test_missing_job_id(parse: Any, make: Any) -> None:
    data = make()
    del data["jobId"]
    with pytest.raises(InvalidEvent, match="jobId"):
        parse(data)


@pytest.mark.parametrize(("parse", "make"), PARSERS)
@pytest.mark.parametrize(
    "attempt", [None, 0, -1, True, False, 1.0, 1.5, "1", 10**6, 2**64, float("nan"), [1]]
)
def test_bad_attempt(parse: Any, make: Any, attempt: Any) -> None:
    with pytest.raises(InvalidEvent, match="attempt"):
        parse(make(attempt=attempt))


@pytest.mark.parametrize(("parse", "make"), PARSERS)
@pytest.mark.parametrize("attempt", [1, 2, 1000])
def test_good_attempt(parse: Any, make: Any, attempt: int) -> None:
    assert parse(make(attempt=attempt)).attempt == attempt


def test_invalid_event_is_a_mediad_error() -> None:
    with pytest.raises(MediadError):
        wire.parse_progress(None)


# --- progress -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "stage", [None, "", "queued", "DOWNLOADING", "downloading ", "done", 1, ["downloading"]]
)
def test_bad_stage(stage: Any) -> None:
    with pytest.raises(InvalidEvent, match="stage"):
        wire.parse_progress(progress(stage=stage))


@pytest.mark.parametrize(
    "value",
    [
        float("nan"),
        float("inf"),
        float("-inf"),
        -1,
        -0.01,
        100.01,
        101,
        "50",
        "",
        True,
        False,
        [50],
        {"p": 50},
        pytest.param(10**400, id="huge_int"),
    ],
)
def test_bad_progress(value: Any) -> None:
    with pytest.raises(InvalidEvent, match="progress"):
        wire.parse_progress(progress(progress=value))


@pytest.mark.parametrize("key", ["speed", "eta", "totalBytes"])
@pytest.mark.parametrize(
    "value",
    [
        -1,
        -1.0,
        1.5,
        0.1,
        True,
        False,
        "10",
        float("nan"),
        float("inf"),
        wire.MAX_INT + 1,
        1e300,
        [1],
    ],
)
def test_bad_counts(key: str, value: Any) -> None:
    with pytest.raises(InvalidEvent, match=key):
        wire.parse_progress(progress(**{key: value}))


# --- completed ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "files", [None, [], "a.mp4", {"name": "a.mp4", "size": 1}, ({"name": "a", "size": 1},)]
)
def test_bad_files_list(files: Any) -> None:
    with pytest.raises(InvalidEvent, match="files"):
        wire.parse_completed(completed(files=files))


def test_too_many_files() -> None:
    files = [{"name": f"{i}.jpg", "size": 1} for i in range(wire.MAX_FILES + 1)]
    with pytest.raises(InvalidEvent):
        wire.parse_completed(completed(files=files))


def test_missing_files() -> None:
    data = completed()
    del data["files"]
    with pytest.raises(InvalidEvent):
        wire.parse_completed(data)


@pytest.mark.parametrize(
    "entry",
    [
        None,
        "a.mp4",
        ["a.mp4", 1],
        {"name": "a.mp4"},
        {"size": 1},
        {"name": "a.mp4", "size": -1},
        {"name": "a.mp4", "size": 1.0},
        {"name": "a.mp4", "size": True},
        {"name": "a.mp4", "size": "1"},
        {"name": "a.mp4", "size": wire.MAX_INT + 1},
        {"name": "", "size": 1},
        {"name": None, "size": 1},
        {"name": 5, "size": 1},
        {"name": ".", "size": 1},
        {"name": "..", "size": 1},
        {"name": "../a.mp4", "size": 1},
        {"name": "dir/a.mp4", "size": 1},
        {"name": "/etc/passwd", "size": 1},
        {"name": "a\\b.mp4", "size": 1},
        {"name": "a\x00.mp4", "size": 1},
        {"name": "a\n.mp4", "size": 1},
        {"name": "a\r.mp4", "size": 1},
        {"name": "a\t.mp4", "size": 1},
        {"name": "a\x1b[31m.mp4", "size": 1},
        {"name": "a\x7f.mp4", "size": 1},
        {"name": "a" * 256, "size": 1},
        {"name": "é" * 128, "size": 1},  # 128 characters, 256 bytes
    ],
)
def test_bad_file_entries(entry: Any) -> None:
    with pytest.raises(InvalidEvent):
        wire.parse_completed(completed(files=[{"name": "ok.mp4", "size": 1}, entry]))


# --- failed ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    [
        None,
        "",
        "Network",
        "NETWORK",
        "network-error",
        "network error",
        "1network",
        "_network",
        "network\n",
        "x" * 41,
        "réseau",
        5,
        ["network"],
    ],
)
def test_bad_error_code(code: Any) -> None:
    with pytest.raises(InvalidEvent, match="errorCode"):
        wire.parse_failed(failed(errorCode=code))


@pytest.mark.parametrize("message", [None, 5, ["m"], {"m": 1}])
def test_bad_failed_message(message: Any) -> None:
    with pytest.raises(InvalidEvent, match="message"):
        wire.parse_failed(failed(message=message))


# --- safe_file_name -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "a",
        "a.mp4",
        ".hidden",
        "...",
        "a..b",
        "..a",
        "-rf",
        "name with spaces.mkv",
        "日本語.mp4",
        "a" * 255,
        "é" * 127 + "a",  # 255 bytes
        "emoji 🎬.mp4",
    ],
)
def test_safe_file_name_accepts(name: str) -> None:
    assert wire.safe_file_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        ".",
        "..",
        "/",
        "a/b",
        "a/",
        "/a",
        "\\",
        "a\\b",
        "\x00",
        "a\x00b",
        "\x01",
        "\x1f",
        "\x7f",
        "line\nbreak",
        "a" * 256,
        "日" * 86,  # 258 bytes
        None,
        b"a.mp4",
        1,
        ["a"],
    ],
)
def test_safe_file_name_rejects(name: Any) -> None:
    with pytest.raises(InvalidEvent):
        wire.safe_file_name(name)


# --- every message: encoded by one side, parsed by the other ------------------------------

START = {"jobId": JOB, "attempt": 3, "url": "https://example.com/a", "type": "aria2", "options": {}}


@pytest.mark.parametrize(
    ("message", "parse"),
    [
        pytest.param(wire.JobStart(JOB, 3, "https://x/y", "ytdlp", {"audioOnly": True}),
                     wire.parse_job_start, id="job:start"),
        pytest.param(wire.JobControl(JOB, 2, "pause"), wire.parse_job_control, id="job:control"),
        pytest.param(wire.ProgressEvent(JOB, 1, wire.Live("merging", 50.0, 10, 2, 100)),
                     wire.parse_progress, id="progress"),
        pytest.param(wire.CompletedEvent(JOB, 1, (wire.FileEntry("a.mp4", 3),)),
                     wire.parse_completed, id="completed"),
        pytest.param(wire.FailedEvent(JOB, 1, "network", "no route"), wire.parse_failed,
                     id="failed"),
        pytest.param(wire.StoppedEvent(JOB, 4, "cancel"), wire.parse_stopped, id="stopped"),
        pytest.param(wire.Heartbeat(JOB, 1, True), wire.parse_heartbeat, id="heartbeat"),
        pytest.param(wire.Heartbeat(), wire.parse_heartbeat, id="heartbeat-idle"),
    ],
)  # fmt: skip
def test_what_one_side_encodes_the_other_parses_to_the_same_message(
    message: Any, parse: Any
) -> None:
    assert parse(message.encode()) == message


def test_job_start_without_options_means_none() -> None:
    data = dict(START)
    del data["options"]
    assert wire.parse_job_start(data).options == {}


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"url": ""}, "url"),
        ({"url": 5}, "url"),
        ({"url": "h" * (wire.MAX_URL + 1)}, "url"),
        ({"type": "torrent"}, "type"),
        ({"type": None}, "type"),
        ({"options": []}, "options"),
        ({"jobId": "nope"}, "jobId"),
        ({"attempt": 0}, "attempt"),
        ({"attempt": "1"}, "attempt"),
    ],
)
def test_a_bad_job_start_is_refused_saying_what(changes: dict[str, Any], says: str) -> None:
    with pytest.raises(InvalidEvent, match=says):
        wire.parse_job_start({**START, **changes})


@pytest.mark.parametrize("action", ["resume", "", None, 1])
def test_a_control_action_must_be_known(action: Any) -> None:
    with pytest.raises(InvalidEvent, match="action"):
        wire.parse_job_control({"jobId": JOB, "attempt": 1, "action": action})


def test_stopped_with_an_unknown_action_is_still_a_stop() -> None:
    assert wire.parse_stopped({"jobId": JOB, "attempt": 1, "action": "x"}).action == "abort"
    with pytest.raises(InvalidEvent, match="jobId"):
        wire.parse_stopped({"attempt": 1})


@pytest.mark.parametrize(
    "data",
    [None, [], {}, {"jobId": "bad", "attempt": 1, "active": True}, {"jobId": JOB, "attempt": 0}],
)
def test_a_heartbeat_without_a_valid_job_still_counts_as_a_beat(data: Any) -> None:
    assert wire.parse_heartbeat(data) == wire.Heartbeat()


def test_a_heartbeat_is_active_only_when_it_says_true() -> None:
    assert not wire.parse_heartbeat({"jobId": JOB, "attempt": 1, "active": 1}).active
    assert wire.parse_heartbeat({"jobId": JOB, "attempt": 1, "active": True}).active


def test_job_stages_are_the_worker_stages_after_queued() -> None:
    assert wire.JOB_STAGES == ("queued", *wire.WORKER_STAGES)
    assert wire.STOPPING_ACTIONS < wire.CONTROL_ACTIONS


@pytest.mark.parametrize(
    ("progress", "sent"),
    [(None, None), (0.0, 0.0), (12.3456, 12.35), (99.999, 100.0), (100.0, 100.0)],
)
def test_the_worker_sends_its_reading_rounded_and_the_server_accepts_it(
    progress: float | None, sent: float | None
) -> None:
    from mediad.worker.progress import Progress

    live = Progress("downloading", progress, speed=5, eta=1, total_bytes=9).live()
    assert live == wire.Live("downloading", sent, 5, 1, 9)
    parsed = wire.parse_progress(wire.ProgressEvent(JOB, 1, live).encode())
    assert parsed.live == live


# --- a subscription's listing: listing:start and listed -----------------------------------

CHECK = "6f1c2b8a-9d3e-4f5a-8b7c-1d2e3f4a5b6c"
ENTRY = {"extractor": "Youtube", "id": "abc", "url": "https://y.example/watch?v=abc",
         "title": "A"}  # fmt: skip


def listed(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"checkId": CHECK, "attempt": 1, "title": "Feed",
                            "entries": [dict(ENTRY)], "final": True}  # fmt: skip
    data.update(changes)
    return data


def entry(**changes: Any) -> dict[str, Any]:
    return {**ENTRY, **changes}


def test_listed_parses_to_its_entries() -> None:
    ev = wire.parse_listed(listed())
    assert ev == wire.ListedEvent(
        CHECK, 1, (wire.ListedEntry("Youtube", "abc", "https://y.example/watch?v=abc", "A"),),
        "Feed", final=True,
    )  # fmt: skip


@pytest.mark.parametrize(
    "message",
    [
        wire.ListingStart(CHECK, 2, "https://y.example/@c/videos", "ytdlp", 100),
        wire.ListingStart(CHECK, 1, "https://y.example/@c/videos", "ytdlp", 5, "members"),
        wire.ListedEvent(
            CHECK,
            1,
            (
                wire.ListedEntry("Generic", "g1", "https://f/1", None),
                wire.ListedEntry("Generic", "g2", "https://f/2", "Two"),
            ),
            "Feed",
            final=False,
        ),
        wire.ListedEvent(CHECK, 3, (), None, final=True),
    ],
)
def test_listing_messages_round_trip(message: Any) -> None:
    parse = (
        wire.parse_listing_start if isinstance(message, wire.ListingStart) else wire.parse_listed
    )
    assert parse(message.encode()) == message


def test_listed_without_final_is_the_last_and_extra_keys_are_ignored() -> None:
    data = listed(extra=1, entries=[entry(more="x", duration=3)])
    del data["final"]
    ev = wire.parse_listed(data)
    assert ev.final is True and ev.entries[0].entry_id == "abc"


def test_listed_title_is_optional_cleaned_and_cut() -> None:
    data = listed(entries=[entry(title=None)])
    del data["title"]
    ev = wire.parse_listed(data)
    assert ev.title is None and ev.entries[0].title is None
    ev = wire.parse_listed(listed(title="t\x00" + "x" * 1000, entries=[entry(title="")]))
    assert ev.title == "t\ufffd" + "x" * (wire.MAX_TITLE - 2)
    assert ev.entries[0].title is None  # empty: none


def test_listed_entry_bounds_taken() -> None:
    longest = entry(extractor="x" * 64, id="i" * wire.MAX_ENTRY_KEY,
                    url="https://a.example/" + "u" * (wire.MAX_ENTRY_URL - 18))  # fmt: skip
    many = [entry(id=str(i)) for i in range(wire.MAX_ENTRIES_PER_MESSAGE)]
    assert wire.parse_listed(listed(entries=[longest])).entries[0].url == longest["url"]
    assert len(wire.parse_listed(listed(entries=many)).entries) == wire.MAX_ENTRIES_PER_MESSAGE
    assert wire.parse_listed(listed(entries=[])).entries == ()


def test_listed_text_is_made_storable() -> None:
    ev = wire.parse_listed(listed(entries=[entry(id="a\x00b", extractor="\ud800x")]))
    assert ev.entries[0].entry_id == "a\ufffdb" and ev.entries[0].extractor == "?x"


def test_listed_does_not_judge_an_entry_url_s_scheme() -> None:
    """One odd entry must not drop a whole message (and with it the check): the server
    leaves such an entry out when it makes the jobs (``Checks._usable``)."""
    ev = wire.parse_listed(listed(entries=[entry(url="javascript:alert(1)"), entry(id="b")]))
    assert [e.url for e in ev.entries] == ["javascript:alert(1)", ENTRY["url"]]


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"entries": None}, "entries"),
        ({"entries": {}}, "entries"),
        ({"entries": "x"}, "entries"),
        ({"entries": [dict(ENTRY)] * (wire.MAX_ENTRIES_PER_MESSAGE + 1)}, "entries"),
        ({"entries": [None]}, "each entry"),
        ({"entries": [["https://x"]]}, "each entry"),
        ({"entries": [entry(url=None)]}, "url"),
        ({"entries": [entry(url="")]}, "url"),
        ({"entries": [entry(url=5)]}, "url"),
        ({"entries": [entry(url="https://a/" + "u" * wire.MAX_ENTRY_URL)]}, "url"),
        ({"entries": [entry(extractor="")]}, "extractor"),
        ({"entries": [entry(extractor=None)]}, "extractor"),
        ({"entries": [entry(extractor="x" * 65)]}, "extractor"),
        ({"entries": [entry(id="")]}, "id"),
        ({"entries": [entry(id=5)]}, "id"),
        ({"entries": [entry(id="i" * (wire.MAX_ENTRY_KEY + 1))]}, "id"),
        ({"entries": [entry(title=5)]}, "title"),
        ({"entries": [dict(ENTRY), entry(url=None)]}, "url"),  # one bad entry among good
        ({"title": 5}, "title"),
        ({"title": ["x"]}, "title"),
        ({"final": 1}, "final"),
        ({"final": "true"}, "final"),
        ({"final": None}, "final"),
        ({"checkId": "x"}, "jobId"),
        ({"checkId": None}, "jobId"),
        ({"attempt": 0}, "attempt"),
        ({"attempt": True}, "attempt"),
        ({"attempt": wire.MAX_ATTEMPT + 1}, "attempt"),
    ],
)
def test_a_bad_listed_is_refused_saying_what(changes: dict[str, Any], says: str) -> None:
    with pytest.raises(InvalidEvent, match=says):
        wire.parse_listed(listed(**changes))


@pytest.mark.parametrize("missing", ["checkId", "attempt", "entries"])
def test_listed_without_a_required_field_is_refused(missing: str) -> None:
    data = listed()
    del data[missing]
    with pytest.raises(InvalidEvent):
        wire.parse_listed(data)
    entry_data = entry()
    with pytest.raises(InvalidEvent):
        wire.parse_listed(listed(entries=[{k: v for k, v in entry_data.items() if k != "url"}]))


@pytest.mark.parametrize("payload", [None, [], "x", 1])
def test_listed_must_be_an_object(payload: Any) -> None:
    with pytest.raises(InvalidEvent):
        wire.parse_listed(payload)


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"maxItems": 0}, "maxItems"),
        ({"maxItems": wire.MAX_LISTING_ITEMS + 1}, "maxItems"),
        ({"maxItems": True}, "maxItems"),
        ({"maxItems": None}, "maxItems"),
        ({"type": "rss"}, "type"),
        ({"url": ""}, "url"),
        ({"url": "x" * (wire.MAX_URL + 1)}, "url"),
        ({"checkId": "nope"}, "jobId"),
        ({"cookies": ""}, "cookies"),
        ({"cookies": 1}, "cookies"),
        ({"cookies": "x" * 65}, "cookies"),
    ],
)
def test_a_bad_listing_start_is_refused(changes: dict[str, Any], says: str) -> None:
    data = {**wire.ListingStart(CHECK, 1, "https://a/b", "ytdlp", 5).encode(), **changes}
    with pytest.raises(InvalidEvent, match=says):
        wire.parse_listing_start(data)


def test_listed_chunks_fit_a_message_and_the_last_alone_is_final() -> None:
    big = [wire.ListedEntry("x" * 64, f"{i:0>256}", "https://a.example/" + "u" * 2000, "t" * 300)
           for i in range(wire.MAX_LISTING_ITEMS)]  # fmt: skip
    small = [wire.ListedEntry("Generic", str(i), f"https://a/{i}") for i in range(1200)]
    for entries in (big, small, big[:1], []):
        chunks = wire.listed_chunks(CHECK, 2, "Feed", entries)
        assert [c.final for c in chunks] == [False] * (len(chunks) - 1) + [True]
        got = []
        for chunk in chunks:
            encoded = chunk.encode()
            assert len(orjson.dumps(encoded)) <= wire.LISTED_CHUNK_BYTES
            parsed = wire.parse_listed(encoded)
            assert parsed == chunk and parsed.title == "Feed"
            got.extend(parsed.entries)
        assert got == entries
    assert len(wire.listed_chunks(CHECK, 2, None, small)) == 3  # 500 entries at most each

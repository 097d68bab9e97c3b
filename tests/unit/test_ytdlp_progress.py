from __future__ import annotations

from pathlib import Path

import pytest

from mediad.worker.progress import Progress
from mediad.worker.ytdlp_progress import (
    PROGRESS_ARGS,
    FileDone,
    YtdlpParser,
    classify_error,
    clean_message,
)

FIXTURES = Path(__file__).parent / "fixtures" / "ytdlp"


def capture(name: str) -> tuple[int, str]:
    """A captured run: its exit status and its raw output without the ``# cmd:`` header."""
    # bytes, not read_text(): universal newlines would turn yt-dlp's \r into \n
    header, _, body = (FIXTURES / f"{name}.txt").read_bytes().decode().partition("\n")
    return int(header.rsplit("exit=", 1)[1]), body


def split_like_the_runner(body: str) -> list[str]:
    """As ``ToolProcess.lines`` does: on ``\\n``, then on ``\\r``, no empty parts."""
    parts = []
    for raw in body.replace("\r\n", "\n").split("\n"):
        parts += [p for p in raw.split("\r") if p]
    return parts


def run(name: str) -> tuple[YtdlpParser, list[Progress | FileDone]]:
    parser = YtdlpParser()
    _, body = capture(name)
    return parser, [e for line in split_like_the_runner(body) if (e := parser.feed(line))]


def progresses(events: list[Progress | FileDone]) -> list[Progress]:
    return [e for e in events if isinstance(e, Progress)]


def assert_sane(events: list[Progress | FileDone]) -> None:
    """Monotonic, and 100 only after the last file is done."""
    values = [p.progress for p in progresses(events) if p.progress is not None]
    assert values == sorted(values)
    last_file = max((i for i, e in enumerate(events) if isinstance(e, FileDone)), default=None)
    for i, e in enumerate(events):
        if isinstance(e, Progress) and e.progress == 100.0:
            assert last_file is not None and i > last_file


def test_progress_args_are_the_documented_flags() -> None:
    assert PROGRESS_ARGS == [
        "--newline",
        "--color",
        "never",
        "--progress-delta",
        "0.1",
        "--no-quiet",
        "--progress-template",
        "download:[dl] %(progress.{status,downloaded_bytes,total_bytes,total_bytes_estimate,"
        "speed,eta,elapsed,fragment_index,fragment_count,filename})j",
        "--progress-template",
        "postprocess:[pp] %(progress.{status,postprocessor})j",
        "--print",
        "after_move:[file] %(filepath)j",
    ]


# -- JSON template runs -------------------------------------------------------------


def test_single_file() -> None:
    parser, events = run("big_throttled")
    ps = progresses(events)
    # [dl] {"status": "downloading", "downloaded_bytes": 1024, "total_bytes": 1103007, ...}
    assert ps[0] == Progress("downloading", 0.09, None, None, 1103007, 1024)
    assert ps[1] == Progress("downloading", 5.85, 514197, 2, 1103007, 64512)
    # "downloaded_bytes": 1103007 while still "downloading", then "finished"
    assert [p.progress for p in ps[-3:]] == [99.9, 99.9, 99.9]
    assert [p.stage for p in ps[-3:]] == ["downloading", "downloading", "finalizing"]
    assert events[-1] == FileDone("/tmp/mdscratch/dl/ytdlp_big_throttled/big [big].mp4")
    assert parser.errors == [] and parser.warnings == []
    assert_sane(events)


def test_two_passes_are_weighted_by_bytes() -> None:
    _, events = run("dash_two_pass")
    ps = progresses(events)
    assert_sane(events)
    # video pass (820967 bytes) scaled to the first half of the job
    assert ps[5].progress == 49.88  # 818998 / 820967 / 2
    assert ps[7] == Progress("downloading", 50.0, None, None, 820967, 820967)  # finished
    # audio pass: (820967 + 1024) / (820967 + 265674)
    assert ps[8] == Progress("downloading", 75.65, None, None, 1086641, 821991)
    assert [p.stage for p in ps[-3:]] == ["downloading", "merging", "finalizing"]
    assert max(p.progress or 0 for p in ps) == 99.9
    assert events[-1] == FileDone("/tmp/mdscratch/dl/ytdlp_dash_two_pass/dash [dash].mp4")


def test_hls_fragments_with_a_noisy_estimate() -> None:
    _, events = run("hls_merge")
    ps = progresses(events)
    assert_sane(events)
    # total_bytes_estimate stands in for total_bytes; the speed of 0 is a real 0
    assert ps[0] == Progress("downloading", 0.05, 0, None, 1034752, 1024)
    # "eta": 2.4182922944795733 -> 2
    assert ps[9].eta == 2
    # the estimate doubles (1554944 -> 2069504) at the same byte count: no step back
    assert ps[3].progress == ps[4].progress == 8.32
    end_of_video = next(i for i, p in enumerate(ps) if p.progress == 50.0)
    assert ps[end_of_video].downloaded_bytes == 948084
    assert ps[end_of_video + 1].progress == 74.91  # (948084 + 1024) / (948084 + 318848)
    assert "merging" in [p.stage for p in ps]


def test_subtitles_are_not_a_pass() -> None:
    _, events = run("hls_subs")
    ps = progresses(events)
    assert_sane(events)
    # the 81-byte .en.vtt download comes first and is left out
    assert ps[0].total_bytes == 1034752 and ps[0].downloaded_bytes == 1024
    assert [p.progress for p in ps[:3]] == [0.05, 50.0, 74.91]


def test_unknown_size_reports_bytes_and_speed_only() -> None:
    _, events = run("unknown_size")
    ps = progresses(events)
    assert ps[0] == Progress("downloading", None, None, None, None, 1024)
    assert ps[1] == Progress("downloading", None, 518205, None, None, 64512)
    # "finished" tells the size
    assert ps[-2] == Progress("downloading", 99.9, None, None, 1103007, 1103007)


def test_extract_audio_stages() -> None:
    _, events = run("extract_audio")
    assert [p.stage for p in progresses(events)] == [
        "downloading",
        "downloading",
        "postprocessing",
        "finalizing",
    ]
    assert events[-1] == FileDone("/tmp/mdscratch/dl/ytdlp_extract_audio/small [small].mp3")


def test_playlist_items_share_the_job() -> None:
    _, events = run("playlist_two")
    assert_sane(events)
    files = [e.path for e in events if isinstance(e, FileDone)]
    assert [Path(f).name for f in files] == [
        "Two videos (1) [two-1].mp4",
        "Two videos (2) [two-2].mp4",
    ]
    first_done = events.index(FileDone(files[0]))
    assert [p.progress for p in progresses(events[:first_done])][-2:] == [50.0, 50.0]
    second = progresses(events[first_done:])
    assert second[0].progress == 50.05  # item 2 of 2 at 1024 of 1103007 bytes
    # after the last file, the playlist's "Concat" postprocessor may say 100
    assert second[-1] == Progress("postprocessing", 100.0, None, None, 1180888, 1180888)


def test_interrupted() -> None:
    parser, events = run("sigint")
    assert progresses(events)[-1].downloaded_bytes == 261120
    assert parser.errors == ["Interrupted by user"]
    assert classify_error(parser.errors, capture("sigint")[0]) == (
        "interrupted",
        "Interrupted by user",
    )


def test_resume() -> None:
    parser, events = run("resume")
    assert parser.resumed_from == 261120
    assert progresses(events)[0] == Progress("downloading", 23.77, None, None, 1103007, 262144)
    assert_sane(events)


def test_already_downloaded() -> None:
    _, events = run("already_downloaded")
    assert progresses(events)[0] == Progress("downloading", 99.9)
    assert events[-1] == FileDone("/tmp/mdscratch/dl/ytdlp_sigint/big [big].mp4")


# -- human lines ---------------------------------------------------------------------


def test_human_lines() -> None:
    parser, events = run("human_big")
    ps = progresses(events)
    assert [p.progress for p in ps] == [0.1, 5.8, 11.8, 23.7, 47.4, 74.3, 99.9, 99.9, 99.9]
    # "[download]   5.8% of    1.05MiB at  378.42KiB/s ETA 00:02"
    assert ps[1] == Progress("downloading", 5.8, 387502, 2, 1101004, 63858)
    # "[download]   0.1% of    1.05MiB at  Unknown B/s ETA Unknown"
    assert ps[0].speed is None and ps[0].eta is None
    assert ps[-1].stage == "finalizing"  # [MoveFiles]
    assert parser.errors == []


def test_carriage_return_updates() -> None:
    _, split = run("human_cr_no_newline")
    assert [p.progress for p in progresses(split)][:3] == [0.1, 5.8, 11.8]
    # the same output given with its \r inside each line: the last update wins
    parser = YtdlpParser()
    _, body = capture("human_cr_no_newline")
    whole = [e for line in body.split("\n") if (e := parser.feed(line))]
    assert [p.progress for p in progresses(whole)] == [99.9, 99.9]


def test_human_fragments_and_merge() -> None:
    _, events = run("human_hls_merge")
    ps = progresses(events)
    assert_sane(events)
    # "[download]   0.1% of ~1010.50KiB at      0.00B/s ETA Unknown (frag 0/4)"
    assert ps[0] == Progress("downloading", 0.05, 0, None, 1034752, 1035)
    assert 50.0 in [p.progress for p in ps]
    assert [p.stage for p in ps[-2:]] == ["merging", "finalizing"]


def test_human_unknown_size() -> None:
    _, events = run("human_unknown_size")
    ps = progresses(events)
    # "[download]    1.00KiB at  Unknown B/s (00:00:00)"
    assert ps[0] == Progress("downloading", None, None, None, None, 1024)
    # "[download]   63.00KiB at  504.26KiB/s (00:00:00)"
    assert ps[1] == Progress("downloading", None, 516362, None, None, 64512)
    # "[download] 100% of    1.05MiB in 00:00:02 at 385.95KiB/s"
    assert ps[-2] == Progress("downloading", 99.9, None, None, 1101004, 1101004)


def test_human_postprocessor_stages() -> None:
    _, events = run("human_dash_extract_audio")
    stages = [p.stage for p in progresses(events)]
    # [FixupM4a] and [ExtractAudio] are both postprocessing; [MoveFiles] finalizes
    assert stages[-2:] == ["postprocessing", "finalizing"]
    assert stages.count("postprocessing") == 1


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "[download]  45.3% of   10.00MiB at    1.00MiB/s ETA 00:05",
            Progress("downloading", 45.3, 1048576, 5, 10485760, 4750049),
        ),
        (
            "[download]  45.3% of ~  10.00MiB at    1.00MiB/s ETA 00:05 (frag 3/10)",
            Progress("downloading", 45.3, 1048576, 5, 10485760, 4750049),
        ),
        (
            "[download]    4.50MiB at    1.00MiB/s (00:00:04)",
            Progress("downloading", None, 1048576, None, None, 4718592),
        ),
        (
            "[download]   N/A% at  Unknown B/s ETA Unknown",
            Progress("downloading", None),
        ),
        (
            "[download]   N/A% at  Unknown B/s ETA Unknown (frag 3/10)",
            Progress("downloading", 30.0),
        ),
        (
            "[download]  12.0% of    1.00GiB at    1.00MiB/s ETA 01:02:03",
            Progress("downloading", 12.0, 1048576, 3723, 1073741824, 128849019),
        ),
        (
            "[download]  12.0% of    1.00GiB at    1.00KiB/s ETA --:--:--",
            Progress("downloading", 12.0, 1024, None, 1073741824, 128849019),
        ),
        (
            "[download] 100% of   10.00MiB in 00:00:03 at 3.33MiB/s",
            Progress("downloading", 99.9, None, None, 10485760, 10485760),
        ),
    ],
)
def test_documented_human_lines(line: str, expected: Progress) -> None:
    assert YtdlpParser().feed(line) == expected


def test_human_notices() -> None:
    parser = YtdlpParser()
    assert parser.feed("[download] Destination: /tmp/x/a.mp4") is None
    assert parser.feed("[download] Resuming download at byte 4096") is None
    assert parser.resumed_from == 4096
    merging = parser.feed('[Merger] Merging formats into "/tmp/x/a.mp4"')
    assert merging == Progress("merging", None)
    extract = parser.feed("[ExtractAudio] Destination: /tmp/x/a.mp3")
    assert extract == Progress("postprocessing", None)
    assert parser.feed("[ExtractAudio] Destination: /tmp/x/b.mp3") is None  # same stage


# -- edge cases ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        '[dl] {"status": "downloading", "downloaded_bytes": NaN, "total_bytes": Infinity}',
        '[dl] {"status": "downloading", "downloaded_bytes": -5, "total_bytes": -1, "eta": -3}',
        '[dl] {"status": "downloading", "downloaded_bytes": "12", "total_bytes": true}',
        '[dl] {"status": "downloading", "downloaded_bytes": null, "total_bytes": null}',
        '[dl] {"status": "downloading", "downloaded_bytes": 1e400, "speed": -Infinity}',
        '[dl] {"status": "downloading", "downloaded_bytes": 100, "total_bytes": 0}',
        '[dl] {"status": "downloading", "fragment_index": 3, "fragment_count": 0}',
        '[dl] {"status": "downloading"}',
    ],
)
def test_garbage_numbers_are_ignored(line: str) -> None:
    event = YtdlpParser().feed(line)
    assert isinstance(event, Progress)
    assert event.progress is None and event.speed is None and event.eta is None
    assert event.total_bytes is None


def test_floats_are_accepted() -> None:
    line = (
        '[dl] {"status": "downloading", "downloaded_bytes": 250.7, "total_bytes_estimate": 1000.0,'
        ' "speed": 99.9, "eta": 2.9}'
    )
    assert YtdlpParser().feed(line) == Progress("downloading", 25.0, 99, 2, 1000, 250)


def test_total_beats_the_estimate() -> None:
    line = (
        '[dl] {"status": "downloading", "downloaded_bytes": 50, "total_bytes": 100,'
        ' "total_bytes_estimate": 1000}'
    )
    assert YtdlpParser().feed(line) == Progress("downloading", 50.0, None, None, 100, 50)


def test_fragments_when_bytes_say_nothing() -> None:
    parser = YtdlpParser()
    line = '[dl] {"status": "downloading", "fragment_index": 3, "fragment_count": 10}'
    assert parser.feed(line) == Progress("downloading", 30.0)
    # bytes without a total: the fragments tell how far, so the size is estimated
    line = '[dl] {"status": "downloading", "downloaded_bytes": 400, "fragment_index": 4, "fragment_count": 10}'
    assert parser.feed(line) == Progress("downloading", 40.0, None, None, None, 400)


def test_more_done_than_total_stays_below_100() -> None:
    line = '[dl] {"status": "downloading", "downloaded_bytes": 150, "total_bytes": 100}'
    assert YtdlpParser().feed(line) == Progress("downloading", 99.9, None, None, 100, 150)


def test_progress_never_goes_down_within_a_pass() -> None:
    parser = YtdlpParser()
    parser.feed('[dl] {"status": "downloading", "downloaded_bytes": 60, "total_bytes": 100}')
    # a restart after "Unable to resume" starts the same file from 0
    again = parser.feed('[dl] {"status": "downloading", "downloaded_bytes": 1, "total_bytes": 100}')
    assert again == Progress("downloading", 60.0, None, None, 100, 1)


def test_unknown_then_known_keeps_the_floor() -> None:
    parser = YtdlpParser()
    parser.feed('[dl] {"status": "downloading", "downloaded_bytes": 60, "total_bytes": 100}')
    later = parser.feed('[dl] {"status": "downloading", "downloaded_bytes": 70}')
    assert later == Progress("downloading", 60.0, None, None, None, 70)


@pytest.mark.parametrize(
    "line",
    [
        "",
        "   ",
        "\r",
        "[dl] ",
        '[dl] {"status": "downl',
        "[dl] [1, 2]",
        '[dl] {"status": "error", "downloaded_bytes": 5}',
        "[pp] null",
        '[pp] {"status": "finished", "postprocessor": "Merger"}',
        '[pp] {"status": "started", "postprocessor": 7}',
        "[file] null",
        '[file] ""',
        "[file] /not/json",
        "[download]  45.",
        "[download] Got error: timed out. Retrying (1/10)...",
        "[download] Unable to resume",
        "[generic] Extracting URL: http://127.0.0.1:18765/big.mp4",
        "[youtube] abc: Downloading webpage",
        "Deleting original file x.f137.mp4 (pass -k to keep)",
        "[Unknown]",
        "[",
        "\x00\xff garbage",
    ],
)
def test_other_lines_give_nothing(line: str) -> None:
    parser = YtdlpParser()
    assert parser.feed(line) is None
    assert parser.errors == []


def test_file_done_is_not_lost_in_a_carriage_return_chunk() -> None:
    chunk = '[file] "/tmp/a.mp4"\r[download]  10.0% of 1.00KiB at 1.00KiB/s ETA 00:01'
    assert YtdlpParser().feed(chunk) == FileDone("/tmp/a.mp4")


def test_non_ascii_file_names() -> None:
    assert YtdlpParser().feed('[file] "/tmp/\\u00e9t\\u00e9 [x].mp4"') == FileDone(
        "/tmp/été [x].mp4"
    )


# -- errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "printed", "classified"),
    [
        (
            "err_404",
            "[generic] missing: Unable to download webpage: HTTP Error 404: Not Found "
            "(caused by <HTTPError 404: Not Found>)",
            ("not_found", "Unable to download webpage: HTTP Error 404: Not Found"),
        ),
        (
            "err_403",
            "[generic] x: Unable to download webpage: HTTP Error 403: Forbidden "
            "(caused by <HTTPError 403: Forbidden>)",
            ("http_error", "Unable to download webpage: HTTP Error 403: Forbidden"),
        ),
        (
            "err_500",
            "[generic] x: Unable to download webpage: HTTP Error 500: Internal Server Error "
            "(caused by <HTTPError 500: Internal Server Error>)",
            ("http_error", "Unable to download webpage: HTTP Error 500: Internal Server Error"),
        ),
        (
            "err_refused",
            "[generic] x: Unable to download webpage: [Errno 111] Connection refused "
            "(caused by TransportError('[Errno 111] Connection refused'))",
            ("network", "Unable to download webpage: [Errno 111] Connection refused"),
        ),
        (
            "err_dns",
            "[generic] x: Unable to download webpage: [Errno -2] Name or service not known "
            "(caused by TransportError('[Errno -2] Name or service not known'))",
            ("network", "Unable to download webpage: [Errno -2] Name or service not known"),
        ),
        (
            "err_unsupported",
            "Unsupported URL: http://127.0.0.1:18765/page.html",
            ("unsupported_url", "Unsupported URL: http://127.0.0.1:18765/page.html"),
        ),
        (
            "err_cut",
            "[download] Got error: Downloaded 200000 bytes, expected 1103007 bytes. "
            "Giving up after 2 retries",
            (
                "network",
                "Got error: Downloaded 200000 bytes, expected 1103007 bytes. "
                "Giving up after 2 retries",
            ),
        ),
        (
            "err_disk_full",
            "unable to write data: [Errno 28] No space left on device",
            ("disk_full", "unable to write data: [Errno 28] No space left on device"),
        ),
        (
            "err_badopt",
            "no such option: --bogus-option",
            ("tool_failed", "no such option: --bogus-option"),
        ),
    ],
)
def test_real_errors(name: str, printed: str, classified: tuple[str, str]) -> None:
    parser, _ = run(name)
    assert parser.errors == [printed]
    assert classify_error(parser.errors, capture(name)[0]) == classified


def test_error_message_after_a_carriage_return_in_one_line() -> None:
    # "ERROR: \r[download] Got error: ..." given whole, as a runner splitting on \n would
    parser = YtdlpParser()
    _, body = capture("err_cut")
    assert "ERROR: \r[download] Got error" in body
    for line in body.split("\n"):
        parser.feed(line)
    assert parser.errors == [
        "[download] Got error: Downloaded 200000 bytes, expected 1103007 bytes. "
        "Giving up after 2 retries"
    ]


def test_empty_error_then_another_error() -> None:
    parser = YtdlpParser()
    parser.feed("ERROR: ")
    parser.feed("ERROR: Interrupted by user")
    assert parser.errors == ["Interrupted by user"]


def test_warnings() -> None:
    parser, _ = run("dash_two_pass")
    assert parser.warnings == ["[generic] Falling back on generic information extractor"]


@pytest.mark.parametrize(
    ("errors", "exit_code", "expected"),
    [
        ([], -9, ("interrupted", "yt-dlp was stopped by signal 9")),
        ([], 1, ("tool_failed", "yt-dlp exited with code 1")),
        ([], 2, ("tool_failed", "yt-dlp rejected its options")),
        (["Something else broke"], 1, ("tool_failed", "Something else broke")),
        (
            ["[youtube] dQw4w9WgXcQ: Video unavailable. This video has been removed"],
            1,
            ("not_found", "Video unavailable. This video has been removed"),
        ),
        (
            ["HTTP Error 404: Not Found", "Interrupted by user"],
            1,
            ("interrupted", "Interrupted by user"),
        ),
        (
            ["[generic] x: Unable to download webpage: The read operation timed out"],
            1,
            ("network", "Unable to download webpage: The read operation timed out"),
        ),
        (
            ["[download] Got error: HTTP Error 503: Service Unavailable"],
            1,
            ("http_error", "Got error: HTTP Error 503: Service Unavailable"),
        ),
    ],
)
def test_classify_error(errors: list[str], exit_code: int, expected: tuple[str, str]) -> None:
    assert classify_error(errors, exit_code) == expected


def test_clean_message_drops_the_bug_report_text() -> None:
    raw = (
        "[generic] x: Something odd; please report this issue on  "
        "https://github.com/yt-dlp/yt-dlp/issues?q= , filling out the appropriate issue "
        "template. Confirm you are on the latest version using  yt-dlp -U"
    )
    assert clean_message(raw) == "Something odd"
    assert clean_message("[x]") == "[x]"


def test_every_prefix_of_every_real_line_is_safe() -> None:
    for path in sorted(FIXTURES.glob("*.txt")):
        parser = YtdlpParser()
        for line in split_like_the_runner(capture(path.stem)[1]):
            for end in range(len(line) + 1):
                parser.feed(line[:end])  # Progress validates itself: 0..100, known stage


@pytest.mark.parametrize(
    "line",
    [
        "[download] ²5.0% of 1.00MiB at 1.00KiB/s ETA ²0:05",
        "[download] \u0663\u0660.0% of \u0663.00MiB at \u0663.00KiB/s ETA 00:0\u0663",
        "[download] Downloading item ² of ³",
        "[download] Resuming download at byte ²",
        '[dl] {"status": "downloading", "downloaded_bytes": 1e999999}',
        "[info] x: Downloading 1 format(s): ",
        "[dl] " + "[" * 100_000,
    ],
)
def test_odd_digits_and_deep_json_never_raise(line: str) -> None:
    YtdlpParser().feed(line)

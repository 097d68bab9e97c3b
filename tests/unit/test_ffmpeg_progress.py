from __future__ import annotations

from pathlib import Path

import pytest

from mediad.worker.ffmpeg_progress import (
    FfmpegLog,
    FfmpegProgressParser,
    LogLine,
    classify_error,
    parse_duration_line,
    parse_log_line,
    parse_probe_duration,
)
from mediad.worker.progress import Progress

FIXTURES = Path(__file__).parent / "fixtures" / "ffmpeg"


def lines(name: str) -> list[str]:
    """A fixture's lines without its ``# cmd:`` header."""
    return (FIXTURES / name).read_text().splitlines()[1:]


def duration_of(name: str) -> float | None:
    found = [d for line in lines(f"{name}.stderr.txt") if (d := parse_duration_line(line))]
    return found[0] if found else None


def run(name: str, duration_s: float | None = None) -> tuple[FfmpegProgressParser, list[Progress]]:
    parser = FfmpegProgressParser(duration_s if duration_s is not None else duration_of(name))
    out = [p for line in lines(f"{name}.stdout.txt") if (p := parser.feed(line))]
    return parser, out


def block(parser: FfmpegProgressParser, *body: str, end: str = "continue") -> Progress:
    """Feed one block and return the Progress its ``progress=`` line produced."""
    assert all(parser.feed(line) is None for line in body)
    result = parser.feed(f"progress={end}")
    assert result is not None
    return result


def assert_monotonic(values: list[float | None]) -> None:
    known = [v for v in values if v is not None]
    assert known == sorted(known)


def test_duration_lines_from_real_stderr() -> None:
    assert duration_of("copy") == 30.0
    assert duration_of("re_copy") == 5.0
    assert duration_of("http_hls") == 30.0
    assert duration_of("live_lavfi") is None  # "Duration: N/A"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("  Duration: 00:00:06.00, start: 0.000000, bitrate: 294 kb/s", 6.0),
        ("  Duration: 01:02:03.50, start: 1.400000, bitrate: 0 kb/s", 3723.5),
        ("  Duration: N/A, start: 0.000000, bitrate: N/A", None),
        ("Input #0, mov,mp4,m4a,3gp,3g2,mj2, from 'big.mp4':", None),
        ("  Duration: 00:0", None),
        ("", None),
    ],
)
def test_parse_duration_line(line: str, expected: float | None) -> None:
    assert parse_duration_line(line) == expected


def test_copy_is_two_blocks_ending_at_100() -> None:
    parser, out = run("copy")
    assert [p.progress for p in out] == [0.0, 100.0]
    assert out[0].downloaded_bytes == 48 and out[0].eta is None  # speed=N/A
    assert out[-1].downloaded_bytes == 1103007 and out[-1].eta == 0
    assert parser.ended
    assert all(p.stage == "downloading" and p.speed is None for p in out)


def test_realtime_copy_reports_each_block() -> None:
    parser, out = run("re_copy")
    assert len(out) == 11
    # out_time_us=534059 of 5 s at speed=1.05x
    assert out[1].progress == 10.68
    assert out[1].eta == 5  # ceil((5 - 0.534059) / 1.05)
    assert_monotonic([p.progress for p in out])
    assert all(p.progress is not None and p.progress < 100 for p in out[:-1])
    assert out[-1].progress == 100.0 and out[-1].downloaded_bytes == 77881
    assert parser.ended


def test_interrupted_run_ends_short_of_100() -> None:
    parser, out = run("re_sigint")
    assert parser.ended  # progress=end is printed after SIGINT too: exit 255 decides
    assert out[-1].progress == 7.12  # out_time_us=2136236 of 30 s
    assert out[-1].downloaded_bytes == 96834


def test_live_input_has_no_percentage() -> None:
    parser, out = run("live_lavfi")
    assert len(out) == 5
    assert all(p.progress is None for p in out)
    assert out[-1].downloaded_bytes == 11657
    assert parser.ended


def test_transcode_is_monotonic_and_below_100_until_end() -> None:
    _, out = run("transcode")
    assert len(out) == 52
    assert_monotonic([p.progress for p in out])
    assert max(p.progress or 0 for p in out[:-1]) <= 99.9
    assert out[-1].progress == 100.0


def test_http_input_ends_where_the_output_ends() -> None:
    _, out = run("http_hls")
    assert out[-1].progress == 99.89  # 29966678 us of a 30.00 s stream: the truth


def test_values_may_be_na_padded_or_garbage() -> None:
    parser = FfmpegProgressParser(10.0)
    block = [
        "frame=  12",
        "bitrate=N/A",
        "total_size=N/A",
        "out_time_us=N/A",
        "out_time_ms=N/A",
        "out_time=N/A",
        "speed=N/A",
    ]
    assert all(parser.feed(line) is None for line in block)
    assert parser.feed("progress=continue") == Progress("downloading", None)
    for line in ("out_time_us=-9223372036854775807", "out_time=-577014:32:22.775808"):
        parser.feed(line)
    assert parser.feed("progress=continue") == Progress("downloading", None)
    parser.feed("out_time_us=2500000")
    parser.feed("speed=   0x")
    assert parser.feed("progress=continue") == Progress("downloading", 25.0)


def test_out_time_is_used_when_the_microseconds_are_missing() -> None:
    parser = FfmpegProgressParser(4.0)
    parser.feed("out_time=00:00:01.000000")
    parser.feed("speed=2x")
    assert parser.feed("progress=continue") == Progress("downloading", 25.0, eta=2)


def test_progress_never_goes_down() -> None:
    parser = FfmpegProgressParser(10.0)
    assert block(parser, "out_time_us=5000000").progress == 50.0
    assert block(parser, "out_time_us=4000000").progress == 50.0


def test_stays_below_100_while_running() -> None:
    parser = FfmpegProgressParser(1.0)
    assert block(parser, "out_time_us=1000181").progress == 99.9
    assert not parser.ended
    assert block(parser, "out_time_us=1000181", end="end").progress == 100.0
    assert parser.ended


@pytest.mark.parametrize("duration_s", [None, 0.0, -1.0, float("nan"), float("inf")])
def test_unusable_duration_means_unknown_progress(duration_s: float | None) -> None:
    parser = FfmpegProgressParser(duration_s)
    parser.feed("out_time_us=1000000")
    assert parser.feed("progress=continue") == Progress("downloading", None)


@pytest.mark.parametrize(
    "line", ["", "garbage", "=value", "progress=", "progress=maybe", "Stream mapping:", "\r"]
)
def test_other_lines_give_nothing(line: str) -> None:
    assert FfmpegProgressParser(10.0).feed(line) is None


def test_stage_is_chosen_by_the_caller() -> None:
    parser = FfmpegProgressParser(2.0, stage="merging")
    parser.feed("out_time_us=1000000")
    assert parser.feed("progress=continue\r\n") == Progress("merging", 50.0)
    with pytest.raises(ValueError, match="stage"):
        FfmpegProgressParser(2.0, stage="transcoding")


def test_many_garbage_keys_stay_bounded() -> None:
    parser = FfmpegProgressParser(10.0)
    for i in range(10_000):
        parser.feed(f"key{i}=1")
    parser.feed("out_time_us=1000000")
    assert parser.feed("progress=continue") == Progress("downloading", 10.0)


def test_every_prefix_of_every_real_line_is_safe() -> None:
    for path in sorted(FIXTURES.glob("*.txt")):
        parser = FfmpegProgressParser(30.0)
        for line in lines(path.name):
            for end in range(len(line) + 1):
                parser.feed(line[:end])
                parse_duration_line(line[:end])


@pytest.mark.parametrize(
    "line", ["out_time_us=²", "total_size=²", "out_time=0²:00:00.0", "speed=²x", "speed=1e999x"]
)
def test_odd_digits_never_raise(line: str) -> None:
    parser = FfmpegProgressParser(30.0)
    parser.feed(line)
    assert parser.feed("progress=continue") is not None


# -- the merged stream the runner reads (-loglevel level+info, stdout and stderr together) --


def merged(name: str) -> list[str]:
    return lines(f"run_{name}.txt")


def read_run(name: str) -> tuple[FfmpegLog, list[Progress], FfmpegProgressParser]:
    """Feed a captured run as the runner does: tagged lines to the log, the rest to the
    progress parser."""
    log, parser, out = FfmpegLog(), FfmpegProgressParser(None), []
    for line in merged(name):
        entry = parse_log_line(line)
        if entry is not None:
            log.feed(entry)
            if log.duration_s is not None and parser.duration_s is None:
                parser.set_duration(log.duration_s)
        elif (p := parser.feed(line)) is not None:
            out.append(p)
    return log, out, parser


def classify(name: str, exit_code: int = 1) -> tuple[str, str]:
    log, _, _ = read_run(name)
    return classify_error(log.errors, log.warnings, exit_code)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("[error] http://h/x.m3u8: Server returned 404 Not Found",
         LogLine("error", "http://h/x.m3u8: Server returned 404 Not Found")),
        ("[hls @ 0x55e1c0a8b180] [warning] Failed to open segment 2 of playlist 0",
         LogLine("warning", "Failed to open segment 2 of playlist 0", "hls")),
        ("[info]   Duration: 00:00:06.00, start: 1.400000, bitrate: 0 kb/s",
         LogLine("info", "Duration: 00:00:06.00, start: 1.400000, bitrate: 0 kb/s")),
        ("out_time_us=557279", None),
        ("progress=continue", None),
        ("    Last message repeated 1 times", None),
        ("[not a level] text", None),
        ("", None),
    ],
)  # fmt: skip
def test_parse_log_line(line: str, expected: LogLine | None) -> None:
    assert parse_log_line(line) == expected


def test_a_vod_run_reads_duration_and_progress_from_one_stream() -> None:
    log, out, parser = read_run("vod_hls")
    assert log.duration_s == 6.0 and not log.errors and not log.failed_segments
    assert parser.ended and out[-1].progress == 100.0
    assert [p.progress for p in out[:-1]] == [0.39]  # out_time_us=23220 of 6 s


def test_a_live_run_has_no_duration_and_no_percentage() -> None:
    for name in ("live_ended", "live_sigint"):
        log, out, parser = read_run(name)
        assert log.duration_seen and log.duration_s is None  # "Duration: N/A"
        assert out and all(p.progress is None for p in out)
        assert parser.ended  # after SIGINT too: the exit code (255) decides


def test_the_sigint_run_says_it_exited_normally() -> None:
    assert lines("run_live_sigint.txt")[-1] == "[info] Exiting normally, received signal 2."
    log, _, _ = read_run("live_sigint")
    assert not log.errors


@pytest.mark.parametrize(
    ("name", "code", "message"),
    [
        ("err_404", "not_found", "/show/missing.m3u8: Server returned 404 Not Found"),
        ("err_403", "http_error", "Server returned 403 Forbidden (access denied)"),
        ("err_500", "http_error", "Server returned 5XX Server Error reply"),
        ("err_refused", "network", "http://127.0.0.1:1/x.m3u8: Connection refused"),
        ("err_dns", "network", "Failed to resolve hostname nonexistent.invalid"),
        ("err_invalid", "unsupported_url", "junk.m3u8: Invalid data found when processing input"),
        ("err_file_segment", "unsupported_url",
         "refused to open it: URL file:///etc/passwd is not in allowed_segment_extensions"),
        ("err_file_whitelist", "unsupported_url",
         "refused to open it: Protocol 'file' not on whitelist 'http,https,tcp,tls,crypto'!"),
    ],
)  # fmt: skip
def test_real_failures_are_classified(name: str, code: str, message: str) -> None:
    got_code, got_message = classify(name)
    assert got_code == code
    assert message in got_message
    assert len(got_message) <= 500


def test_the_cause_comes_with_ffmpegs_final_line() -> None:
    _, message = classify("err_dns")
    assert message == (
        "Failed to resolve hostname nonexistent.invalid: Name or service not known "
        "(http://nonexistent.invalid/x.m3u8: Input/output error)"
    )
    # The final line alone when it already says everything.
    _, message = classify("err_404")
    assert message.endswith("missing.m3u8: Server returned 404 Not Found")
    assert "(" not in message


def test_a_skipped_vod_segment_is_reported() -> None:
    log, _, _ = read_run("segment_404")  # ffmpeg exited 0 with a hole in the file
    assert log.duration_s == 6.0
    assert log.failed_segments == {(0, 2)}
    assert log.missing_segments() == (
        "not_found",
        "1 segment(s) of the stream could not be downloaded: "
        "Failed to open segment 2 of playlist 0: HTTP error 404 Not Found",
    )
    assert FfmpegLog().missing_segments() is None


@pytest.mark.parametrize(
    ("exit_code", "expected"),
    [
        (-9, ("interrupted", "ffmpeg was stopped by signal 9")),
        (255, ("interrupted", "ffmpeg was stopped (exit code 255)")),
        (1, ("tool_failed", "ffmpeg exited with code 1")),
    ],
)
def test_a_silent_failure_is_described_by_its_exit_code(
    exit_code: int, expected: tuple[str, str]
) -> None:
    assert classify_error([], [], exit_code) == expected


def test_an_unknown_error_line_is_the_message() -> None:
    errors = ["Something odd", "Conversion failed!"]
    assert classify_error(errors, [], 1) == ("tool_failed", "Conversion failed!")
    assert classify_error(["x" * 2000], [], 1)[1] == "x" * 499 + "…"


def test_warnings_are_the_fallback() -> None:
    assert classify_error(["Conversion failed!"], ["HTTP error 503 Service Unavailable"], 1) == (
        "http_error",
        "HTTP error 503 Service Unavailable",
    )


def test_log_keeps_a_bounded_tail_without_repeats() -> None:
    log = FfmpegLog()
    for i in range(100):
        log.feed(LogLine("error", f"e{i // 2}"))
        log.feed(LogLine("warning", f"w{i}"))
    assert list(log.errors) == [f"e{i}" for i in range(30, 50)]
    assert len(log.warnings) == 20


def test_only_the_first_duration_line_counts() -> None:
    log = FfmpegLog()
    log.feed(LogLine("info", "Duration: N/A, start: 0.000000, bitrate: N/A"))
    log.feed(LogLine("info", "Duration: 00:00:06.00, start: 0.000000, bitrate: 1 kb/s"))
    assert log.duration_seen and log.duration_s is None


@pytest.mark.parametrize(
    ("out", "expected"),
    [
        (["6.000000"], 6.0),
        (["N/A"], None),
        (["[hls @ 0x1] [warning] something", "12.5"], 12.5),
        (["http://h/x.m3u8: Server returned 404 Not Found"], None),
        (["0.000000"], None),
        (["nan"], None),
        ([], None),
    ],
)
def test_parse_probe_duration(out: list[str], expected: float | None) -> None:
    assert parse_probe_duration(out) == expected


def test_duration_learnt_late_enables_the_percentage() -> None:
    parser = FfmpegProgressParser(None)
    assert block(parser, "out_time_us=1000000").progress is None
    parser.set_duration(4.0)
    assert block(parser, "out_time_us=2000000").progress == 50.0
    assert parser.percent == 50.0
    parser.set_duration(float("nan"))
    assert parser.duration_s is None

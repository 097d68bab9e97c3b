from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mediad.worker.aria2_progress import (
    STATUS_KEYS,
    Aria2Status,
    classify_error,
    parse_console_error,
    parse_console_line,
    parse_status,
)
from mediad.worker.progress import Progress

FIXTURES = Path(__file__).parent / "fixtures" / "aria2"


def rpc(name: str) -> dict[str, Any]:
    """The ``result`` of a captured ``aria2.tellStatus`` answer."""
    return json.loads((FIXTURES / "rpc" / f"{name}.json").read_text())["response"]["result"]


def console(name: str) -> tuple[int, list[str]]:
    """A console capture: its exit status and its lines without the ``# cmd:`` header."""
    header, *body = (FIXTURES / "console" / f"{name}.txt").read_text().splitlines()
    return int(header.rsplit("exit=", 1)[1]), body


def readouts(name: str) -> list[Progress]:
    return [p for line in console(name)[1] if (p := parse_console_line(line))]


# -- tellStatus ---------------------------------------------------------------------


def test_status_keys_cover_what_parse_status_reads() -> None:
    expected = {"status", "totalLength", "completedLength", "downloadSpeed", "errorCode"}
    assert expected | {"errorMessage", "files", "gid"} <= set(STATUS_KEYS)


def test_active() -> None:
    st = parse_status(rpc("active"))
    assert st == Aria2Status(
        status="active",
        progress=Progress(
            stage="downloading",
            progress=46.05,  # 507904 of 1103007
            speed=203242,
            eta=3,  # ceil(595103 / 203242)
            total_bytes=1103007,
            downloaded_bytes=507904,
        ),
        error_code=None,
        error_message=None,
        files=["/tmp/mdscratch/dlrpc/big_active.mp4"],
    )


def test_every_key_answer_reads_the_same() -> None:
    st = parse_status(rpc("active_allkeys"))
    assert st.status == "active" and st.progress is not None
    assert st.progress.progress == 46.05 and st.progress.speed == 203161


def test_paused_speed_is_zero_not_the_stale_value() -> None:
    raw = rpc("paused")
    assert raw["downloadSpeed"] == "126912"  # what aria2 really answers after a pause
    st = parse_status(raw)
    assert st.status == "paused"
    assert st.progress == Progress("downloading", 46.05, 0, None, 1103007, 507904)


def test_complete() -> None:
    st = parse_status(rpc("complete"))
    assert st.status == "complete"
    assert st.progress == Progress("downloading", 100.0, 0, None, 1103007, 1103007)
    assert st.error_code is None and st.error_message is None  # errorCode "0", message ""
    assert st.files == ["/tmp/mdscratch/dlrpc/big_active.mp4"]


def test_unknown_length_gives_no_percentage() -> None:
    st = parse_status(rpc("active_unknown_length"))
    assert st.progress == Progress("downloading", None, 303252, None, None, 606208)


def test_waiting() -> None:
    st = parse_status(rpc("waiting"))
    assert st.status == "waiting"
    assert st.progress == Progress("downloading", None, 0, None, None, 0)
    assert st.files == ["/tmp/mdscratch/dlrpc/queued.mp4"]


def test_removed_keeps_arias_code() -> None:
    st = parse_status(rpc("removed"))
    assert (st.status, st.error_code, st.error_message) == ("removed", "31", None)
    assert st.progress is not None and st.progress.progress == 11.88
    assert classify_error(st.error_code, st.error_message) == ("interrupted", "Download removed")


@pytest.mark.parametrize(
    ("name", "aria2", "ours"),
    [
        ("error_404", ("3", "Resource not found"), ("not_found", "Resource not found")),
        (
            "error_403",
            ("22", "The response status is not successful. status=403"),
            (
                "http_error",
                "Bad or unexpected HTTP response: "
                "The response status is not successful. status=403",
            ),
        ),
        (
            "error_refused",
            ("1", "Failed to establish connection, cause: Connection refused"),
            ("network", "Failed to establish connection, cause: Connection refused"),
        ),
        (
            "error_dns",
            (
                "19",
                "CUID#65 - Name resolution for nonexistent.invalid failed:Domain name not found",
            ),
            (
                "network",
                "Name resolution failed: "
                "Name resolution for nonexistent.invalid failed:Domain name not found",
            ),
        ),
        (
            "error_disk_full",
            ("9", "Write disk cache flush failure index=0"),
            ("disk_full", "Not enough disk space: Write disk cache flush failure index=0"),
        ),
    ],
)
def test_errors(name: str, aria2: tuple[str, str], ours: tuple[str, str]) -> None:
    st = parse_status(rpc(name))
    assert st.status == "error"
    assert (st.error_code, st.error_message) == aria2
    assert classify_error(st.error_code, st.error_message) == ours


def test_error_before_the_name_is_known_has_no_files() -> None:
    assert parse_status(rpc("error_404")).files == []  # aria2 answers "path": ""


def test_error_after_the_name_is_known_keeps_it() -> None:
    assert parse_status(rpc("error_disk_full")).files == ["/tmp/mdscratch/tiny/big.mp4"]


@pytest.mark.parametrize(
    "raw",
    [
        {},
        {"status": None, "files": None},
        {"status": "active", "totalLength": "abc", "completedLength": "-5", "downloadSpeed": "1e3"},
        {"status": "active", "totalLength": "NaN", "completedLength": "", "downloadSpeed": None},
        {"status": 3, "files": ["x", {"path": 7}, {"selected": "false", "path": "/a"}]},
        {"status": "error", "errorCode": 9, "errorMessage": ["no"]},
    ],
)
def test_garbage_never_raises(raw: dict[str, Any]) -> None:
    st = parse_status(raw)
    assert st.files == []
    assert st.progress is not None and st.progress.progress is None
    assert st.progress.speed in (0, None) and st.progress.total_bytes is None


def test_numbers_instead_of_strings_are_accepted() -> None:
    st = parse_status({"status": "active", "totalLength": 200, "completedLength": 50.0})
    assert st.progress is not None and st.progress.progress == 25.0


def test_more_done_than_total_stays_below_100_until_complete() -> None:
    raw = {"status": "active", "totalLength": "100", "completedLength": "150"}
    assert parse_status(raw).progress == Progress("downloading", 99.9, None, None, 100, 150)
    raw["status"] = "complete"
    assert parse_status(raw).progress == Progress("downloading", 100.0, 0, None, 100, 150)


def test_complete_with_zero_length_is_100() -> None:
    raw = {"status": "complete", "totalLength": "0", "completedLength": "0"}
    assert parse_status(raw).progress == Progress("downloading", 100.0, 0, None, None, 0)


# -- error codes --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "ours"),
    [
        ("3", "not_found"),
        ("4", "not_found"),
        ("2", "network"),
        ("5", "network"),
        ("6", "network"),
        ("19", "network"),
        ("9", "disk_full"),
        ("8", "http_error"),
        ("22", "http_error"),
        ("23", "http_error"),
        ("24", "http_error"),
        ("29", "http_error"),
        ("7", "interrupted"),
        ("31", "interrupted"),
        ("13", "tool_failed"),
        ("28", "tool_failed"),
        ("32", "tool_failed"),
        ("27", "unsupported_url"),
        ("1", "tool_failed"),
        ("999", "tool_failed"),
        (None, "tool_failed"),
        ("", "tool_failed"),
    ],
)
def test_code_table(code: str | None, ours: str) -> None:
    error_code, message = classify_error(code, None)
    assert error_code == ours
    assert message  # never empty


def test_messages_without_detail() -> None:
    assert classify_error("9", None) == ("disk_full", "Not enough disk space")
    assert classify_error("1", None) == ("tool_failed", "aria2 failed with error code 1")
    assert classify_error(None, None) == ("tool_failed", "aria2 failed")
    assert classify_error("999", "  ") == ("tool_failed", "aria2 failed with error code 999")


def test_a_generic_code_is_refined_by_its_message() -> None:
    assert classify_error("22", "status=404")[0] == "not_found"
    assert classify_error("1", "errNum=28 No space left on device")[0] == "disk_full"
    assert classify_error("1", "something odd")[0] == "tool_failed"
    assert classify_error("17", "errNum=28 No space left on device")[0] == "disk_full"
    # a precise code is not second-guessed
    assert classify_error("3", "Connection refused")[0] == "not_found"


def test_exit_status_works_as_a_code() -> None:
    assert classify_error(3, None) == ("not_found", "Resource not found")  # type: ignore[arg-type]


# -- console ------------------------------------------------------------------------


def test_console_raw_bytes() -> None:
    out = readouts("raw")
    assert len(out) == 7
    assert out[0] == Progress("downloading", 13.37, 148346, 6, 1103007, 147456)
    # "[#0a4265 1032192B/1103007B(93%) CN:1 DL:148346B]": ETA left out when it is 0
    assert out[-1] == Progress("downloading", 93.58, 148346, 0, 1103007, 1032192)


def test_console_human_readable() -> None:
    out = readouts("human")
    assert out[0] == Progress("downloading", 22.0, 246784, 3, 1048576, 245760)  # 240KiB/1.0MiB
    assert out[-1] == Progress("downloading", 89.0, 246784, 0, 1048576, 943718)  # 0.9MiB


def test_console_eta_forms() -> None:
    assert [p.eta for p in readouts("slow_sigint")] == [66, 132, 199, 265, 363]  # 1m6s...6m3s
    assert readouts("hours_sigint")[0].eta == 2 * 3600 + 6 * 60 + 37  # 2h6m37s
    assert readouts("hours_human_sigint")[0].total_bytes == int(2.7 * 1024**3)  # 2.7GiB


def test_console_unknown_total() -> None:
    # "[#68e600 294912B/0B CN:1 DL:296240B]": no percentage, no ETA
    assert readouts("unknown_size")[0] == Progress("downloading", None, 296240, None, None, 294912)
    assert readouts("unknown_size_human")[0] == Progress(
        "downloading", None, 295936, None, None, 294912
    )


def test_console_interrupted_run_ends_with_exit_7() -> None:
    code, body = console("slow_sigint")
    assert code == 7
    assert "aria2 will resume download if the transfer is restarted." in body
    assert classify_error(str(code), None) == ("interrupted", "Download unfinished")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "[#2f09f0 4227072B/20000000B(21%) CN:1 DL:2106000B ETA:7s]",
            Progress("downloading", 21.14, 2106000, 7, 20000000, 4227072),
        ),
        (
            "[#2f09f0 3.0MiB/19MiB(15%) CN:1 DL:1.0MiB ETA:1h2m3s]",
            Progress("downloading", 15.0, 1048576, 3723, 19922944, 3145728),
        ),
        (
            "[#2f09f0 3.0MiB/19MiB(15%) CN:2 SD:3 DL:1.0MiB UL:12KiB(1.0MiB) ETA:4m51s]",
            Progress("downloading", 15.0, 1048576, 291, 19922944, 3145728),
        ),
        (
            "\r[#2f09f0 19999999B/20000000B(99%) CN:1 DL:0B]  ",
            Progress("downloading", 99.9, 0, 0, 20000000, 19999999),
        ),
    ],
)
def test_console_lines(line: str, expected: Progress) -> None:
    assert parse_console_line(line) == expected


@pytest.mark.parametrize(
    "line",
    [
        "",
        "aria2 will resume download if the transfer is restarted.",
        "11/24 08:08:14 [ERROR] CUID#7 - Download aborted. URI=http://127.0.0.1:18765/missing.mp4",
        "[#2f09f0 SEED(1.0) CN:1 UL:12KiB]",
        "[#2f09f0 ",
        "[#2f09f0 abc/defB(5%) CN:1]",
        "[FileAlloc:#2f09f0 100MiB/1.0GiB(9%)]",
        "[#2f09f0 ]",
    ],
)
def test_console_other_lines(line: str) -> None:
    assert parse_console_line(line) is None


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("err_404", ("3", "Resource not found")),
        ("err_refused", ("1", "Failed to establish connection, cause: Connection refused")),
        ("err_dns", ("19", "Name resolution for nonexistent.invalid failed:Domain name not found")),
        ("err_403", ("22", "The response status is not successful. status=403")),
        (
            "err_disk_full",
            ("9", "Failed to write into the file /tmp/mdscratch/tiny/big.mp4, cause: "
                  "No space left on device"),
        ),
    ],
)  # fmt: skip
def test_console_errors(name: str, expected: tuple[str, str]) -> None:
    code, body = console(name)
    found = [e for line in body if (e := parse_console_error(line))]
    assert found[0] == expected
    assert found[0][0] == str(code)  # the exit status repeats the first cause's code


def test_console_error_classified() -> None:
    _, body = console("err_file_exists")
    code, message = next(e for line in body if (e := parse_console_error(line)))
    error_code, text = classify_error(code, message)
    assert error_code == "tool_failed"
    assert text.startswith("The file already exists: File /tmp/mdscratch/")


def test_every_prefix_of_every_console_line_is_safe() -> None:
    for path in sorted((FIXTURES / "console").glob("*.txt")):
        for line in console(path.stem)[1]:
            for end in range(len(line) + 1):
                parse_console_line(line[:end])
                parse_console_error(line[:end])


@pytest.mark.parametrize("value", ["²", "\u0663", "-1", "1.5", "", " ", "0x10", None, [], {}, True])
def test_every_status_value_may_be_garbage(value: object) -> None:
    for path in sorted((FIXTURES / "rpc").glob("*.json")):
        raw = rpc(path.stem)
        for key in raw:
            parse_status({**raw, key: value})


@pytest.mark.parametrize(
    "line",
    [
        "[#2f09f0 ²B/³B(5%) CN:1 DL:²B ETA:²s]",
        "[#2f09f0 \u0663B/\u0663\u0660B(10%) CN:1 DL:0B ETA:\u0663s]",
    ],
)
def test_odd_digits_never_raise(line: str) -> None:
    parse_console_line(line)

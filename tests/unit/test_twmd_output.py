"""twmd's output lines and how a run ended (pure: no process, no files)."""

from __future__ import annotations

import pytest

from mediad.worker import twmd_output as t
from mediad.worker.twmd_output import Line, TwmdOutput, classify, is_prompt, parse_line


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Downloaded FqX9aZ1WcAEf3Kp.jpg", Line(t.DOWNLOADED, "FqX9aZ1WcAEf3Kp.jpg")),
        ("Downloaded a b.mp4\n", Line(t.DOWNLOADED, "a b.mp4")),
        ("error", Line(t.ERROR)),
        ("error\r", Line(t.ERROR)),
        ("FqX9aZ1WcAEf3Kp.jpg: already exists", Line(t.EXISTS, "FqX9aZ1WcAEf3Kp.jpg")),
        ("File exist", Line(t.EXISTS)),
        ("Error retrieve tweet", Line(t.RETRIEVE_ERROR)),
        (
            'response status 429 Too Many Requests: {"errors":[{"code":88}]}',
            Line(t.RATE_LIMITED, '{"errors":[{"code":88}]}'),
        ),
        ("response status 429 Too Many Requests", Line(t.RATE_LIMITED, "")),
        ("user not found", Line(t.USER_NOT_FOUND)),
        ("user is suspended", Line(t.SUSPENDED)),
        ("either @hidden does not exist or is private", Line(t.PRIVATE, "hidden")),
        ("tweet with ID 405 not found", Line(t.TWEET_NOT_FOUND, "405")),
        ("username: password: ", Line(t.PROMPT, "username: password:")),
        ("username: ", Line(t.PROMPT, "username:")),
        ("two-factor: ", Line(t.PROMPT, "two-factor:")),
        ("auth_token cookie: ct0 cookie: ", Line(t.PROMPT, "auth_token cookie: ct0 cookie:")),
        ("Bad user/pass", Line(t.PROMPT, "Bad user/pass")),
        ("Bad Cookies.", Line(t.PROMPT, "Bad Cookies.")),
        (
            "panic: runtime error: invalid memory address or nil pointer dereference",
            Line(
                t.PANIC, "panic: runtime error: invalid memory address or nil pointer dereference"
            ),
        ),
        ("fatal error: concurrent map writes", Line(t.PANIC, "fatal error: concurrent map writes")),
        (
            "Error in size, setting up to normal",
            Line(t.OTHER, "Error in size, setting up to normal"),
        ),
        ("version: 1.14.0", Line(t.OTHER, "version: 1.14.0")),
        (" ▐█.▪██▪▐█▐▐▌▐█ ▌▐▌▐█·▐█· ▐█▌", Line(t.OTHER, "▐█.▪██▪▐█▐▐▌▐█ ▌▐▌▐█·▐█· ▐█▌")),
    ],
)
def test_each_line_kind(text: str, expected: Line) -> None:
    assert parse_line(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Downloaded",  # no name
        "errors",
        "an error",
        "user not found either",
        "response status 500 Internal Server Error: boom",
        "tweet with ID  not found",
        "usernames are case-insensitive",
        "Downloaded username: x.jpg",
    ],
)
def test_near_misses_are_not_taken_for_events(text: str) -> None:
    kind = parse_line(text).kind
    assert kind in (t.OTHER, t.DOWNLOADED), kind
    if text.startswith("Downloaded "):
        assert parse_line(text).value == text[len("Downloaded ") :]


def test_an_unterminated_prompt_is_recognised_but_a_cut_line_is_not() -> None:
    assert is_prompt("username: ")
    assert is_prompt("username: password: ")
    assert not is_prompt("")
    assert not is_prompt("Downloaded Fq")
    assert not is_prompt("user not fou")
    assert not is_prompt("response status 429 Too Many Requests: ")


def feed(*lines: str) -> TwmdOutput:
    out = TwmdOutput()
    for line in lines:
        out.feed(line)
    return out


def test_interleaved_lines_add_up_in_any_order() -> None:
    lines = [
        "Downloaded A.jpg",
        "error",
        "Downloaded B.mp4",
        "Error in size, setting up to normal",
        "error",
        "Downloaded C.jpg",
    ]
    for order in (lines, lines[::-1], lines[1::2] + lines[::2]):
        out = feed(*order)
        assert sorted(out.downloaded) == ["A.jpg", "B.mp4", "C.jpg"]
        assert out.errors == 2
        assert out.fatal is None and out.prompt is None and out.panic is None
        assert out.lines == 6
        assert list(out.tail) == ["Error in size, setting up to normal"]


def test_the_first_fatal_line_wins() -> None:
    out = feed("user not found", "response status 429 Too Many Requests: x")
    assert out.fatal is not None and out.fatal.error_code == "user_not_found"


def test_the_tail_keeps_the_last_unknown_lines() -> None:
    out = feed(*(f"line {i}" for i in range(20)), "Downloaded X.jpg", "error")
    assert list(out.tail) == [f"line {i}" for i in range(15, 20)]


# -- classify ------------------------------------------------------------------------------


def outcome(out: TwmdOutput, code: int, kept: int, mode: str = "tweet") -> str | None:
    failure = classify(out, code, kept, mode=mode)
    if failure is not None:
        assert failure.message and failure.message[0].isalpha()
    return None if failure is None else failure.error_code


def test_exit_0_with_usable_files_succeeds_even_with_some_errors() -> None:
    assert outcome(feed("Downloaded A.jpg", "error"), 0, 1) is None
    assert outcome(feed("Downloaded A.jpg", "Error retrieve tweet"), 0, 1, "user") is None


@pytest.mark.parametrize(
    ("lines", "code", "kept", "expected"),
    [
        (["Error retrieve tweet"], 0, 0, "not_found"),
        (["tweet with ID 405 not found"], 1, 0, "not_found"),
        (["error"], 0, 0, "http_error"),
        (["error", "error", "Downloaded A.jpg"], 0, 0, "http_error"),
        (["Downloaded A.jpg"], 0, 0, "tool_failed"),  # reported, but not on disk
        ([], 0, 0, "no_media"),
        (["response status 429 Too Many Requests: {}"], 1, 0, "rate_limited"),
        (["Downloaded A.jpg", "response status 429 Too Many Requests: {}"], 1, 1, "rate_limited"),
        (["user not found"], 1, 0, "user_not_found"),
        (["user is suspended"], 1, 0, "account_suspended"),
        (["either @hidden does not exist or is private"], 1, 0, "account_private"),
        (["panic: runtime error: index out of range"], 2, 0, "tool_failed"),
        (["Downloaded A.jpg", "panic: boom"], 2, 1, "tool_failed"),  # never published
        ([], 2, 0, "tool_failed"),
        (["You must specify what to download."], 1, 0, "tool_failed"),
        (["Downloaded A.jpg"], 1, 1, "tool_failed"),  # exit 1: nothing is published
        (["Downloaded A.jpg"], -9, 1, "interrupted"),
        (["username: password:", "Bad user/pass"], 0, 0, "auth_failed"),
        (["Downloaded A.jpg", "username: "], 0, 1, "auth_failed"),
    ],
)
def test_outcomes(lines: list[str], code: int, kept: int, expected: str) -> None:
    assert outcome(feed(*lines), code, kept) == expected


def test_messages_say_what_happened() -> None:
    def message(*lines: str, code: int = 1, mode: str = "tweet") -> str:
        failure = classify(feed(*lines), code, 0, mode=mode)
        assert failure is not None
        return failure.message

    assert "@hidden" in message("either @hidden does not exist or is private")
    assert "429" in message("response status 429 Too Many Requests: slow down")
    assert "slow down" in message("response status 429 Too Many Requests: slow down")
    assert "405" in message("tweet with ID 405 not found")
    assert "code 1: Usage: x / y" in message("Usage: x", "y")
    assert "Go panic" in message("panic: oops", code=2)
    assert "panic: oops" in message("panic: oops", code=2)
    assert "2 request(s)" in message("error", "error", code=0)
    assert "tweet" in message(code=0)
    assert "account" in message(code=0, mode="user")
    assert "cookies" in message("username: ")
    long = message(*("x" * 400 for _ in range(5)))
    assert len(long) <= t.MESSAGE_MAX_CHARS

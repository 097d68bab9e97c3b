"""The client commands' pure parts: options, where the server and token come from, the
error lines, the plain progress lines, the table; and that `mediad serve` does not import
the progress library or the Socket.IO client."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mediad import client_cli as cc
from mediad import config as configuration

ROOT = Path(__file__).resolve().parents[2]


def test_options_are_json_when_they_parse_as_json() -> None:
    assert cc.parse_option("maxItems=3") == ("maxItems", 3)
    assert cc.parse_option("playlist=true") == ("playlist", True)
    assert cc.parse_option('subtitles=["en"]') == ("subtitles", ["en"])
    assert cc.parse_option("format=720p") == ("format", "720p")
    assert cc.parse_option("format=best[height<=480]") == ("format", "best[height<=480]")
    assert cc.parse_option("a=b=c") == ("a", "b=c")
    assert cc.parse_option("empty=") == ("empty", "")
    for bad in ("novalue", "=3", " =3"):
        with pytest.raises(argparse.ArgumentTypeError):
            cc.parse_option(bad)


def test_the_server_and_the_token_come_from_flags_then_environment_then_config() -> None:
    config = configuration.build(
        {"server": {"host": "0.0.0.0", "port": 9000, "api_tokens": ["a" * 16, "b" * 16]}}
    )
    assert cc.server_url(None, config, {}) == "http://127.0.0.1:9000"
    assert cc.server_url(None, config, {"MEDIAD_URL": "http://h:1/"}) == "http://h:1"
    assert cc.server_url("https://x", config, {"MEDIAD_URL": "http://h:1"}) == "https://x"
    v6 = configuration.build({"server": {"host": "::1", "port": 8}})
    assert cc.server_url(None, v6, {}) == "http://[::1]:8"
    with pytest.raises(cc.ClientError) as caught:
        cc.server_url("ftp://x", config, {})
    assert caught.value.exit_code == cc.EXIT_USAGE
    assert cc.api_token(None, config, {}) == "a" * 16
    assert cc.api_token(None, config, {"MEDIAD_TOKEN": "env"}) == "env"
    assert cc.api_token("flag", config, {"MEDIAD_TOKEN": "env"}) == "flag"
    assert cc.api_token(None, configuration.build({}), {}) is None


def test_error_answers_become_one_line_and_an_exit_code() -> None:
    conflict = cc.answer_error(
        409,
        {"error": {"code": "invalid_transition", "message": "cannot pause", "status": "paused"}},
        "http://h",
    )
    assert conflict.exit_code == cc.EXIT_REFUSED
    assert conflict.message == "cannot pause (invalid_transition, HTTP 409); the job is paused"
    unauthorized = cc.answer_error(401, {"error": {"code": "unauthorized", "message": "m"}}, "u")
    assert "--token" in unauthorized.message and unauthorized.exit_code == cc.EXIT_REFUSED
    down = cc.answer_error(503, None, "http://h")
    assert down.exit_code == cc.EXIT_UNREACHABLE and "503" in down.message


def test_exit_codes_are_distinct_and_in_the_readme() -> None:
    codes = [
        cc.EXIT_OK, cc.EXIT_FAILED, cc.EXIT_USAGE, cc.EXIT_CANCELLED, cc.EXIT_REFUSED,
        cc.EXIT_UNREACHABLE, cc.EXIT_FILES, cc.EXIT_INTERRUPTED,
    ]  # fmt: skip
    assert len(set(codes)) == len(codes)
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Command line") :]
    for code in codes:
        assert re.search(rf"^\| `{code}` \|", section, re.M), code


class Sink:
    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> None:
        self.text += text

    def flush(self) -> None:
        pass


def test_plain_progress_lines() -> None:
    sink = Sink()
    display = cc.PlainDisplay(sink)  # type: ignore[arg-type]
    display.start("ID", "ytdlp")
    display.job({"status": "queued"})
    display.job({"status": "running", "stage": "downloading", "progress": 0.0, "speed": None})
    for pct in (0.4, 1.2, 1.9, 2.0, 55.5):
        display.progress({"stage": "downloading", "progress": pct, "speed": 2048, "eta": 75})
    display.progress({"stage": "merging", "progress": 55.5, "speed": None, "eta": None})
    display.progress({"stage": "merging", "progress": None, "speed": None, "eta": None})
    assert sink.text.splitlines() == [
        "job ID (ytdlp)",
        "queued",
        "downloading      0%",
        "downloading      1%    2.0 KiB/s  ETA 1:15",
        "downloading      2%    2.0 KiB/s  ETA 1:15",
        "downloading     56%    2.0 KiB/s  ETA 1:15",
        "merging         56%",
        "merging           ?",
    ]


def test_unknown_totals_print_a_question_mark_not_a_number() -> None:
    assert cc.progress_line("downloading", None, 4096, None) == "downloading       ?    4.0 KiB/s"
    assert cc.human_eta(3725) == "1:02:05"
    assert cc.human_bytes(4 * 1024 * 1024) == "4.0 MiB" and cc.human_bytes(12) == "12 B"


def test_the_table_keeps_the_last_column_whole() -> None:
    url = "https://example.com/" + "x" * 150
    table = cc.job_table(
        [
            {"jobId": "a" * 36, "status": "queued", "type": "ytdlp", "progress": 0, "url": url,
             "createdAt": "2024-01-02T03:04:05.123+00:00"},
            {"jobId": "b" * 36, "status": "completed", "type": "aria2", "progress": 100.0,
             "size": 1024, "filename": "f.bin", "createdAt": "2024-01-02T03:04:06+00:00"},
        ]
    )  # fmt: skip
    lines = table.splitlines()
    assert lines[0].split() == ["ID", "STATUS", "TYPE", "PROGRESS", "SIZE", "CREATED", "NAME"]
    assert lines[1].endswith(url) and "2024-01-02 03:04:05" in lines[1]
    assert lines[2].split()[-1] == "f.bin" and "1.0 KiB" in lines[2]
    assert cc.job_table([]).splitlines()[-1] == "(no jobs)"


def _imported(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True, text=True, cwd=ROOT, timeout=120, check=True,
    )  # fmt: skip
    return out.stderr


def test_serve_does_not_import_the_client_libraries() -> None:
    """`mediad serve` builds the parser that holds the client commands, and imports the
    service; neither brings rich (the progress bar) or the backup module in."""
    for code in (
        "import sys; sys.argv = ['mediad', 'serve', '--help']\n"
        "from mediad import cli\ntry: cli.main()\nexcept SystemExit: pass",
        "from mediad import cli, service; cli._parser()",
    ):
        modules = {line.split("|")[-1].strip() for line in _imported(code).splitlines()}
        assert "mediad.client_cli" in modules  # the commands are registered…
        assert not {m for m in modules if m == "rich" or m.startswith("rich.")}
        assert "mediad.backup" not in modules


def test_the_client_imports_rich_when_it_shows_a_bar() -> None:
    modules = _imported(
        "import io\nfrom mediad import client_cli\nclient_cli.RichDisplay(io.StringIO())"
    )
    assert "rich.progress" in modules

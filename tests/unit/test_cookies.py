"""Cookie files as yt-dlp reads them (mediad/cookies.py), their storage, the twmd form;
and the speed limits' parser (config.parse_rate) and where the limits go."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
from yt_dlp.cookies import YoutubeDLCookieJar

from mediad import config as configuration
from mediad import cookies
from mediad.errors import BadRequest, ConfigError
from mediad.worker import run_ytdlp

GOOD = (
    "# Netscape HTTP Cookie File\n"
    "# a comment\n"
    "\n"
    ".example.com\tTRUE\t/\tTRUE\t2000000000\tsid\tabc\n"
    "#HttpOnly_www.example.com\tFALSE\t/path\tFALSE\t0\ttoken\tx=y\n"
    "example.org\tFALSE\t/\tFALSE\t\tsession\t\n"
)


def yt_dlp_count(tmp_path: Path, text: str) -> int:
    path = tmp_path / "jar.txt"
    path.write_text(text)
    jar = YoutubeDLCookieJar(str(path))
    jar.load()
    return len(jar)


def test_a_good_file_counts_what_yt_dlp_loads(tmp_path: Path) -> None:
    assert cookies.count(GOOD) == 3 == yt_dlp_count(tmp_path, GOOD)
    short_header = GOOD.replace("# Netscape HTTP Cookie File", "# HTTP Cookie File")
    assert cookies.count(short_header) == 3 == yt_dlp_count(tmp_path, short_header)
    crlf = GOOD.replace("\n", "\r\n")
    assert cookies.count(cookies.decode(crlf.encode())) == 3
    bom = cookies.decode(b"\xef\xbb\xbf" + GOOD.encode())
    assert cookies.count(bom) == 3


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("", 1, "must start with"),
        (".example.com\tTRUE\t/\tTRUE\t0\ta\tb\n", 1, "must start with"),
        ("# Netscape HTTP Cookie File\n\n# only comments\n", 3, "no cookie"),
        (
            "# Netscape HTTP Cookie File\nexample.com\tFALSE\t/\n",
            2,
            "7 tab-separated fields, found 3",
        ),
        ("# Netscape HTTP Cookie File\nexample.com FALSE / FALSE 0 a b\n", 2, "found 1"),
        (
            "# Netscape HTTP Cookie File\nexample.com\tTRUE\t/\tFALSE\t0\ta\tb\n",
            2,
            "starts with '.'",
        ),
        ("# Netscape HTTP Cookie File\nexample.com\tFALSE\t/\tNO\t0\ta\tb\n", 2, "TRUE or FALSE"),
        ("# Netscape HTTP Cookie File\nexample.com\tFALSE\t/\tFALSE\t-5\ta\tb\n", 2, "expiry"),
        ("# Netscape HTTP Cookie File\n\tFALSE\t/\tFALSE\t0\ta\tb\n", 2, "domain"),
        ("# Netscape HTTP Cookie File\nexample.com\tFALSE\t/\tFALSE\t0\t\t\n", 2, "neither"),
        ('# Netscape HTTP Cookie File\n{"cookies": []}\n', 2, "found 1"),
    ],
)
def test_a_bad_file_names_its_line(text: str, line: int, words: str) -> None:
    with pytest.raises(BadRequest) as caught:
        cookies.count(text)
    assert caught.value.code == "invalid_cookies"
    assert f"line {line}:" in caught.value.message and words in caught.value.message


def test_the_message_never_holds_the_content() -> None:
    text = "# Netscape HTTP Cookie File\nexample.com\tFALSE\t/\tFALSE\tsecret-42\tsid\tsecret-42\n"
    with pytest.raises(BadRequest) as caught:
        cookies.count(text)
    assert "secret-42" not in caught.value.message


@pytest.mark.parametrize("data", [b"\x00\x01\x02binary", b"# Netscape HTTP Cookie File\n\xff\n"])
def test_binary_is_refused(data: bytes) -> None:
    with pytest.raises(BadRequest) as caught:
        cookies.decode(data)
    assert caught.value.code == "invalid_cookies"


@pytest.mark.parametrize("name", ["", "-a", ".a", "_a", "a/b", "a b", "a" * 65, "é"])
def test_bad_names(name: str) -> None:
    with pytest.raises(BadRequest) as caught:
        cookies.check_name(name)
    assert caught.value.code == "invalid_name"


def test_storage_is_private_atomic_and_listed(tmp_path: Path) -> None:
    files = cookies.store_for(tmp_path)
    stored, created = files.put("yt", GOOD.encode(), 3)
    assert created and (stored.name, stored.size, stored.entries) == ("yt", len(GOOD), 3)
    assert not files.put("yt", GOOD.encode(), 3)[1]
    root = tmp_path / "cookies"
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert stat.S_IMODE((root / "yt.txt").stat().st_mode) == 0o600
    (root / ".upload-leftover").write_text("x")  # a crash mid-write: never listed
    (root / "notes.md").write_text("x")
    assert [f.name for f in files.list()] == ["yt"]
    work = tmp_path / "tmp" / "job"
    copy = files.copy_into("yt", work)
    assert copy == work / cookies.JOB_COPY and copy.read_text() == GOOD
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    assert files.copy_into("missing", work) is None
    cookies.remove_copy(work)
    assert not copy.exists()
    assert files.delete("yt") and not files.delete("yt") and not files.exists("yt")


def test_twmd_gets_its_json() -> None:
    cookies_json = json.loads(cookies.twmd_json(GOOD))
    assert cookies_json[0] == {
        "Name": "sid", "Value": "abc", "Path": "/", "Domain": ".example.com",
        "Secure": True, "HttpOnly": False, "Expires": "2033-05-18T03:33:20Z",
    }  # fmt: skip
    assert cookies_json[1]["HttpOnly"] is True and "Expires" not in cookies_json[1]


# -- speed limits ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (3000, 3000), ("2M", 2 * 2**20), ("2MiB", 2 * 2**20), ("500K", 500 * 1024),
        ("500k", 500 * 1024), ("1.5M", int(1.5 * 2**20)), ("1G", 2**30), ("1048576", 2**20),
        (None, None), ("", None),
    ],
)  # fmt: skip
def test_rates_are_read_as_yt_dlp_and_aria2_read_them(value: Any, expected: int | None) -> None:
    assert configuration.parse_rate("tools.rate_limit", value) == expected


@pytest.mark.parametrize("value", ["fast", "2T", "-1", "1,5M", "M", True, 1.5, [1]])
def test_bad_rates_name_the_key(value: Any) -> None:
    with pytest.raises(ConfigError, match=r"tools\.rate_limit"):
        configuration.build({"tools": {"rate_limit": value}})


def test_rates_from_the_environment_and_their_range() -> None:
    c = configuration.load(env={"MEDIAD_TOOLS_TOTAL_RATE_LIMIT": "3M"})
    assert c.tools.total_rate_limit == 3 * 2**20 and c.job_rate_limit == 2**20  # 3 jobs
    with pytest.raises(ConfigError, match=r"tools\.total_rate_limit"):
        configuration.build({"tools": {"total_rate_limit": 100}})


def test_each_job_gets_the_smaller_of_its_limit_and_its_share() -> None:
    build = configuration.build
    assert build({}).job_rate_limit is None
    assert build({"tools": {"rate_limit": "1M"}}).job_rate_limit == 2**20
    both = {"rate_limit": "1M", "total_rate_limit": "6M"}
    assert build({"tools": both, "queue": {"concurrency": 2}}).job_rate_limit == 2**20
    assert build({"tools": both, "queue": {"concurrency": 12}}).job_rate_limit == 2**19


def test_ytdlp_gets_the_limit_and_the_copy(tmp_path: Path) -> None:
    args = run_ytdlp.build_args(
        "https://example.com/v", {}, tmp_path, None, rate_limit=1234, cookies=tmp_path / "c.txt"
    )
    assert args[args.index("-r") + 1] == "1234"
    assert args[args.index("--cookies") + 1] == str(tmp_path / "c.txt")
    assert args.index("--cookies") < args.index("--")
    plain = run_ytdlp.build_args("https://example.com/v", {}, tmp_path, None)
    assert "-r" not in plain and "--cookies" not in plain

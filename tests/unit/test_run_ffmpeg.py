from __future__ import annotations

import os
from pathlib import Path

import pytest

from mediad.worker import run_ffmpeg
from mediad.worker.jobs import JobFailed
from mediad.worker.run_ffmpeg import (
    PROTOCOLS,
    build_args,
    build_check_args,
    build_probe_args,
    check_url,
    find_tools,
    output_name,
)
from mediad.worker.settings import WorkerSettings

URL = "https://cdn.example/show/index.m3u8"
OUT = Path("/data/tmp/job/.show.mp4.part")


def value_after(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


@pytest.mark.parametrize("container", ["mp4", "mkv"])
def test_ffmpeg_args_copy_into_an_explicit_format(container: str) -> None:
    args = build_args("/usr/bin/ffmpeg", URL, OUT, container)
    assert args[0] == "/usr/bin/ffmpeg"
    for flag in ("-nostdin", "-hide_banner", "-nostats", "-y"):
        assert flag in args
    assert value_after(args, "-progress") == "pipe:1"
    assert value_after(args, "-c") == "copy"
    assert value_after(args, "-f") == {"mp4": "mp4", "mkv": "matroska"}[container]
    assert value_after(args, "-i") == URL
    assert args[-1] == str(OUT)
    # Input options come before -i, or ffmpeg applies them to the output.
    assert args.index("-protocol_whitelist") < args.index("-i") < args.index("-c")
    assert args.index("-rw_timeout") < args.index("-i")
    assert "-bsf:a" not in args  # the muxers insert aac_adtstoasc themselves


@pytest.mark.parametrize(
    "args",
    [
        build_args("ffmpeg", URL, OUT, "mp4"),
        build_probe_args("ffprobe", URL),
        build_args("ffmpeg", URL, OUT, "mp4", "http://127.0.0.1:1"),
    ],
    ids=["ffmpeg", "ffprobe", "ffmpeg-via-proxy"],
)
def test_remote_input_never_allows_local_protocols(args: list[str]) -> None:
    allowed = value_after(args, "-protocol_whitelist").split(",")
    assert allowed == PROTOCOLS.split(",")
    assert allowed == ["http", "https", "tcp", "tls", "crypto", "httpproxy"]
    local = {"file", "pipe", "fd", "concat", "concatf", "subfile", "data", "unix", "cache"}
    assert not local & set(allowed)
    assert args.count("-protocol_whitelist") == 1
    assert value_after(args, "-i") == URL


def test_probe_args_ask_for_the_duration_only() -> None:
    args = build_probe_args("/usr/bin/ffprobe", URL)
    assert args[0] == "/usr/bin/ffprobe"
    assert value_after(args, "-show_entries") == "format=duration"
    assert value_after(args, "-of") == "default=noprint_wrappers=1:nokey=1"
    assert value_after(args, "-v") == "error"


def test_reading_back_our_output_forces_the_demuxer() -> None:
    args = build_check_args("ffprobe", OUT, "mkv")
    assert value_after(args, "-protocol_whitelist") == "file"
    assert value_after(args, "-f") == "matroska"
    assert value_after(args, "-i") == f"file:{OUT}"


@pytest.mark.parametrize(
    ("url", "container", "name"),
    [
        ("https://cdn.example/show/index.m3u8", "mp4", "show.mp4"),
        ("https://cdn.example/movie.m3u8", "mp4", "movie.mp4"),
        ("https://cdn.example/movie.m3u8?token=abc#frag", "mkv", "movie.mkv"),
        ("https://cdn.example/a/b/manifest.mpd", "mp4", "b.mp4"),
        ("https://cdn.example/My%20Show/hls/master.m3u8", "mp4", "My Show.mp4"),
        ("https://cdn.example/live/stream.m3u8", "mp4", "cdn.example.mp4"),
        ("https://www.example.com/index.m3u8", "mkv", "example.com.mkv"),
        ("https://cdn.example/ep.1.final.m3u8", "mp4", "ep.1.final.mp4"),
        ("https://cdn.example/.m3u8", "mp4", "cdn.example.mp4"),
        ("https://cdn.example/x/..%2F..%2Fetc%2Fpasswd.m3u8", "mp4", "_.._etc_passwd.mp4"),
        ("https://cdn.example/%2E%2E/index.m3u8", "mp4", "cdn.example.mp4"),
        ("https://cdn.example/-rf/index.m3u8", "mp4", "rf.mp4"),
        ("https://cdn.example/a%00b/index.m3u8", "mp4", "a_b.mp4"),
        ("https://cdn.example/___/index.m3u8", "mp4", "cdn.example.mp4"),
        ("https://cdn.example/%E6%98%A0%E7%94%BB.m3u8", "mp4", "映画.mp4"),
    ],
)
def test_output_name_from_the_url(url: str, container: str, name: str) -> None:
    assert output_name(url, container) == name


def test_output_name_is_one_short_component() -> None:
    name = output_name("https://cdn.example/" + "a" * 400 + ".m3u8", "mp4")
    assert name.endswith(".mp4") and len(name.encode()) <= 200
    for url in ("https://cdn.example/a%2Fb%5Cc.m3u8", "https://cdn.example/%0A.m3u8"):
        name = output_name(url, "mp4")
        assert "/" not in name and "\\" not in name and "\n" not in name
        assert not name.startswith((".", "-"))


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "concat:http://a.example/x.m3u8|http://b.example/y.m3u8",
        "subfile,,start,0,end,0,,:http://a.example/x.m3u8",
        "ftp://a.example/x.m3u8",
        "http:///no-host.m3u8",
        "-i",
    ],
)
def test_only_http_urls_reach_ffmpeg(url: str) -> None:
    with pytest.raises(JobFailed) as caught:
        check_url(url)
    assert caught.value.error_code == "unsupported_url"


def test_http_urls_pass() -> None:
    check_url("http://127.0.0.1:8080/x.m3u8")
    check_url("HTTPS://cdn.example/x.mpd")


def settings(tmp_path: Path, **tools: str | None) -> WorkerSettings:
    return WorkerSettings(
        server_url="http://x",
        worker_id="w",
        token="t",
        data_dir=tmp_path / "data",
        tmp_dir=tmp_path / "tmp",
        **tools,  # type: ignore[arg-type]
    )


def executable(path: Path) -> Path:
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def test_tools_come_from_the_settings(tmp_path: Path) -> None:
    ffmpeg = executable(tmp_path / "my-ffmpeg")
    ffprobe = executable(tmp_path / "my-ffprobe")
    tools = find_tools(settings(tmp_path, ffmpeg=str(ffmpeg), ffprobe=str(ffprobe)))
    assert tools == run_ffmpeg.Tools(str(ffmpeg), str(ffprobe))


def test_ffprobe_is_looked_for_next_to_a_configured_ffmpeg(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    ffmpeg = executable(bin_dir / "ffmpeg")
    ffprobe = executable(bin_dir / "ffprobe")
    tools = find_tools(settings(tmp_path, ffmpeg=str(ffmpeg)))
    assert tools.ffprobe == str(ffprobe)


def test_missing_tools_fail_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(JobFailed) as caught:
        find_tools(settings(tmp_path))
    assert caught.value.error_code == "tool_missing"
    assert "ffmpeg is not installed" in str(caught.value)
    with pytest.raises(JobFailed) as caught:
        find_tools(settings(tmp_path, ffmpeg=str(tmp_path / "nowhere" / "ffmpeg")))
    assert caught.value.error_code == "tool_missing"
    assert "tools.ffmpeg" in str(caught.value)
    executable(tmp_path / "ffmpeg")
    with pytest.raises(JobFailed) as caught:
        find_tools(settings(tmp_path))
    assert "ffprobe" in str(caught.value)


def test_a_non_executable_configured_tool_is_missing(tmp_path: Path) -> None:
    plain = tmp_path / "ffmpeg"
    plain.write_text("")
    assert not os.access(plain, os.X_OK)
    with pytest.raises(JobFailed, match="not found"):
        find_tools(settings(tmp_path, ffmpeg=str(plain)))


def test_the_egress_proxy_comes_before_the_input() -> None:
    args = build_args("ffmpeg", URL, OUT, "mp4", "http://127.0.0.1:9")
    assert value_after(args, "-http_proxy") == "http://127.0.0.1:9"
    assert args.index("-http_proxy") < args.index("-i")

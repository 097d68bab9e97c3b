"""mediad.detect: which tool a URL needs, and what a Twitter/X URL points at."""

from __future__ import annotations

import pytest

from mediad.detect import detect_type, twitter_target
from mediad.models import JobType


@pytest.mark.parametrize(
    "url",
    [
        "https://twitter.com/jack/status/20",
        "https://x.com/jack/status/20",
        "https://www.twitter.com/jack/status/20",
        "https://www.x.com/jack/status/20",
        "https://mobile.twitter.com/jack/status/20",
        "https://mobile.x.com/jack/status/20",
        "https://x.com/i/status/20",
        "https://x.com/jack",
        "https://twitter.com/jack/",
        "https://X.COM/jack",
        "http://twitter.com:443/jack/status/20?s=20",
        "https://x.com/jack/status/20/photo/1.jpg",
        "https://x.com/home",
    ],
)
def test_twitter_hosts(url: str) -> None:
    assert detect_type(url) is JobType.TWITTER


@pytest.mark.parametrize(
    "url",
    [
        "https://cdn.example.com/live/index.m3u8",
        "https://cdn.example.com/live/INDEX.M3U8",
        "https://cdn.example.com/live/index.m3u8?token=abc&exp=1",
        "https://cdn.example.com/live/index.m3u8#t=10",
        "https://cdn.example.com/dash/manifest.mpd",
        "https://cdn.example.com/dash/Manifest.MPD?x=1",
        "http://127.0.0.1:8000/a.b/stream.m3u8",
    ],
)
def test_streams_go_to_ffmpeg(url: str) -> None:
    assert detect_type(url) is JobType.FFMPEG


@pytest.mark.parametrize(
    "ext",
    ["mp4", "mkv", "webm", "mov", "mp3", "m4a", "flac", "opus", "wav", "jpg", "png", "gif",
     "zip", "7z", "tar", "gz", "tgz", "iso", "pdf", "torrent"],
)  # fmt: skip
def test_media_and_archive_extensions_go_to_aria2(ext: str) -> None:
    assert detect_type(f"https://files.example.com/dl/file.{ext}") is JobType.ARIA2
    assert detect_type(f"https://files.example.com/dl/FILE.{ext.upper()}") is JobType.ARIA2
    assert detect_type(f"https://files.example.com/dl/file.{ext}?sig=x.html") is JobType.ARIA2


@pytest.mark.parametrize(
    "url",
    [
        "https://files.example.com/a/b/c/video.mp4",
        "https://files.example.com/archive.tar.gz",
        "https://files.example.com/some.dir/video.mp4#frag",
        "http://[::1]:8080/video.mp4",
        "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567",
        "MAGNET:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567",
    ],
)
def test_direct_files_go_to_aria2(url: str) -> None:
    assert detect_type(url) is JobType.ARIA2


@pytest.mark.parametrize(
    "url",
    [
        "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
        "https://youtu.be/dQw4w9WgXcQ",
        "https://vimeo.com/123456",
        "https://example.com/",
        "https://example.com",
        "https://example.com/video",
        "https://example.com/file.mp4.html",
        "https://example.com/watch.php?file=a.mp4",
        "https://example.com/page?x=video.m3u8",
        "https://example.com/videos.mp4/",
        "https://example.com/video.mp4/page",
        "https://example.com/.mp4",
        "https://example.com/file.",
        "https://example.com/file.exe",
        "https://twitter.com.example.com/jack/status/20",
        "https://nottwitter.com/jack/status/20",
        "https://x.com.evil/jack",
        "https://api.x.com/jack/status/20",
    ],
)
def test_everything_else_goes_to_ytdlp(url: str) -> None:
    assert detect_type(url) is JobType.YTDLP


# --- twitter_target -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://twitter.com/jack/status/20", ("tweet", "20")),
        ("https://x.com/jack/status/1234567890123456789", ("tweet", "1234567890123456789")),
        ("https://x.com/jack/status/20/", ("tweet", "20")),
        ("https://x.com/jack/status/20?s=20&t=abc", ("tweet", "20")),
        ("https://x.com/jack/status/20#reply", ("tweet", "20")),
        ("https://x.com/jack/status/20/photo/1", ("tweet", "20")),
        ("https://x.com/jack/status/20/video/1", ("tweet", "20")),
        ("https://twitter.com/jack/statuses/20", ("tweet", "20")),
        ("https://x.com/i/status/20", ("tweet", "20")),
        ("https://x.com/i/web/status/20", ("tweet", "20")),
        ("https://x.com/i/web/status/20?lang=en", ("tweet", "20")),
        ("https://mobile.twitter.com/jack/status/20", ("tweet", "20")),
        ("https://www.x.com/Some_User1/status/20", ("tweet", "20")),
        ("https://X.com/jack/status/20", ("tweet", "20")),
        ("https://x.com/jack", ("user", "jack")),
        ("https://x.com/jack/", ("user", "jack")),
        ("https://x.com/jack?ref=home", ("user", "jack")),
        ("https://twitter.com/Some_User1", ("user", "Some_User1")),
        ("https://mobile.x.com/jack/media", ("user", "jack")),
        ("https://www.twitter.com/jack/with_replies/", ("user", "jack")),
    ],
)
def test_twitter_target(url: str, expected: tuple[str, str]) -> None:
    assert twitter_target(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "https://x.com/",
        "https://x.com",
        "https://x.com/home",
        "https://x.com/home/",
        "https://x.com/search?q=cats",
        "https://x.com/explore",
        "https://x.com/settings",
        "https://x.com/messages",
        "https://x.com/notifications",
        "https://x.com/i",
        "https://x.com/HOME",
        "https://x.com/jack/status/",
        "https://x.com/jack/status/abc",
        "https://x.com/jack/likes",
        "https://x.com/jack/followers",
        "https://x.com/a_name_that_is_too_long",
        "https://x.com/bad-name",
        "https://x.com/i/web/status/",
        "https://x.com/hashtag/cats",
        "https://example.com/jack/status/20",
        "https://example.com/jack",
        "https://twitter.com.example.com/jack/status/20",
        "https://nitter.net/jack/status/20",
        "not a url",
        "",
    ],
)
def test_twitter_target_none(url: str) -> None:
    assert twitter_target(url) is None


@pytest.mark.parametrize(
    "url", ["https://x.com/login", "https://twitter.com/tos", "https://x.com/compose/post"]
)
def test_site_pages_are_not_profiles(url: str) -> None:
    assert twitter_target(url) is None


def test_the_m_host_is_twitter_too() -> None:
    assert detect_type("https://m.twitter.com/jack/status/20") is JobType.TWITTER

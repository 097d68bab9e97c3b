"""Pure: which tool a URL needs (docs/architecture.md, "Contracts": detection)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from mediad.models import JobType

TWITTER_HOSTS = frozenset(
    {"twitter.com", "x.com", "www.twitter.com", "www.x.com", "mobile.twitter.com",
     "mobile.x.com", "m.twitter.com", "m.x.com"}
)  # fmt: skip
STREAM_EXTENSIONS = frozenset({".m3u8", ".mpd"})
DIRECT_EXTENSIONS = frozenset(
    {
        # video
        ".mp4", ".m4v", ".mkv", ".webm", ".mov", ".avi", ".wmv", ".flv", ".ts", ".mpg", ".mpeg",
        ".3gp", ".ogv",
        # audio
        ".mp3", ".m4a", ".aac", ".flac", ".wav", ".ogg", ".oga", ".opus", ".wma",
        # images
        ".jpg", ".jpeg", ".png", ".gif", ".webp",
        # archives and images of disks
        ".zip", ".rar", ".7z", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".zst", ".iso", ".img",
        ".dmg", ".torrent", ".pdf", ".epub",
    }
)  # fmt: skip

_STATUS_PATH = re.compile(r"^/(?:i(?:/web)?|[A-Za-z0-9_]{1,15})/status(?:es)?/(\d{1,25})(?:/|$)")
_USER_PATH = re.compile(r"^/([A-Za-z0-9_]{1,15})/?(?:media/?|with_replies/?)?$")
# Paths on twitter.com that are not user names.
_RESERVED = frozenset(
    {"home", "explore", "search", "settings", "i", "messages", "notifications", "login",
     "logout", "signup", "tos", "privacy", "compose", "about", "jobs", "lists", "hashtag",
     "intent", "share", "account", "download"}
)  # fmt: skip


def detect_type(url: str) -> JobType:
    if url.lower().startswith("magnet:"):
        return JobType.ARIA2
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if host in TWITTER_HOSTS:
        return JobType.TWITTER
    path = parts.path.lower()
    ext = _extension(path)
    if ext in STREAM_EXTENSIONS:
        return JobType.FFMPEG
    if ext in DIRECT_EXTENSIONS:
        return JobType.ARIA2
    return JobType.YTDLP


def _extension(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    dot = name.rfind(".")
    return name[dot:] if dot > 0 else ""


def twitter_target(url: str) -> tuple[str, str] | None:
    """("tweet", ID) or ("user", NAME) for a Twitter/X URL, or None when it is neither."""
    parts = urlsplit(url)
    if (parts.hostname or "").lower() not in TWITTER_HOSTS:
        return None
    match = _STATUS_PATH.match(parts.path)
    if match:
        return ("tweet", match.group(1))
    match = _USER_PATH.match(parts.path)
    if match and match.group(1).lower() not in _RESERVED:
        return ("user", match.group(1))
    return None

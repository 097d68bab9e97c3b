"""A subscription's listing: the entries of a channel, playlist or feed, without
downloading them. yt-dlp's flat playlist listing (``--flat-playlist``), run like a yt-dlp
job (a child of the fork server, through the egress guard), printing one JSON line per
entry and one for the playlist, which :func:`parse_line` reads."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from mediad import wire
from mediad.worker import run_ytdlp
from mediad.worker.jobs import JobContext, JobFailed
from mediad.worker.ytdlp_progress import YtdlpParser, classify_error

ENTRY_MARK = "mediad-entry "
PLAYLIST_MARK = "mediad-playlist "
_ENTRY_FIELDS = "%(.{id,url,webpage_url,ie_key,extractor_key,title})j"
_PLAYLIST_FIELDS = "%(.{title,extractor_key})j"
# A URL as printed, with yt-dlp's smuggled note (taken off) on top of the longest we send.
_MAX_RAW_URL = 2 * wire.MAX_ENTRY_URL


@dataclass
class Listing:
    title: str | None = None
    entries: list[wire.ListedEntry] = field(default_factory=list)
    skipped: int = 0  # lines that named no usable entry


def build_args(
    url: str, max_items: int, proxy: str | None, cookies: Path | None = None
) -> list[str]:
    args = [
        "--ignore-config",
        "--no-plugin-dirs",
        "--no-cache-dir",
        "--socket-timeout", "30",
        "--retries", "3",
        "--flat-playlist",
        "--playlist-end", str(max_items),
        "-O", ENTRY_MARK + _ENTRY_FIELDS,
        "-O", "playlist:" + PLAYLIST_MARK + _PLAYLIST_FIELDS,
    ]  # fmt: skip
    if proxy:
        args += ["--proxy", proxy]  # the egress guard: every connection is checked there
    if cookies is not None:
        args += ["--cookies", str(cookies)]  # the check's private copy (a members-only list)
    return [*args, "--", url]


def _text(value: Any, limit: int) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


def _url(value: Any) -> str | None:
    """A URL as printed: a feed's ``<link>`` often has the white space around it."""
    return _text(value.strip() if isinstance(value, str) else None, _MAX_RAW_URL)


def _smuggled_id(url: str) -> str | None:
    """The id yt-dlp's generic extractor smuggles into a feed item's URL (its guid)."""
    fragment = urlsplit(url).fragment
    raw = parse_qs(fragment).get("__youtubedl_smuggle")
    if not raw:
        return None
    try:
        data = json.loads(raw[0])
    except ValueError:
        return None
    found = data.get("force_videoid") if isinstance(data, dict) else None
    return found if isinstance(found, str) and found else None


def entry_of(info: Any) -> wire.ListedEntry | None:
    """An entry from what yt-dlp printed: its URL, and its key (extractor and id; the
    URL when it has no id)."""
    if not isinstance(info, dict):
        return None
    url = _url(info.get("url")) or _url(info.get("webpage_url"))
    if url is None or not url.startswith(("http://", "https://")):
        return None
    extractor = _text(info.get("ie_key"), 64) or _text(info.get("extractor_key"), 64) or "url"
    raw_id = info.get("id")
    entry_id = str(raw_id) if isinstance(raw_id, str | int) and raw_id != "" else None
    smuggled = _smuggled_id(url)
    if smuggled is not None:  # yt-dlp's own note for its next run: not part of the URL
        url = url.partition("#")[0]
    if len(url) > wire.MAX_ENTRY_URL:  # cut short, it would name another resource
        return None
    return wire.ListedEntry(
        extractor, _key(entry_id or smuggled or url), url, _text(info.get("title"), wire.MAX_TITLE)
    )


def _key(entry_id: str) -> str:
    """An entry's id as remembered: a longer one is its digest, not its start (two long
    URLs, an id's fallback, often differ only at the end)."""
    if len(entry_id) <= wire.MAX_ENTRY_KEY:
        return entry_id
    return "sha256:" + hashlib.sha256(entry_id.encode("utf-8", "replace")).hexdigest()


def parse_line(line: str, listing: Listing) -> bool:
    """Take one line of output into ``listing``; False when it is none of ours."""
    for mark in (ENTRY_MARK, PLAYLIST_MARK):
        if not line.startswith(mark):
            continue
        try:
            info = json.loads(line[len(mark) :])
        except ValueError:
            listing.skipped += 1
            return True
        if mark == PLAYLIST_MARK:
            listing.title = _text(info.get("title") if isinstance(info, dict) else None, 300)
            return True
        entry = entry_of(info)
        if entry is None:
            listing.skipped += 1
        else:
            listing.entries.append(entry)
        return True
    return False


async def run(ctx: JobContext, max_items: int) -> Listing:
    args = build_args(ctx.url, max_items, ctx.proxy_url, ctx.cookie_copy())
    proc = await run_ytdlp.start(ctx, args)
    parser = YtdlpParser()
    listing = Listing()
    try:
        async for line in proc.lines():
            if not parse_line(line, listing):
                parser.feed(line)  # collects the ERROR lines
        code = await proc.wait()
    finally:
        if proc.returncode is None:  # cancelled
            await proc.stop()
    if code != 0:
        raise JobFailed(*classify_error(parser.errors, code))
    seen: set[tuple[str, str]] = set()
    unique = []
    for entry in listing.entries[:max_items]:
        if (entry.extractor, entry.entry_id) not in seen:
            seen.add((entry.extractor, entry.entry_id))
            unique.append(entry)
    listing.entries = unique
    return listing

"""A local HTTP media server for tests: byte ranges, throttling, stalls and a request log.

yt-dlp, aria2c and ffmpeg download from it over loopback, so it behaves like a plain static
file server (``Accept-Ranges``, ``ETag``, ``Last-Modified``, HEAD, one byte range per
request, ``If-Range``) and adds knobs a test turns per request through the query string,
each overriding the matching server-wide attribute:

``?rate=BYTES_PER_S``
    pace this response's body (``0`` = unthrottled even when the server-wide rate is set)
``?stall_after=N``
    send N body bytes, then hold the connection open until the client leaves or the
    server stops
``?status=CODE``
    answer CODE with a short text body, whatever the name
``?delay_ms=N``
    wait N milliseconds before the headers
``?filename=NAME``
    propose NAME in ``Content-Disposition: attachment; filename*=UTF-8''…``

``require_cookie(name, "session=VALUE")`` makes a name answer 403 unless the request
carries that cookie (a site behind a login, for named cookie files).

Every request ends up as one :class:`Served` record in ``MediaServer.served``.

``add_live_hls`` serves a live HLS stream made from the segments of a VOD set: its
playlist reveals one more segment every ``segment_s`` of wall time, counted from the
first request for it, and may end with ``#EXT-X-ENDLIST`` after a given number.

Standalone, for benchmarks by hand::

    python -m tests.support.mediaserver DIR [--port N] [--rate BYTES]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import email.utils
import hashlib
import logging
import math
import mimetypes
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Self
from urllib.parse import quote, urlencode

from aiohttp import web
from multidict import CIMultiDict

log = logging.getLogger(__name__)

CHUNK_BYTES = 64 * 1024
# Under a throttle a chunk carries about 1/THROTTLE_CHUNKS_PER_S of a second of data, so
# the rate is smooth at any window a test measures.
THROTTLE_CHUNKS_PER_S = 20
MIN_CHUNK_BYTES = 512
# How often a held (stalled) response checks whether its client left.
HOLD_POLL_S = 0.05
SHUTDOWN_TIMEOUT_S = 5.0

CONTENT_TYPES = {
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".m4a": "audio/mp4",
    ".m4s": "video/iso.segment",
    ".m3u8": "application/vnd.apple.mpegurl",
    ".mpd": "application/dash+xml",
    ".ts": "video/mp2t",
    ".mp3": "audio/mpeg",
    ".aac": "audio/aac",
    ".webm": "video/webm",
    ".mkv": "video/x-matroska",
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
    ".zip": "application/zip",
    ".bin": "application/octet-stream",
}


@dataclass
class Served:
    """One answered request, appended when its response ends (or its client leaves).

    ``path`` is the requested name without the leading slash or query (``"hls/seg0.ts"``),
    as given to ``add_*`` and ``url()``. ``range_start``/``range_end`` are the two numbers
    of a single ``Range: bytes=FIRST-LAST`` header as written, ``None`` where a side is
    empty: ``bytes=0-99`` → (0, 99), ``bytes=100-`` → (100, None), ``bytes=-500`` (the
    last 500 bytes) → (None, 500); both ``None`` without a usable Range header.
    ``status`` is 499 when the client left (or the server stopped) before the headers.
    ``headers`` holds the request headers, looked up case-insensitively.
    """

    path: str
    method: str
    status: int
    range_start: int | None
    range_end: int | None
    bytes_sent: int
    headers: Mapping[str, str] = field(default_factory=dict)
    # time.monotonic() when the request arrived and when its response ended.
    started_s: float = 0.0
    ended_s: float = 0.0


@dataclass(frozen=True)
class _Blob:
    data: bytes
    content_type: str
    etag: str
    mtime_s: int


@dataclass(frozen=True)
class _Redirect:
    location: str
    status: int


@dataclass(frozen=True)
class LiveSegment:
    uri: str
    duration_s: float


@dataclass
class _LiveHls:
    """A media playlist whose content depends on the time since its first request."""

    segments: list[LiveSegment]
    segment_s: float
    live_segments: int | None
    window: int | None
    started_at: float | None = None
    requests: int = 0

    def render(self, now: float) -> str:
        if self.started_at is None:
            self.started_at = now
        self.requests += 1
        return render_live_playlist(
            self.segments, self.segment_s, now - self.started_at, self.live_segments, self.window
        )


@dataclass(frozen=True)
class _Resource:
    """What a GET/HEAD serves: metadata plus a way to read byte spans."""

    size: int
    content_type: str
    etag: str
    mtime_s: int  # whole seconds: what Last-Modified shows and If-Range compares
    path: Path | None = None
    data: bytes = b""

    @contextlib.contextmanager
    def reader(self) -> Iterator[_Reader]:
        if self.path is None:
            yield _Reader(None, memoryview(self.data))
            return
        fd = os.open(self.path, os.O_RDONLY)
        try:
            yield _Reader(fd, None)
        finally:
            os.close(fd)


class _Reader:
    # Reads are synchronous on purpose: 64 KiB from the page cache costs microseconds,
    # far less than a thread hop per chunk, and this keeps bulk benchmarks fast.
    def __init__(self, fd: int | None, view: memoryview | None) -> None:
        self._fd = fd
        self._view = view

    def read(self, offset: int, size: int) -> bytes:
        if self._view is not None:
            return bytes(self._view[offset : offset + size])
        assert self._fd is not None
        return os.pread(self._fd, size, offset)


class _BadQuery(ValueError):
    pass


class _Gone(Exception):
    """The client left or the server is stopping: end the response quietly."""


def content_type_for(name: str) -> str:
    suffix = Path(name).suffix.lower()
    if suffix in CONTENT_TYPES:
        return CONTENT_TYPES[suffix]
    guessed, _ = mimetypes.guess_type(name)
    return guessed or "application/octet-stream"


def parse_range(header: str | None) -> tuple[int | None, int | None] | None:
    """The (first, last) numbers of a single ``bytes=`` range, or None if unusable.

    Several ranges, other units and malformed specs return None: RFC 9110 lets a server
    ignore such a header and answer 200 with the whole body.
    """
    if not header:
        return None
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first_s, dash, last_s = spec.strip().partition("-")
    first_s, last_s = first_s.strip(), last_s.strip()
    if not dash or not (first_s or last_s):
        return None
    if not all(s.isdigit() for s in (first_s, last_s) if s):
        return None
    first = int(first_s) if first_s else None
    last = int(last_s) if last_s else None
    if first is not None and last is not None and last < first:
        return None
    return first, last


def resolve_range(first: int | None, last: int | None, size: int) -> tuple[int, int] | None:
    """The inclusive span a parsed range selects in a body of ``size`` bytes, or None if
    it is unsatisfiable (416)."""
    if first is None:  # suffix: the last `last` bytes
        assert last is not None
        if last == 0 or size == 0:
            return None
        return max(0, size - last), size - 1
    if first >= size:
        return None
    end = size - 1 if last is None else min(last, size - 1)
    return first, end


def chunk_size_for(rate_bytes_per_s: int | None) -> int:
    if not rate_bytes_per_s:
        return CHUNK_BYTES
    return max(MIN_CHUNK_BYTES, min(CHUNK_BYTES, rate_bytes_per_s // THROTTLE_CHUNKS_PER_S))


def _query_int(request: web.Request, key: str) -> int | None:
    raw = request.query.get(key)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise _BadQuery(f"{key} must be an integer, got {raw!r}") from None
    if value < 0:
        raise _BadQuery(f"{key} must not be negative, got {value}")
    return value


def read_media_playlist(path: Path) -> list[LiveSegment]:
    """The segments of an HLS media playlist: (URI, duration) per ``#EXTINF`` entry."""
    segments: list[LiveSegment] = []
    duration: float | None = None
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("#EXTINF:"):
            duration = float(line[len("#EXTINF:") :].split(",", 1)[0])
        elif line and not line.startswith("#") and duration is not None:
            segments.append(LiveSegment(line, duration))
            duration = None
    return segments


def render_live_playlist(
    segments: list[LiveSegment],
    segment_s: float,
    elapsed_s: float,
    live_segments: int | None,
    window: int | None,
) -> str:
    """The live playlist ``elapsed_s`` after the stream started.

    Segment k (k = 0, 1, ...) appears at ``k * segment_s``; with ``live_segments`` the
    stream ends after that many, with ``#EXT-X-ENDLIST``. Without it the stream never
    ends: once the source segments run out the playlist simply stops growing, as a
    stalled broadcast would. ``window`` keeps only the newest segments (a sliding window,
    ``#EXT-X-MEDIA-SEQUENCE`` counting the dropped ones); None keeps them all.
    """
    total = len(segments) if live_segments is None else min(live_segments, len(segments))
    revealed = min(total, 1 + math.floor(max(0.0, elapsed_s) / segment_s))
    first = 0 if window is None else max(0, revealed - window)
    shown = segments[first:revealed]
    target_s = max(1, math.ceil(max(s.duration_s for s in segments)))
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:3",
        f"#EXT-X-TARGETDURATION:{target_s}",
        f"#EXT-X-MEDIA-SEQUENCE:{first}",
    ]
    for segment in shown:
        lines += [f"#EXTINF:{segment.duration_s:.6f},", segment.uri]
    if live_segments is not None and revealed >= total:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


class MediaServer:
    """Serves files under ``root`` and entries added with ``add_*`` on 127.0.0.1.

    Runs inside the caller's event loop: ``async with MediaServer(root) as server: ...``.
    ``rate_bytes_per_s`` and ``stall_after_bytes`` apply to every body and may be changed
    while requests are in flight; they take effect at each response's next chunk.
    """

    def __init__(
        self,
        root: Path | None = None,
        *,
        port: int = 0,
        rate_bytes_per_s: int | None = None,
        stall_after_bytes: int | None = None,
    ) -> None:
        self.root = root.resolve() if root is not None else None
        self.port = port
        self.rate_bytes_per_s = rate_bytes_per_s
        self.stall_after_bytes = stall_after_bytes
        self.served: list[Served] = []
        # Requests being answered, by file name: a record lands in ``served`` once its
        # response has ended (for a client that went away, once the server noticed).
        self.in_flight: Counter[str] = Counter()
        self._entries: dict[str, _Blob | _Redirect | _LiveHls | Path] = {}
        # Names whose responses wait until the test lets them go (``hold``/``release``).
        self._gates: dict[str, asyncio.Event] = {}
        self._cookies: dict[str, str] = {}  # name → the "k=v" a request must carry
        self._runner: web.AppRunner | None = None
        self._stopping = asyncio.Event()
        self._base_url: str | None = None

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("MediaServer already started")
        self._stopping = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/{name:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self.port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        host, port = runner.addresses[0][:2]
        self._runner = runner
        self._base_url = f"http://{host}:{port}"
        log.debug("media server listening on %s", self._base_url)

    async def stop(self) -> None:
        """Stop listening and end every response in flight, stalled ones included."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self._stopping.set()
        await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- addresses and content ---------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError("MediaServer is not started")
        return self._base_url

    def url(self, name: str, **query: object) -> str:
        """``url("video.mp4", rate=500_000)`` → ``http://127.0.0.1:PORT/video.mp4?rate=500000``."""
        url = f"{self.base_url}/{quote(name.lstrip('/'))}"
        params = {k: str(v) for k, v in query.items() if v is not None}
        return f"{url}?{urlencode(params)}" if params else url

    def add_file(self, name: str, path: Path) -> None:
        self._entries[name.lstrip("/")] = Path(path)

    def add_bytes(
        self, name: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> None:
        etag = hashlib.sha256(data).hexdigest()[:32]
        self._entries[name.lstrip("/")] = _Blob(bytes(data), content_type, etag, int(time.time()))

    def add_page(self, name: str, html: str) -> None:
        self.add_bytes(name, html.encode(), "text/html; charset=utf-8")

    def add_feed(self, name: str, title: str, items: list[tuple[str, str, str]]) -> str:
        """An RSS feed (podcast-style) of ``(guid, title, enclosure URL)`` items, which
        yt-dlp's generic extractor lists as a playlist; call again to change it. Returns
        its URL."""
        from xml.sax.saxutils import escape, quoteattr

        body = "".join(
            f"<item><title>{escape(t)}</title><guid>{escape(g)}</guid>"
            f'<enclosure url={quoteattr(u)} type="video/mp4" length="1"/></item>'
            for g, t, u in items
        )
        rss = (
            '<?xml version="1.0"?><rss version="2.0"><channel>'
            f"<title>{escape(title)}</title><link>{self.base_url}/</link>{body}</channel></rss>"
        )
        self.add_bytes(name, rss.encode(), "application/rss+xml")
        return self.url(name)

    def remove(self, name: str) -> None:
        """Forget an entry: it answers 404 from now on."""
        self._entries.pop(name.lstrip("/"), None)

    def hold(self, name: str) -> None:
        """Requests for ``name`` wait (before the headers) until :meth:`release`."""
        self._gates[name.lstrip("/")] = asyncio.Event()

    def release(self, name: str) -> None:
        gate = self._gates.pop(name.lstrip("/"), None)
        if gate is not None:
            gate.set()

    def require_cookie(self, name: str, pair: str) -> None:
        """Answer 403 for ``name`` unless the request's Cookie header holds ``pair``."""
        self._cookies[name.lstrip("/")] = pair

    def add_redirect(self, name: str, location: str, status: int = 302) -> None:
        self._entries[name.lstrip("/")] = _Redirect(location, status)

    def add_live_hls(
        self,
        name: str,
        segments_dir: Path,
        segment_s: float,
        live_segments: int | None,
        *,
        window: int | None = 3,
    ) -> str:
        """Serve a live HLS media playlist at ``name`` (e.g. ``"live/a.m3u8"``), built on
        the VOD set in ``segments_dir`` (``index.m3u8`` and its segments, as
        :func:`tests.support.media.make_hls` writes them).

        One more segment appears every ``segment_s`` seconds of wall time, counted from the
        first request for the playlist; after ``live_segments`` segments the playlist gets
        ``#EXT-X-ENDLIST`` (the stream ends), and with None it never does. ``window`` is
        the sliding window's length in segments (None: a growing window). The segments are
        served next to the playlist, under their names in ``segments_dir``. Returns the
        playlist's URL.
        """
        if segment_s <= 0:
            raise ValueError("segment_s must be positive")
        if live_segments is not None and live_segments < 1:
            raise ValueError("live_segments must be at least 1")
        segments = read_media_playlist(Path(segments_dir) / "index.m3u8")
        if not segments:
            raise ValueError(f"no segments in {segments_dir}/index.m3u8")
        name = name.lstrip("/")
        prefix = name.rpartition("/")[0]
        for segment in segments:
            if "/" in segment.uri or ":" in segment.uri:
                raise ValueError(f"segment URIs must be plain names, not {segment.uri!r}")
            served_as = f"{prefix}/{segment.uri}" if prefix else segment.uri
            self.add_file(served_as, Path(segments_dir) / segment.uri)
        self._entries[name] = _LiveHls(segments, segment_s, live_segments, window)
        return self.url(name)

    def live_requests(self, name: str) -> int:
        """How many times a live playlist was requested (each request is one reload)."""
        entry = self._entries.get(name.lstrip("/"))
        if not isinstance(entry, _LiveHls):
            raise KeyError(f"{name} is not a live playlist")
        return entry.requests

    # -- request log -------------------------------------------------------------------

    def bytes_served(self, name: str) -> int:
        name = name.lstrip("/")
        return sum(s.bytes_sent for s in self.served if s.path == name)

    def clear_log(self) -> None:
        self.served.clear()

    # -- lookup ------------------------------------------------------------------------

    def _lookup(self, name: str) -> _Resource | _Redirect | None:
        entry = self._entries.get(name)
        if isinstance(entry, _Redirect):
            return entry
        if isinstance(entry, _LiveHls):
            now = time.monotonic()
            data = entry.render(now).encode()
            # A fresh ETag per version, so If-Range never mixes two playlists.
            etag = hashlib.sha256(data).hexdigest()[:32]
            return _Resource(len(data), CONTENT_TYPES[".m3u8"], etag, int(time.time()), None, data)
        if isinstance(entry, _Blob):
            return _Resource(
                len(entry.data), entry.content_type, entry.etag, entry.mtime_s, None, entry.data
            )
        path = entry if entry is not None else self._under_root(name)
        if path is None:
            return None
        try:
            st = path.stat()
        except OSError:
            return None
        if not path.is_file():
            return None
        etag = f"{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}"
        return _Resource(st.st_size, content_type_for(name), etag, int(st.st_mtime), path)

    def _under_root(self, name: str) -> Path | None:
        if self.root is None or not name or "\x00" in name:
            return None
        candidate = (self.root / name).resolve()
        # resolve() follows symlinks too, so a link pointing out of root is refused as well.
        if not candidate.is_relative_to(self.root):
            return None
        return candidate

    # -- handling ----------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        record = Served(
            path=request.match_info["name"],
            method=request.method,
            status=0,
            range_start=None,
            range_end=None,
            bytes_sent=0,
            headers=CIMultiDict(request.headers),
            started_s=time.monotonic(),
        )
        self.in_flight[record.path] += 1
        try:
            return await self._respond(request, record)
        finally:
            record.ended_s = time.monotonic()
            self.served.append(record)
            self.in_flight[record.path] -= 1

    async def _respond(self, request: web.Request, record: Served) -> web.StreamResponse:
        try:
            delay_ms = _query_int(request, "delay_ms")
            status = _query_int(request, "status")
            rate = _query_int(request, "rate")
            stall_after = _query_int(request, "stall_after")
        except _BadQuery as exc:
            return await self._send_text(request, record, 400, f"{exc}\n")
        try:
            gate = self._gates.get(record.path)
            while gate is not None and not gate.is_set():
                self._check_alive(request)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(gate.wait(), HOLD_POLL_S)
            if delay_ms:
                await self._pause(delay_ms / 1000)
                self._check_alive(request)
        except _Gone:
            record.status = 499  # nginx's "client closed request"
            return self._abandon(request, web.StreamResponse(status=499))

        if request.method not in ("GET", "HEAD"):
            return await self._send_text(
                request, record, 405, "405 Method Not Allowed\n", {"Allow": "GET, HEAD"}
            )
        if status is not None:
            if not 200 <= status <= 599:
                return await self._send_text(request, record, 400, "status must be 200..599\n")
            reason = _reason(status)
            return await self._send_text(request, record, status, f"{status} {reason}\n")
        pair = self._cookies.get(record.path)
        if pair is not None and pair not in _cookie_pairs(request.headers.get("Cookie", "")):
            return await self._send_text(request, record, 403, "403 Forbidden: log in first\n")
        found = self._lookup(record.path)
        if found is None:
            return await self._send_text(request, record, 404, "404 Not Found\n")
        if isinstance(found, _Redirect):
            body = f"{found.status} redirect to {found.location}\n"
            return await self._send_text(
                request, record, found.status, body, {"Location": found.location}
            )
        return await self._send_resource(request, record, found, rate, stall_after)

    async def _send_text(
        self,
        request: web.Request,
        record: Served,
        status: int,
        text: str,
        headers: dict[str, str] | None = None,
    ) -> web.StreamResponse:
        record.status = status
        empty = status < 200 or status in (204, 304) or request.method == "HEAD"
        body = b"" if empty else text.encode()
        resp = web.Response(
            status=status,
            body=body or None,
            headers=headers,
            content_type="text/plain" if body else None,
        )
        try:
            # Sent here rather than by aiohttp after the handler returns, so the record is
            # appended only once the response is out.
            await resp.prepare(request)
            await resp.write_eof()
        except ConnectionError:
            return resp
        record.bytes_sent = len(body)
        return resp

    async def _send_resource(
        self,
        request: web.Request,
        record: Served,
        res: _Resource,
        rate: int | None,
        stall_after: int | None,
    ) -> web.StreamResponse:
        requested = parse_range(request.headers.get("Range"))
        if requested is not None:
            record.range_start, record.range_end = requested
            if not self._if_range_matches(request.headers.get("If-Range"), res):
                requested = None

        resp = web.StreamResponse()
        resp.headers["Accept-Ranges"] = "bytes"
        if request.query.get("filename"):
            proposed = quote(request.query["filename"], safe="")
            resp.headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{proposed}"
        resp.content_type = res.content_type
        resp.etag = res.etag
        resp.last_modified = res.mtime_s
        start, length = 0, res.size
        if requested is not None:
            span = resolve_range(*requested, res.size)
            if span is None:
                return await self._send_text(
                    request,
                    record,
                    416,
                    "416 Range Not Satisfiable\n",
                    {"Content-Range": f"bytes */{res.size}", "Accept-Ranges": "bytes"},
                )
            start, length = span[0], span[1] - span[0] + 1
            resp.set_status(206)
            resp.headers["Content-Range"] = f"bytes {span[0]}-{span[1]}/{res.size}"
        resp.content_length = length
        record.status = resp.status
        try:
            await resp.prepare(request)
            if request.method == "GET":
                await self._write_body(request, resp, record, res, start, length, rate, stall_after)
            await resp.write_eof()
        except (_Gone, ConnectionError):
            return self._abandon(request, resp)
        return resp

    async def _write_body(
        self,
        request: web.Request,
        resp: web.StreamResponse,
        record: Served,
        res: _Resource,
        start: int,
        length: int,
        rate_override: int | None,
        stall_override: int | None,
    ) -> None:
        loop = asyncio.get_running_loop()
        next_send_at = loop.time()
        sent = 0
        with res.reader() as reader:
            while sent < length:
                self._check_alive(request)
                stall = self.stall_after_bytes if stall_override is None else stall_override
                if stall is not None and sent >= stall:
                    await self._hold(request)
                rate = self.rate_bytes_per_s if rate_override is None else rate_override
                size = min(chunk_size_for(rate), length - sent)
                if stall is not None:
                    size = min(size, stall - sent)
                if rate:
                    # Pacing: each chunk goes out no sooner than the previous one's share of
                    # the rate allows; an idle spell earns no burst.
                    wait_s = next_send_at - loop.time()
                    if wait_s > 0:
                        await self._pause(wait_s)
                        self._check_alive(request)
                    next_send_at = max(next_send_at, loop.time()) + size / rate
                await resp.write(reader.read(start + sent, size))
                sent += size
                record.bytes_sent = sent

    def _if_range_matches(self, if_range: str | None, res: _Resource) -> bool:
        """Whether a Range request may be honoured: no If-Range, or it names this version."""
        if if_range is None:
            return True
        if_range = if_range.strip()
        if if_range.startswith(('"', "W/")):
            return if_range == f'"{res.etag}"'  # If-Range needs a strong match
        try:
            when = email.utils.parsedate_to_datetime(if_range)
        except (TypeError, ValueError):
            return False
        return int(when.timestamp()) == res.mtime_s

    # -- waiting and giving up ---------------------------------------------------------

    async def _pause(self, seconds: float) -> None:
        """Sleep, cut short when the server stops."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopping.wait()

    async def _hold(self, request: web.Request) -> None:
        """Keep a stalled response open until its client leaves or the server stops."""
        while True:
            self._check_alive(request)
            await self._pause(HOLD_POLL_S)

    def _check_alive(self, request: web.Request) -> None:
        if self._stopping.is_set():
            raise _Gone("server stopping")
        transport = request.transport
        if transport is None or transport.is_closing():
            raise _Gone("client went away")

    @staticmethod
    def _abandon(request: web.Request, resp: web.StreamResponse) -> web.StreamResponse:
        # Closing the connection tells the client the body is cut short; aiohttp then sees a
        # closed transport and drops the response without logging an error.
        transport = request.transport
        if transport is not None:
            transport.close()
        return resp


def _cookie_pairs(header: str) -> set[str]:
    return {part.strip() for part in header.split(";")}


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Status"


async def _serve_forever(root: Path, port: int, rate: int | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with MediaServer(root, port=port, rate_bytes_per_s=rate) as server:
        print(f"serving {root} at {server.base_url}", flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.mediaserver",
        description="Serve DIR over HTTP on 127.0.0.1 with ranges and optional throttling.",
    )
    parser.add_argument("dir", type=Path, help="directory to serve")
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    parser.add_argument("--rate", type=int, default=None, help="throttle, bytes per second")
    args = parser.parse_args(argv)
    if not args.dir.is_dir():
        parser.error(f"{args.dir} is not a directory")
    asyncio.run(_serve_forever(args.dir, args.port, args.rate))


if __name__ == "__main__":
    main()

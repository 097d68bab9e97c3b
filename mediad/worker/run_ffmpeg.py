"""ffmpeg jobs: an HLS or DASH stream copied (never re-encoded) into one MP4 or Matroska
file.

ffprobe reads the input's duration first (a live stream has none, and its progress stays
unknown); ffmpeg then copies the streams into a temporary file in the job's work dir,
renamed to a name taken from the URL once ffmpeg is done. A ``stop`` control ends a live
recording: one SIGINT makes ffmpeg finish the file and exit 255, which counts as success
when the file is readable. Inputs may use network protocols only (never ``file``), so a
crafted playlist cannot make ffmpeg read local files.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from mediad.worker import procs
from mediad.worker.ffmpeg_progress import (
    FfmpegLog,
    FfmpegProgressParser,
    classify_error,
    parse_log_line,
    parse_probe_duration,
)
from mediad.worker.jobs import JobContext, JobFailed, clean_name
from mediad.worker.progress import RUNNING_MAX, Progress
from mediad.worker.settings import WorkerSettings

# What an input (and every playlist or segment it names) may be read over.
# httpproxy: how ffmpeg tunnels HTTPS through the egress proxy. Never `file`.
PROTOCOLS = "http,https,tcp,tls,crypto,httpproxy"
# container option -> (ffmpeg format name, file extension)
CONTAINERS = {"mp4": ("mp4", "mp4"), "mkv": ("matroska", "mkv")}
DEFAULT_CONTAINER = "mp4"
# A connection that moves no byte for this long fails the job ("Connection timed out").
IO_TIMEOUT_S = 30
PROBE_TIMEOUT_S = 30
# After the stop SIGINT, ffmpeg finishes once its current read returns: for a live
# stream, when the next segment arrives. A second signal would abort the file's own
# writes and leave it unreadable, so there is only one, then a kill after this grace.
STOP_GRACE_S = 30
CANCEL_GRACE_S = 5
# Playlist and manifest names that say nothing about the content: the folder above does.
GENERIC_STEMS = frozenset(
    {
        "chunklist", "default", "dash", "hls", "index", "live", "main", "manifest",
        "master", "media", "mono", "out", "output", "playlist", "prog_index", "stream",
        "stereo", "video",
    }
)  # fmt: skip
FALLBACK_STEM = "stream"
# A stop that leaves no readable file. Not "interrupted": that one is retried, and a
# retry would start recording again what the user asked to stop.
NOTHING_RECORDED = "nothing_recorded"


@dataclass(frozen=True)
class Tools:
    ffmpeg: str
    ffprobe: str


async def run(ctx: JobContext) -> list[Path]:
    tools = find_tools(ctx.settings)
    check_url(ctx.url)
    container = ctx.options.get("container") or DEFAULT_CONTAINER
    if container not in CONTAINERS:
        raise JobFailed("invalid_options", f"container must be one of {', '.join(CONTAINERS)}")
    name = output_name(ctx.url, container)
    partial = ctx.work_dir / f".{name}.part"
    duration_s = await probe_duration(ctx, tools.ffprobe)
    if ctx.stop_requested.is_set():
        raise JobFailed(NOTHING_RECORDED, "the job was stopped before anything was recorded")
    code, log = await _record(ctx, tools.ffmpeg, partial, container, duration_s)
    await _check_outcome(ctx, tools.ffprobe, partial, container, code, log, duration_s)
    final = ctx.work_dir / name
    os.replace(partial, final)
    return [final]


# -- arguments and names (pure) ----------------------------------------------------------


def build_args(
    ffmpeg: str, url: str, output: Path, container: str, proxy: str | None = None
) -> list[str]:
    """ffmpeg's argument list: copy every selected stream of ``url`` into ``output``."""
    muxer = CONTAINERS[container][0]
    # No explicit aac_adtstoasc: the mp4 and matroska muxers insert it themselves for
    # ADTS AAC (from MPEG-TS segments), and forcing it fails any other audio codec.
    return [
        ffmpeg,
        "-nostdin", "-hide_banner",
        "-loglevel", "level+info",  # tags each log line: see ffmpeg_progress
        "-progress", "pipe:1", "-nostats",
        "-y",
        *_input_args(url, proxy),
        "-c", "copy",
        "-f", muxer,
        str(output),
    ]  # fmt: skip


def build_probe_args(ffprobe: str, url: str, proxy: str | None = None) -> list[str]:
    """ffprobe's argument list for the input's duration (``N/A`` when live)."""
    return [
        ffprobe,
        "-v", "error", "-hide_banner",
        "-show_entries", "format=duration",
        "-of", "default=noprint_wrappers=1:nokey=1",
        *_input_args(url, proxy),
    ]  # fmt: skip


def build_check_args(ffprobe: str, output: Path, container: str) -> list[str]:
    """ffprobe's argument list for reading our own output back. The one place ``file``
    is allowed: the path is ours, and the demuxer is forced, so the file cannot pose as
    a playlist that points elsewhere."""
    return [
        ffprobe,
        "-v", "error", "-hide_banner",
        "-protocol_whitelist", "file",
        "-f", CONTAINERS[container][0],
        "-show_entries", "format=duration",
        "-of", "default=noprint_wrappers=1:nokey=1",
        "-i", f"file:{output}",
    ]  # fmt: skip


def _input_args(url: str, proxy: str | None) -> list[str]:
    # The HLS and DASH readers pass http_proxy on to every playlist and segment request.
    via = ["-http_proxy", proxy] if proxy else []
    return [
        *via,
        "-protocol_whitelist", PROTOCOLS,
        # Copied by the HLS and DASH readers to each playlist and segment request.
        "-rw_timeout", str(IO_TIMEOUT_S * 1_000_000),
        "-i", url,
    ]  # fmt: skip


def check_url(url: str) -> None:
    """Only http(s) URLs reach ffmpeg: anything else could name one of its own protocols
    (``concat:``, ``subfile:``...) that the whitelist exists to refuse anyway."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise JobFailed("unsupported_url", "ffmpeg jobs take http or https URLs only")


def output_name(url: str, container: str) -> str:
    """A readable file name from the URL: ``.../show/index.m3u8`` → ``show.mp4``,
    ``.../movie.m3u8`` → ``movie.mp4``; one safe path component."""
    parts = urlsplit(url)
    decoded = (unquote(s) for s in parts.path.split("/"))
    segments = [s for s in decoded if s not in ("", ".", "..")]
    candidates = [_stem(segments[-1]), *reversed(segments[:-1])] if segments else []
    stem = next((c.strip() for c in candidates if _telling(c)), None)
    if stem is None:
        stem = (parts.hostname or FALLBACK_STEM).removeprefix("www.")
    return clean_name(f"{stem}.{CONTAINERS[container][1]}")


def _stem(segment: str) -> str:
    base, dot, _ = segment.rpartition(".")
    return base if dot else segment


def _telling(stem: str) -> bool:
    stem = stem.strip()
    return any(ch.isalnum() for ch in stem) and stem.lower() not in GENERIC_STEMS


def find_tools(settings: WorkerSettings) -> Tools:
    ffmpeg = _find_tool("ffmpeg", settings.ffmpeg, None)
    return Tools(ffmpeg, _find_tool("ffprobe", settings.ffprobe, ffmpeg))


def _find_tool(name: str, configured: str | None, sibling: str | None) -> str:
    if configured:
        found = shutil.which(configured)
        if found is None:
            raise JobFailed(
                "tool_missing", f"{name} not found at {configured} (the tools.{name} setting)"
            )
        return found
    # An ffmpeg set in the config usually has its ffprobe next to it.
    found = (sibling and shutil.which(name, path=str(Path(sibling).parent))) or shutil.which(name)
    if not found:
        raise JobFailed(
            "tool_missing",
            f"{name} is not installed on this worker (install ffmpeg, or set tools.{name})",
        )
    return found


# -- running ------------------------------------------------------------------------------


async def probe_duration(ctx: JobContext, ffprobe: str) -> float | None:
    """The input's duration in seconds; None when live or unknown. ffprobe failing is
    not fatal: ffmpeg meets the same input next, and its errors are the ones reported."""
    lines = await _read_tool(
        ctx, build_probe_args(ffprobe, ctx.url, ctx.proxy_url), PROBE_TIMEOUT_S
    )
    return parse_probe_duration(lines) if lines is not None else None


async def _read_tool(ctx: JobContext, argv: list[str], timeout_s: float) -> list[str] | None:
    """A short tool run's output lines, or None if it failed or ran out of time."""
    proc = await ctx.spawn(argv, cwd=ctx.work_dir)
    lines: list[str] = []
    try:
        async with asyncio.timeout(timeout_s):
            async for line in proc.lines():
                if len(lines) < 1000:
                    lines.append(line)
            code = await proc.wait()
    except TimeoutError:
        return None
    finally:
        if proc.returncode is None:
            await proc.stop(signal.SIGKILL, CANCEL_GRACE_S)
    return lines if code == 0 else None


async def _record(
    ctx: JobContext, ffmpeg: str, partial: Path, container: str, duration_s: float | None
) -> tuple[int, FfmpegLog]:
    """Run ffmpeg to the end, reporting progress; (exit code, what its log said)."""
    parser = FfmpegProgressParser(duration_s, stage="downloading")
    log = FfmpegLog()
    proc = await ctx.spawn(
        build_args(ffmpeg, ctx.url, partial, container, ctx.proxy_url), ctx.work_dir
    )
    stopper = asyncio.create_task(_stop_on_request(ctx, proc, parser), name=f"stop-{ctx.job_id}")
    try:
        async for line in proc.lines():
            entry = parse_log_line(line)
            if entry is not None:
                log.feed(entry)
                if duration_s is None and log.duration_s is not None and parser.duration_s is None:
                    parser.set_duration(log.duration_s)  # ffprobe failed: ffmpeg's own line
                continue
            progress = parser.feed(line)
            if progress is not None:
                ctx.report(_running(progress, parser.ended or ctx.stop_requested.is_set()))
        code = await proc.wait()
    finally:
        stopper.cancel()
        if proc.returncode is None:  # cancelled: a half-written file is of no use
            await proc.stop(signal.SIGKILL, CANCEL_GRACE_S)
    return code, log


def _running(progress: Progress, finishing: bool) -> Progress:
    """What to report for a block: ``finalizing`` once ffmpeg closes the file, and never
    100 (the worker sends that after the file is published)."""
    value = progress.progress
    return Progress(
        stage="finalizing" if finishing else progress.stage,
        progress=None if value is None else min(value, RUNNING_MAX),
        speed=None,
        eta=None if finishing else progress.eta,
        downloaded_bytes=progress.downloaded_bytes,
    )


async def _stop_on_request(
    ctx: JobContext, proc: procs.ToolProcess, parser: FfmpegProgressParser
) -> None:
    await ctx.stop_requested.wait()
    if proc.returncode is not None:
        return
    proc.signal_group(signal.SIGINT)  # once: see STOP_GRACE_S
    ctx.report(Progress("finalizing", parser.percent))
    try:
        await asyncio.wait_for(proc.wait(), STOP_GRACE_S)
    except TimeoutError:
        proc.signal_group(signal.SIGKILL)


async def _check_outcome(
    ctx: JobContext,
    ffprobe: str,
    partial: Path,
    container: str,
    code: int,
    log: FfmpegLog,
    duration_s: float | None,
) -> None:
    """Raise JobFailed unless the run produced a usable file."""
    if ctx.stop_requested.is_set():
        # Stopped: exit 255 is ffmpeg's answer to the SIGINT; what counts is the file.
        if await _readable(ctx, ffprobe, partial, container):
            return
        if code == -signal.SIGKILL:
            why = (
                f"ffmpeg did not finish the file within {STOP_GRACE_S} s of the stop request"
                " (the stream may have stalled)"
            )
        elif code in (0, 255):
            why = "the job was stopped before ffmpeg wrote a readable file"
        else:
            _, detail = classify_error(log.errors, log.warnings, code)
            why = f"the job was stopped, and ffmpeg failed: {detail}"
        raise JobFailed(NOTHING_RECORDED, why)
    if code != 0:
        raise JobFailed(*classify_error(log.errors, log.warnings, code))
    if (duration_s is not None or log.duration_s is not None) and (
        missing := log.missing_segments()
    ):
        raise JobFailed(*missing)  # a finished stream with holes is not a download
    if not _non_empty(partial):
        raise JobFailed("tool_failed", "ffmpeg finished without writing any media")


async def _readable(ctx: JobContext, ffprobe: str, output: Path, container: str) -> bool:
    if not _non_empty(output):
        return False
    lines = await _read_tool(ctx, build_check_args(ffprobe, output, container), PROBE_TIMEOUT_S)
    return lines is not None and parse_probe_duration(lines) is not None


def _non_empty(path: Path) -> bool:
    with contextlib.suppress(OSError):
        return path.stat().st_size > 0
    return False

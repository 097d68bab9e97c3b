"""Test media made on the spot: small deterministic videos, HLS/DASH sets, random files.

Everything here is reproducible byte for byte on one machine (bit-exact ffmpeg flags, one
encoder thread, seeded random data), so a test can compare a download's sha256 with its
source, and quick: a few seconds for all of it.
"""

from __future__ import annotations

import hashlib
import random
import shutil
import subprocess
from functools import cache
from pathlib import Path

CHUNK_BYTES = 1024 * 1024
FFMPEG_TIMEOUT_S = 120


class MediaToolError(RuntimeError):
    """ffmpeg or ffprobe is missing or failed."""


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise MediaToolError(
            f"{name} not found on PATH: the test media are generated with it "
            f"(install ffmpeg, e.g. `apt-get install ffmpeg`)"
        )
    return path


def _run(args: list[str]) -> str:
    try:
        done = subprocess.run(
            args, capture_output=True, text=True, timeout=FFMPEG_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise MediaToolError(f"{args[0]} timed out after {FFMPEG_TIMEOUT_S} s: {args}") from exc
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        raise MediaToolError(f"{Path(args[0]).name} failed ({done.returncode}): {args}\n{tail}")
    return done.stdout


def _source_args(seconds: float, size: str, rate: int) -> list[str]:
    """lavfi test pattern plus a 440 Hz tone, cut to ``seconds``."""
    return [
        "-f", "lavfi", "-i", f"testsrc=size={size}:rate={rate}",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
        "-t", f"{seconds}",
    ]  # fmt: skip


def _encode_args(rate: int, gop_s: float) -> list[str]:
    """h264 + aac, bit-exact and single-threaded so reruns give identical bytes."""
    gop = max(1, round(rate * gop_s))
    return [
        "-map", "0:v", "-map", "1:a",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
        "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0",
        "-c:a", "aac", "-b:a", "64k", "-ac", "1",
        "-threads", "1", "-map_metadata", "-1",
        "-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact",
    ]  # fmt: skip


def _ffmpeg(*args: str) -> list[str]:
    return [_tool("ffmpeg"), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args]


def make_video(path: Path, seconds: float = 2.0, size: str = "320x240", rate: int = 25) -> Path:
    """An h264 + aac MP4 (moov first) of a test pattern and a tone."""
    path.parent.mkdir(parents=True, exist_ok=True)
    output = ["-movflags", "+faststart", str(path)]
    _run(_ffmpeg(*_source_args(seconds, size, rate), *_encode_args(rate, gop_s=1.0), *output))
    return path


def make_random_file(path: Path, size_bytes: int, seed: int = 0) -> Path:
    """``size_bytes`` of seeded pseudo-random data (200 MB in well under a second)."""
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        left = size_bytes
        while left > 0:
            n = min(CHUNK_BYTES, left)
            out.write(rng.randbytes(n))
            left -= n
    return path


def make_hls(dir: Path, seconds: float = 6.0, segment_s: float = 2.0) -> Path:
    """A VOD HLS set: ``index.m3u8`` plus ``seg0.ts``, ``seg1.ts``…; returns the playlist."""
    dir.mkdir(parents=True, exist_ok=True)
    playlist = dir / "index.m3u8"
    rate = 25
    output = [
        "-f", "hls", "-hls_time", f"{segment_s}", "-hls_playlist_type", "vod",
        "-hls_segment_filename", str(dir / "seg%d.ts"), str(playlist),
    ]  # fmt: skip
    # A keyframe at every segment boundary, so each segment lasts exactly segment_s.
    encode = _encode_args(rate, gop_s=segment_s)
    _run(_ffmpeg(*_source_args(seconds, "320x240", rate), *encode, *output))
    return playlist


@cache
def _has_muxer(name: str) -> bool:
    listing = _run([_tool("ffmpeg"), "-hide_banner", "-muxers"])
    return any(line.split()[1:2] == [name] for line in listing.splitlines())


def make_dash(dir: Path, seconds: float = 6.0) -> Path | None:
    """A static DASH set (``manifest.mpd`` plus ``.m4s`` segments), or None when this
    ffmpeg has no dash muxer."""
    if not _has_muxer("dash"):
        return None
    dir.mkdir(parents=True, exist_ok=True)
    manifest = dir / "manifest.mpd"
    rate = 25
    output = [
        "-f", "dash", "-seg_duration", "2", "-use_template", "1", "-use_timeline", "1",
        str(manifest),
    ]  # fmt: skip
    _run(_ffmpeg(*_source_args(seconds, "320x240", rate), *_encode_args(rate, 2.0), *output))
    return manifest


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def probe_duration(path: Path | str) -> float:
    """The container duration in seconds, as ffprobe reports it."""
    entries = ["-show_entries", "format=duration", "-of", "default=noprint_wrappers=1:nokey=1"]
    out = _run([_tool("ffprobe"), "-v", "error", *entries, str(path)])
    try:
        return float(out.strip())
    except ValueError:
        raise MediaToolError(f"ffprobe gave no duration for {path}: {out!r}") from None


def probe_format_name(path: Path | str) -> str:
    """ffprobe's container name for a file, e.g. ``mov,mp4,m4a,3gp,3g2,mj2`` or
    ``matroska,webm``."""
    entries = ["-show_entries", "format=format_name", "-of", "default=noprint_wrappers=1:nokey=1"]
    return _run([_tool("ffprobe"), "-v", "error", *entries, str(path)]).strip()

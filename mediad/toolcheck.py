"""``mediad serve --check`` and ``mediad check-config``: are the tools and servers there?

The same look-ups the service makes when it starts (the configured path, else PATH, else
the usual install folders), without starting anything: ffmpeg and ffprobe, aria2c,
PostgreSQL's ``initdb`` and ``postgres`` when the database is embedded (``database.url``
unset), ``redis-server`` when Redis is embedded (``redis.url`` unset), yt-dlp (built in
unless ``tools.ytdlp`` names an executable), and twmd, which is optional.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from mediad.config import Config
from mediad.errors import ServiceError


@dataclass(frozen=True)
class Found:
    name: str
    required: bool
    path: str | None  # None: missing (or, for an optional tool, not configured)
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.path is not None

    @property
    def word(self) -> str:
        if self.ok:
            return "ok"
        return "missing" if self.required else "optional"


def check(config: Config) -> list[Found]:
    """Every tool and server this configuration needs, found or not."""
    from mediad.daemons import find_aria2c, find_postgres_bin_dir, find_redis_server

    tools = config.tools
    found: list[Found] = []
    ffmpeg = _executable(tools.ffmpeg, "ffmpeg")
    found.append(_result("ffmpeg", ffmpeg, tools.ffmpeg, "install ffmpeg (apt-get install ffmpeg)"))
    sibling = ffmpeg and shutil.which("ffprobe", path=str(Path(ffmpeg).parent))
    ffprobe = (
        _executable(tools.ffprobe, "ffprobe")
        if tools.ffprobe
        else sibling or _executable(None, "ffprobe")
    )
    found.append(
        _result("ffprobe", ffprobe, tools.ffprobe, "it comes with ffmpeg (apt-get install ffmpeg)")
    )
    found.append(_service_lookup("aria2c", lambda: str(find_aria2c(tools.aria2c))))
    if config.database.url is None:
        found.append(
            _service_lookup(
                "postgresql",
                lambda: str(find_postgres_bin_dir(tools.postgres_bin_dir)),
                "embedded (database.url is unset): initdb and postgres",
            )
        )
    if config.redis.url is None:
        found.append(
            _service_lookup(
                "redis-server",
                lambda: str(find_redis_server(tools.redis_server)),
                "embedded (redis.url is unset)",
            )
        )
    if tools.ytdlp:
        ytdlp = _executable(tools.ytdlp, "yt-dlp")
        found.append(
            _result("yt-dlp", ytdlp, tools.ytdlp, "or unset tools.ytdlp to use the built-in one")
        )
    else:
        found.append(Found("yt-dlp", True, "built in", f"version {ytdlp_version()}"))
    if tools.twmd:
        twmd = tools.twmd if os.path.isfile(tools.twmd) and os.access(tools.twmd, os.X_OK) else None
        note = "" if twmd else f"not found at {tools.twmd}: Twitter/X jobs fail with tool_missing"
        found.append(Found("twmd", False, twmd, note))
    else:
        found.append(Found("twmd", False, None, "not configured (TWMD_PATH): Twitter/X jobs fail"))
    return found


def report(found: list[Found], out: TextIO) -> int:
    """Print one line per tool; 0 when every required one is there, else 1."""
    width = max(len(f.name) for f in found)
    for f in found:
        detail = " — ".join(part for part in (f.path, f.note) if part)
        print(f"{f.name:<{width}}  {f.word:<8}  {detail}", file=out)
    missing = [f.name for f in found if f.required and not f.ok]
    if missing:
        print(f"mediad: missing: {', '.join(missing)}", file=out)
        return 1
    print("mediad: every required tool and server was found", file=out)
    return 0


def ytdlp_version() -> str:
    """yt-dlp's version without importing all of yt-dlp when its metadata is there."""
    from importlib import metadata

    try:
        return metadata.version("yt-dlp")
    except metadata.PackageNotFoundError:
        pass
    try:
        from yt_dlp.version import __version__

        return str(__version__)
    except ImportError:
        return "not installed"


def _executable(configured: str | None, name: str) -> str | None:
    return shutil.which(configured or name)


def _result(name: str, path: str | None, configured: str | None, hint: str) -> Found:
    if path:
        return Found(name, True, path)
    where = (
        f"not found at {configured} (tools.{name.replace('-', '')})"
        if configured
        else "not on PATH"
    )
    return Found(name, True, None, f"{where}: {hint}")


def _service_lookup(name: str, lookup: Callable[[], str], note: str = "") -> Found:
    try:
        return Found(name, True, lookup(), note)
    except ServiceError as exc:
        return Found(name, True, None, str(exc))

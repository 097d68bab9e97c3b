"""What a worker process knows: where to connect, with which token, where files go; and
how it learns it (a file descriptor, never its environment)."""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from mediad.errors import ConfigError


@dataclass(frozen=True)
class WorkerSettings:
    server_url: str
    worker_id: str
    token: str
    data_dir: Path
    tmp_dir: Path
    aria2_url: str | None = None
    aria2_secret: str | None = None
    ytdlp: str | None = None
    ffmpeg: str | None = None
    ffprobe: str | None = None
    twmd: str | None = None
    twitter_cookies: str | None = None
    twitter_proxy: str | None = None
    progress_hz: float = 10.0
    heartbeat_s: float = 5.0
    log_level: str = "info"
    log_format: str = "json"
    parent_pid: int | None = None
    max_job_bytes: int | None = None
    rate_limit: int | None = None  # bytes/s for each yt-dlp and aria2 job (Config.job_rate_limit)
    allow_private: bool = False
    allow_hosts: tuple[str, ...] = ()

    def to_payload(self) -> dict[str, Any]:
        """Everything, as JSON-able data, for ``from_payload`` in the worker."""
        data = dataclasses.asdict(self)
        data["data_dir"], data["tmp_dir"] = str(self.data_dir), str(self.tmp_dir)
        data["allow_hosts"] = list(self.allow_hosts)
        return data

    @classmethod
    def from_payload(cls, raw: Mapping[str, Any]) -> WorkerSettings:
        names = {f.name for f in dataclasses.fields(cls)}
        missing = [n for n in ("server_url", "worker_id", "token") if not raw.get(n)]
        if missing:
            raise ConfigError(f"worker settings: {missing[0]}", "is missing")
        values = {k: v for k, v in raw.items() if k in names}
        values["data_dir"], values["tmp_dir"] = Path(raw["data_dir"]), Path(raw["tmp_dir"])
        values["allow_hosts"] = tuple(raw.get("allow_hosts") or ())
        return cls(**values)


# The worker's settings (its token and the aria2 secret among them) travel through a file
# descriptor, never the environment: an environment is inherited by every process the
# worker starts, and /proc/PID/environ of a forked tool shows the worker's, whatever
# os.environ says by then. A memfd holds them: nothing on disk, no pipe that could fill.


def hand_over(payload: Mapping[str, Any]) -> int:
    """A close-on-exec memfd holding ``payload`` as JSON, positioned at its start; the
    caller passes it to exactly one child (``pass_fds``) and closes it."""
    fd = os.memfd_create("mediad-worker-settings", os.MFD_CLOEXEC)
    try:
        data = orjson.dumps(payload)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd


def take_over(fd: int) -> dict[str, Any]:
    """Read what ``hand_over`` wrote, once, and close the descriptor."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
    except OSError as exc:
        raise ConfigError("--settings-fd", f"cannot read descriptor {fd}: {exc.strerror}") from None
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
    try:
        raw = orjson.loads(b"".join(chunks))
    except orjson.JSONDecodeError:
        raise ConfigError("--settings-fd", "the worker settings are not valid JSON") from None
    if not isinstance(raw, dict):
        raise ConfigError("--settings-fd", "the worker settings must be an object")
    return raw

"""What a worker process knows: where to connect, with which token, where files go."""

from __future__ import annotations

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
    allow_private: bool = False
    allow_hosts: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WorkerSettings:
        """Settings handed over by the supervisor (``MEDIAD_WORKER_*``)."""
        env = os.environ if env is None else env
        missing = [
            name
            for name in ("MEDIAD_WORKER_SERVER", "MEDIAD_WORKER_ID", "MEDIAD_WORKER_TOKEN")
            if not env.get(name)
        ]
        if missing:
            raise ConfigError(missing[0], "is not set (a worker is started by `mediad serve`)")
        try:
            raw: dict[str, Any] = orjson.loads(env.get("MEDIAD_WORKER_SETTINGS", "{}"))
        except orjson.JSONDecodeError:
            raise ConfigError("MEDIAD_WORKER_SETTINGS", "is not valid JSON") from None
        parent = env.get("MEDIAD_WORKER_PARENT")
        return cls(
            server_url=env["MEDIAD_WORKER_SERVER"],
            worker_id=env["MEDIAD_WORKER_ID"],
            token=env["MEDIAD_WORKER_TOKEN"],
            data_dir=Path(raw["dataDir"]),
            tmp_dir=Path(raw["tmpDir"]),
            aria2_url=raw.get("aria2Url"),
            aria2_secret=raw.get("aria2Secret"),
            ytdlp=raw.get("ytdlp"),
            ffmpeg=raw.get("ffmpeg"),
            ffprobe=raw.get("ffprobe"),
            twmd=raw.get("twmd"),
            twitter_cookies=raw.get("twitterCookies"),
            twitter_proxy=raw.get("twitterProxy"),
            progress_hz=float(raw.get("progressHz", 10.0)),
            heartbeat_s=float(raw.get("heartbeatS", 5.0)),
            log_level=str(raw.get("logLevel", "info")),
            log_format=str(raw.get("logFormat", "json")),
            parent_pid=int(parent) if parent and parent.isdigit() else None,
            max_job_bytes=raw.get("maxJobBytes"),
            allow_private=bool(raw.get("allowPrivate", False)),
            allow_hosts=tuple(raw.get("allowHosts", ())),
        )

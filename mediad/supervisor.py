"""Worker processes: start ``workers.processes`` of them, restart any that exits (with
backoff), stop them all at shutdown.

They are forked by the zygote (``mediad/zygote.py``), one process that loaded everything a
worker needs, so that they share that memory. Each worker gets its own random token, with
its settings, in the zygote's request (never argv, never the environment); the token is
revoked when the process ends, so a dead worker's token opens nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from mediad.auth import WorkerTokens
from mediad.backoff import restart_backoff
from mediad.config import Config
from mediad.secrecy import worker_environment
from mediad.tasks import cancel_all
from mediad.worker.forkserver import ForkServer, ForkServerLost
from mediad.worker.settings import WorkerSettings
from mediad.zygote import WORKER_ENTRY, start_message, worker_title

log = logging.getLogger(__name__)

# A worker that ran at least this long before exiting is restarted after the first delay
# again, not the last one.
STABLE_S = 30.0
# A worker's output (its log lines): the service's own standard error, as any child's.
STDERR = 2


def mediad_command(*args: str) -> list[str]:
    """How to start mediad again with ``args``: the same interpreter, or the same binary."""
    if getattr(sys, "frozen", False):
        return [sys.executable, *args]
    return [sys.executable, "-m", "mediad", *args]


def worker_command(settings_fd: int) -> list[str]:
    """``mediad worker`` reading its settings from ``settings_fd``."""
    return mediad_command("worker", "--settings-fd", str(settings_fd))


def zygote_command(fd: int) -> list[str]:
    """The zygote (``mediad/zygote.py``) on socket ``fd``."""
    return mediad_command("worker", "--zygote-fd", str(fd))


def settings_fields(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``worker_settings``' JSON names → WorkerSettings fields."""
    return {
        "data_dir": Path(settings["dataDir"]),
        "tmp_dir": Path(settings["tmpDir"]),
        "aria2_url": settings.get("aria2Url"),
        "aria2_secret": settings.get("aria2Secret"),
        "ytdlp": settings.get("ytdlp"),
        "ffmpeg": settings.get("ffmpeg"),
        "ffprobe": settings.get("ffprobe"),
        "twmd": settings.get("twmd"),
        "twitter_cookies": settings.get("twitterCookies"),
        "twitter_proxy": settings.get("twitterProxy"),
        "progress_hz": float(settings.get("progressHz", 10.0)),
        "heartbeat_s": float(settings.get("heartbeatS", 5.0)),
        "log_level": str(settings.get("logLevel", "info")),
        "log_format": str(settings.get("logFormat", "json")),
        "max_job_bytes": settings.get("maxJobBytes"),
        "rate_limit": settings.get("rateLimit"),
        "allow_private": bool(settings.get("allowPrivate", False)),
        "allow_hosts": tuple(settings.get("allowHosts", ())),
    }


def worker_settings(
    config: Config, aria2_url: str | None, aria2_secret: str | None
) -> dict[str, Any]:
    """What a local worker needs to know besides its id and token (``settings_fields``
    turns it into WorkerSettings fields)."""
    return {
        "dataDir": config.storage.data_dir,
        "tmpDir": config.storage.tmp_dir,
        "aria2Url": aria2_url,
        "aria2Secret": aria2_secret,
        "ytdlp": config.tools.ytdlp,
        "ffmpeg": config.tools.ffmpeg,
        "ffprobe": config.tools.ffprobe,
        "twmd": config.tools.twmd,
        "twitterCookies": config.twitter.cookies_path,
        "twitterProxy": config.twitter.proxy,
        "progressHz": config.progress.worker_hz,
        "heartbeatS": config.workers.heartbeat_s,
        "logLevel": config.logging.level,
        "logFormat": config.logging.format,
        "maxJobBytes": config.storage.max_job_bytes,
        "rateLimit": config.job_rate_limit,
        "allowPrivate": config.network.allow_private,
        "allowHosts": list(config.network.allow_hosts),
    }


class LocalWorker:
    """A worker forked by the zygote: its pid, and its exit code once the zygote reaped it
    (``-SIGKILL`` if the zygote went first)."""

    def __init__(self, pid: int, exited: asyncio.Future[int]) -> None:
        self.pid = pid
        self._exited = exited

    @property
    def returncode(self) -> int | None:
        return self._exited.result() if self._exited.done() else None

    async def wait(self) -> int:
        return await asyncio.shield(self._exited)


class Supervisor:
    """Starts the zygote (``mediad/zygote.py``) and has it fork each local worker."""

    def __init__(
        self,
        config: Config,
        tokens: WorkerTokens,
        server_url: str,
        settings: dict[str, Any],
    ) -> None:
        self.config = config
        self.tokens = tokens
        self.server_url = server_url
        self.settings = settings
        self.procs: dict[str, LocalWorker] = {}
        self.restarts = 0
        self.zygote: asyncio.subprocess.Process | None = None
        self.zygote_starts = 0
        self._forks: ForkServer | None = None
        self._zygote_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    def start(self) -> list[asyncio.Task[None]]:
        self._tasks = [
            asyncio.create_task(self._keep_running(f"local-{i + 1}"), name=f"worker-local-{i + 1}")
            for i in range(self.config.worker_processes)
        ]
        return self._tasks

    async def _zygote(self) -> ForkServer:
        """The running zygote's channel; a new zygote if there is none or it is gone."""
        async with self._zygote_lock:
            if self._forks is not None and not self._forks.lost:
                return self._forks
            await self._stop_zygote()
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            try:
                proc = await asyncio.create_subprocess_exec(
                    *zygote_command(theirs.fileno()),
                    env=worker_environment(os.environ),
                    stdin=asyncio.subprocess.DEVNULL,
                    start_new_session=True,
                    pass_fds=(theirs.fileno(),),
                )
            except BaseException:
                ours.close()
                raise
            finally:
                theirs.close()
            self.zygote, self.zygote_starts = proc, self.zygote_starts + 1
            forks = ForkServer(proc.pid, ours, "zygote")
            try:
                ours.send(
                    start_message(
                        parent_pid=os.getpid(),
                        ffmpeg=self.settings.get("ffmpeg"),
                        preload=not self.settings.get("ytdlp"),
                        log_level=str(self.settings.get("logLevel", "info")),
                        log_format=str(self.settings.get("logFormat", "json")),
                    )
                )
            except OSError:
                pass  # it is gone already: the first request says so
            forks.watch()
            self._forks = forks
            return forks

    async def _stop_zygote(self, grace_s: float = 5.0) -> None:
        forks, proc = self._forks, self.zygote
        self._forks = self.zygote = None
        if forks is not None:
            forks.close()  # it kills every worker's group it still has, then exits
        if proc is None:
            return
        try:
            await asyncio.wait_for(proc.wait(), grace_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    async def _spawn(self, worker_id: str) -> LocalWorker:
        forks = await self._zygote()
        # The token and the settings (the aria2 secret among them) go over the zygote's
        # channel, never argv or the environment: every tool the worker starts would
        # inherit those. The parent check is the zygote's (its child exits at once if the
        # zygote is gone), hence no parent_pid. The worker asks the zygote for its yt-dlp
        # jobs too, on a channel of its own (the zygote kills them when it ends).
        settings = WorkerSettings(
            server_url=self.server_url,
            worker_id=worker_id,
            token=self.tokens.issue(worker_id),
            parent_pid=None,
            **settings_fields(self.settings),
        )
        payload = orjson.dumps(settings.to_payload()).decode()
        child = await forks.spawn(
            WORKER_ENTRY, [payload], Path.cwd(), None, worker_title(worker_id), STDERR,
            channel=True,
        )  # fmt: skip
        return LocalWorker(child.pid, child.exited)

    async def _keep_running(self, worker_id: str) -> None:
        backoff = restart_backoff()
        while not self._stopping:
            started = time.monotonic()
            try:
                proc = await self._spawn(worker_id)
            except (ForkServerLost, OSError) as exc:
                code: int | str = f"none (not started: {exc})"
            else:
                self.procs[worker_id] = proc
                code = await proc.wait()
            self.tokens.revoke(worker_id)
            self.procs.pop(worker_id, None)
            if self._stopping:
                return
            self.restarts += 1
            if time.monotonic() - started > STABLE_S:
                backoff.reset()
            delay = backoff.next()
            log.warning(
                "worker %s exited with code %s; restarting in %.1fs",
                worker_id,
                code,
                delay,
                extra={"workerId": worker_id},
            )
            await asyncio.sleep(delay)

    async def stop(self, timeout_s: float = 10) -> None:
        self._stopping = True
        procs = list(self.procs.values())
        for proc in procs:
            _signal_group(proc, signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.gather(*(p.wait() for p in procs)), timeout_s)
        except TimeoutError:
            log.warning("workers did not stop within %.0fs; killing them", timeout_s)
        for proc in procs:
            _signal_group(proc, signal.SIGKILL)  # anything the workers left behind in their group
        await cancel_all(self._tasks, "the supervisor")
        async with self._zygote_lock:
            await self._stop_zygote()


def _signal_group(proc: LocalWorker, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)

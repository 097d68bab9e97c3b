"""Worker processes: start ``workers.processes`` of them, restart any that exits (with
backoff), stop them all at shutdown.

Each worker gets its own random token through the environment (never argv); the token is
revoked when the process ends, so a dead worker's token opens nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from typing import Any

import orjson

from mediad.auth import WorkerTokens
from mediad.config import Config

log = logging.getLogger(__name__)

# A worker that ran at least this long before exiting is restarted without delay.
STABLE_S = 30.0


def worker_command() -> list[str]:
    """How to start ``mediad worker``: the same interpreter, or the same single binary."""
    if getattr(sys, "frozen", False):
        return [sys.executable, "worker"]
    return [sys.executable, "-m", "mediad", "worker"]


def worker_settings(
    config: Config, aria2_url: str | None, aria2_secret: str | None
) -> dict[str, Any]:
    """What a local worker needs to know, handed over as JSON in its environment."""
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
        "allowPrivate": config.network.allow_private,
        "allowHosts": list(config.network.allow_hosts),
    }


class Supervisor:
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
        self.procs: dict[str, asyncio.subprocess.Process] = {}
        self.restarts = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    def start(self) -> list[asyncio.Task[None]]:
        self._tasks = [
            asyncio.create_task(self._keep_running(f"local-{i + 1}"), name=f"worker-local-{i + 1}")
            for i in range(self.config.worker_processes)
        ]
        return self._tasks

    async def _spawn(self, worker_id: str) -> asyncio.subprocess.Process:
        env = dict(os.environ)
        env.update(
            MEDIAD_WORKER_SERVER=self.server_url,
            MEDIAD_WORKER_ID=worker_id,
            MEDIAD_WORKER_TOKEN=self.tokens.issue(worker_id),
            MEDIAD_WORKER_SETTINGS=orjson.dumps(self.settings).decode(),
            MEDIAD_WORKER_PARENT=str(os.getpid()),
        )
        # The service's own secrets are none of the worker's business.
        for name in ("DATABASE_URL", "REDIS_URL", "WORKER_TOKEN", "MEDIAD_SERVER_API_TOKENS"):
            env.pop(name, None)
        return await asyncio.create_subprocess_exec(
            *worker_command(), env=env, stdin=asyncio.subprocess.DEVNULL, start_new_session=True
        )

    async def _keep_running(self, worker_id: str) -> None:
        delay = 0.5
        while not self._stopping:
            started = time.monotonic()
            proc = await self._spawn(worker_id)
            self.procs[worker_id] = proc
            code = await proc.wait()
            self.tokens.revoke(worker_id)
            self.procs.pop(worker_id, None)
            if self._stopping:
                return
            self.restarts += 1
            if time.monotonic() - started > STABLE_S:
                delay = 0.5
            log.warning(
                "worker %s exited with code %s; restarting in %.1fs",
                worker_id,
                code,
                delay,
                extra={"workerId": worker_id},
            )
            await asyncio.sleep(delay)
            delay = min(30.0, delay * 2)

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
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _signal_group(proc: asyncio.subprocess.Process, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)

"""The managed Redis: a private redis-server on a unix socket under the state dir,
without persistence (PostgreSQL is the truth), the embedded default when no `redis.url`
is configured."""

from __future__ import annotations

import asyncio
import logging
import shutil
import signal
import time
from pathlib import Path

from mediad.daemons.base import (
    ManagedServer,
    check_socket_path,
    cmdline_has,
    is_executable,
    pids_where,
    signal_and_wait,
)
from mediad.errors import ServiceError

log = logging.getLogger(__name__)

REDIS_INSTALL_DIRS = ("/usr/local/bin", "/usr/bin")


def find_redis_server(configured: str | None = None) -> Path:
    """The `redis-server` executable: the configured file (or directory), else PATH's,
    else the usual install folders."""
    hint = "install Redis (apt-get install redis-server) or set tools.redis_server"
    if configured:
        path = Path(configured).expanduser()
        if path.is_dir():
            path = path / "redis-server"
        if is_executable(path):
            return path
        raise ServiceError(f"tools.redis_server: {path} is not an executable redis-server; {hint}")
    found = shutil.which("redis-server")
    if found:
        return Path(found)
    for folder in REDIS_INSTALL_DIRS:
        if is_executable(Path(folder, "redis-server")):
            return Path(folder, "redis-server")
    raise ServiceError(
        f"redis-server is neither on PATH nor in {', '.join(REDIS_INSTALL_DIRS)}; {hint}"
    )


class ManagedRedis(ManagedServer):
    """A private redis-server on `root/redis.sock`, without persistence."""

    name = "redis"
    stop_signal = signal.SIGTERM

    def __init__(self, root: Path, *, binary: Path | None = None) -> None:
        super().__init__(root)
        self.binary = Path(binary) if binary is not None else None
        self.socket_path = self.root / "redis.sock"
        self.url = f"unix://{self.socket_path}"

    async def start(self, timeout_s: float = 20) -> str:
        """Start redis-server and wait for its PING; the URL."""
        if self.pid is not None:
            return self.url
        deadline = time.monotonic() + timeout_s
        check_socket_path(self.socket_path)
        binary = self.binary or find_redis_server()
        self._make_root()
        await self._clear_leftovers(deadline)
        argv = [str(binary), "--port", "0", "--unixsocket", str(self.socket_path)]
        argv += ["--unixsocketperm", "700", "--save", "", "--appendonly", "no"]
        argv += ["--dir", str(self.root), "--daemonize", "no", "--logfile", ""]
        await self._launch(argv, self._ping, (OSError, TimeoutError, _NotReady), deadline)
        log.info("redis pid %s serving %s", self.pid, self.socket_path)
        return self.url

    async def _clear_leftovers(self, deadline: float) -> None:
        # Not by /proc/PID/exe: redis-server is often a symlink to redis-check-rdb.
        old = pids_where(lambda pid: cmdline_has(pid, "redis-server", str(self.socket_path)))
        if old:
            log.warning("stopping redis-server %s left running on %s", old, self.socket_path)
            if await signal_and_wait(old, signal.SIGTERM, deadline - time.monotonic()):
                raise ServiceError(
                    f"redis-server {old} left running on {self.socket_path} does not stop"
                )
        self.socket_path.unlink(missing_ok=True)

    async def _ping(self, timeout_s: float) -> None:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_unix_connection(self.socket_path)
            try:
                writer.write(b"*1\r\n$4\r\nPING\r\n")
                answer = await reader.readline()
            finally:
                writer.close()
                await writer.wait_closed()
        if answer != b"+PONG\r\n":  # e.g. -LOADING
            raise _NotReady(answer)


class _NotReady(Exception):
    pass

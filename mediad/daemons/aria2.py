"""aria2: the RPC daemon the supervisor runs, and the JSON-RPC client workers use.

The daemon listens on loopback only, with a random secret that is written to a 0600
config file instead of its argv, and stops with the process that started it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
from pathlib import Path
from typing import Any

import aiohttp

from mediad.auth import new_token
from mediad.egress import tool_environment
from mediad.errors import MediadError, ServiceError
from mediad.secrecy import child_environment

log = logging.getLogger(__name__)


class Aria2Error(MediadError):
    """aria2 answered with an error."""


class Aria2Unavailable(Aria2Error):
    """The aria2 daemon did not answer (down, restarting, or its answer was cut off): a
    fault of mediad's, never of the job's."""


class Aria2Rpc:
    """A JSON-RPC client for one aria2 daemon (``token:SECRET`` goes first in every call)."""

    def __init__(self, url: str, secret: str) -> None:
        self.url = url
        self._token = f"token:{secret}"
        self._session: aiohttp.ClientSession | None = None
        self._ids = 0

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def call(self, method: str, *params: Any, timeout_s: float = 10) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s))
        self._ids += 1
        body = {"jsonrpc": "2.0", "id": str(self._ids), "method": method,
                "params": [self._token, *params]}  # fmt: skip
        try:
            async with self._session.post(self.url, json=body) as resp:
                data = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise Aria2Unavailable(
                f"aria2 RPC {method} failed: {exc or type(exc).__name__}"
            ) from exc
        if not isinstance(data, dict):
            raise Aria2Error(f"aria2 RPC {method}: unexpected answer")
        if "error" in data:
            error = data["error"] or {}
            raise Aria2Error(f"aria2 RPC {method}: {error.get('message', 'error')}")
        return data.get("result")

    async def version(self) -> str:
        result = await self.call("aria2.getVersion", timeout_s=3)
        return str(result.get("version", "?"))


def find_aria2c(configured: str | None = None) -> Path:
    path = configured or shutil.which("aria2c")
    if not path or not os.access(path, os.X_OK):
        raise ServiceError(
            f"aria2c not found{f' at {configured}' if configured else ' on PATH'}:"
            " install it (apt-get install aria2) or set tools.aria2c"
        )
    return Path(path)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Aria2Daemon:
    """``aria2c --enable-rpc`` on 127.0.0.1, supervised by the caller through ``wait()``."""

    def __init__(self, root: Path, *, binary: str | None = None, max_downloads: int = 5) -> None:
        self.root = root
        self.binary = binary
        self.max_downloads = max_downloads
        self.secret = new_token()
        self.port = 0
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/jsonrpc"

    def client(self) -> Aria2Rpc:
        return Aria2Rpc(self.url, self.secret)

    async def start(self, timeout_s: float = 15) -> None:
        binary = find_aria2c(self.binary)
        self.root.mkdir(parents=True, exist_ok=True)
        conf = self.root / "aria2.conf"
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"rpc-secret={self.secret}\n")
        if not self.port:  # a restarted daemon keeps its address: workers know it
            self.port = free_port()
        argv = [
            str(binary),
            "--enable-rpc",
            f"--rpc-listen-port={self.port}",
            "--rpc-listen-all=false",
            f"--conf-path={conf}",
            f"--stop-with-process={os.getpid()}",
            # A URL must never turn into a torrent or a metalink behind our back.
            "--follow-torrent=false",
            "--follow-metalink=false",
            "--auto-file-renaming=false",
            "--allow-overwrite=true",
            "--continue=true",
            "--file-allocation=none",
            f"--max-concurrent-downloads={self.max_downloads}",
            "--max-download-result=1000",
            "--console-log-level=warn",
            "--summary-interval=0",
            "--enable-color=false",
            "--show-console-readout=false",
        ]
        log_file = open(self.root / "aria2.log", "ab")  # noqa: ASYNC230
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
                # Each download names its proxy (the worker's egress guard); no_proxy from
                # outside would let aria2 connect around it.
                # Nor any of mediad's settings or secrets (child_environment).
                env=tool_environment(child_environment(os.environ)),
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        finally:
            log_file.close()
        client = self.client()
        try:
            await self._wait_ready(client, timeout_s)
        finally:
            await client.close()
        log.info("aria2 RPC daemon listening on 127.0.0.1:%d", self.port)

    async def _wait_ready(self, client: Aria2Rpc, timeout_s: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            assert self._proc is not None
            if self._proc.returncode is not None:
                raise ServiceError(f"aria2c exited with code {self._proc.returncode} at start-up")
            try:
                await client.version()
                return
            except Aria2Error:
                if loop.time() > deadline:
                    await self.stop()
                    raise ServiceError("aria2c did not answer RPC calls in time") from None
                await asyncio.sleep(0.05)

    async def wait(self) -> int:
        assert self._proc is not None
        return await self._proc.wait()

    async def stop(self, timeout_s: float = 5) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), timeout_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

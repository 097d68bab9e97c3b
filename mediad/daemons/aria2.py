"""aria2: the RPC daemon the supervisor runs (a remote worker runs its own), for the
workers' aria2 jobs. Its JSON-RPC client is `mediad.aria2_rpc`.

The daemon listens on loopback only, with a random secret that is written to a 0600
config file instead of its argv, and stops with the process that started it
(``--stop-with-process`` and the parent-death signal of every managed server).
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import time
from pathlib import Path

from mediad.aria2_rpc import Aria2Error, Aria2Rpc
from mediad.auth import new_token
from mediad.daemons.base import ManagedServer
from mediad.egress import tool_environment
from mediad.errors import ServiceError
from mediad.secrecy import child_environment

log = logging.getLogger(__name__)


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


class Aria2Daemon(ManagedServer):
    """``aria2c --enable-rpc`` on 127.0.0.1, supervised by the caller through ``wait()``."""

    name = "aria2"
    stop_timeout_s = 5.0

    def __init__(
        self,
        root: Path,
        *,
        binary: str | None = None,
        max_downloads: int = 5,
        overall_limit: int | None = None,
    ) -> None:
        super().__init__(root)
        self.binary = binary
        self.max_downloads = max_downloads
        # tools.total_rate_limit: bytes/s for all of this daemon's downloads together.
        self.overall_limit = overall_limit
        self.secret = new_token()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/jsonrpc"

    def client(self) -> Aria2Rpc:
        return Aria2Rpc(self.url, self.secret)

    async def start(self, timeout_s: float = 15) -> None:
        """Start aria2c and wait until it answers an RPC call."""
        if self.pid is not None:
            return
        deadline = time.monotonic() + timeout_s
        binary = find_aria2c(self.binary)
        self.root.mkdir(parents=True, exist_ok=True)
        conf = self.root / "aria2.conf"
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"rpc-secret={self.secret}\n")
        if not self.port:  # a restarted daemon keeps its address: workers know it
            self.port = free_port()
        client = self.client()

        async def probe(timeout_s: float) -> None:
            await client.version()

        try:
            await self._launch(self._argv(binary, conf), probe, (Aria2Error,), deadline)
        finally:
            await client.close()
        log.info("aria2 RPC daemon listening on 127.0.0.1:%d", self.port)

    def _argv(self, binary: Path, conf: Path) -> list[str]:
        return [
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
            f"--max-overall-download-limit={self.overall_limit or 0}",
        ]

    def _environment(self) -> dict[str, str]:
        # Each download names its proxy (the worker's egress guard); no_proxy from outside
        # would let aria2 connect around it. Nor any of mediad's settings or secrets.
        return tool_environment(child_environment(os.environ))

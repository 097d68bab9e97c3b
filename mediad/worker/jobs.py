"""What every tool runner shares: the job's context (with the worker's ``Toolkit``),
coalesced progress, the failure type, and publishing results into ``data/{jobId}`` by
atomic rename."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import time
import unicodedata
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mediad.cookies import JOB_COPY
from mediad.errors import MediadError
from mediad.worker import procs
from mediad.worker.procs import ToolProcess
from mediad.worker.progress import Progress
from mediad.worker.settings import WorkerSettings

if TYPE_CHECKING:
    from mediad.aria2_rpc import Aria2Rpc
    from mediad.worker.forkserver import ForkServer

MAX_NAME_BYTES = 200


class JobFailed(MediadError):
    """The tool failed."""

    def __init__(self, error_code: str, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code


class ProgressEmitter:
    """Sends the latest progress at most ``hz`` times a second; the last one always goes out."""

    def __init__(self, send: Callable[[Progress], Awaitable[None]], hz: float) -> None:
        self._send = send
        self._interval = 1.0 / hz
        self._latest: Progress | None = None
        self._last_sent = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.sent = 0
        self.last_change = time.monotonic()
        self._last_key: tuple[object, ...] | None = None

    def report(self, progress: Progress) -> None:
        # Movement of bytes or stage counts as activity; a decaying speed does not.
        key = (progress.stage, progress.progress, progress.downloaded_bytes)
        if key != self._last_key:
            self._last_key = key
            self.last_change = time.monotonic()
        self._latest = progress
        wait = self._last_sent + self._interval - time.monotonic()
        if wait <= 0:
            self._fire()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(wait, self._fire)

    def _fire(self) -> None:
        if self._timer is not None:  # an immediate send makes a pending one stale
            self._timer.cancel()
            self._timer = None
        latest, self._latest = self._latest, None
        if latest is None:
            return
        self._last_sent = time.monotonic()
        self.sent += 1
        task = asyncio.ensure_future(self._send(latest))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Send what is pending now, and wait until everything sent has gone out."""
        if self._timer is not None:
            self._timer.cancel()
            self._fire()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


@dataclass(frozen=True)
class Toolkit:
    """What the worker computes once and hands every job it runs (``Worker._run_tool``)."""

    # The environment every tool runs with: no secret of mediad's, the proxy variables
    # pointing at the egress guard (``client.tools_environment``). None: this process's
    # own (tests that run a runner by itself).
    env: Mapping[str, str] | None = None
    # Forks yt-dlp from a preloaded interpreter with one thread (None: none started).
    forks: ForkServer | None = None
    # The aria2 daemon's RPC client (None: this worker has no daemon).
    aria2: Aria2Rpc | None = None


@dataclass
class JobContext:
    job_id: str
    attempt: int
    url: str
    type: str
    options: dict[str, Any]
    settings: WorkerSettings
    emitter: ProgressEmitter
    work_dir: Path = field(init=False)
    # Set by a `stop` control: finish now with what was recorded (live streams).
    stop_requested: asyncio.Event = field(default_factory=asyncio.Event)
    # The job's tool processes, so the heartbeat can tell a busy tool from a stuck one.
    tools: list[ToolProcess] = field(default_factory=list)
    # The worker's egress proxy, which every tool must use (None: no guard, tests only).
    proxy_url: str | None = None
    toolkit: Toolkit = field(default_factory=Toolkit)

    def __post_init__(self) -> None:
        self.work_dir = self.settings.tmp_dir / self.job_id

    def attach(self, proc: ToolProcess) -> ToolProcess:
        self.tools.append(proc)
        return proc

    async def spawn(self, argv: Sequence[str], cwd: Path) -> ToolProcess:
        """Start an executable tool with the toolkit's environment, attached to the job."""
        return self.attach(await procs.spawn(argv, cwd=cwd, env=self.toolkit.env))

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir / self.job_id

    def cookie_copy(self) -> Path | None:
        """The job's copy of the cookie file it names (``options.cookies``; the server put
        it in the work folder at dispatch), or None when it names none."""
        if not self.options.get("cookies"):
            return None
        path = self.work_dir / JOB_COPY
        if not path.is_file():
            name = self.options["cookies"]
            raise JobFailed("cookies_missing", f"the cookie file {name} is missing")
        return path

    def report(self, progress: Progress) -> None:
        """Pass progress on; a download that grows past ``max_job_bytes`` fails here, for
        every tool (the runner's cleanup stops the tool)."""
        limit = self.settings.max_job_bytes
        if limit is not None:
            size = max(progress.downloaded_bytes or 0, progress.total_bytes or 0)
            if size > limit:
                raise JobFailed(
                    "too_large",
                    f"the download is larger than storage.max_job_bytes ({limit} bytes)",
                )
        self.emitter.report(progress)


def clean_name(name: str) -> str:
    """One safe path component: no separators, control characters or leading dashes or
    dots, at most ``MAX_NAME_BYTES`` bytes of UTF-8 (the extension kept)."""
    name = unicodedata.normalize("NFC", name)
    name = "".join("_" if ch in "/\\" or unicodedata.category(ch)[0] == "C" else ch for ch in name)
    name = re.sub(r"^[\s.-]+", "", name).rstrip() or "download"
    stem, dot, ext = name.rpartition(".")
    if not dot or len(ext) > 12:
        stem, ext = name, ""
    suffix = f".{ext}" if ext else ""
    while len((stem + suffix).encode()) > MAX_NAME_BYTES:
        stem = stem[:-1]
    return (stem.rstrip() or "download") + suffix


def publish(sources: Iterable[Path], target_dir: Path) -> list[dict[str, Any]]:
    """Move finished files into ``target_dir``; each appears whole or not at all."""
    target_dir.mkdir(parents=True, exist_ok=True)
    published: list[dict[str, Any]] = []
    taken: set[str] = set()
    for source in sources:
        name = _unique(clean_name(source.name), taken)
        taken.add(name)
        target = target_dir / name
        try:
            os.rename(source, target)
        except OSError as exc:
            if exc.errno != 18:  # EXDEV: tmp and data on different file systems
                raise
            partial = target_dir / f".{name}.partial"
            shutil.copyfile(source, partial)
            with open(partial, "rb") as f:
                os.fsync(f.fileno())
            os.rename(partial, target)
            source.unlink()
        published.append({"name": name, "size": target.stat().st_size})
    return published


def _unique(name: str, taken: set[str]) -> str:
    if name not in taken:
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    n = 2
    while True:
        candidate = f"{stem} ({n}){'.' + ext if ext else ''}"
        if candidate not in taken:
            return candidate
        n += 1


def remove_tree(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(path)

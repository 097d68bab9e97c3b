"""The base of every managed child server: PostgreSQL, Redis, aria2c.

`mediad serve` starts them under the state dir and supervises them with `wait()` (a
server that exits is started again, see `service.py`); the tests reuse the same classes
for throwaway instances. Each server:

* runs as a child in its own session, so a Ctrl-C on our terminal does not reach it, and
  with a parent-death signal (`parent_death.die_with_parent`), so it goes away even when
  we are SIGKILLed;
* gets none of mediad's settings or secrets in its environment (`secrecy`);
* writes its output to `root/<name>.log`, whose last lines end up in the `ServiceError`
  when it does not start;
* is ready when it answers (`probe`: asyncpg connect, PING, an RPC call), polled until a
  deadline; one that does not start is killed, never left behind.

A subclass names itself (`name`, `stop_signal`), builds its argv and its probe, and calls
`_launch`. The /proc helpers below let it clear what a crashed run left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from mediad.errors import ServiceError
from mediad.parent_death import die_with_parent
from mediad.secrecy import server_environment

log = logging.getLogger(__name__)

SOCKET_PATH_MAX_BYTES = 107  # sun_path is 108 bytes, NUL included
LOG_MAX_BYTES = 10 * 1024 * 1024
LOG_TAIL_LINES = 20
POLL_S = 0.05


# --- finding the binaries ------------------------------------------------------------


def is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def has_executables(folder: Path, *names: str) -> bool:
    return all(is_executable(folder / name) for name in names)


def version_key(bin_dir: Path) -> tuple[int, ...]:
    """Newest first: /usr/lib/postgresql/16/bin before …/15/bin before …/9.6/bin."""
    try:
        return tuple(-int(part) for part in bin_dir.parent.name.split("."))
    except ValueError:
        return (1,)


# --- child processes -----------------------------------------------------------------


@dataclass(frozen=True)
class User:
    """Who a server runs as, when not as ourselves."""

    name: str
    uid: int
    gid: int


def child_setup(death_signal: int, user: User | None) -> Callable[[], None]:
    """The preexec function: own session, unprivileged user, parent-death signal.

    Done by hand rather than with subprocess's start_new_session/user= so it behaves
    the same under uvloop, whose spawn path differs.
    """
    parent_pid = os.getpid()

    def setup() -> None:
        os.setsid()
        if user is not None:
            os.setgroups([])
            os.setgid(user.gid)
            os.setuid(user.uid)
        # After the credential change, which clears the parent-death signal.
        if not die_with_parent(death_signal, parent_pid=parent_pid, strict=True):
            os._exit(1)  # we died before prctl: nobody will signal us

    return setup


def check_socket_path(path: Path) -> None:
    size = len(os.fsencode(path))
    if size > SOCKET_PATH_MAX_BYTES:
        raise ServiceError(
            f"the unix socket path {path} is {size} bytes, over the limit of "
            f"{SOCKET_PATH_MAX_BYTES}: choose a shorter state_dir"
        )


def _open_log(path: Path, what: str) -> tuple[int, int]:
    """Open `path` for appending (rotating it once it is big); return (fd, start offset)."""
    with contextlib.suppress(FileNotFoundError):
        if path.stat().st_size > LOG_MAX_BYTES:
            path.replace(path.with_name(path.name + ".1"))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    os.write(fd, f"--- mediad: {what} at {now}\n".encode())
    return fd, os.lseek(fd, 0, os.SEEK_END)


def _log_tail(path: Path, offset: int = 0) -> str:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    lines = text.rstrip().splitlines()[-LOG_TAIL_LINES:]
    return "\n".join("    " + line for line in lines)


# --- /proc ---------------------------------------------------------------------------


def alive(pid: int) -> bool:
    """True when `pid` exists and is not a zombie."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat_line.rpartition(")")[2].split()[0] != "Z"


def exists(pid: int) -> bool:
    """True when `pid` exists, as a zombie too (kill(pid, 0) would succeed)."""
    return os.path.exists(f"/proc/{pid}")


def runs_in(pid: int, folder: Path, program: str) -> bool:
    """True when process `pid` is `program` with its working dir in `folder`."""
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
        exe = os.path.basename(os.readlink(f"/proc/{pid}/exe")).removesuffix(" (deleted)")
    except OSError:
        return False
    return exe == program and cwd == os.path.realpath(folder)


def pids_where(predicate: Callable[[int], bool]) -> list[int]:
    pids = (int(name) for name in os.listdir("/proc") if name.isdigit())
    return [pid for pid in pids if pid != os.getpid() and predicate(pid)]


def cmdline_has(pid: int, *texts: str) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return all(os.fsencode(text) in cmdline for text in texts)


async def signal_and_wait(pids: list[int], sig: int, timeout_s: float) -> list[int]:
    """Send `sig` to `pids` (not our children) and poll; return those still alive."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
    deadline = time.monotonic() + timeout_s
    while True:
        left = [pid for pid in pids if alive(pid)]
        if not left or time.monotonic() >= deadline:
            return left
        await asyncio.sleep(POLL_S)


# --- the common part -----------------------------------------------------------------


class ManagedServer:
    """One server process: spawn, readiness polling, wait, stop.

    A subclass sets `name` (its log is `root/<name>.log`), `stop_signal` and
    `stop_timeout_s`, may override `_environment()`, and starts with `_launch`.
    """

    name = ""
    stop_signal = signal.SIGTERM
    stop_timeout_s = 10.0

    def __init__(self, root: Path) -> None:
        self.root = Path(root).absolute()
        self.log_path = self.root / f"{self.name}.log"
        self._proc: asyncio.subprocess.Process | None = None
        self._log_offset = 0

    @property
    def pid(self) -> int | None:
        """The server's pid while it runs."""
        proc = self._proc
        return proc.pid if proc is not None and proc.returncode is None else None

    async def start(self, timeout_s: float = 30) -> object:
        """Start the server unless it runs, and return once it is ready."""
        raise NotImplementedError

    async def wait(self) -> int:
        """Return the server's exit code once it exits."""
        if self._proc is None:
            raise ServiceError(f"{self.name} was not started")
        return await self._proc.wait()

    async def stop(self, timeout_s: float | None = None) -> None:
        """Ask the server to stop (`stop_signal`), SIGKILL its process group after
        `timeout_s` (default `stop_timeout_s`); safe to call twice."""
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        timeout_s = self.stop_timeout_s if timeout_s is None else timeout_s
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(self.stop_signal)
        try:
            await asyncio.wait_for(proc.wait(), timeout_s)
        except TimeoutError:
            log.warning(
                "%s pid %d ignored %s; killing it", self.name, proc.pid, self.stop_signal.name
            )
            if proc.returncode is None:  # not reaped yet, so the group id is still ours
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
        log.info("%s stopped (exit code %s)", self.name, proc.returncode)

    def _make_root(self) -> None:
        if not self.root.is_dir():
            self.root.mkdir(parents=True)
            self.root.chmod(0o755)  # whatever the umask: the server's user must enter it

    def _environment(self) -> dict[str, str]:
        """The server's environment: none of mediad's settings or secrets."""
        return server_environment(os.environ)

    async def _spawn(
        self, argv: list[str], death_signal: int, user: User | None = None
    ) -> asyncio.subprocess.Process:
        fd, self._log_offset = _open_log(self.log_path, "starting " + " ".join(argv))
        try:
            return await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=fd,
                stderr=asyncio.subprocess.STDOUT,
                cwd=self.root,
                env=self._environment(),
                preexec_fn=child_setup(death_signal, user),
            )
        finally:
            os.close(fd)

    async def _launch(
        self,
        argv: list[str],
        probe: Callable[[float], Awaitable[None]],
        retry: tuple[type[BaseException], ...],
        deadline: float,
        *,
        death_signal: int = signal.SIGTERM,
        user: User | None = None,
    ) -> None:
        """Start the server and wait until `probe` succeeds (see `_wait_ready`); a
        server that does not get there is stopped before the error is raised."""
        self._proc = await self._spawn(argv, death_signal, user)
        try:
            await self._wait_ready(probe, retry, deadline)
        except BaseException:
            await self._abort()
            raise

    def _error(self, problem: str) -> ServiceError:
        tail = _log_tail(self.log_path, self._log_offset)
        more = f"; last lines of {self.log_path}:\n{tail}" if tail else f"; see {self.log_path}"
        return ServiceError(f"{self.name} {problem}{more}")

    async def _wait_ready(
        self,
        probe: Callable[[float], Awaitable[None]],
        retry: tuple[type[BaseException], ...],
        deadline: float,
    ) -> None:
        """Poll `probe` until it succeeds; fail when the server exits or time runs out."""
        assert self._proc is not None
        while True:
            if self._proc.returncode is not None:
                raise self._error(f"exited with code {self._proc.returncode} while starting")
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._error("did not accept connections in time")
            try:
                await probe(min(left, 5.0))
                return
            except retry:
                await asyncio.sleep(POLL_S)

    async def _abort(self) -> None:
        """Kill a server that failed to start; never leave it behind."""
        with contextlib.suppress(Exception):
            await self.stop(timeout_s=5)

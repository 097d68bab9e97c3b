"""Managed PostgreSQL and Redis: the embedded default when no URL is configured.

`mediad serve` starts its own PostgreSQL cluster and redis-server under the state dir,
both on unix sockets only, and supervises them with `wait()`; the tests reuse the same
classes for throwaway instances. Each server:

* runs as a child in its own session, so a Ctrl-C on our terminal does not reach it, and
  with a parent-death signal, so it goes away even when we are SIGKILLed;
* writes its output to `root/<name>.log`, whose last lines end up in the `ServiceError`
  when it does not start;
* is ready when it answers (asyncpg connect / PING), polled until a deadline.

PostgreSQL refuses to run as root, so as root initdb and postgres run as the `postgres`
system user (else `nobody`), which must be able to reach the state dir.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import logging
import os
import pwd
import shutil
import signal
import stat
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import asyncpg

from mediad.errors import ServiceError
from mediad.secrecy import child_environment

log = logging.getLogger(__name__)

SOCKET_PATH_MAX_BYTES = 107  # sun_path is 108 bytes, NUL included
POSTGRES_PORT = 5432  # only names the socket file: there is no TCP listener
POSTGRES_INSTALL_GLOB = "/usr/lib/postgresql/*/bin"
REDIS_INSTALL_DIRS = ("/usr/local/bin", "/usr/bin")
POSTGRES_SETTINGS = {
    "listen_addresses": "",
    "unix_socket_permissions": "0700",
    "shared_buffers": "32MB",
    "max_connections": "50",
    "fsync": "on",
    "logging_collector": "off",
    "log_destination": "stderr",
    # JIT compiling needs writable+executable memory, which the systemd units refuse
    # (MemoryDenyWriteExecute=); a job store's queries gain nothing from it.
    "jit": "off",
}
LOG_MAX_BYTES = 10 * 1024 * 1024
LOG_TAIL_LINES = 20
POLL_S = 0.05
PR_SET_PDEATHSIG = 1


# --- finding the binaries ------------------------------------------------------------


def find_postgres_bin_dir(configured: str | None = None) -> Path:
    """The directory holding `initdb` and `postgres`: the configured one, else PATH's
    (symlinks resolved), else the newest /usr/lib/postgresql/*/bin."""
    hint = "install PostgreSQL (apt-get install postgresql) or set tools.postgres_bin_dir"
    if configured:
        bin_dir = Path(configured).expanduser()
        if _has_executables(bin_dir, "initdb", "postgres"):
            return bin_dir
        raise ServiceError(f"tools.postgres_bin_dir: no initdb and postgres in {bin_dir}; {hint}")
    found = shutil.which("initdb")
    if found and _has_executables(Path(found).resolve().parent, "initdb", "postgres"):
        return Path(found).resolve().parent
    for bin_dir in sorted(Path("/").glob(POSTGRES_INSTALL_GLOB.lstrip("/")), key=_version_key):
        if _has_executables(bin_dir, "initdb", "postgres"):
            return bin_dir
    raise ServiceError(
        f"initdb and postgres are neither on PATH nor in {POSTGRES_INSTALL_GLOB}; {hint}"
    )


def find_redis_server(configured: str | None = None) -> Path:
    """The `redis-server` executable: the configured file (or directory), else PATH's,
    else the usual install folders."""
    hint = "install Redis (apt-get install redis-server) or set tools.redis_server"
    if configured:
        path = Path(configured).expanduser()
        if path.is_dir():
            path = path / "redis-server"
        if _is_executable(path):
            return path
        raise ServiceError(f"tools.redis_server: {path} is not an executable redis-server; {hint}")
    found = shutil.which("redis-server")
    if found:
        return Path(found)
    for folder in REDIS_INSTALL_DIRS:
        if _is_executable(Path(folder, "redis-server")):
            return Path(folder, "redis-server")
    raise ServiceError(
        f"redis-server is neither on PATH nor in {', '.join(REDIS_INSTALL_DIRS)}; {hint}"
    )


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _has_executables(folder: Path, *names: str) -> bool:
    return all(_is_executable(folder / name) for name in names)


def _version_key(bin_dir: Path) -> tuple[int, ...]:
    """Newest first: /usr/lib/postgresql/16/bin before …/15/bin before …/9.6/bin."""
    try:
        return tuple(-int(part) for part in bin_dir.parent.name.split("."))
    except ValueError:
        return (1,)


# --- child processes -----------------------------------------------------------------


@dataclass(frozen=True)
class _User:
    name: str
    uid: int
    gid: int


@functools.cache
def _prctl() -> Callable[..., int]:
    # Loaded in the parent: the child between fork and exec should do as little as it can.
    return ctypes.CDLL(None, use_errno=True).prctl


def _child_setup(death_signal: int, user: _User | None) -> Callable[[], None]:
    """The preexec function: own session, unprivileged user, parent-death signal.

    Done by hand rather than with subprocess's start_new_session/user= so it behaves
    the same under uvloop, whose spawn path differs.
    """
    prctl = _prctl()
    parent_pid = os.getpid()

    def setup() -> None:
        os.setsid()
        if user is not None:
            os.setgroups([])
            os.setgid(user.gid)
            os.setuid(user.uid)
        # After the credential change, which clears the parent-death signal.
        if prctl(PR_SET_PDEATHSIG, death_signal, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != parent_pid:  # we died before prctl: nobody will signal us
            os._exit(1)

    return setup


def _child_env() -> dict[str, str]:
    # None of mediad's settings or secrets; PGDATA, PGPORT & co. would quietly change what
    # initdb and postgres do.
    return {k: v for k, v in child_environment(os.environ).items() if not k.startswith("PG")}


def _check_socket_path(path: Path) -> None:
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


def _alive(pid: int) -> bool:
    """True when `pid` exists and is not a zombie."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat_line.rpartition(")")[2].split()[0] != "Z"


def _exists(pid: int) -> bool:
    """True when `pid` exists, as a zombie too (kill(pid, 0) would succeed)."""
    return os.path.exists(f"/proc/{pid}")


def _runs_in(pid: int, folder: Path, program: str) -> bool:
    """True when process `pid` is `program` with its working dir in `folder`."""
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
        exe = os.path.basename(os.readlink(f"/proc/{pid}/exe")).removesuffix(" (deleted)")
    except OSError:
        return False
    return exe == program and cwd == os.path.realpath(folder)


def _pids(predicate: Callable[[int], bool]) -> list[int]:
    pids = (int(name) for name in os.listdir("/proc") if name.isdigit())
    return [pid for pid in pids if pid != os.getpid() and predicate(pid)]


def _cmdline_has(pid: int, *texts: str) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return all(os.fsencode(text) in cmdline for text in texts)


async def _signal_and_wait(pids: list[int], sig: int, timeout_s: float) -> list[int]:
    """Send `sig` to `pids` (not our children) and poll; return those still alive."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
    deadline = time.monotonic() + timeout_s
    while True:
        left = [pid for pid in pids if _alive(pid)]
        if not left or time.monotonic() >= deadline:
            return left
        await asyncio.sleep(POLL_S)


# --- the common part -----------------------------------------------------------------


class _ManagedServer:
    """One server process: spawn, readiness polling, wait, stop."""

    name = ""
    stop_signal = signal.SIGTERM

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

    async def wait(self) -> int:
        """Return the server's exit code once it exits."""
        if self._proc is None:
            raise ServiceError(f"{self.name} was not started")
        return await self._proc.wait()

    async def stop(self, timeout_s: float = 10) -> None:
        """Ask the server to stop, SIGKILL its process group after `timeout_s`."""
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
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

    async def _spawn(
        self, argv: list[str], death_signal: int, user: _User | None = None
    ) -> asyncio.subprocess.Process:
        fd, self._log_offset = _open_log(self.log_path, "starting " + " ".join(argv))
        try:
            return await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=fd,
                stderr=asyncio.subprocess.STDOUT,
                cwd=self.root,
                env=_child_env(),
                preexec_fn=_child_setup(death_signal, user),
            )
        finally:
            os.close(fd)

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


# --- PostgreSQL ----------------------------------------------------------------------


class ManagedPostgres(_ManagedServer):
    """A private PostgreSQL cluster: data in `root/data`, its unix socket in `root/run`."""

    name = "postgres"
    stop_signal = signal.SIGINT  # fast shutdown: abort transactions, checkpoint, exit

    def __init__(self, root: Path, *, bin_dir: Path | None = None, database: str = "mediad"):
        super().__init__(root)
        self.bin_dir = Path(bin_dir) if bin_dir is not None else None
        self.database = database
        self.data_dir = self.root / "data"
        self.run_dir = self.root / "run"
        self.dsn = (
            f"postgresql://postgres@/{quote(database, safe='')}"
            f"?host={quote(str(self.run_dir), safe='/')}&port={POSTGRES_PORT}"
        )
        self.ran_initdb = False  # whether the last start() created the cluster

    async def start(self, timeout_s: float = 60) -> str:
        """Create the cluster on first use, start postgres, create the database; the DSN."""
        if self.pid is not None:
            return self.dsn
        deadline = time.monotonic() + timeout_s
        _check_socket_path(self.run_dir / f".s.PGSQL.{POSTGRES_PORT}")
        bin_dir = self.bin_dir or find_postgres_bin_dir()
        self._make_root()
        user = self._service_user()
        if user is not None:
            _check_reachable(self.root, user)
        self.ran_initdb = False
        if not (self.data_dir / "PG_VERSION").exists():
            await self._initdb(bin_dir, user, deadline)
        await self._clear_leftovers(deadline)
        _own_dir(self.run_dir, user)
        argv = [str(bin_dir / "postgres"), "-D", str(self.data_dir), "-k", str(self.run_dir)]
        argv += ["-p", str(POSTGRES_PORT)]
        for key, value in POSTGRES_SETTINGS.items():
            argv += ["-c", f"{key}={value}"]
        self._proc = await self._spawn(argv, signal.SIGINT, user)
        try:
            await self._wait_ready(self._create_database, _PG_NOT_READY, deadline)
        except BaseException:
            await self._abort()
            raise
        log.info("postgres pid %d serving %s", self._proc.pid, self.run_dir)
        return self.dsn

    async def stop(self, timeout_s: float = 30) -> None:
        """Fast shutdown (SIGINT), SIGKILL after `timeout_s`; safe to call twice."""
        await super().stop(timeout_s)

    def _service_user(self) -> _User | None:
        """Who runs initdb and postgres: ourselves, or as root an unprivileged user."""
        if os.geteuid() != 0:
            return None
        with contextlib.suppress(FileNotFoundError):
            owner = self.data_dir.stat()
            if owner.st_uid != 0:  # an existing cluster stays with its owner
                try:
                    name = pwd.getpwuid(owner.st_uid).pw_name
                except KeyError:
                    name = str(owner.st_uid)
                return _User(name, owner.st_uid, owner.st_gid)
        for name in ("postgres", "nobody"):
            with contextlib.suppress(KeyError):
                entry = pwd.getpwnam(name)
                return _User(name, entry.pw_uid, entry.pw_gid)
        raise ServiceError(
            "running as root, and there is no postgres or nobody user to run PostgreSQL"
        )

    async def _initdb(self, bin_dir: Path, user: _User | None, deadline: float) -> None:
        if self.data_dir.exists():
            if any(self.data_dir.iterdir()):
                raise ServiceError(f"{self.data_dir} is not empty and is not a PostgreSQL cluster")
            self.data_dir.rmdir()
        # initdb into a side dir renamed on success: an interrupted initdb leaves no
        # half-made cluster behind.
        staging = self.root / "data.initdb"
        shutil.rmtree(staging, ignore_errors=True)
        _own_dir(staging, user)
        argv = [str(bin_dir / "initdb"), "-D", str(staging), "-U", "postgres"]
        argv += ["--auth-local=trust", "--auth-host=reject", "--encoding=UTF8", "--no-locale"]
        argv += ["--no-instructions"]
        started = time.monotonic()
        proc = await self._spawn(argv, signal.SIGTERM, user)
        try:
            code = await asyncio.wait_for(proc.wait(), max(deadline - time.monotonic(), 0))
        except BaseException as exc:  # timed out or cancelled: no initdb left running
            if proc.returncode is None:  # its group holds the postgres it runs
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            if isinstance(exc, TimeoutError):
                raise self._error("initdb did not finish in time") from None
            raise
        if code != 0:
            raise self._error(f"initdb failed with exit code {code}")
        staging.rename(self.data_dir)
        self.ran_initdb = True
        log.info(
            "created a PostgreSQL cluster in %s in %.1f s",
            self.data_dir,
            time.monotonic() - started,
        )

    async def _clear_leftovers(self, deadline: float) -> None:
        """Deal with what a crashed run left: a live postmaster, orphan backends, lock
        files naming a pid that now belongs to another program."""
        pid_file = self.data_dir / "postmaster.pid"
        try:
            old_pid = int(pid_file.read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            old_pid = 0
        if old_pid and _runs_in(old_pid, self.data_dir, "postgres"):
            log.warning("stopping postgres pid %d left running in %s", old_pid, self.data_dir)
            left = await _signal_and_wait([old_pid], signal.SIGINT, deadline - time.monotonic())
            if left:
                raise ServiceError(
                    f"postgres pid {old_pid} left running in {self.data_dir} does not stop"
                )
        orphans = _pids(lambda pid: _runs_in(pid, self.data_dir, "postgres"))
        if orphans:
            log.warning("killing orphan postgres processes %s of %s", orphans, self.data_dir)
            await _signal_and_wait(orphans, signal.SIGKILL, deadline - time.monotonic())
        # A dead pid postgres handles itself; a live one that is not a postgres for this
        # data dir (the pid was reused) would make it refuse to start, and so would the
        # old postmaster itself while it is a zombie nobody reaped yet (killed with us,
        # its parent: until init reaps it, the pid still answers kill(pid, 0)).
        if old_pid and _exists(old_pid):
            log.warning("removing %s: pid %d is not its postgres", pid_file, old_pid)
            pid_file.unlink(missing_ok=True)
        if self.run_dir.is_dir():  # its lock file has the same pid problem
            for leftover in self.run_dir.iterdir():
                leftover.unlink()

    async def _create_database(self, timeout_s: float) -> None:
        conn = await asyncpg.connect(
            host=str(self.run_dir),
            port=POSTGRES_PORT,
            user="postgres",
            database="postgres",
            timeout=timeout_s,
        )
        try:
            exists = await conn.fetchval(
                "SELECT 1 FROM pg_database WHERE datname = $1", self.database
            )
            if not exists:
                quoted = '"' + self.database.replace('"', '""') + '"'
                await conn.execute(f"CREATE DATABASE {quoted}")
                log.info("created database %s", self.database)
        finally:
            await conn.close()


_PG_NOT_READY = (
    OSError,  # no socket yet
    TimeoutError,
    asyncpg.CannotConnectNowError,  # starting up, recovering
    asyncpg.ConnectionDoesNotExistError,
)


def _own_dir(path: Path, user: _User | None) -> None:
    """Make `path` a 0700 dir of the server's user."""
    path.mkdir(mode=0o700, exist_ok=True)
    path.chmod(0o700)
    if user is not None:
        os.chown(path, user.uid, user.gid)


def _check_reachable(root: Path, user: _User) -> None:
    """Fail unless `user` (without supplementary groups) can traverse to `root`."""
    for folder in [root, *root.parents][::-1]:
        st = folder.stat()
        if st.st_uid == user.uid:
            bit = stat.S_IXUSR
        elif st.st_gid == user.gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            raise ServiceError(
                f"PostgreSQL runs as user {user.name}, who cannot enter {folder} "
                f"(mode {stat.filemode(st.st_mode)}): choose a state_dir it can reach, "
                "such as /var/lib/mediad"
            )


# --- Redis ---------------------------------------------------------------------------


class ManagedRedis(_ManagedServer):
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
        _check_socket_path(self.socket_path)
        binary = self.binary or find_redis_server()
        self._make_root()
        await self._clear_leftovers(deadline)
        argv = [str(binary), "--port", "0", "--unixsocket", str(self.socket_path)]
        argv += ["--unixsocketperm", "700", "--save", "", "--appendonly", "no"]
        argv += ["--dir", str(self.root), "--daemonize", "no", "--logfile", ""]
        self._proc = await self._spawn(argv, signal.SIGTERM)
        try:
            await self._wait_ready(self._ping, (OSError, TimeoutError, _NotReady), deadline)
        except BaseException:
            await self._abort()
            raise
        log.info("redis pid %d serving %s", self._proc.pid, self.socket_path)
        return self.url

    async def _clear_leftovers(self, deadline: float) -> None:
        # Not by /proc/PID/exe: redis-server is often a symlink to redis-check-rdb.
        old = _pids(lambda pid: _cmdline_has(pid, "redis-server", str(self.socket_path)))
        if old:
            log.warning("stopping redis-server %s left running on %s", old, self.socket_path)
            if await _signal_and_wait(old, signal.SIGTERM, deadline - time.monotonic()):
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

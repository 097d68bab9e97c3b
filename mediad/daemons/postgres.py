"""The managed PostgreSQL: a private cluster under the state dir, the embedded default
when no `database.url` is configured.

Its unix socket only (no TCP listener). PostgreSQL refuses to run as root, so as root
initdb and postgres run as the `postgres` system user (else `nobody`), which must be able
to reach the state dir.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pwd
import shutil
import signal
import stat
import time
from pathlib import Path
from urllib.parse import quote

import asyncpg

from mediad.daemons.base import (
    ManagedServer,
    User,
    check_socket_path,
    exists,
    has_executables,
    pids_where,
    runs_in,
    signal_and_wait,
    version_key,
)
from mediad.errors import ServiceError

log = logging.getLogger(__name__)

POSTGRES_PORT = 5432  # only names the socket file: there is no TCP listener
POSTGRES_INSTALL_GLOB = "/usr/lib/postgresql/*/bin"
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


def find_postgres_bin_dir(configured: str | None = None) -> Path:
    """The directory holding `initdb` and `postgres`: the configured one, else PATH's
    (symlinks resolved), else the newest /usr/lib/postgresql/*/bin."""
    hint = "install PostgreSQL (apt-get install postgresql) or set tools.postgres_bin_dir"
    if configured:
        bin_dir = Path(configured).expanduser()
        if has_executables(bin_dir, "initdb", "postgres"):
            return bin_dir
        raise ServiceError(f"tools.postgres_bin_dir: no initdb and postgres in {bin_dir}; {hint}")
    found = shutil.which("initdb")
    if found and has_executables(Path(found).resolve().parent, "initdb", "postgres"):
        return Path(found).resolve().parent
    for bin_dir in sorted(Path("/").glob(POSTGRES_INSTALL_GLOB.lstrip("/")), key=version_key):
        if has_executables(bin_dir, "initdb", "postgres"):
            return bin_dir
    raise ServiceError(
        f"initdb and postgres are neither on PATH nor in {POSTGRES_INSTALL_GLOB}; {hint}"
    )


class ManagedPostgres(ManagedServer):
    """A private PostgreSQL cluster: data in `root/data`, its unix socket in `root/run`."""

    name = "postgres"
    stop_signal = signal.SIGINT  # fast shutdown: abort transactions, checkpoint, exit
    stop_timeout_s = 30.0

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
        check_socket_path(self.run_dir / f".s.PGSQL.{POSTGRES_PORT}")
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
        await self._launch(
            argv, self._create_database, _PG_NOT_READY, deadline,
            death_signal=signal.SIGINT, user=user,
        )  # fmt: skip
        log.info("postgres pid %s serving %s", self.pid, self.run_dir)
        return self.dsn

    def _service_user(self) -> User | None:
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
                return User(name, owner.st_uid, owner.st_gid)
        for name in ("postgres", "nobody"):
            with contextlib.suppress(KeyError):
                entry = pwd.getpwnam(name)
                return User(name, entry.pw_uid, entry.pw_gid)
        raise ServiceError(
            "running as root, and there is no postgres or nobody user to run PostgreSQL"
        )

    async def _initdb(self, bin_dir: Path, user: User | None, deadline: float) -> None:
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
        if old_pid and runs_in(old_pid, self.data_dir, "postgres"):
            log.warning("stopping postgres pid %d left running in %s", old_pid, self.data_dir)
            left = await signal_and_wait([old_pid], signal.SIGINT, deadline - time.monotonic())
            if left:
                raise ServiceError(
                    f"postgres pid {old_pid} left running in {self.data_dir} does not stop"
                )
        orphans = pids_where(lambda pid: runs_in(pid, self.data_dir, "postgres"))
        if orphans:
            log.warning("killing orphan postgres processes %s of %s", orphans, self.data_dir)
            await signal_and_wait(orphans, signal.SIGKILL, deadline - time.monotonic())
        # A dead pid postgres handles itself; a live one that is not a postgres for this
        # data dir (the pid was reused) would make it refuse to start, and so would the
        # old postmaster itself while it is a zombie nobody reaped yet (killed with us,
        # its parent: until init reaps it, the pid still answers kill(pid, 0)).
        if old_pid and exists(old_pid):
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


def _own_dir(path: Path, user: User | None) -> None:
    """Make `path` a 0700 dir of the server's user."""
    path.mkdir(mode=0o700, exist_ok=True)
    path.chmod(0o700)
    if user is not None:
        os.chown(path, user.uid, user.gid)


def _check_reachable(root: Path, user: User) -> None:
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

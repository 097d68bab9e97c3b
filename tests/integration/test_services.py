"""The managed PostgreSQL and Redis, started for real in throwaway dirs."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import signal
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio

from mediad.daemons import (
    ManagedPostgres,
    ManagedRedis,
    find_postgres_bin_dir,
    find_redis_server,
)
from mediad.errors import ServiceError

REPO = Path(__file__).resolve().parents[2]
AS_ROOT = os.geteuid() == 0

# Started in a separate interpreter under uvloop, then SIGKILLed with the server running.
DOOMED_PARENT = """
import sys
from pathlib import Path

import uvloop

from mediad.daemons import ManagedPostgres, ManagedRedis


async def main():
    root = Path(sys.argv[2])
    server = ManagedPostgres(root) if sys.argv[1] == "postgres" else ManagedRedis(root)
    await server.start()
    print(server.pid, flush=True)
    await server.wait()


uvloop.run(main())
"""


@pytest.fixture
def tmp_root() -> Iterator[Path]:
    # Not pytest's tmp_path: /tmp/pytest-of-root is 0700, out of reach of the postgres user.
    folder = Path(tempfile.mkdtemp(dir="/tmp", prefix="mediad-test-"))
    folder.chmod(0o755)
    yield folder
    for pid in server_pids(folder):  # a failed test must not leave servers behind
        os.kill(pid, signal.SIGKILL)
    shutil.rmtree(folder, ignore_errors=True)


def server_pids(root: Path) -> list[int]:
    """Processes started from, or working in, `root` (postgres backends set their own
    process title but keep the data dir as their working dir)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes()
            cwd = os.readlink(f"/proc/{name}/cwd")
        except OSError:  # gone, or a zombie
            continue
        if str(root).encode() in cmdline or Path(cwd).is_relative_to(root):
            found.append(int(name))
    return found


async def eventually(predicate: Callable[[], bool], timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def query(dsn: str, sql: str, *args: object) -> object:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def started_with_a_row(root: Path) -> ManagedPostgres:
    pg = ManagedPostgres(root)
    await pg.start()
    await query(pg.dsn, "CREATE TABLE t (x text)")
    await query(pg.dsn, "INSERT INTO t VALUES ('kept')")
    return pg


def uid_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[2])  # effective
    raise AssertionError("no Uid line")


# --- PostgreSQL ----------------------------------------------------------------------


async def test_postgres_first_start_serves_and_stop_leaves_nothing(tmp_root: Path) -> None:
    root = tmp_root / "postgres"
    pg = await started_with_a_row(root)

    assert pg.ran_initdb
    assert pg.dsn == f"postgresql://postgres@/mediad?host={root}/run&port=5432"
    assert await query(pg.dsn, "SELECT x FROM t") == "kept"
    assert await query(pg.dsn, "SHOW listen_addresses") == ""
    assert pg.pid is not None and os.getsid(pg.pid) == pg.pid  # its own session
    run = (root / "run").stat()
    assert stat.S_IMODE(run.st_mode) == 0o700
    if AS_ROOT:
        postgres_uid = pwd.getpwnam("postgres").pw_uid
        assert uid_of(pg.pid) == postgres_uid
        assert run.st_uid == (root / "data").stat().st_uid == postgres_uid
    assert "database system is ready" in (root / "postgres.log").read_text()
    assert len(server_pids(root)) > 1  # postmaster and its helpers

    await pg.stop()
    assert server_pids(root) == []
    assert pg.pid is None
    assert await pg.wait() == 0
    await pg.stop()  # idempotent


async def test_postgres_second_start_reuses_the_cluster(tmp_root: Path) -> None:
    root = tmp_root / "postgres"
    await (await started_with_a_row(root)).stop()
    version_file = (root / "data" / "PG_VERSION").stat()

    pg = ManagedPostgres(root)
    await pg.start()
    try:
        assert not pg.ran_initdb
        assert (root / "data" / "PG_VERSION").stat().st_ino == version_file.st_ino
        assert await query(pg.dsn, "SELECT x FROM t") == "kept"
    finally:
        await pg.stop()


async def test_postgres_starts_after_its_postmaster_was_sigkilled(tmp_root: Path) -> None:
    root = tmp_root / "postgres"
    crashed = await started_with_a_row(root)
    assert crashed.pid is not None
    os.killpg(crashed.pid, signal.SIGKILL)  # the postmaster and its children
    assert await crashed.wait() == -signal.SIGKILL
    await eventually(lambda: server_pids(root) == [])
    assert (root / "data" / "postmaster.pid").exists()

    pg = ManagedPostgres(root)
    await pg.start()
    try:
        assert await query(pg.dsn, "SELECT x FROM t") == "kept"
    finally:
        await pg.stop()


async def test_postgres_start_stops_a_postmaster_left_running(tmp_root: Path) -> None:
    root = tmp_root / "postgres"
    left_running = await started_with_a_row(root)

    pg = ManagedPostgres(root)
    await pg.start()
    try:
        assert await left_running.wait() == 0  # fast shutdown, not a crash
        assert await query(pg.dsn, "SELECT x FROM t") == "kept"
    finally:
        await pg.stop()
    assert server_pids(root) == []


async def test_postgres_ignores_lock_files_naming_another_program(tmp_root: Path) -> None:
    root = tmp_root / "postgres"
    await (await started_with_a_row(root)).stop()
    # As the server's user: postgres takes a live pid of another user for a stale one.
    owner = (root / "data").stat().st_uid
    other = await asyncio.create_subprocess_exec("sleep", "60", user=owner)
    try:
        # The crashed postmaster's pid now belongs to another program.
        (root / "data" / "postmaster.pid").write_text(f"{other.pid}\n{root / 'data'}\n")
        (root / "run" / ".s.PGSQL.5432.lock").write_text(f"{other.pid}\n")
        pg = ManagedPostgres(root)
        await pg.start()
        await pg.stop()
        assert other.returncode is None
    finally:
        other.kill()
        await other.wait()


async def test_postgres_start_failure_shows_the_log(tmp_root: Path) -> None:
    root = tmp_root / "postgres"
    await (await started_with_a_row(root)).stop()
    with (root / "data" / "postgresql.auto.conf").open("a") as conf:
        conf.write("no_such_setting = 1\n")

    with pytest.raises(ServiceError, match="exited with code 1") as error:
        await ManagedPostgres(root).start()
    assert "no_such_setting" in error.value.message
    assert server_pids(root) == []


async def test_postgres_initdb_that_hangs_is_killed_with_its_children(tmp_root: Path) -> None:
    fake_bin = tmp_root / "bin"
    fake_bin.mkdir()
    (fake_bin / "initdb").write_text("#!/bin/sh\nsleep 300 &\nsleep 300\n")
    (fake_bin / "initdb").chmod(0o755)
    (fake_bin / "postgres").symlink_to(find_postgres_bin_dir() / "postgres")
    root = tmp_root / "postgres"

    with pytest.raises(ServiceError, match="initdb did not finish in time"):
        await ManagedPostgres(root, bin_dir=fake_bin).start(timeout_s=1)
    assert server_pids(root) == []  # the sleeps run in root
    assert not (root / "data").exists()

    pg = ManagedPostgres(root)  # the real initdb starts afresh
    await pg.start()
    await pg.stop()
    assert pg.ran_initdb


async def test_postgres_dies_with_its_parent(tmp_root: Path) -> None:
    await (await started_with_a_row(tmp_root / "postgres")).stop()
    await assert_dies_with_parent("postgres", tmp_root / "postgres")


@pytest.mark.skipif(not AS_ROOT, reason="only root hands PostgreSQL to another user")
async def test_postgres_refuses_a_root_the_postgres_user_cannot_reach(tmp_root: Path) -> None:
    private = tmp_root / "private"
    private.mkdir(mode=0o700)
    private.chmod(0o700)

    with pytest.raises(ServiceError, match="/var/lib/mediad") as error:
        await ManagedPostgres(private / "postgres").start()
    assert f"cannot enter {private} " in error.value.message


async def test_postgres_refuses_a_too_long_socket_path(tmp_root: Path) -> None:
    root = tmp_root / ("x" * 90) / "postgres"
    with pytest.raises(ServiceError, match="over the limit of 107"):
        await ManagedPostgres(root).start()
    assert not root.exists()


# --- Redis ---------------------------------------------------------------------------


async def test_redis_start_serves_and_stop_leaves_nothing(tmp_root: Path) -> None:
    root = tmp_root / "redis"
    server = ManagedRedis(root)
    url = await server.start()

    assert url == f"unix://{root}/redis.sock"
    client = redis.asyncio.from_url(url)
    try:
        assert await client.ping()
        await client.set("k", "v")
        assert await client.get("k") == b"v"
    finally:
        await client.aclose()
    assert server.pid is not None and os.getsid(server.pid) == server.pid

    await server.stop()
    assert server_pids(root) == []
    assert not (root / "redis.sock").exists()
    await server.stop()  # idempotent


async def test_redis_start_stops_a_server_left_running(tmp_root: Path) -> None:
    left_running = ManagedRedis(tmp_root)
    await left_running.start()

    server = ManagedRedis(tmp_root)
    await server.start()
    try:
        assert await asyncio.wait_for(left_running.wait(), 15) == 0
        client = redis.asyncio.from_url(server.url)
        try:
            assert await client.ping()
        finally:
            await client.aclose()
    finally:
        await server.stop()


async def test_redis_dies_with_its_parent(tmp_root: Path) -> None:
    await assert_dies_with_parent("redis", tmp_root / "redis")


async def test_redis_refuses_a_too_long_socket_path(tmp_root: Path) -> None:
    with pytest.raises(ServiceError, match="over the limit of 107"):
        await ManagedRedis(tmp_root / ("x" * 100)).start()


async def assert_dies_with_parent(kind: str, root: Path) -> None:
    parent = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        DOOMED_PARENT,
        kind,
        str(root),
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        start_new_session=True,
    )
    assert parent.stdout is not None
    line = await asyncio.wait_for(parent.stdout.readline(), 30)
    server_pid = int(line)
    assert server_pid in server_pids(root)

    parent.kill()
    await parent.communicate()
    await eventually(lambda: server_pids(root) == [])


# --- finding the binaries ------------------------------------------------------------


def test_find_postgres_bin_dir_resolves_path_symlinks() -> None:
    bin_dir = find_postgres_bin_dir()
    assert (bin_dir / "initdb").is_file() and (bin_dir / "postgres").is_file()
    assert not (bin_dir / "initdb").is_symlink()
    assert find_postgres_bin_dir(str(bin_dir)) == bin_dir


def test_find_postgres_bin_dir_falls_back_to_the_install_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    if not list(Path("/usr/lib/postgresql").glob("*/bin/initdb")):
        pytest.skip("no PostgreSQL under /usr/lib/postgresql")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_postgres_bin_dir().parent.parent == Path("/usr/lib/postgresql")


def test_find_postgres_bin_dir_gives_the_install_hint(tmp_path: Path) -> None:
    with pytest.raises(ServiceError, match="apt-get install postgresql") as error:
        find_postgres_bin_dir(str(tmp_path))
    assert "tools.postgres_bin_dir" in error.value.message


def test_find_redis_server(tmp_path: Path) -> None:
    binary = find_redis_server()
    assert binary.name == "redis-server"
    assert find_redis_server(str(binary)) == binary
    assert find_redis_server(str(binary.parent)) == binary
    with pytest.raises(ServiceError, match="apt-get install redis-server") as error:
        find_redis_server(str(tmp_path))
    assert "tools.redis_server" in error.value.message

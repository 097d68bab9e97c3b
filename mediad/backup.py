"""``mediad backup FILE`` and ``mediad restore FILE``: the job store as a pg_dump.

The store is the embedded cluster under the state dir (used as it runs when a
``mediad serve`` runs it, else started for the dump and stopped again) or the external
``database.url``. The tools are those of the PostgreSQL that services.py finds for the
embedded cluster, or of the server's major version for an external one.

A backup is one ``pg_dump --format=custom`` in a snapshot exported from a repeatable-read
transaction, in which the jobs are counted too: the count printed is the dump's, even
while the service writes. A restore loads a dump into an empty store (``--force``
replaces one that has jobs), then applies the migrations the dump is behind on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import asyncpg

from mediad import logs, migrations
from mediad.config import Config
from mediad.daemons import ManagedPostgres, find_postgres_bin_dir
from mediad.errors import ServiceError
from mediad.secrecy import child_environment, mask_text

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_REFUSED = 4  # restore into a store with jobs, or under a running service

# What the schema files create, so a restore can clear a store whatever its version.
_CREATED = re.compile(
    r"\bCREATE\s+(?:OR\s+REPLACE\s+)?(TABLE|VIEW|MATERIALIZED\s+VIEW|SEQUENCE|TYPE)\s+"
    r"(?:IF\s+NOT\s+EXISTS\s+)?((?:\"[^\"]+\"|[A-Za-z_][\w$]*)(?:\.(?:\"[^\"]+\"|[A-Za-z_][\w$]*))?)",
    re.IGNORECASE,
)


class Refused(ServiceError):
    """What restore will not do without --force (or at all, under a running service)."""


@dataclass
class Target:
    dsn: str
    bin_dir: Path
    embedded: bool
    where: str  # for messages: the state dir's cluster or the database URL without secrets


def run_backup(config: Config, file: str) -> int:
    logs.configure("warning", config.logging.format, "backup")
    try:
        summary = asyncio.run(backup(config, file))
    except ServiceError as exc:
        print(f"mediad: backup failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if file == "-":
        print(summary, file=sys.stderr)
    else:
        print(f"{summary}, {os.path.getsize(file)} bytes")
    return EXIT_OK


def run_restore(config: Config, file: str, *, force: bool) -> int:
    logs.configure("warning", config.logging.format, "restore")
    if not Path(file).is_file():
        print(f"mediad: restore failed: {file} is not a file", file=sys.stderr)
        return EXIT_FAILED
    try:
        summary = asyncio.run(restore(config, file, force=force))
    except Refused as exc:
        print(f"mediad: restore refused: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except ServiceError as exc:
        print(f"mediad: restore failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(summary)
    return EXIT_OK


# --- backup -----------------------------------------------------------------------


async def backup(config: Config, file: str) -> str:
    """Dump the store to ``file`` (``-``: stdout); a line saying what was written."""
    async with _target(config, for_restore=False) as target:
        conn = await _connect(target.dsn)
        try:
            if not await _table_exists(conn, "jobs"):
                raise ServiceError(
                    f"{target.where} has no mediad tables: nothing to back up"
                    " (mediad migrate or mediad serve creates them)"
                )
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                snapshot = await conn.fetchval("SELECT pg_export_snapshot()")
                jobs = await conn.fetchval("SELECT count(*) FROM jobs")
                versions = await _versions(conn)
                await _dump(target, snapshot, file)
        finally:
            await conn.close()
    return (
        f"backup of {target.where} written to {file}: {jobs} jobs, schema"
        f" {versions[-1] if versions else '(none)'}"
    )


async def _dump(target: Target, snapshot: str, file: str) -> None:
    dsn, env = _libpq(target.dsn)
    argv = [str(target.bin_dir / "pg_dump"), "--format=custom", f"--snapshot={snapshot}"]
    argv += ["--no-password", f"--dbname={dsn}"]
    if file == "-":
        await _tool(argv, env, stdout=sys.stdout.buffer.fileno())
        return
    path = Path(file)
    partial = path.with_name(f".{path.name}.partial")
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise ServiceError(f"cannot write {file}: {exc.strerror}") from None
    try:
        try:
            await _tool(argv, env, stdout=fd)
            os.fsync(fd)
        finally:
            os.close(fd)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


# --- restore ----------------------------------------------------------------------


async def restore(config: Config, file: str, *, force: bool) -> str:
    """Load a dump into an empty store (``force``: any store), then migrate."""
    async with _target(config, for_restore=True) as target:
        # A file pg_restore cannot read fails here, before the store is touched.
        listing = await _tool([str(target.bin_dir / "pg_restore"), "--list", file], _libpq("")[1])
        if b" TABLE DATA " not in listing or b" jobs " not in listing:
            raise ServiceError(f"{file} is not a backup of a mediad store")
        conn = await _connect(target.dsn)
        try:
            await _check_empty(conn, target, force)
            await _clear(conn)
        finally:
            await conn.close()
        dsn, env = _libpq(target.dsn)
        argv = [str(target.bin_dir / "pg_restore"), "--no-owner", "--no-privileges"]
        argv += ["--clean", "--if-exists", "--single-transaction", "--exit-on-error"]
        argv += ["--no-password", f"--dbname={dsn}", file]
        await _tool(argv, env)
        conn = await _connect(target.dsn)
        try:
            restored = await _versions(conn)
            applied = await migrations.apply(conn)
            jobs = await conn.fetchval("SELECT count(*) FROM jobs")
        finally:
            await conn.close()
    line = (
        f"restored {file} into {target.where}: {jobs} jobs, schema"
        f" {restored[-1] if restored else '(none)'}"
    )
    if applied:
        line += f", then applied {', '.join(applied)}"
    return line + "; the files are not in it: restore the data folder beside it"


async def _check_empty(conn: asyncpg.Connection, target: Target, force: bool) -> None:
    if force:
        return
    if await _table_exists(conn, "jobs"):
        jobs = await conn.fetchval("SELECT count(*) FROM jobs")
        if jobs:
            raise Refused(
                f"{target.where} has {jobs} jobs: restore into an empty store, or pass"
                " --force to replace them"
            )
    others = await conn.fetchval(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        " AND backend_type = 'client backend'"
    )
    if others:
        raise Refused(
            f"{others} other connection(s) to {target.where} (a running mediad serve?):"
            " stop it first, or pass --force"
        )


async def _clear(conn: asyncpg.Connection) -> None:
    """Drop what the schema files create and the migration table, whatever version the
    store is at: the dump brings its own, and the migrations it is behind on run after."""
    names: list[tuple[str, str]] = [("TABLE", "schema_migrations")]
    for _, path in migrations.schema_files():
        for kind, name in _CREATED.findall(path.read_text(encoding="utf-8")):
            names.append((" ".join(kind.upper().split()), name))
    async with conn.transaction():
        for kind, name in reversed(names):
            await conn.execute(f"DROP {kind} IF EXISTS {name} CASCADE")


# --- where the store is -----------------------------------------------------------


@contextlib.asynccontextmanager
async def _target(config: Config, *, for_restore: bool) -> AsyncIterator[Target]:
    if config.database.url:
        dsn = config.database.url
        major = await _server_major(dsn)
        yield Target(dsn, tool_dir(config, major), False, _without_secrets(dsn))
        return
    root = config.state_path / "postgres"
    managed = ManagedPostgres(root, bin_dir=find_postgres_bin_dir(config.tools.postgres_bin_dir))
    assert managed.bin_dir is not None
    where = f"the embedded PostgreSQL in {root}"
    if await _answers(managed.dsn):  # a mediad serve runs it: use it as it runs
        if for_restore:
            raise Refused(
                f"{where} is running (mediad serve?): stop the service, restore, start it again"
            )
        yield Target(managed.dsn, managed.bin_dir, True, where)
        return
    if not for_restore and not (managed.data_dir / "PG_VERSION").exists():
        raise ServiceError(f"there is no embedded PostgreSQL cluster in {root}: nothing to back up")
    await managed.start()  # restore: on a new machine this creates the cluster
    try:
        yield Target(managed.dsn, managed.bin_dir, True, where)
    finally:
        await managed.stop()


async def _answers(dsn: str) -> bool:
    try:
        conn = await asyncpg.connect(dsn, timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return False
    await conn.close()
    return True


async def _connect(dsn: str) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(dsn, timeout=10)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise ServiceError(f"cannot connect to {_without_secrets(dsn)}: {exc}") from None


async def _server_major(dsn: str) -> int:
    conn = await _connect(dsn)
    try:
        return int(await conn.fetchval("SHOW server_version_num")) // 10000
    finally:
        await conn.close()


async def _table_exists(conn: asyncpg.Connection, name: str) -> bool:
    return bool(await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", name))


async def _versions(conn: asyncpg.Connection) -> list[str]:
    if not await _table_exists(conn, "schema_migrations"):
        return []
    rows = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
    return [r["version"] for r in rows]


def tool_dir(config: Config, server_major: int) -> Path:
    """A folder with pg_dump and pg_restore for a server of ``server_major``: the one
    services.py finds (or tools.postgres_bin_dir), that version's Debian folder, or
    PATH's; the same major version first, else a newer one (pg_dump refuses older)."""
    candidates: list[Path] = []
    with contextlib.suppress(ServiceError):
        candidates.append(find_postgres_bin_dir(config.tools.postgres_bin_dir))
    candidates.append(Path(f"/usr/lib/postgresql/{server_major}/bin"))
    found = shutil.which("pg_dump")
    if found:
        candidates.append(Path(found).resolve().parent)
    usable = [(d, m) for d in candidates if (m := _tool_major(d)) is not None]
    wants: tuple[Callable[[int], bool], ...] = (
        lambda m: m == server_major,
        lambda m: m > server_major,
    )
    for wanted in wants:
        for folder, major in usable:
            if wanted(major):
                return folder
    raise ServiceError(
        f"no pg_dump and pg_restore of PostgreSQL {server_major} or newer"
        f" (install postgresql-client-{server_major} or set tools.postgres_bin_dir)"
    )


def _tool_major(folder: Path) -> int | None:
    tools = [folder / "pg_dump", folder / "pg_restore"]
    if not all(t.is_file() and os.access(t, os.X_OK) for t in tools):
        return None
    try:
        out = subprocess.run(
            [str(tools[0]), "--version"],
            capture_output=True, text=True, timeout=10, check=True,
            env=child_environment(os.environ),  # in the single binary: without its libraries
        ).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"(\d+)(?:\.\d+)*", out)
    return int(match.group(1)) if match else None


def _libpq(dsn: str) -> tuple[str, dict[str, str]]:
    """The DSN for libpq's --dbname without its password, and an environment holding it
    (PGPASSWORD: readable by this user only, where argv is readable by anyone)."""
    env = {k: v for k, v in child_environment(os.environ).items() if not k.startswith("PG")}
    if not dsn:
        return dsn, env
    parts = urlsplit(dsn)
    if parts.password is not None:
        env["PGPASSWORD"] = unquote(parts.password)
        netloc = parts.netloc.rpartition("@")[2]
        user = parts.netloc.rpartition("@")[0].partition(":")[0]
        parts = parts._replace(netloc=f"{user}@{netloc}" if user else netloc)
    return urlunsplit(parts), env


def _without_secrets(dsn: str) -> str:
    return mask_text(dsn)


async def _tool(argv: list[str], env: dict[str, str], stdout: int | None = None) -> bytes:
    """Run pg_dump or pg_restore; its output (unless sent to ``stdout``), or a
    ServiceError with its last lines."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=stdout if stdout is not None else asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        tail = "\n".join(err.decode(errors="replace").strip().splitlines()[-10:])
        raise ServiceError(f"{Path(argv[0]).name} failed with exit code {proc.returncode}: {tail}")
    return out or b""

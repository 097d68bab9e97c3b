"""Real services for the tests, started with mediad's own code where it can.

PostgreSQL: ``MEDIAD_TEST_DATABASE_URL`` if set, else the machine's server on
127.0.0.1:5432 if one answers, else an embedded cluster (``ManagedPostgres``). Each
service under test gets a fresh database of its own. Redis: always an embedded
``redis-server`` (it starts in milliseconds and tests may stop it); each service gets its
own key prefix.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from mediad import config as configuration
from mediad.daemons import ManagedPostgres, ManagedRedis, find_postgres_bin_dir, find_redis_server
from mediad.service import Service
from tests.support.polling import eventually

_names = itertools.count(1)


def shared_tmp(prefix: str) -> Path:
    """A temp dir under /tmp that other users can traverse (embedded PostgreSQL runs as
    ``postgres`` when the tests run as root)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    return path


class Databases:
    """Creates and drops a database per service under test on one PostgreSQL server."""

    def __init__(self) -> None:
        self.admin_dsn: str | None = None
        self._managed: ManagedPostgres | None = None
        self._root: Path | None = None
        self._created: list[str] = []

    async def start(self) -> None:
        candidates = (
            [os.environ.get("MEDIAD_TEST_DATABASE_URL")]
            if os.environ.get("MEDIAD_TEST_DATABASE_URL")
            else ["postgresql://postgres@127.0.0.1:5432/postgres"]
        )
        for dsn in candidates:
            try:
                conn = await asyncpg.connect(dsn, timeout=3)
            except (OSError, asyncpg.PostgresError, TimeoutError):
                continue
            try:
                await drop_orphans(conn)
            finally:
                await conn.close()
            self.admin_dsn = dsn
            return
        self._root = shared_tmp("mediad-test-pg-")
        self._managed = ManagedPostgres(
            self._root / "postgres", bin_dir=find_postgres_bin_dir(), database="postgres"
        )
        self.admin_dsn = await self._managed.start()

    async def create(self) -> str:
        assert self.admin_dsn is not None
        name = f"mediad_test_{os.getpid()}_{next(_names)}"
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        self._created.append(name)
        return _with_database(self.admin_dsn, name)

    async def stop(self) -> None:
        if self.admin_dsn and self._created:
            conn = await asyncpg.connect(self.admin_dsn)
            try:
                for name in self._created:
                    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await conn.close()
        if self._managed is not None:
            await self._managed.stop()
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)


async def drop_orphans(conn: asyncpg.Connection) -> list[str]:
    """Drop the databases that test processes no longer running left behind (killed
    before ``stop``): ``mediad_test_{pid}_{n}`` with no process ``pid``. A process alive
    under that pid (perhaps another one, the pid reused) keeps them."""
    names = await conn.fetch(
        "SELECT datname FROM pg_database WHERE datname ~ '^mediad_test_[0-9]+_[0-9]+$'"
    )
    dropped = []
    for (name,) in names:
        pid = int(name.split("_")[2])
        try:
            os.kill(pid, 0)
            continue  # alive
        except ProcessLookupError:
            pass
        except PermissionError:
            continue  # alive, someone else's
        with contextlib.suppress(asyncpg.PostgresError):
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            dropped.append(name)
    return dropped


def _with_database(dsn: str, name: str) -> str:
    """The same server with another database: the path of the URL, or ``?dbname=``."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{name}"))


class RedisServer:
    """An embedded redis-server the tests own (and may stop and start again)."""

    def __init__(self) -> None:
        self.root = shared_tmp("mediad-test-redis-")
        self.server = ManagedRedis(self.root / "redis", binary=find_redis_server())
        self.url = ""

    async def start(self) -> str:
        self.url = await self.server.start()
        return self.url

    async def stop(self) -> None:
        await self.server.stop()

    async def close(self) -> None:
        await self.server.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def make_config(
    state_dir: Path, database_url: str, redis_url: str, **sections: dict[str, Any]
) -> configuration.Config:
    raw: dict[str, Any] = {
        # Tests submit jobs fast and must not depend on this machine's free disk space.
        "server": {"host": "127.0.0.1", "port": 0, "shutdown_grace_s": 5, "rate_limit_per_min": 0},
        "database": {"url": database_url},
        "redis": {"url": redis_url, "prefix": f"mediad-test-{uuid.uuid4().hex[:8]}:"},
        "storage": {"state_dir": str(state_dir), "min_free_bytes": 0},
        # The local media server is on loopback, which the egress guard refuses by default.
        "network": {"allow_hosts": ["127.0.0.1"]},
        "logging": {"level": "warning", "format": "text"},
    }
    for name, values in sections.items():
        if isinstance(values, list):  # notify: a list of targets
            raw[name] = values
        else:
            raw.setdefault(name, {}).update(values)
    return configuration.build(raw)


@contextlib.asynccontextmanager
async def running_service(config: configuration.Config) -> AsyncIterator[Service]:
    """A started Service whose local workers have all connected."""
    service = Service(config)
    await service.start()
    try:
        expected = config.worker_processes
        await eventually(
            lambda: (
                service.dispatcher is not None
                and service.dispatcher.roster.worker_count >= expected
            ),
            timeout_s=60,
            what=f"{expected} workers to connect",
        )
        yield service
    finally:
        await service.stop()


class Api:
    """A small REST client for the tests."""

    def __init__(self, base_url: str, token: str | None = None) -> None:
        self.base_url = base_url
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.session = aiohttp.ClientSession(base_url, headers=headers)

    async def close(self) -> None:
        await self.session.close()

    async def request(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        async with self.session.request(method, path, **kwargs) as resp:
            body = await resp.read()
            if resp.content_type == "application/json":
                import orjson

                return resp.status, orjson.loads(body)
            return resp.status, body

    async def submit(self, url: str, **fields: Any) -> dict[str, Any]:
        status, body = await self.request("POST", "/downloads", json={"url": url, **fields})
        assert status == 201, (status, body)
        return body  # type: ignore[no-any-return]

    async def job(self, job_id: str) -> dict[str, Any]:
        status, body = await self.request("GET", f"/downloads/{job_id}")
        assert status == 200, (status, body)
        return body  # type: ignore[no-any-return]

    async def wait_status(
        self, job_id: str, *statuses: str, timeout_s: float = 60
    ) -> dict[str, Any]:
        async def check() -> dict[str, Any] | None:
            job = await self.job(job_id)
            return job if job["status"] in statuses else None

        return await eventually(check, timeout_s=timeout_s, what=f"job {job_id} to be {statuses}")

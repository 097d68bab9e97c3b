"""Several ``mediad serve`` processes forming one service, for the cluster tests.

Every instance is a real subprocess (``python -m mediad serve -c FILE``) with its own
YAML file, port, state dir and ``server.instance_id``; all share ``database.url``,
``redis.url``, ``redis.prefix`` and one ``storage.data_dir`` / ``storage.tmp_dir``.
Logs are JSON lines in ``{state}/serve.log`` (appended across restarts; each start
remembers where its own lines begin). ::

    cluster = Cluster(root, dsn, redis_url, queue={"concurrency": 3, "lease_s": 2})
    a, b = cluster.add("a"), cluster.add("b")
    await cluster.start()            # both at once; returns when /health shows the workers
    log = await cluster.transitions() # a trigger on `jobs`: every status/attempt change
    ...
    a.kill(); await a.gone()          # SIGKILL, then no process of its tree is left
    await a.start()                   # the same instance id, state dir and port again
    await cluster.close()             # SIGTERM every instance (SIGKILL after a grace)

``TransitionLog`` reads the trigger's table: the peak number of jobs running at once,
completed transitions per job, attempt overlaps. ``RemoteWorker`` runs
``mediad worker --server URL`` as a process with its own config file and log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import yaml

from tests.integration.test_serve_cli import alive, descendants
from tests.support.cli import ROOT, clean_env
from tests.support.harness import Api
from tests.support.polling import eventually
from tests.support.ports import fixed_port
from tests.support.proctree import local_workers

WORKER_TOKEN = "cluster-worker-token-for-tests-0123456789"


# -- processes ---------------------------------------------------------------------------


# descendants() and alive(): the ones of test_serve_cli, imported above.


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    for section, values in extra.items():
        if isinstance(values, dict):
            merged.setdefault(section, {}).update(values)
        else:
            merged[section] = values
    return merged


class InstanceDied(AssertionError):
    pass


class Instance:
    """One ``mediad serve`` subprocess of a cluster."""

    def __init__(self, cluster: Cluster, instance_id: str, raw: dict[str, Any]) -> None:
        self.cluster = cluster
        self.instance_id = instance_id
        self.state = Path(raw["storage"]["state_dir"])
        self.state.mkdir(parents=True, exist_ok=True)
        self.port = int(raw["server"]["port"])
        self.base = f"http://127.0.0.1:{self.port}"
        self.raw = raw
        self.config_path = self.state / "mediad.yaml"
        self.config_path.write_text(yaml.safe_dump(raw, sort_keys=False))
        self.log_path = self.state / "serve.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.generation = 0
        self._log_start = 0  # where the current generation's lines begin
        self._tree: set[int] = set()

    def __repr__(self) -> str:
        return f"Instance({self.instance_id!r}, port={self.port}, pid={self.pid})"

    # -- life

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def workers(self) -> int:
        """How many local workers its /health should count."""
        processes = self.raw.get("workers", {}).get("processes")
        if processes is None:
            return int(self.raw.get("queue", {}).get("concurrency", 3))
        return int(processes)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def spawn(self) -> None:
        """Start the process (without waiting for it to serve)."""
        assert not self.running(), f"{self} is already running"
        self._log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.generation += 1
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mediad", "serve", "-c", str(self.config_path)],
                env=self.cluster.env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                cwd=ROOT,
            )  # fmt: skip

    async def start(self, timeout_s: float = 90) -> Instance:
        self.spawn()
        await self.ready(timeout_s)
        return self

    async def ready(self, timeout_s: float = 90) -> dict[str, Any]:
        """Wait until /health answers with every local worker connected."""
        expected = self.workers
        async with aiohttp.ClientSession(self.base) as http:

            async def up() -> dict[str, Any] | None:
                if not self.running():
                    raise InstanceDied(f"{self} exited early:\n{self.log_tail()}")
                with contextlib.suppress(aiohttp.ClientError, ValueError, TimeoutError):
                    async with http.get("/health", timeout=aiohttp.ClientTimeout(5)) as resp:
                        body = await resp.json()
                    checks = body.get("checks", {})
                    if expected == 0:  # no worker: "workers" is down, the rest must be up
                        ok = all(
                            checks.get(k, {}).get("status") == "ok" for k in ("postgres", "redis")
                        )
                        return body if ok else None
                    if resp.status == 200 and checks["workers"]["connected"] >= expected:
                        return body  # type: ignore[no-any-return]
                return None

            body = await eventually(
                up, timeout_s=timeout_s, interval_s=0.1, what=f"{self} to serve"
            )
        if self.proc is not None:
            self._tree = descendants(self.proc.pid)
        return body

    def tree(self) -> set[int]:
        """The live processes below it (workers, aria2c, tools), refreshed."""
        if self.running():
            assert self.proc is not None
            self._tree |= descendants(self.proc.pid)
        return {p for p in self._tree if alive(p)}

    def worker_pids(self) -> list[int]:
        """Its local worker processes (forked by its zygote)."""
        assert self.proc is not None
        return local_workers(self.proc.pid)

    def kill(self) -> None:
        """SIGKILL the serve process (its children die by their parent-death signals)."""
        assert self.proc is not None
        self._tree = self.tree()
        self.proc.kill()
        self.proc.wait()

    async def gone(self, timeout_s: float = 30) -> None:
        """No process of its last generation is alive any more."""
        tree = set(self._tree)
        await eventually(
            lambda: not [p for p in tree if alive(p)],
            timeout_s=timeout_s,
            what=f"every process of {self} to be gone",
        )

    async def terminate(self, timeout_s: float = 60) -> int:
        """SIGTERM, then wait for the exit (awaited, so the test's loop keeps running)."""
        assert self.proc is not None
        self._tree = self.tree()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        proc = self.proc
        try:
            await eventually(
                lambda: proc.poll() is not None, timeout_s=timeout_s, what=f"{self} to exit"
            )
        except AssertionError:
            proc.kill()
            proc.wait()
            raise
        assert proc.returncode is not None
        return proc.returncode

    async def restart(self, timeout_s: float = 90) -> Instance:
        """SIGTERM and start again: the same id, state dir, port and config."""
        await self.terminate()
        await self.gone()
        return await self.start(timeout_s)

    # -- talking to it

    def api(self) -> Api:
        return Api(self.base)

    async def health(self) -> tuple[int, Any]:
        api = self.api()
        try:
            return await api.request("GET", "/health")
        finally:
            await api.close()

    # -- its log

    def log_text(self, *, current: bool = False) -> str:
        if not self.log_path.exists():
            return ""
        data = self.log_path.read_bytes()
        return (
            data[self._log_start :].decode(errors="replace")
            if current
            else data.decode(errors="replace")
        )

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_text()[-chars:]

    def log_entries(self, *, current: bool = False) -> list[dict[str, Any]]:
        """The JSON lines of its log (every generation, or only the current one)."""
        entries = []
        for line in self.log_text(current=current).splitlines():
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if isinstance(entry, dict):
                    entries.append(entry)
        return entries

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def log_since(self, offset: int) -> list[dict[str, Any]]:
        if not self.log_path.exists():
            return []
        entries = []
        for line in self.log_path.read_bytes()[offset:].decode(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if isinstance(entry, dict):
                    entries.append(entry)
        return entries


class Cluster:
    """N instances on one database, one Redis and one key prefix, sharing data/ and tmp/."""

    def __init__(
        self, root: Path, database_url: str, redis_url: str, **sections: dict[str, Any]
    ) -> None:
        self.root = root
        self.database_url = database_url
        self.redis_url = redis_url
        self.prefix = f"mediad-cluster-{uuid.uuid4().hex[:8]}:"
        self.data_dir = root / "shared" / "data"
        self.tmp_dir = root / "shared" / "tmp"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self.sections = sections
        self.instances: dict[str, Instance] = {}
        self.env = clean_env(WORKER_TOKEN=WORKER_TOKEN)
        self._log_conns: list[asyncpg.Connection] = []

    def base_config(self) -> dict[str, Any]:
        raw: dict[str, Any] = {
            "server": {"host": "127.0.0.1", "shutdown_grace_s": 5, "rate_limit_per_min": 0},
            "database": {"url": self.database_url},
            "redis": {"url": self.redis_url, "prefix": self.prefix},
            "storage": {
                "data_dir": str(self.data_dir),
                "tmp_dir": str(self.tmp_dir),
                "min_free_bytes": 0,
            },
            "queue": {"concurrency": 3, "lease_s": 2, "retry_backoff_s": 0.1},
            "workers": {"token": WORKER_TOKEN},
            # The local media server is on loopback, which the egress guard refuses.
            "network": {"allow_hosts": ["127.0.0.1"]},
            "logging": {"level": "info", "format": "json"},
        }
        return _deep_merge(raw, self.sections)

    def add(self, instance_id: str, **overrides: dict[str, Any]) -> Instance:
        raw = _deep_merge(self.base_config(), overrides)
        raw["server"].update(instance_id=instance_id, port=fixed_port())
        raw["storage"]["state_dir"] = str(self.root / f"state-{instance_id}")
        instance = Instance(self, instance_id, raw)
        self.instances[instance_id] = instance
        return instance

    def __getitem__(self, instance_id: str) -> Instance:
        return self.instances[instance_id]

    async def start(self, *ids: str, timeout_s: float = 120) -> None:
        """Start the named instances (all by default) at once; wait until each serves."""
        chosen = [self.instances[i] for i in ids] if ids else list(self.instances.values())
        for instance in chosen:
            instance.spawn()
        await asyncio.gather(*(i.ready(timeout_s) for i in chosen))

    async def close(self) -> None:
        for conn in self._log_conns:
            with contextlib.suppress(Exception):
                await conn.close()
        running = [i for i in self.instances.values() if i.running()]
        for instance in running:
            assert instance.proc is not None
            instance._tree = instance.tree()
            instance.proc.send_signal(signal.SIGTERM)
        for instance in running:
            with contextlib.suppress(AssertionError):
                await instance.terminate(timeout_s=30)
        for instance in self.instances.values():
            for pid in instance.tree():
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)

    def logs(self, chars: int = 3000) -> str:
        """Every instance's log tail, for an assertion message."""
        return "\n".join(
            f"----- {i.instance_id} ({i.log_path}) -----\n{i.log_tail(chars)}"
            for i in self.instances.values()
        )

    def log_lines(self, pattern: str) -> dict[str, list[dict[str, Any]]]:
        """Per instance, its log entries whose message matches ``pattern`` (a regex)."""
        rx = re.compile(pattern)
        return {
            i.instance_id: [e for e in i.log_entries() if rx.search(str(e.get("msg", "")))]
            for i in self.instances.values()
        }

    async def transitions(self) -> TransitionLog:
        """Install the trigger (once the schema exists) and return its reader."""
        conn = await asyncpg.connect(self.database_url)
        self._log_conns.append(conn)
        await install_transition_log(conn)
        return TransitionLog(conn)

    def published(self, job_id: str) -> list[str]:
        """What is under data/{jobId}: the result and nothing else (no staging left)."""
        folder = self.data_dir / job_id
        return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# -- the database's own record of every transition ------------------------------------


async def install_transition_log(conn: asyncpg.Connection) -> None:
    """A trigger on ``jobs`` that records every change of status, attempt, worker or
    owning instance (``instance_id`` read through jsonb, so the trigger works before
    that column exists)."""
    await conn.execute(
        """
        CREATE TABLE IF NOT EXISTS test_transitions (
            n bigserial PRIMARY KEY, job_id uuid, old text, new text,
            old_attempts int, new_attempts int, worker_id text, instance text,
            at timestamptz DEFAULT clock_timestamp());
        CREATE OR REPLACE FUNCTION test_log_transition() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.status IS DISTINCT FROM OLD.status
               OR NEW.attempts IS DISTINCT FROM OLD.attempts
               OR to_jsonb(NEW)->>'instance_id' IS DISTINCT FROM to_jsonb(OLD)->>'instance_id'
            THEN
                INSERT INTO test_transitions
                    (job_id, old, new, old_attempts, new_attempts, worker_id, instance)
                VALUES (NEW.id, OLD.status, NEW.status, OLD.attempts, NEW.attempts,
                        NEW.worker_id, to_jsonb(NEW)->>'instance_id');
            END IF;
            RETURN NEW;
        END $$;
        DROP TRIGGER IF EXISTS test_transitions ON jobs;
        CREATE TRIGGER test_transitions AFTER UPDATE ON jobs
            FOR EACH ROW EXECUTE FUNCTION test_log_transition();
        """
    )


@dataclass(frozen=True)
class Transition:
    n: int
    job_id: str
    old: str
    new: str
    old_attempts: int
    new_attempts: int
    worker_id: str | None
    instance: str | None


class TransitionLog:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def rows(self) -> list[Transition]:
        records = await self.conn.fetch(
            "SELECT n, job_id, old, new, old_attempts, new_attempts, worker_id, instance"
            " FROM test_transitions ORDER BY n"
        )
        return [Transition(**{**dict(r), "job_id": str(r["job_id"])}) for r in records]

    async def last_n(self) -> int:
        return int(await self.conn.fetchval("SELECT COALESCE(max(n), 0) FROM test_transitions"))


def peak_running(rows: list[Transition]) -> int:
    """The most jobs ever ``running`` at once, replaying the recorded transitions."""
    running: set[str] = set()
    peak = 0
    for row in rows:
        if row.new == "running":
            running.add(row.job_id)
        elif row.old == "running":
            running.discard(row.job_id)
        peak = max(peak, len(running))
    return peak


def completions(rows: list[Transition]) -> Counter[str]:
    """How many times each job became ``completed``."""
    return Counter(r.job_id for r in rows if r.new == "completed" and r.old != "completed")


def starts(rows: list[Transition], job_id: str) -> list[Transition]:
    """The rows where the job started an attempt (became running or counted one more)."""
    return [
        r
        for r in rows
        if r.job_id == job_id
        and r.new == "running"
        and (r.old != "running" or r.new_attempts != r.old_attempts)
    ]


def attempt_owners(rows: list[Transition], job_id: str) -> dict[int, str | None]:
    """Attempt number → the instance recorded while that attempt was running (the last
    one seen, so an owner written by a separate statement still counts)."""
    owners: dict[int, str | None] = {}
    for r in rows:
        if r.job_id == job_id and r.new == "running":
            owners[r.new_attempts] = r.instance or owners.get(r.new_attempts)
    return owners


def overlapping_attempts(rows: list[Transition]) -> list[Transition]:
    """Attempts that began while the job's previous attempt was still running: a row
    that counts another attempt without the job having left ``running``."""
    return [
        r
        for r in rows
        if r.old == "running" and r.new == "running" and r.new_attempts != r.old_attempts
    ]


# -- a remote worker -------------------------------------------------------------------


class RemoteWorker:
    """``mediad worker --server URL`` as a process, its settings in a YAML file, its
    token in ``WORKER_TOKEN`` (as a remote worker is run)."""

    def __init__(
        self,
        root: Path,
        server_url: str,
        *,
        token: str = WORKER_TOKEN,
        data_dir: Path,
        tmp_dir: Path,
        **sections: dict[str, Any],
    ) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.server_url = server_url
        raw: dict[str, Any] = {
            "storage": {
                "state_dir": str(root),
                "data_dir": str(data_dir),
                "tmp_dir": str(tmp_dir),
                "min_free_bytes": 0,
            },
            "network": {"allow_hosts": ["127.0.0.1"]},
            "logging": {"level": "info", "format": "json"},
        }
        raw = _deep_merge(raw, sections)
        self.config_path = root / "worker.yaml"
        self.config_path.write_text(yaml.safe_dump(raw, sort_keys=False))
        self.log_path = root / "worker.log"
        self.env = clean_env(WORKER_TOKEN=token)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RemoteWorker:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mediad", "worker", "-c", str(self.config_path),
                 "--server", self.server_url],
                env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=ROOT,
            )  # fmt: skip
        return self

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def exited(self, timeout_s: float = 30) -> int:
        assert self.proc is not None
        proc = self.proc
        await eventually(
            lambda: proc.poll() is not None,
            timeout_s=timeout_s,
            what=f"the remote worker to exit (log: {self.log_text()[-1500:]!r})",
        )
        assert proc.returncode is not None
        return proc.returncode

    async def stop(self, timeout_s: float = 30) -> int | None:
        if self.proc is None:
            return None
        tree = descendants(self.proc.pid)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return await self.exited(timeout_s)
        except AssertionError:
            self.proc.kill()
            self.proc.wait()
            return self.proc.returncode
        finally:
            for pid in tree:
                if alive(pid):
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGKILL)

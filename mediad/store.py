"""PostgreSQL: the only pool and the only writer. One method per query.

asyncpg and socket errors become ``StoreUnavailable`` here; handlers never see a driver
exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

import asyncpg
import orjson

from mediad import migrations, states
from mediad.coalesce import Coalescer, Seal
from mediad.errors import StoreUnavailable
from mediad.models import API_COLUMNS, JOB_COLUMNS, Job, JobType, Status, api_of_columns
from mediad.wire import Live

log = logging.getLogger(__name__)

_UNAVAILABLE = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.ConnectionFailureError,
    # A pooled connection that PostgreSQL's death left mid-operation ("cannot switch to
    # state …; another operation is in progress"); _conn terminates it.
    asyncpg.InternalClientError,
)


@dataclass(frozen=True, slots=True)
class ProgressRow:
    """One job's latest progress, as the flusher writes it."""

    job_id: UUID
    attempt: int
    live: Live


# What each client-requested status change resets besides the status.
_TRANSITION_SETS = {
    Status.CANCELLED: "speed = NULL, eta = NULL, worker_id = NULL, finished_at = now()",
    Status.PAUSED: "speed = NULL, eta = NULL, worker_id = NULL",
    # resume (from paused) and retry (from failed/cancelled): waiting again.
    Status.QUEUED: "stage = 'queued', speed = NULL, eta = NULL, worker_id = NULL,"
    " error_code = NULL, error_message = NULL, finished_at = NULL,"
    " progress = CASE WHEN status = 'paused' THEN progress ELSE 0 END,"
    " total_bytes = CASE WHEN status = 'paused' THEN total_bytes ELSE NULL END",
}


@contextlib.contextmanager
def _translated() -> Any:
    try:
        yield
    except _UNAVAILABLE as exc:
        raise StoreUnavailable(f"PostgreSQL is unavailable: {exc}") from exc


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec(
        "jsonb",
        encoder=lambda v: orjson.dumps(v).decode(),
        decoder=orjson.loads,
        schema="pg_catalog",
    )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """A connection goes back to the pool as it is: asyncpg still rolls back an open
    transaction and drops listeners (``Connection._reset``), and mediad keeps no other
    session state on pooled connections (no SET, LISTEN, cursors outside a transaction;
    the migrations' advisory lock is released by the migrations). The default reset costs
    a round trip per query (``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET
    ALL``), about a fifth of a ``GET /downloads/{id}``."""


class TerminalHook(Protocol):
    """Told of a job's terminal write (the notifications' outbox, notify/outbox.py): it
    records on the same connection, inside the write's transaction."""

    def listens(self, event: str) -> bool: ...

    async def record_job(self, conn: Any, job: Job, event: str) -> list[dict[str, Any]]: ...

    async def recorded(self, deliveries: Sequence[dict[str, Any]]) -> None: ...


class Store:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        # Turns at the pool, first come first served. asyncpg's pool (an asyncio.Queue)
        # gives a freed connection to whoever asks next: a waiter woken for it that was
        # beaten to it waits again at the back, so under load some reads waited 20-40
        # times the median (pages that share no read, 50 clients: p99 190 ms in the
        # handler, p50 10 ms). A semaphore of the pool's size, which hands each freed
        # turn to the longest waiter, lets only as many ask as there are connections.
        self._turns = asyncio.Semaphore(pool.get_max_size())
        self.outbox: TerminalHook | None = None  # set by the service
        # Jobs asked for together share a query sent after they were all asked (coalesce.py).
        self._jobs: Coalescer[UUID, Job] = Coalescer(self._read_jobs)

    @classmethod
    async def open(cls, dsn: str, *, min_size: int = 1, max_size: int = 10) -> Store:
        with _translated():
            pool = await asyncpg.create_pool(
                dsn,
                min_size=min_size,
                max_size=max_size,
                init=_init_connection,
                reset=_keep_session,
                command_timeout=30,
                timeout=10,
            )
        return cls(pool)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._pool.close(), 10)

    @contextlib.asynccontextmanager
    async def _conn(self) -> AsyncIterator[asyncpg.pool.PoolConnectionProxy[asyncpg.Record]]:
        with _translated():
            async with self._turns, self._pool.acquire() as conn:
                try:
                    yield conn
                except asyncpg.InternalClientError:
                    conn.terminate()  # unusable: the pool opens a fresh one in its place
                    raise

    def connection(
        self,
    ) -> contextlib.AbstractAsyncContextManager[asyncpg.pool.PoolConnectionProxy[asyncpg.Record]]:
        """A pooled connection with the store's error translation, for the modules that
        keep their own queries (``subs_store.py``) or a transaction spanning other modules'
        writes (the notifications outbox)."""
        return self._conn()

    async def migrate(self) -> list[str]:
        async with self._conn() as conn:
            return await migrations.apply(conn)

    async def ping(self) -> None:
        async with self._conn() as conn:
            await conn.fetchval("SELECT 1", timeout=3)

    async def count_by_status(self) -> dict[str, int]:
        """Jobs per status, every instance's (GET /metrics)."""
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT status, count(*) AS n FROM jobs GROUP BY status", timeout=2
            )
        return {r["status"]: int(r["n"]) for r in rows}

    async def insert_job(
        self, job_id: UUID, url: str, job_type: JobType, options: dict[str, Any]
    ) -> Job:
        async with self._conn() as conn:
            row = await conn.fetchrow(
                "INSERT INTO jobs (id, url, type, status, stage, progress, options)"
                " VALUES ($1, $2, $3, 'queued', 'queued', 0, $4) RETURNING *",
                job_id,
                url,
                job_type.value,
                options,
            )
        return Job.from_row(row)

    async def get_job(self, job_id: UUID) -> Job | None:
        """The job as it is now: read by a query sent after this call, shared with the
        other jobs asked for meanwhile (one round trip for them all)."""
        return await self._jobs.get(job_id)

    async def _read_jobs(self, seal: Seal[UUID]) -> dict[UUID, Job]:
        async with self._conn() as conn:
            ids = seal()
            if len(ids) == 1:
                row = await conn.fetchrow(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1", ids[0])
                rows = [row] if row is not None else []
            else:
                rows = await conn.fetch(
                    f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ANY($1::uuid[])", ids
                )
        return {row[0]: Job.from_columns(row) for row in rows}

    async def list_jobs(
        self,
        *,
        statuses: tuple[Status, ...] | None = None,
        search: str | None = None,
        limit: int,
        after: tuple[datetime, UUID] | None = None,
        subscription: UUID | None = None,
    ) -> list[Job]:
        """Newest first; ``after`` is the (created_at, id) of the last job of the previous page.
        ``search`` matches a part of the URL or the file name, ignoring case."""
        rows = await self._page(JOB_COLUMNS, statuses, search, limit, after, subscription)
        return [Job.from_columns(r) for r in rows]

    async def list_jobs_api(
        self,
        *,
        statuses: tuple[Status, ...] | None = None,
        search: str | None = None,
        limit: int,
        after: tuple[datetime, UUID] | None = None,
        subscription: UUID | None = None,
    ) -> list[dict[str, Any]]:
        """:meth:`list_jobs` as the API shows each job (``Job.to_api_orjson``), made
        straight from the row: ``GET /downloads``."""
        rows = await self._page(API_COLUMNS, statuses, search, limit, after, subscription)
        return [api_of_columns(r) for r in rows]

    async def _page(
        self,
        columns: str,
        statuses: tuple[Status, ...] | None,
        search: str | None,
        limit: int,
        after: tuple[datetime, UUID] | None,
        subscription: UUID | None,
    ) -> list[asyncpg.Record]:
        where: list[str] = []
        args: list[Any] = []
        if statuses:
            args.append([s.value for s in statuses])
            where.append(f"status = ANY(${len(args)}::text[])")
        if search:
            args.append("%" + _escape_like(search) + "%")
            where.append(f"(url ILIKE ${len(args)} OR filename ILIKE ${len(args)})")
        if subscription is not None:
            args.append(subscription)
            where.append(f"subscription_id = ${len(args)}")
        async with self._conn() as conn:
            return await conn.fetch(*newest_first("jobs", where, args, limit, after, columns))

    async def mark_running(
        self, job_id: UUID, worker_id: str, instance_id: str | None = None
    ) -> Job | None:
        """queued → running for a new attempt, owned by ``instance_id``; None when the job
        is no longer queued."""
        async with self._conn() as conn:
            row = await conn.fetchrow(
                "UPDATE jobs SET status = 'running', attempts = attempts + 1, worker_id = $2,"
                " instance_id = $3, stage = 'downloading', progress = NULL, speed = NULL,"
                " eta = NULL, error_code = NULL, error_message = NULL,"
                " started_at = now(), finished_at = NULL, updated_at = now()"
                " WHERE id = $1 AND status = 'queued' RETURNING *",
                job_id,
                worker_id,
                instance_id,
            )
        return Job.from_row(row) if row else None

    async def flush_progress(self, rows: Sequence[ProgressRow]) -> int:
        """Write many jobs' progress in one statement; only the current attempt of a running job."""
        if not rows:
            return 0
        async with self._conn() as conn:
            result = await conn.execute(
                "UPDATE jobs AS j SET stage = u.stage, progress = u.progress, speed = u.speed,"
                " eta = u.eta, total_bytes = u.total_bytes, updated_at = now()"
                " FROM unnest($1::uuid[], $2::int[], $3::text[], $4::real[], $5::bigint[],"
                " $6::int[], $7::bigint[]) AS u(id, attempt, stage, progress, speed, eta, total_bytes)"
                " WHERE j.id = u.id AND j.status = 'running' AND j.attempts = u.attempt",
                [r.job_id for r in rows],
                [r.attempt for r in rows],
                [r.live.stage for r in rows],
                [r.live.progress for r in rows],
                [r.live.speed for r in rows],
                [r.live.eta for r in rows],
                [r.live.total_bytes for r in rows],
            )
        return int(result.split()[-1])

    async def complete(
        self,
        job_id: UUID,
        attempt: int,
        *,
        filename: str,
        size: int,
        output_path: str,
        meta: dict[str, Any],
    ) -> Job | None:
        """running → completed, only for the current attempt (a late or stale worker loses)."""
        return await self._end_attempt(
            job_id,
            attempt,
            "completed",
            "status = 'completed', stage = 'finalizing', progress = 100, speed = NULL, eta = 0,"
            " filename = $3, size = $4, output_path = $5, total_bytes = COALESCE(total_bytes, $4),"
            " meta = meta || $6::jsonb, error_code = NULL, error_message = NULL,"
            " finished_at = now()",
            filename,
            size,
            output_path,
            meta,
        )

    async def fail(self, job_id: UUID, attempt: int, error_code: str, message: str) -> Job | None:
        """running → failed for the current attempt."""
        return await self._end_attempt(
            job_id,
            attempt,
            "failed",
            "status = 'failed', error_code = $3, error_message = $4, speed = NULL, eta = NULL,"
            " finished_at = now()",
            error_code,
            message,
        )

    async def requeue(
        self, job_id: UUID, attempt: int, error_code: str, message: str
    ) -> Job | None:
        """running → queued after a lost attempt; the error is kept for the record, and
        counted in the job's ``meta`` against its budget (states.counted)."""
        key = _budget_key(error_code)
        return await self._end_attempt(
            job_id,
            attempt,
            None,
            "status = 'queued', stage = 'queued', speed = NULL, eta = NULL, error_code = $3,"
            " error_message = $4, worker_id = NULL,"
            " meta = CASE WHEN $5::text = '' THEN meta ELSE meta || jsonb_build_object("
            "$5::text, COALESCE((meta->>$5::text)::int, 0) + 1) END",
            error_code,
            message,
            key,
        )

    async def _end_attempt(
        self, job_id: UUID, attempt: int, event: str | None, sets: str, *args: Any
    ) -> Job | None:
        """One guarded write that ends an attempt: it lands only while that attempt is the
        job's current one and still running ($1 is the id, $2 the attempt). A terminal
        ``event`` is recorded in the outbox in the same transaction (a stale write records
        nothing)."""
        sql = (
            f"UPDATE jobs SET {sets}, updated_at = now()"
            " WHERE id = $1 AND status = 'running' AND attempts = $2 RETURNING *"
        )
        outbox = self.outbox if event is not None else None
        deliveries: list[dict[str, Any]] = []
        async with self._conn() as conn:
            if outbox is None or event is None or not outbox.listens(event):
                row = await conn.fetchrow(sql, job_id, attempt, *args)
            else:
                async with conn.transaction():
                    row = await conn.fetchrow(sql, job_id, attempt, *args)
                    if row is not None:
                        deliveries = await outbox.record_job(conn, Job.from_row(row), event)
        if deliveries and outbox is not None:
            await outbox.recorded(deliveries)
        return Job.from_row(row) if row else None

    async def transition(
        self, job_id: UUID, allowed: Iterable[Status], target: Status
    ) -> tuple[Job, Status] | None:
        """A client's status change (cancel, pause, resume, retry), only from ``allowed``.

        Returns the job and the status it had, or None when it is not in one of those
        statuses (any more)."""
        sets = _TRANSITION_SETS[target]
        async with self._conn() as conn:
            row = await conn.fetchrow(
                f"UPDATE jobs AS j SET status = $3, updated_at = now(), {sets}"
                " FROM (SELECT id, status AS previous FROM jobs WHERE id = $1 FOR UPDATE) AS old"
                " WHERE j.id = old.id AND old.previous = ANY($2::text[])"
                " RETURNING j.*, old.previous",
                job_id,
                [s.value for s in allowed],
                target.value,
            )
        return (Job.from_row(row), Status(row["previous"])) if row else None

    async def delete_job(self, job_id: UUID) -> Status | None:
        """Delete a job that is not running; returns the status it had (None: not deleted)."""
        async with self._conn() as conn:
            status = await conn.fetchval(
                "DELETE FROM jobs WHERE id = $1 AND status <> 'running' RETURNING status", job_id
            )
        return Status(status) if status else None

    async def requeue_orphans(self, instance_id: str | None = None) -> list[UUID]:
        """Jobs left running by an instance that is gone: at start-up its own (and those
        of no instance, from before instances had names), later those of an instance
        whose lease expired. Guarded by the owner: two instances requeue a job once."""
        message = (
            "the service stopped while the job was running"
            if instance_id is None
            else "the instance running the job stopped"
        )
        async with self._conn() as conn:
            rows = await conn.fetch(
                "UPDATE jobs SET status = 'queued', stage = 'queued', speed = NULL, eta = NULL,"
                " worker_id = NULL, error_code = 'worker_lost', error_message = $2,"
                " meta = meta || jsonb_build_object('interruptions',"
                " COALESCE((meta->>'interruptions')::int, 0) + 1),"
                " updated_at = now() WHERE status = 'running'"
                " AND instance_id IS NOT DISTINCT FROM $1 RETURNING id",
                instance_id,
                message,
            )
        return [r["id"] for r in rows]

    async def running_owners(self) -> dict[str, int]:
        """Instance id → how many jobs it runs, by the rows."""
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT instance_id, count(*) AS n FROM jobs"
                " WHERE status = 'running' AND instance_id IS NOT NULL GROUP BY instance_id"
            )
        return {r["instance_id"]: r["n"] for r in rows}

    async def queued_ids(self) -> list[UUID]:
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT id FROM jobs WHERE status = 'queued' ORDER BY created_at, id"
            )
        return [r["id"] for r in rows]


def _budget_key(error_code: str) -> str:
    """The ``meta`` key a requeued attempt is counted under ('' for none)."""
    if states.is_infrastructure(error_code):
        return states.INTERRUPTIONS_KEY
    if error_code in states.JOB_TRANSIENT_ERRORS:
        return states.FAILURES_KEY
    return ""


def newest_first(
    table: str,
    where: list[str],
    args: list[Any],
    limit: int,
    after: tuple[datetime, UUID] | None,
    columns: str = "*",
) -> tuple[Any, ...]:
    """A keyset page of ``table``'s ``columns``, newest first: the SQL and its arguments,
    with ``where`` (conditions on ``args``' ``$n``) and the (created_at, id) of the previous
    page's last row."""
    if after is not None:
        args = [*args, *after]
        where = [*where, f"(created_at, id) < (${len(args) - 1}, ${len(args)})"]
    sql = f"SELECT {columns} FROM {table}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY created_at DESC, id DESC LIMIT ${len(args) + 1}"
    return (sql, *args, limit)


def _escape_like(text: str) -> str:
    """``text`` matched literally by LIKE (its default escape character is ``\\``)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")

"""Subscriptions in PostgreSQL: the rows, their checks and what each has seen. One method
per query, on the store's pool (``Store.connection``); every change that must agree with
another is one transaction.

The claim: ``subscriptions.check_id`` is set only ``WHERE check_id IS NULL`` (a check
queued or running), and cleared in the transaction that records the check's end, so one
subscription is never checked twice at once, whichever instance asks.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from mediad import wire
from mediad.models import Job, JobType
from mediad.store import Store

_CHECK_FIELDS = ("id", "status", "started_at", "finished_at", "found", "created",
                 "error_code", "error_message")  # fmt: skip
# A subscription with its latest finished check (c_*).
_SELECT = (
    "SELECT s.*, "
    + ", ".join(f"c.{f} AS c_{f}" for f in _CHECK_FIELDS)
    + " FROM subscriptions s LEFT JOIN LATERAL (SELECT * FROM subscription_checks"
    " WHERE subscription_id = s.id AND status IN ('ok', 'failed')"
    " ORDER BY finished_at DESC NULLS LAST LIMIT 1) c ON true"
)
# When the next scheduled check is due: the interval, give or take ``$jitter`` of it.
_NEXT = "now() + s.interval_s * (1 + {j} * (2 * random() - 1)) * interval '1 second'"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass(frozen=True, slots=True)
class CheckRecord:
    check_id: UUID
    status: str
    started_at: datetime | None
    finished_at: datetime | None
    found: int | None
    created: int | None
    error_code: str | None
    error_message: str | None

    @classmethod
    def from_row(cls, row: Any, prefix: str = "") -> CheckRecord:
        return cls(*(row[prefix + f] for f in _CHECK_FIELDS))

    def to_api(self) -> dict[str, Any]:
        return {
            "checkId": str(self.check_id),
            "status": self.status,
            "startedAt": _iso(self.started_at),
            "finishedAt": _iso(self.finished_at),
            "found": self.found,
            "created": self.created,
            "errorCode": self.error_code,
            "errorMessage": self.error_message,
        }


@dataclass(frozen=True, slots=True)
class Subscription:
    id: UUID
    url: str
    type: str
    options: dict[str, Any]
    interval_s: int
    max_items: int
    backfill: bool
    enabled: bool
    title: str | None
    seen: int
    check_id: UUID | None
    next_check_at: datetime | None
    created_at: datetime
    updated_at: datetime
    last_check: CheckRecord | None

    @classmethod
    def from_row(cls, row: Any) -> Subscription:
        last = CheckRecord.from_row(row, "c_") if row["c_id"] is not None else None
        return cls(
            row["id"], row["url"], row["type"], row["options"], row["interval_s"],
            row["max_items"], row["backfill"], row["enabled"], row["title"], row["seen"],
            row["check_id"], row["next_check_at"], row["created_at"], row["updated_at"], last,
        )  # fmt: skip

    def to_api(self) -> dict[str, Any]:
        return {
            "subscriptionId": str(self.id),
            "url": self.url,
            "type": self.type,
            "options": self.options,
            "intervalS": self.interval_s,
            "maxItems": self.max_items,
            "backfill": self.backfill,
            "enabled": self.enabled,
            "title": self.title,
            "seen": self.seen,
            "checking": self.check_id is not None,
            "lastCheck": self.last_check.to_api() if self.last_check else None,
            "nextCheckAt": _iso(self.next_check_at) if self.enabled else None,
            "createdAt": _iso(self.created_at),
            "updatedAt": _iso(self.updated_at),
        }


@dataclass(frozen=True, slots=True)
class Claimed:
    """A check that may start: what its listing needs."""

    check_id: UUID
    attempt: int
    url: str
    type: str
    max_items: int
    cookies: str | None = None  # the cookie file its options name, for the listing too


@dataclass(frozen=True, slots=True)
class Finished:
    subscription: Subscription
    check: CheckRecord
    jobs: list[Job]
    # The notifications recorded in the same transaction (``SubsStore.notes``).
    deliveries: list[dict[str, Any]] = field(default_factory=list)


# Records a finished check's notifications on the connection of its ending transaction.
Notes = Callable[[Any, Finished], Awaitable[list[dict[str, Any]]]]


class SubsStore:
    def __init__(self, store: Store, notes: Notes | None = None) -> None:
        self._store = store
        self.notes = notes

    def _conn(self) -> Any:
        return self._store.connection()

    async def _one(self, conn: Any, sub_id: UUID) -> Subscription | None:
        row = await conn.fetchrow(_SELECT + " WHERE s.id = $1", sub_id)
        return Subscription.from_row(row) if row else None

    # -- the API's

    async def create(self, url: str, kind: str, options: dict[str, Any], interval_s: int,
                     max_items: int, backfill: bool, enabled: bool) -> Subscription:  # fmt: skip
        sub_id = uuid.uuid4()
        async with self._conn() as conn:
            await conn.execute(
                "INSERT INTO subscriptions (id, url, type, options, interval_s, max_items,"
                " backfill, enabled, next_check_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8,"
                " CASE WHEN $8 THEN now() END)",
                sub_id, url, kind, options, interval_s, max_items, backfill, enabled,
            )  # fmt: skip
            found = await self._one(conn, sub_id)
        assert found is not None
        return found

    async def get(self, sub_id: UUID) -> Subscription | None:
        async with self._conn() as conn:
            return await self._one(conn, sub_id)

    async def all(self, limit: int = 1000) -> list[Subscription]:
        async with self._conn() as conn:
            rows = await conn.fetch(
                _SELECT + " ORDER BY s.created_at DESC, s.id DESC LIMIT $1", limit
            )
        return [Subscription.from_row(r) for r in rows]

    async def update(self, sub_id: UUID, changes: dict[str, Any]) -> Subscription | None:
        """Change the given columns; a (re-)enabled one is due at once at the latest one
        interval from now, a disabled one never."""
        names = sorted(changes)
        sets = ", ".join(f"{n} = ${i + 2}" for i, n in enumerate(names))
        async with self._conn() as conn, conn.transaction():
            done = await conn.fetchval(
                f"UPDATE subscriptions s SET {sets}, updated_at = now() WHERE id = $1 RETURNING id",
                sub_id, *(changes[n] for n in names),
            )  # fmt: skip
            if done is None:
                return None
            await conn.execute(
                "UPDATE subscriptions SET next_check_at = CASE WHEN NOT enabled THEN NULL"
                " ELSE LEAST(COALESCE(next_check_at, now()),"
                " now() + interval_s * interval '1 second') END WHERE id = $1",
                sub_id,
            )
            return await self._one(conn, sub_id)

    async def delete(self, sub_id: UUID) -> bool:
        async with self._conn() as conn:
            return bool(
                await conn.fetchval("DELETE FROM subscriptions WHERE id = $1 RETURNING id", sub_id)
            )

    async def checks(self, sub_id: UUID, limit: int = 50) -> list[CheckRecord]:
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT * FROM subscription_checks WHERE subscription_id = $1"
                " ORDER BY queued_at DESC, id DESC LIMIT $2",
                sub_id, limit,
            )  # fmt: skip
        return [CheckRecord.from_row(r) for r in rows]

    # -- claims

    async def claim(self, sub_id: UUID) -> UUID | None:
        """Queue a check of this subscription unless one is queued or running."""
        check_id = uuid.uuid4()
        async with self._conn() as conn, conn.transaction():
            claimed = await conn.fetchval(
                "UPDATE subscriptions SET check_id = $2, updated_at = now()"
                " WHERE id = $1 AND check_id IS NULL RETURNING id",
                sub_id, check_id,
            )  # fmt: skip
            if claimed is None:
                return None
            await conn.execute(
                "INSERT INTO subscription_checks (id, subscription_id) VALUES ($1, $2)",
                check_id, sub_id,
            )  # fmt: skip
        return check_id

    async def claim_due(self, limit: int) -> list[UUID]:
        """Queue checks of up to ``limit`` due subscriptions (oldest due first); those
        another instance is claiming now are skipped, not waited for."""
        async with self._conn() as conn:
            rows = await conn.fetch(
                "WITH due AS (SELECT id FROM subscriptions WHERE enabled AND check_id IS NULL"
                " AND next_check_at <= now() ORDER BY next_check_at LIMIT $1"
                " FOR UPDATE SKIP LOCKED),"
                " made AS (INSERT INTO subscription_checks (id, subscription_id)"
                " SELECT gen_random_uuid(), id FROM due RETURNING id, subscription_id)"
                " UPDATE subscriptions s SET check_id = made.id, updated_at = now() FROM made"
                " WHERE s.id = made.subscription_id RETURNING made.id",
                limit,
            )
        return [r["id"] for r in rows]

    async def spread_overdue(self, window_s: float) -> int:
        """At start-up: the overdue subscriptions are due over the next ``window_s``
        instead of all at once."""
        async with self._conn() as conn:
            done = await conn.execute(
                "UPDATE subscriptions SET next_check_at = now() + random() * $1 * interval"
                " '1 second' WHERE enabled AND check_id IS NULL AND next_check_at < now()",
                float(window_s),
            )
        return int(done.split()[-1])

    # -- a check's life

    async def mark_running(
        self, check_id: UUID, worker_id: str, instance_id: str
    ) -> Claimed | None:
        async with self._conn() as conn:
            row = await conn.fetchrow(
                "UPDATE subscription_checks c SET status = 'running', attempts = c.attempts + 1,"
                " worker_id = $2, instance_id = $3, started_at = now(), error_code = NULL,"
                " error_message = NULL FROM subscriptions s WHERE c.id = $1"
                " AND c.status = 'queued' AND s.id = c.subscription_id"
                " RETURNING c.attempts, s.url, s.type, s.max_items, s.options->>'cookies' AS cookies",
                check_id, worker_id, instance_id,
            )  # fmt: skip
        if row is None:
            return None
        return Claimed(
            check_id, row["attempts"], row["url"], row["type"], row["max_items"], row["cookies"]
        )

    async def finish_ok(self, check_id: UUID, attempt: int, title: str | None,
                        entries: list[wire.ListedEntry], jitter: float) -> Finished | None:  # fmt: skip
        """The check's end and its jobs, in one transaction: the entries not seen before
        are remembered and get a job each (none on a first check without backfill).
        None when the check is no longer this attempt's (deleted, lost meanwhile)."""
        async with self._conn() as conn, conn.transaction():
            sub = await conn.fetchrow(
                "SELECT s.* FROM subscription_checks c JOIN subscriptions s"
                " ON s.id = c.subscription_id WHERE c.id = $1 AND c.status = 'running'"
                " AND c.attempts = $2 FOR UPDATE OF s, c",
                check_id, attempt,
            )  # fmt: skip
            if sub is None:
                return None
            new = await conn.fetch(
                "INSERT INTO subscription_seen (subscription_id, extractor, entry_id)"
                " SELECT $1, x, i FROM unnest($2::text[], $3::text[]) AS t(x, i)"
                " ON CONFLICT DO NOTHING RETURNING extractor, entry_id",
                sub["id"], [e.extractor for e in entries], [e.entry_id for e in entries],
            )  # fmt: skip
            fresh = {(r["extractor"], r["entry_id"]) for r in new}
            make = sub["backfill"] or sub["listed_once"]
            # Listings are newest first: the oldest new entry is queued first.
            urls = [e.url for e in reversed(entries) if make and (e.extractor, e.entry_id) in fresh]
            jobs = await self._insert_jobs(conn, sub, urls)
            check = await conn.fetchrow(
                "UPDATE subscription_checks SET status = 'ok', found = $2, created = $3,"
                " finished_at = now() WHERE id = $1 RETURNING *",
                check_id, len(entries), len(jobs),
            )  # fmt: skip
            await conn.execute(
                "UPDATE subscriptions s SET check_id = NULL, listed_once = true,"
                " title = COALESCE($2, title), seen = seen + $3, updated_at = now(),"
                f" next_check_at = CASE WHEN enabled THEN {_NEXT.format(j='$4')} END"
                " WHERE id = $1",
                sub["id"], title, len(fresh), float(jitter),
            )  # fmt: skip
            found = await self._one(conn, sub["id"])
            assert found is not None
            return await self._noted(conn, Finished(found, CheckRecord.from_row(check), jobs))

    async def _noted(self, conn: Any, done: Finished) -> Finished:
        """``done`` with its notifications, recorded in the caller's transaction: a crash
        after the commit loses none of them (the notifications outbox)."""
        if self.notes is None:
            return done
        deliveries = await self.notes(conn, done)
        return Finished(done.subscription, done.check, done.jobs, deliveries)

    async def _insert_jobs(self, conn: Any, sub: Any, urls: list[str]) -> list[Job]:
        if not urls:
            return []
        ids = [uuid.uuid4() for _ in urls]
        rows = await conn.fetch(
            "INSERT INTO jobs (id, url, type, status, stage, progress, options, subscription_id)"
            " SELECT i, u, $3, 'queued', 'queued', 0, $4, $5"
            " FROM unnest($1::uuid[], $2::text[]) WITH ORDINALITY AS t(i, u, n)"
            " ORDER BY n RETURNING *",
            ids, urls, JobType(sub["type"]).value, sub["options"], sub["id"],
        )  # fmt: skip
        by_id = {r["id"]: Job.from_row(r) for r in rows}
        return [by_id[i] for i in ids]

    async def finish_failed(self, check_id: UUID, attempt: int, code: str, message: str,
                            jitter: float) -> Finished | None:  # fmt: skip
        async with self._conn() as conn, conn.transaction():
            check = await conn.fetchrow(
                "UPDATE subscription_checks SET status = 'failed', error_code = $3,"
                " error_message = $4, finished_at = now() WHERE id = $1"
                " AND status = 'running' AND attempts = $2 RETURNING *",
                check_id, attempt, code, message,
            )  # fmt: skip
            if check is None:
                return None
            await conn.execute(
                "UPDATE subscriptions s SET check_id = NULL, updated_at = now(),"
                f" next_check_at = CASE WHEN enabled THEN {_NEXT.format(j='$2')} END"
                " WHERE id = $1",
                check["subscription_id"], float(jitter),
            )  # fmt: skip
            found = await self._one(conn, check["subscription_id"])
            if found is None:
                return None
            return await self._noted(conn, Finished(found, CheckRecord.from_row(check), []))

    async def requeue(self, check_id: UUID, attempt: int, code: str, message: str) -> bool:
        """running → queued (lost to mediad's own fault: its worker, its instance)."""
        async with self._conn() as conn:
            done = await conn.fetchval(
                "UPDATE subscription_checks SET status = 'queued', worker_id = NULL,"
                " error_code = $3, error_message = $4 WHERE id = $1 AND status = 'running'"
                " AND attempts = $2 RETURNING id",
                check_id, attempt, code, message,
            )  # fmt: skip
        return done is not None

    # -- recovery (upkeep.py)

    async def queued_ids(self) -> list[UUID]:
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT id FROM subscription_checks WHERE status = 'queued' ORDER BY queued_at"
            )
        return [r["id"] for r in rows]

    async def requeue_orphans(self, instance_id: str | None) -> list[UUID]:
        """Checks left running by an instance that is gone (or by this one before a
        restart): queued again, to run from the start."""
        async with self._conn() as conn:
            rows = await conn.fetch(
                "UPDATE subscription_checks SET status = 'queued', worker_id = NULL,"
                " error_code = 'worker_lost', error_message = 'the instance running the"
                " check stopped' WHERE status = 'running'"
                " AND instance_id IS NOT DISTINCT FROM $1 RETURNING id",
                instance_id,
            )
        return [r["id"] for r in rows]

    async def running_owners(self) -> dict[str, int]:
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT instance_id, count(*) AS n FROM subscription_checks"
                " WHERE status = 'running' AND instance_id IS NOT NULL GROUP BY instance_id"
            )
        return {r["instance_id"]: r["n"] for r in rows}

"""The outbox: the ``notifications`` table (schema/003_notifications.sql).

A notification is recorded in the same transaction as the state it announces, so a crash
can lose neither: :meth:`Outbox.record` takes an open connection inside the caller's
transaction. The store records a job's ``completed``/``failed`` with its terminal write
(``Store._end_attempt``); other writers do the same::

    async with store.connection() as conn, conn.transaction():
        ...                                   # the change itself
        deliveries = await outbox.record(conn, outbox.chosen(None, "subscription.new"),
                                         "subscription.new", subscription=sub, job_ids=ids)
    await outbox.recorded(deliveries)         # after the commit: wake the sender, announce

The sender (``sender.py``) then claims due rows (``FOR UPDATE SKIP LOCKED``, pushing
``next_attempt_at`` past the attempt as a lease), sends and marks them. Delivery is at
least once: the delivery id (the row's id) is the same on every attempt.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

import asyncpg

from mediad.config import Config
from mediad.models import Job
from mediad.notify import targets as t
from mediad.notify.targets import NotifyTarget
from mediad.store import newest_first

log = logging.getLogger(__name__)

Conn = Any  # an asyncpg connection (or a pool's proxy of one)
Announce = Callable[[dict[str, Any]], Awaitable[None]]


class Connections(Protocol):
    """What the outbox needs of the store: a pooled connection."""

    def connection(self) -> Any: ...


def delivery_api(row: Any) -> dict[str, Any]:
    """A row as the API shows it (the ``Delivery`` schema)."""
    pending = row["status"] == "pending"
    return {
        "deliveryId": str(row["id"]),
        "target": row["target"],
        "event": row["event"],
        "jobId": _str(row["job_id"]),
        "subscriptionId": _str(row["subscription_id"]),
        "status": row["status"],
        "attempts": row["attempts"],
        "lastError": row["last_error"],
        "createdAt": row["created_at"].isoformat(),
        "nextAttemptAt": _iso(row["next_attempt_at"]) if pending else None,
        "deliveredAt": _iso(row["delivered_at"]),
    }


def webhook_body(row: Any) -> dict[str, Any]:
    """The ``WebhookBody`` of a row: what was frozen at record time, and its ids."""
    payload = row["payload"]
    return {
        "deliveryId": str(row["id"]),
        "event": row["event"],
        "createdAt": row["created_at"].isoformat(),
        "job": payload.get("job"),
        "subscription": payload.get("subscription"),
        "jobIds": payload.get("jobIds") or [],
    }


class Outbox:
    """Records deliveries, claims and marks them, lists them. One per service."""

    def __init__(
        self, config: Config, store: Connections, announce: Announce | None = None
    ) -> None:
        self.config = config
        self.store = store
        self.targets: dict[str, NotifyTarget] = {x.name: x for x in config.notify}
        self.instance_id = config.instance_id
        self.wake = asyncio.Event()  # set when this instance recorded something
        self._announce = announce

    # -- recording

    def chosen(self, named: Iterable[str] | None, event: str) -> list[NotifyTarget]:
        return t.chosen(list(self.targets.values()), named, event)

    def for_job(self, job: Job, event: str) -> list[NotifyTarget]:
        """The targets told of a job's end: its ``options.notify`` or the defaults."""
        named = job.options.get("notify")
        return self.chosen(named if isinstance(named, list) else None, event)

    def listens(self, event: str) -> bool:
        """Whether any target hears of ``event`` at all (else no transaction is needed)."""
        return any(event in x.events for x in self.targets.values())

    async def record(
        self,
        conn: Conn,
        targets: Sequence[NotifyTarget | str],
        event: str,
        *,
        job: dict[str, Any] | None = None,
        subscription: dict[str, Any] | None = None,
        job_ids: Sequence[str] = (),
    ) -> list[dict[str, Any]]:
        """Insert one pending delivery per target on ``conn`` (inside the caller's
        transaction); returns them as the API shows them. ``job``/``subscription`` are
        the API's JSON of them, frozen into the payload."""
        names = [x.name if isinstance(x, NotifyTarget) else x for x in targets]
        if not names:
            return []
        payload = {"job": job, "subscription": subscription, "jobIds": list(job_ids)}
        job_id = job.get("jobId") if job else None
        sub_id = subscription.get("subscriptionId") if subscription else None
        rows = await conn.fetch(
            "INSERT INTO notifications (id, target, event, job_id, subscription_id, payload)"
            " SELECT u.id, u.target, $3, $4::uuid, $5::uuid, $6::jsonb"
            " FROM unnest($1::uuid[], $2::text[]) AS u(id, target) RETURNING *",
            [uuid.uuid4() for _ in names],
            names,
            event,
            job_id,
            sub_id,
            payload,
        )
        return [delivery_api(r) for r in rows]

    async def record_job(self, conn: Conn, job: Job, event: str) -> list[dict[str, Any]]:
        """A job's ``completed``/``failed``, with the job as ``GET /downloads/{id}`` shows it."""
        return await self.record(conn, self.for_job(job, event), event, job=job.to_api())

    async def recorded(self, deliveries: Sequence[dict[str, Any]]) -> None:
        """After the recording transaction committed: wake the sender, announce them."""
        if not deliveries:
            return
        self.wake.set()
        for delivery in deliveries:
            await self.announce(delivery)

    async def announce(self, delivery: dict[str, Any]) -> None:
        if self._announce is not None:
            try:
                await self._announce(delivery)
            except Exception:  # an announcement is best effort; the row is the truth
                log.exception("could not announce a notification-update")

    async def record_test(self, target: NotifyTarget) -> dict[str, Any]:
        async with self._conn() as conn:
            (delivery,) = await self.record(conn, [target], t.TEST_EVENT)
        await self.recorded([delivery])
        return delivery

    # -- sending

    async def release_own_claims(self) -> int:
        """At start-up: rows this instance claimed before it stopped are due at once."""
        async with self._conn() as conn:
            done = await conn.execute(
                "UPDATE notifications SET next_attempt_at = now(), claimed_by = NULL"
                " WHERE status = 'pending' AND claimed_by = $1",
                self.instance_id,
            )
        return int(done.split()[-1])

    async def claim(self, limit: int, lease_s: float) -> list[Any]:
        """Take up to ``limit`` due rows for one attempt each; others skip them, and they
        are due again after ``lease_s`` if this instance never marks them."""
        async with self._conn() as conn:
            return list(
                await conn.fetch(
                    "UPDATE notifications AS n SET attempts = n.attempts + 1, claimed_by = $3,"
                    " next_attempt_at = now() + make_interval(secs => $2)"
                    " FROM (SELECT id FROM notifications WHERE status = 'pending'"
                    " AND next_attempt_at <= now() ORDER BY next_attempt_at LIMIT $1"
                    " FOR UPDATE SKIP LOCKED) AS due WHERE n.id = due.id RETURNING n.*",
                    limit,
                    lease_s,
                    self.instance_id,
                )
            )

    async def next_due_s(self) -> float | None:
        """Seconds until the next pending row is due (0 when one is), None when none."""
        async with self._conn() as conn:
            value = await conn.fetchval(
                "SELECT EXTRACT(EPOCH FROM min(next_attempt_at) - now())::float8"
                " FROM notifications WHERE status = 'pending'"
            )
        return None if value is None else max(0.0, float(value))

    async def delivered(self, row: Any) -> Any:
        return await self._mark(
            row, "status = 'delivered', delivered_at = now(), next_attempt_at = NULL", None
        )

    async def failed_attempt(
        self, row: Any, error: str, retry_in_s: float, *, permanent: bool
    ) -> Any:
        """An attempt that failed: the next one after ``retry_in_s`` (never past the give-up
        time, when one last attempt is made), or given up (``failed``) when the error is
        permanent or the give-up time has come."""
        give_up = self.config.notifications.give_up_after_s
        return await self._mark(
            row,
            "status = CASE WHEN $4 OR created_at + make_interval(secs => $5) <= now()"
            " THEN 'failed' ELSE 'pending' END,"
            " next_attempt_at = CASE WHEN $4 OR created_at + make_interval(secs => $5) <= now()"
            " THEN NULL ELSE LEAST(now() + make_interval(secs => $6),"
            " created_at + make_interval(secs => $5)) END",
            error[:1000],
            permanent,
            give_up,
            retry_in_s,
        )

    async def _mark(self, row: Any, sets: str, error: str | None, *args: Any) -> Any:
        """Guarded by the attempt: a claim that expired and was taken again writes nothing."""
        async with self._conn() as conn:
            return await conn.fetchrow(
                f"UPDATE notifications SET {sets}, last_error = $3, claimed_by = NULL"
                " WHERE id = $1 AND attempts = $2 AND status = 'pending' RETURNING *",
                row["id"],
                row["attempts"],
                error,
                *args,
            )

    # -- reading

    async def list(
        self, *, statuses: Sequence[str] | None, limit: int, after: tuple[datetime, UUID] | None
    ) -> list[dict[str, Any]]:
        where: list[str] = []
        args: list[Any] = []
        if statuses:
            args.append(list(statuses))
            where.append(f"status = ANY(${len(args)}::text[])")
        async with self._conn() as conn:
            rows = await conn.fetch(*newest_first("notifications", where, args, limit, after))
        return [delivery_api(r) for r in rows]

    @asynccontextmanager
    async def _conn(self) -> AsyncIterator[asyncpg.Connection]:
        async with self.store.connection() as conn:
            yield conn


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()

"""How an attempt ends: its result promoted and recorded, or its failure retried or
recorded, and in every case its slot and worker freed exactly once.

Terminal writes are guarded by the attempt in PostgreSQL (``status = 'running' AND
attempts = N``), so a stale worker can never overwrite a newer attempt's result; they are
retried while PostgreSQL is down, because a job must not stay ``running`` for nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar
from uuid import UUID

from mediad import cookies, results, states, wire
from mediad.attempts import Attempt, Phase, Roster
from mediad.backoff import Backoff
from mediad.config import Config
from mediad.errors import QueueUnavailable, StoreUnavailable
from mediad.leases import Leases
from mediad.metrics import Metrics
from mediad.ports import Publisher
from mediad.queue import Queue
from mediad.store import ProgressRow, Store

if TYPE_CHECKING:
    from mediad.checks import Checks

log = logging.getLogger(__name__)
T = TypeVar("T")
Spawn = Callable[[Awaitable[None], str], None]


class Outcomes:
    def __init__(
        self,
        config: Config,
        store: Store,
        queue: Queue,
        publisher: Publisher,
        roster: Roster,
        *,
        changed: asyncio.Event,
        spawn: Spawn,
        stopping: Callable[[], bool],
        leases: Leases | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.config = config
        # Jobs whose attempt was given a copy of a cookie file (dispatcher._stage_cookies),
        # removed when the attempt ends, however it ends.
        self.cookie_copies: set[str] = set()
        self.metrics = metrics or Metrics()
        self.store = store
        self.queue = queue
        self.publisher = publisher
        self.roster = roster
        self._changed = changed
        self._spawn = spawn
        self._stopping = stopping
        self.leases = leases
        self.checks: Checks | None = None  # a check's end is recorded there (checks.py)

    async def settle(self, a: Attempt, outcome: Awaitable[None]) -> None:
        """Record an attempt's outcome; whatever goes wrong, the job is not left running
        with its slot held."""
        try:
            await outcome
        except Exception:
            log.exception("could not record the outcome", extra={"jobId": a.job_id})
            try:
                await self.fail(
                    a, "internal_error", "mediad could not record this attempt's outcome"
                )
            except Exception:
                log.exception("could not fail the attempt either", extra={"jobId": a.job_id})
                await self.release(a)

    async def complete(self, a: Attempt, ev: wire.CompletedEvent, staging: Path) -> None:
        names = [f.name for f in ev.files]
        missing = await asyncio.to_thread(results.missing, staging, names)
        if missing:
            await self.fail(a, "tool_failed", f"the result file {missing!r} is missing")
            return
        await asyncio.to_thread(results.promote, staging, names)
        first = ev.files[0].name
        job = await self.write_terminal(
            lambda: self.store.complete(
                UUID(ev.job_id),
                ev.attempt,
                filename=first,
                size=ev.size,
                output_path=f"{ev.job_id}/{first}",
                meta={"files": [f.encode() for f in ev.files]},
            )
        )
        await self.release(a)
        if job is None:  # paused or cancelled meanwhile: these files are no result
            await asyncio.to_thread(results.withdraw, staging.parent, names)
            return
        log.info("job completed", extra={"jobId": ev.job_id, "stage": "finalizing"})
        self.metrics.job_finished(job)
        await self.publisher.completed(job)
        await self.publisher.job_update(job)

    async def fail(self, a: Attempt, code: str, message: str) -> None:
        """A failed attempt: retried when the error is transient and attempts remain."""
        a.settle()
        if a.check and self.checks is not None:
            await self.checks.failed(a, code, message)
            return
        if self.retried(a, code):
            await self._requeue(a, code, message)
            return
        if a.dirty:
            row = ProgressRow(UUID(a.job_id), a.attempt, a.live)
            await self.write_terminal(lambda: self.store.flush_progress([row]))
        job = await self.write_terminal(
            lambda: self.store.fail(UUID(a.job_id), a.attempt, code, message)
        )
        await self.release(a)
        if job is None:
            return
        log.info(
            "job failed: %s: %s", code, message, extra={"jobId": a.job_id, "stage": a.live.stage}
        )
        self.metrics.job_finished(job)
        await self.publisher.failed(a.job_id, code, message)
        await self.publisher.job_update(job)

    async def lost(self, a: Attempt, code: str, message: str) -> None:
        """An attempt lost to something other than the tool's verdict (its worker left, it
        stalled): the message says how many attempts were made when none is left."""
        if not self.retried(a, code):
            attempts = a.attempt
            message = f"{message} ({attempts} attempt{'s' if attempts > 1 else ''})"
        await self.fail(a, code, message)

    def retried(self, a: Attempt, code: str) -> bool:
        interruptions, failures = states.counted(code, a.interruptions, a.failures)
        return states.should_retry(
            code,
            failures,
            self.config.queue.max_attempts,
            interruptions=interruptions,
            max_interruptions=self.config.queue.max_interruptions,
        )

    async def _requeue(self, a: Attempt, code: str, message: str) -> None:
        job = await self.write_terminal(
            lambda: self.store.requeue(UUID(a.job_id), a.attempt, code, message)
        )
        await self.release(a)
        if job is None:
            return
        interruptions, failures = states.counted(code, a.interruptions, a.failures)
        backoff = self.config.queue.retry_backoff_s
        if states.is_infrastructure(code):  # ours: back soon, whatever the count
            delay = states.retry_delay_s(interruptions, backoff, 30.0)
        else:
            delay = states.retry_delay_s(failures, backoff)
        log.info(
            "attempt %d lost (%s), retrying in %.1fs", a.attempt, code, delay,
            extra={"jobId": a.job_id},
        )  # fmt: skip
        self._spawn(self._push_later(a.job_id, delay), f"retry-{a.job_id}")
        await self.publisher.job_update(job)

    async def _push_later(self, job_id: str, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        try:
            await self.queue.push(job_id)
        except QueueUnavailable:
            pass  # the job is queued in PostgreSQL; the reconciler pushes it when Redis is back

    async def requeue_for_shutdown(self, a: Attempt) -> bool:
        """A job stopped by a graceful shutdown goes back to ``queued`` for the next start."""
        if a.check:
            return False  # left running: the next start requeues this instance's checks
        job = await self.store.requeue(
            UUID(a.job_id), a.attempt, "shutdown", "the service stopped during the job"
        )
        if job is None:
            return False
        try:
            await self.queue.push(a.job_id)
        except QueueUnavailable:
            pass  # the next start reconciles
        await self.publisher.job_update(job)
        return True

    async def release(self, a: Attempt) -> None:
        """Free the attempt's slot and worker, once; if a stop was asked meanwhile (its
        tool is gone either way), what was to follow it runs now."""
        was_stopping = a.phase is Phase.STOPPING
        if not a.release():
            return
        self.roster.unbind(a)
        self._changed.set()
        if a.job_id in self.cookie_copies:
            self.cookie_copies.discard(a.job_id)
            work_dir = Path(self.config.storage.tmp_dir) / a.job_id
            await asyncio.to_thread(cookies.remove_copy, work_dir)
        try:
            await self.queue.done(a.queue_entry)
            if a.slot is not None and self.leases is not None:
                await self.leases.release(a.slot)
        except QueueUnavailable:
            pass  # the reconciler clears stranded entries; a slot's lease runs out
        then = a.take_after_stop() if was_stopping else None
        if then is not None:
            await then()

    async def stopped(self, a: Attempt) -> None:
        """The attempt's tool is gone (confirmed, its worker left, or the stop timed out):
        free the slot, then do what was to follow the stop."""
        await self.release(a)

    async def write_terminal(self, write: Callable[[], Awaitable[T]]) -> T:
        """Retry a write that must land (a terminal state) while PostgreSQL is down."""
        backoff = Backoff(0.2, 2.0, 5.0)
        while True:
            try:
                return await write()
            except StoreUnavailable as exc:
                if self._stopping():
                    raise
                delay = backoff.next()
                log.warning("retrying a terminal write in %.1fs: %s", delay, exc)
                await asyncio.sleep(delay)

"""The dispatcher's background duties: the progress flusher, the reconciler and the
watchdog, each a loop started by :meth:`Upkeep.start` beside the dispatch loop.

* The **flusher** writes every running job whose progress changed since the last
  flush in one statement every ``progress.throttle_ms`` (2 to 4 writes per job a second).
* The **reconciler** makes Redis agree with PostgreSQL (at start-up, every
  ``queue.reconcile_interval_s``, after a Redis outage): ids stranded in ``processing``
  go back, ``queued`` rows missing from the list are pushed.
* The **watchdog** stops an attempt that shows no movement and no CPU for
  ``queue.watchdog_s`` and fails or retries it as ``stalled``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from uuid import UUID

from mediad.attempts import Attempt
from mediad.dispatcher import Dispatcher
from mediad.errors import QueueUnavailable, StoreUnavailable
from mediad.store import ProgressRow

log = logging.getLogger(__name__)


class Upkeep:
    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self.config = dispatcher.config
        self.store = dispatcher.store
        self.queue = dispatcher.queue
        self.roster = dispatcher.roster

    def start(self) -> list[asyncio.Task[None]]:
        """Start the dispatch loop and the three duties; the caller watches them (one
        dying stops the service)."""
        return [
            asyncio.create_task(self.dispatcher.run(self.reconcile), name="dispatcher"),
            asyncio.create_task(self._flush_loop(), name="progress-flusher"),
            asyncio.create_task(self._reconcile_loop(), name="reconciler"),
            asyncio.create_task(self._watchdog_loop(), name="watchdog"),
        ]

    async def stop(self) -> None:
        """Stop the dispatcher's tasks and write the last progress."""
        await self.dispatcher.stop()
        try:
            await self.flush()
        except StoreUnavailable:
            log.warning("could not write the last progress at shutdown: PostgreSQL is down")

    # -- flusher

    async def flush(self) -> int:
        """Write every job whose progress changed since the last flush, in one statement."""
        dirty = [a for a in self.roster if a.dirty and a.counts_events]
        if not dirty:
            return 0
        for a in dirty:
            a.dirty = False
        try:
            return await self.store.flush_progress(
                [ProgressRow(UUID(a.job_id), a.attempt, a.live) for a in dirty]
            )
        except StoreUnavailable:
            for a in dirty:
                a.dirty = True
            raise

    async def _flush_loop(self) -> None:
        interval = self.config.progress.throttle_ms / 1000
        failing = False
        while True:
            await asyncio.sleep(interval)
            try:
                await self.flush()
                failing = False
            except StoreUnavailable as exc:
                if not failing:
                    log.warning("progress not written, will retry: %s", exc)
                failing = True

    # -- reconciler

    async def reconcile(self, *, startup: bool = False) -> tuple[int, int]:
        """Make Redis agree with PostgreSQL: (stranded ids requeued, missing ids pushed)."""
        if startup:
            orphans = await self.store.requeue_orphans()
            if orphans:
                log.info("requeued %d jobs left running by a previous process", len(orphans))
        queued = [str(i) for i in await self.store.queued_ids()]
        waiting = set(await self.queue.waiting())
        busy = self.dispatcher.busy_ids()
        stranded = [i for i in await self.queue.processing() if i not in busy]
        stranded_set = set(stranded)
        missing = [
            i for i in queued if i not in waiting and i not in stranded_set and i not in busy
        ]
        if stranded or missing:
            await self.queue.restore(stranded, missing)
            log.info("reconciled the queue: %d stranded, %d missing", len(stranded), len(missing))
            self.dispatcher.changed.set()
        await self.queue.mark()
        return len(stranded), len(missing)

    async def _reconcile_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.queue.reconcile_interval_s)
            with contextlib.suppress(QueueUnavailable, StoreUnavailable):
                await self.reconcile()

    # -- watchdog

    async def _watchdog_loop(self) -> None:
        limit = self.config.queue.watchdog_s
        while True:
            await asyncio.sleep(min(1.0, limit / 4))
            await self.check_stalls(time.monotonic())

    async def check_stalls(self, now: float) -> int:
        """Stop every attempt with no activity for ``queue.watchdog_s``; how many."""
        limit = self.config.queue.watchdog_s
        stalled = [a for a in self.roster if a.counts_events and now - a.last_activity > limit]
        for a in stalled:
            log.warning("stalled: no progress for %gs", limit, extra={"jobId": a.job_id})

            async def lost(a: Attempt = a) -> None:
                await self.dispatcher.outcomes.lost(a, "stalled", f"no progress for {limit:g} s")

            await self.dispatcher.stop_attempt(a, "abort", then=lost)
        return len(stalled)

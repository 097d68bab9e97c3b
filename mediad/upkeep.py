"""The dispatcher's background duties: the progress flusher, the reconciler and the
watchdog, each a loop started by :meth:`Upkeep.start` beside the dispatch loop.

* The **flusher** writes every running job whose progress changed since the last
  flush in one statement every ``progress.throttle_ms`` (2 to 4 writes per job a second).
* The **reconciler** makes Redis agree with PostgreSQL (at start-up, every
  ``queue.reconcile_interval_s``, after a Redis outage): ids stranded in ``processing``
  go back, ``queued`` rows missing from the list are pushed.
* The **watchdog** stops an attempt that shows no movement and no CPU for
  ``queue.watchdog_s`` and fails or retries it as ``stalled``.
* The **lease keeper** (with several instances on one Redis) renews this instance's
  liveness and slots every third of ``queue.lease_s``, and requeues, exactly once, the
  running jobs of an instance whose liveness lease has run out.
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
from mediad.tasks import swallowed_cancel

log = logging.getLogger(__name__)


class Upkeep:
    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self.config = dispatcher.config
        self.store = dispatcher.store
        self.queue = dispatcher.queue
        self.roster = dispatcher.roster
        self.leases = dispatcher.leases
        self.instance_id = dispatcher.instance_id
        # Instances with running jobs but no live lease, and when we first saw that.
        self._missing: dict[str, float] = {}

    def start(self) -> list[asyncio.Task[None]]:
        """Start the dispatch loop and the three duties; the caller watches them (one
        dying stops the service)."""
        return [
            asyncio.create_task(self.dispatcher.run(self.reconcile), name="dispatcher"),
            asyncio.create_task(self._flush_loop(), name="progress-flusher"),
            asyncio.create_task(self._reconcile_loop(), name="reconciler"),
            asyncio.create_task(self._watchdog_loop(), name="watchdog"),
            *([asyncio.create_task(self._lease_loop(), name="leases")] if self.leases else []),
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
        """Make Redis agree with PostgreSQL: (stranded ids requeued, missing ids pushed).
        One instance at a time: another one's pass is waited for at start-up (this
        instance's leftovers must be pushed) and skipped otherwise (it does the work)."""
        if startup:
            await self._start_afresh()
        if not await self.queue.lock_reconcile(self.config.queue.lease_s + 10):
            if not startup:
                return 0, 0
            await self._wait_for_reconcile_lock()
        try:
            if not startup and self.config.redis.url and not await self.queue.marked():
                # Redis restarted empty under running instances: no slot is given (the
                # marker is missing) until every live instance has renewed the slots of
                # the jobs it still runs, then the queue is rebuilt.
                await asyncio.sleep(self.config.queue.lease_s / 2)
            return await self._reconcile()
        finally:
            await self.queue.unlock_reconcile()

    async def _wait_for_reconcile_lock(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 15
        while not await self.queue.lock_reconcile(self.config.queue.lease_s + 10):
            if loop.time() > deadline:
                return  # a holder that died: its lock lapses; go ahead
            await asyncio.sleep(0.1)

    async def _reconcile(self) -> tuple[int, int]:
        queued = [str(i) for i in await self.store.queued_ids()]
        checks = self.dispatcher.checks
        if checks is not None:  # subscriptions' checks wait in the same list
            queued += await checks.queued_entries()
        waiting = set(await self.queue.waiting())
        busy = self.dispatcher.busy_ids() | await self.queue.processing_elsewhere()
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

    async def _start_afresh(self) -> None:
        """At start-up: this instance's leftovers go back to the queue (and those of no
        instance, from before instances had names); the slots it held before are free."""
        orphans: list[object] = [
            *await self.store.requeue_orphans(self.instance_id),
            *await self.store.requeue_orphans(None),
        ]
        if self.dispatcher.checks is not None:
            orphans += await self.dispatcher.checks.requeue_orphans(self.instance_id)
        if orphans:
            log.info("requeued %d jobs left running by a previous process", len(orphans))
        if self.leases is not None:
            await self.leases.forget_earlier()
            await self.leases.renew([])

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

    # -- lease keeper

    async def _lease_loop(self) -> None:
        assert self.leases is not None
        interval = self.config.queue.lease_s / 3
        failing = False
        while True:
            await asyncio.sleep(interval)
            try:
                await self.leases.renew(self.dispatcher.held_slots())
                await self.requeue_dead(time.monotonic())
                failing = False
            except (QueueUnavailable, StoreUnavailable) as exc:
                if swallowed_cancel():  # a client library's error in place of our cancel
                    raise asyncio.CancelledError from exc
                if not failing:
                    log.warning("could not renew this instance's leases: %s", exc)
                failing = True

    async def requeue_dead(self, now: float) -> int:
        """Requeue the running jobs of instances whose liveness lease has run out for half
        a lease in a row (a Redis restarted empty forgets every lease: live instances
        announce themselves again within a third of one). Guarded in PostgreSQL by the
        owner, so when two instances notice at once each job is requeued once."""
        assert self.leases is not None
        owners = await self.store.running_owners()
        if self.dispatcher.checks is not None:
            for owner, n in (await self.dispatcher.checks.running_owners()).items():
                owners[owner] = owners.get(owner, 0) + n
        live = await self.leases.live_instances()
        for gone in set(self._missing) - set(owners):
            del self._missing[gone]
        requeued = 0
        for owner in owners:
            if owner == self.instance_id or owner in live:
                self._missing.pop(owner, None)
                continue
            first = self._missing.setdefault(owner, now)
            if now - first >= self.config.queue.lease_s / 2:
                requeued += await self._requeue_instance(owner)
                del self._missing[owner]
        return requeued

    async def _requeue_instance(self, owner: str) -> int:
        ids: list[object] = [*await self.store.requeue_orphans(owner)]
        if self.dispatcher.checks is not None:
            ids += await self.dispatcher.checks.requeue_orphans(owner)
        for job_id in ids:
            await self.queue.push(str(job_id))
        await self.queue.forget_instance(owner)
        if ids:
            log.warning(
                "instance %s is gone: requeued its %d running jobs", owner, len(ids),
                extra={"instanceId": owner},
            )  # fmt: skip
            self.dispatcher.changed.set()
        return len(ids)

"""Slots, assignment and worker events.

The dispatcher takes job ids from the Redis list while fewer than ``queue.concurrency``
jobs run and a worker is idle, binds each job's (jobId, attempt) to one worker
(``attempts.Roster``), and turns that worker's events (``wire``) into state: progress is
kept in memory (written in batches by ``upkeep.Upkeep``'s flusher) and forwarded through
the :class:`~mediad.ports.Publisher`; outcomes are recorded by ``outcomes.Outcomes``.
It talks to workers only through a :class:`~mediad.ports.WorkerChannel`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

from mediad import cookies, results, states, wire
from mediad.attempts import Attempt, Phase, Roster
from mediad.backoff import Backoff
from mediad.config import Config
from mediad.errors import InvalidEvent, QueueUnavailable, StoreUnavailable
from mediad.leases import Leases
from mediad.metrics import Metrics
from mediad.models import Job, Status
from mediad.outcomes import Outcomes
from mediad.ports import Publisher, WorkerChannel
from mediad.queue import Queue
from mediad.store import Store
from mediad.tasks import cancel_all

if TYPE_CHECKING:
    from mediad.checks import Checks

log = logging.getLogger(__name__)

# How long a worker gets to confirm that it stopped a tool before the slot is freed anyway.
STOP_TIMEOUT_S = 30
# How often a dispatcher whose cluster has no free slot looks again.
SLOT_POLL_S = 0.25
Then = Callable[[], Awaitable[None]]


def _count(meta: dict[str, Any], key: str) -> int:
    value = meta.get(key) if isinstance(meta, dict) else None
    return value if isinstance(value, int) and value >= 0 else 0


class Dispatcher:
    def __init__(
        self,
        config: Config,
        store: Store,
        queue: Queue,
        channel: WorkerChannel,
        publisher: Publisher,
        leases: Leases | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics or Metrics()
        self.instance_id = config.instance_id
        # Cluster-wide slots (leases.py); without them the limit is this process's own.
        self.leases = leases
        self._slot: str | None = None  # a slot held for the next job taken
        self.store = store
        self.queue = queue
        self.channel = channel
        self.publisher = publisher
        self.roster = Roster()
        self.cookies = cookies.store_for(config.state_path)
        self.ignored_events = 0
        self.changed = asyncio.Event()
        self._taking: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False
        # Subscriptions' checks (checks.py sets itself here): ``check:{id}`` entries.
        self.checks: Checks | None = None
        self.outcomes = Outcomes(
            config, store, queue, publisher, self.roster,
            changed=self.changed, spawn=self.spawn, stopping=lambda: self._stopping,
            leases=leases,
            metrics=self.metrics,
        )  # fmt: skip

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        return self._stopping

    def begin_drain(self) -> None:
        """Stop starting jobs; workers leaving from now on are part of the shutdown, and
        their jobs stay ``running`` until the next start requeues them."""
        self._stopping = True
        self.changed.set()

    async def drain(self, grace_s: float) -> int:
        """Graceful shutdown: no new assignments; every running job's tool is stopped
        (its partial data kept) and the job requeued for the next start. Returns how many
        were requeued within ``grace_s``; the rest are requeued at the next start."""
        self.begin_drain()
        requeued = 0

        async def requeue(a: Attempt) -> None:
            nonlocal requeued
            requeued += await self.outcomes.requeue_for_shutdown(a)

        for a in self.roster:
            if a.counts_events:
                await self.stop_attempt(a, "abort", then=functools.partial(requeue, a))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_s
        while len(self.roster) and loop.time() < deadline:
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), deadline - loop.time())
        if len(self.roster):
            log.warning("%d jobs did not stop within %gs", len(self.roster), grace_s)
        return requeued

    async def stop(self) -> None:
        self._stopping = True
        self.changed.set()
        await cancel_all(list(self._tasks), "the dispatcher")
        if self.leases is not None:
            with contextlib.suppress(QueueUnavailable):
                await self.leases.leave(self.held_slots())
            self._slot = None

    def spawn(self, coro: Awaitable[None], name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- workers -----------------------------------------------------------------------

    def has_worker(self, worker_id: str) -> bool:
        return self.roster.has_worker_id(worker_id)

    def worker_connected(self, sid: str, worker_id: str) -> None:
        self.roster.add_worker(sid, worker_id)
        log.info("worker %s connected", worker_id, extra={"workerId": worker_id})
        self.changed.set()

    async def worker_disconnected(self, sid: str) -> None:
        worker, a = self.roster.remove_worker(sid)
        if worker is None:
            return
        log.info("worker %s disconnected", worker.worker_id, extra={"workerId": worker.worker_id})
        if a is None:
            return
        if a.phase is Phase.STOPPING:
            await self.outcomes.stopped(a)  # its tool died with it
        elif a.counts_events and not self._stopping:
            await self.outcomes.lost(a, "worker_crashed", "the worker stopped during the job")

    # -- the loop ----------------------------------------------------------------------

    async def run(self, reconcile: Callable[[], Awaitable[object]]) -> None:
        """Take ids from the queue while there is a free slot and an idle worker;
        ``reconcile`` rebuilds the queue from PostgreSQL when Redis has lost it."""

        async def quietly() -> None:
            with contextlib.suppress(QueueUnavailable, StoreUnavailable):
                await reconcile()

        outage = Backoff(0.5, 2.0, 5.0)  # its attempts: Redis or PostgreSQL is down
        while not self._stopping:
            while not self._has_capacity():
                self.changed.clear()
                await self.changed.wait()
                if self._stopping:
                    return
            try:
                if not await self._hold_slot():
                    if not await self.queue.marked():  # Redis restarted empty
                        await reconcile()
                    await self._wait_for_slot()
                    continue
                await self._take_one(reconcile)
                outage.reset()
            except (QueueUnavailable, StoreUnavailable) as exc:
                if not outage.attempts:
                    log.warning("dispatching paused: %s", exc)
                await asyncio.sleep(outage.next())
                if isinstance(exc, QueueUnavailable):
                    # A Redis that comes back may have lost its lists.
                    self.spawn(quietly(), "reconcile-after-outage")

    async def _hold_slot(self) -> bool:
        """Hold one of the cluster's ``queue.concurrency`` slots for the next job."""
        if self.leases is None or self._slot is not None:
            return True
        slot = self.leases.new_slot()
        if not await self.leases.acquire(slot, self.config.queue.concurrency):
            return False
        self._slot = slot
        return True

    async def _wait_for_slot(self) -> None:
        """Every slot is taken elsewhere: look again soon, or when something here ends."""
        self.changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.changed.wait(), SLOT_POLL_S)

    def held_slots(self) -> list[str]:
        """The slots this instance holds: its attempts' and the one waiting for a job."""
        slots = [a.slot for a in self.roster if a.slot is not None]
        return slots if self._slot is None else [*slots, self._slot]

    async def _take_one(self, reconcile: Callable[[], Awaitable[object]]) -> None:
        job_id = await self.queue.take(timeout_s=1)
        if job_id is None:
            if not await self.queue.marked():  # Redis restarted empty
                await reconcile()
            return
        self._taking.add(job_id)
        try:
            await self._assign(job_id)
        finally:
            self._taking.discard(job_id)

    def _has_capacity(self) -> bool:
        return (
            len(self.roster) < self.config.queue.concurrency
            and self.roster.idle_worker() is not None
        )

    def busy_ids(self) -> set[str]:
        """The queue entries (job ids, ``check:{id}``) this process runs or is taking
        from the queue right now."""
        return {a.queue_entry for a in self.roster} | self._taking

    async def _assign(self, job_id: str) -> None:
        if job_id.startswith(wire.CHECK_PREFIX):
            await self._assign_check(job_id)
            return
        try:
            uuid = UUID(job_id)
        except ValueError:
            log.warning("dropping a malformed id from the queue: %r", job_id[:80])
            await self.queue.done(job_id)
            return
        worker = self.roster.idle_worker()
        if worker is None:
            await self.queue.give_back(job_id)
            return
        job = await self.store.mark_running(uuid, worker.worker_id, self.instance_id)
        if job is None:  # cancelled, paused, finished or a duplicate entry meanwhile
            await self.queue.done(job_id)
            return
        self.metrics.job_started(job)
        a = Attempt(
            job_id,
            job.attempts,
            worker.sid,
            worker.worker_id,
            interruptions=_count(job.meta, states.INTERRUPTIONS_KEY),
            failures=_count(job.meta, states.FAILURES_KEY),
            slot=self._slot,
        )
        self._slot = None  # the attempt holds it now
        self.roster.add(a)
        if not self.roster.bind(a):  # it left while we wrote the row
            await self.outcomes.lost(a, "worker_crashed", "the worker left before the job started")
            return
        name = job.options.get("cookies")
        if isinstance(name, str) and not await self._stage_cookies(a, name):
            return
        log.info(
            "job started on %s (attempt %d)", worker.worker_id, a.attempt,
            extra={"jobId": job_id, "stage": "downloading"},
        )  # fmt: skip
        await self.publisher.job_update(job)
        start = wire.JobStart(job_id, a.attempt, job.url, job.type.value, job.options)
        await self.channel.start(worker.sid, start)

    async def _assign_check(self, entry: str) -> None:
        """A subscription's check: like a job, one slot and one worker while it lists."""
        worker = self.roster.idle_worker()
        if worker is None or self.checks is None:
            await self.queue.give_back(entry)
            return
        start = await self.checks.mark_running(entry, worker.worker_id)
        if start is None:  # deleted, or a duplicate entry
            await self.queue.done(entry)
            return
        a = Attempt(start.check_id, start.attempt, worker.sid, worker.worker_id,
                    slot=self._slot, check=True)  # fmt: skip
        self._slot = None
        self.roster.add(a)
        if not self.roster.bind(a):
            await self.outcomes.lost(
                a, "worker_crashed", "the worker left before the check started"
            )
            return
        if start.cookies is not None and not await self._stage_cookies(a, start.cookies):
            return
        log.info("check started on %s", worker.worker_id, extra={"jobId": start.check_id})
        await self.channel.listing(worker.sid, start)

    async def _stage_cookies(self, a: Attempt, name: str) -> bool:
        """A job (or a check) naming a cookie file gets a private copy in its work folder
        (shared with every worker, remote ones too), removed when the attempt ends. False
        when the file was removed after it was queued: it failed (``cookies_missing``)."""
        work_dir = Path(self.config.storage.tmp_dir) / a.job_id
        self.outcomes.cookie_copies.add(a.job_id)
        try:
            copied = await asyncio.to_thread(self.cookies.copy_into, name, work_dir)
        except OSError as exc:
            code = "disk_full" if exc.errno == errno.ENOSPC else "internal_error"
            await self.outcomes.settle(
                a, self.outcomes.fail(a, code, f"could not copy the cookie file: {exc.strerror}")
            )
            return False
        if copied is None:
            message = f"the cookie file {name} was removed after the job was queued"
            await self.outcomes.settle(a, self.outcomes.fail(a, "cookies_missing", message))
            return False
        return True

    # -- worker events -----------------------------------------------------------------

    async def on_listed(self, sid: str, data: Any) -> None:
        """Entries of a check's listing; the last message (``final``) ends the check."""
        try:
            ev = wire.parse_listed(data)
        except InvalidEvent as exc:
            self._reject(sid, wire.LISTED, exc)
            return
        a = self._bound(sid, ev.check_id, ev.attempt)
        if a is None or not a.check or self.checks is None:
            return
        a.last_activity = time.monotonic()
        if not self.checks.collect(a, ev):
            return
        a.settle()
        await self.outcomes.settle(a, self.checks.finish(a))

    def _bound(self, sid: str, job_id: str, attempt: int) -> Attempt | None:
        """The attempt bound to this worker, while its events still count."""
        a = self.roster.bound(sid, job_id, attempt)
        if a is None or not a.counts_events:
            self.ignored_events += 1
            return None
        return a

    async def _settle_late(self, sid: str, job_id: str, attempt: int) -> None:
        """A worker's last word (completed, failed, stopped) on an attempt being stopped:
        whatever it says, its tool is gone and the slot can go."""
        a = self.roster.bound(sid, job_id, attempt)
        if a is not None and a.phase is Phase.STOPPING:
            await self.outcomes.stopped(a)

    async def on_progress(self, sid: str, data: Any) -> None:
        self.metrics.progress_received()
        try:
            ev = wire.parse_progress(data)
        except InvalidEvent as exc:
            self._reject(sid, wire.PROGRESS, exc)
            return
        a = self._bound(sid, ev.job_id, ev.attempt)
        if a is None:
            return
        a.record(ev.live, time.monotonic())
        await self.publisher.progress(ev.job_id, ev.live)
        self.metrics.progress_forwarded()

    def on_heartbeat(self, sid: str, data: Any) -> None:
        worker = self.roster.worker(sid)
        if worker is None:
            return
        worker.last_seen = time.monotonic()
        beat = wire.parse_heartbeat(data)
        a = self.roster.attempt_on(sid)
        if a is not None and beat.active and (beat.job_id, beat.attempt) == (a.job_id, a.attempt):
            a.last_activity = worker.last_seen

    async def on_completed(self, sid: str, data: Any) -> None:
        try:
            ev = wire.parse_completed(data)
        except InvalidEvent as exc:
            self._reject(sid, wire.COMPLETED, exc)
            return
        staging = results.staging_dir(self.config.storage.data_dir, ev.job_id, ev.attempt)
        a = self._bound(sid, ev.job_id, ev.attempt)
        if a is None:
            current = self.roster.get(ev.job_id)
            # No result: a superseded attempt's, or one that answers a stop.
            if current is None or current.attempt != ev.attempt or current.phase is Phase.STOPPING:
                await asyncio.to_thread(results.discard, staging)
            await self._settle_late(sid, ev.job_id, ev.attempt)
            return
        a.settle()
        await self.outcomes.settle(a, self.outcomes.complete(a, ev, staging))

    async def on_failed(self, sid: str, data: Any) -> None:
        try:
            ev = wire.parse_failed(data)
        except InvalidEvent as exc:
            self._reject(sid, wire.FAILED, exc)
            return
        a = self._bound(sid, ev.job_id, ev.attempt)
        if a is None:
            await self._settle_late(sid, ev.job_id, ev.attempt)
            return
        a.settle()
        await self.outcomes.settle(a, self.outcomes.fail(a, ev.error_code, ev.message))

    async def on_stopped(self, sid: str, data: Any) -> None:
        """The worker stopped the tool as asked (pause, cancel, abort)."""
        try:
            ev = wire.parse_stopped(data)
        except InvalidEvent as exc:
            self._reject(sid, wire.STOPPED, exc)
            return
        await self._settle_late(sid, ev.job_id, ev.attempt)

    def _reject(self, sid: str, name: str, exc: InvalidEvent) -> None:
        self.ignored_events += 1
        worker = self.roster.worker(sid)
        log.warning(
            "ignored an invalid %s event: %s",
            name,
            exc,
            extra={"workerId": worker.worker_id if worker else None},
        )

    # -- stopping tools ----------------------------------------------------------------

    async def stop_job(self, job_id: str, action: str, then: Then | None = None) -> bool:
        """Ask the worker running this job to stop its tool (cancel, pause); ``then``
        runs once it has (also when a stop was already on its way). False when no
        attempt of the job holds a slot."""
        a = self.roster.get(job_id)
        if a is None:
            return False
        if a.phase is Phase.STOPPING:
            if then is not None:
                a.also_after_stop(then)
            return True
        await self.stop_attempt(a, action, then)
        return True

    async def finish_recording(self, job_id: str) -> bool:
        """Tell the worker to finish a live recording with what it has (ffmpeg's stop)."""
        a = self.roster.get(job_id)
        if a is None:
            return False
        await self.channel.control(a.sid, wire.JobControl(a.job_id, a.attempt, "stop"))
        return True

    async def stop_attempt(self, a: Attempt, action: str, then: Then | None = None) -> None:
        """Ask the worker to stop the attempt's tool; ``then`` runs once it has."""
        a.stop(action, then)
        await self.channel.control(a.sid, wire.JobControl(a.job_id, a.attempt, action))
        self.spawn(self._stop_deadline(a), f"stop-deadline-{a.job_id}")

    async def _stop_deadline(self, a: Attempt) -> None:
        await asyncio.sleep(STOP_TIMEOUT_S)
        if self.roster.holds(a):
            log.warning(
                "the worker did not confirm the stop within %ds", STOP_TIMEOUT_S,
                extra={"jobId": a.job_id, "workerId": a.worker_id},
            )  # fmt: skip
            await self.outcomes.stopped(a)

    # -- views -------------------------------------------------------------------------

    def status_counts(self) -> dict[str, int]:
        return {
            "connected": self.roster.worker_count,
            "busy": self.roster.busy_count,
            "running": len(self.roster),
        }

    def attempt(self, job_id: str) -> Attempt | None:
        """The attempt of this job that holds a slot here, if any."""
        return self.roster.get(job_id)

    def live(self, job_id: str, attempt: int) -> wire.Live | None:
        """The in-memory (fresher than its row) progress of a job's running attempt
        ``attempt``, when that attempt holds a slot here."""
        a = self.roster.get(job_id)
        return a.live if a is not None and a.attempt == attempt else None

    def snapshot(self, job: Job) -> Job:
        """A running job's row with its in-memory (fresher) progress."""
        live = self.live(str(job.id), job.attempts) if job.status is Status.RUNNING else None
        if live is None:
            return job
        return dataclasses.replace(
            job,
            stage=live.stage,
            progress=live.progress,
            speed=live.speed,
            eta=live.eta,
            total_bytes=live.total_bytes,
        )

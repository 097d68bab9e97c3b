"""Slots, assignment and worker events.

The dispatcher takes job ids from the Redis list while fewer than ``queue.concurrency``
jobs run and a worker is idle, binds each job's (jobId, attempt) to one worker, and turns
that worker's events into state: progress is kept in memory and written by one flusher
in batches; terminal events are written at once, guarded by the attempt, so a stale
worker can never overwrite a newer attempt's result.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

from mediad import events, results, states
from mediad.config import Config
from mediad.errors import InvalidEvent, QueueUnavailable, StoreUnavailable
from mediad.models import Job, Status
from mediad.queue import Queue
from mediad.store import ProgressRow, Store

log = logging.getLogger(__name__)

ALL_ROOM = "jobs:all"
# How long a worker gets to confirm that it stopped a tool before the slot is freed anyway.
STOP_TIMEOUT_S = 30
Emit = Callable[[str, dict[str, Any], Any, str], Awaitable[None]]


def job_room(job_id: str) -> str:
    return f"job:{job_id}"


def _count(meta: dict[str, Any], key: str) -> int:
    value = meta.get(key) if isinstance(meta, dict) else None
    return value if isinstance(value, int) and value >= 0 else 0


@dataclass(eq=False)
class Assignment:
    """One attempt of one job on one worker, with its live progress."""

    job_id: str
    attempt: int
    sid: str
    worker_id: str
    stage: str = "downloading"
    progress: float | None = None  # unknown until the tool says (a live stream never does)
    speed: int | None = None
    eta: int | None = None
    total_bytes: int | None = None
    dirty: bool = False
    # No more events count once the attempt has an outcome or is being stopped.
    finished: bool = False
    # Set while the worker stops the tool (pause, cancel, abort): the slot stays taken
    # until the worker says `stopped`, so two tools never share tmp/{jobId}.
    stopping: str | None = None
    after_stop: Callable[[], Awaitable[None]] | None = None
    released: bool = False
    last_activity: float = field(default_factory=time.monotonic)
    # Earlier attempts lost to mediad's own faults, and to failures of the job's own
    # (states.counted): each kind has its own budget.
    interruptions: int = 0
    failures: int = 0

    def row(self) -> ProgressRow:
        return ProgressRow(
            UUID(self.job_id),
            self.attempt,
            self.stage,
            self.progress,
            self.speed,
            self.eta,
            self.total_bytes,
        )


@dataclass(eq=False)
class WorkerConn:
    sid: str
    worker_id: str
    assignment: Assignment | None = None
    last_seen: float = field(default_factory=time.monotonic)


class Dispatcher:
    def __init__(self, config: Config, store: Store, queue: Queue, emit: Emit) -> None:
        self.config = config
        self.store = store
        self.queue = queue
        self._emit = emit
        self.workers: dict[str, WorkerConn] = {}
        self.running: dict[str, Assignment] = {}
        self.ignored_events = 0
        self._changed = asyncio.Event()
        self._taking: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> list[asyncio.Task[None]]:
        """Start the background tasks; the caller watches them (one dying stops the service)."""
        return [
            asyncio.create_task(self._dispatch_loop(), name="dispatcher"),
            asyncio.create_task(self._flush_loop(), name="progress-flusher"),
            asyncio.create_task(self._reconcile_loop(), name="reconciler"),
            asyncio.create_task(self._watchdog_loop(), name="watchdog"),
        ]

    def begin_drain(self) -> None:
        """Stop starting jobs; workers leaving from now on are part of the shutdown, and
        their jobs stay ``running`` until the next start requeues them."""
        self._stopping = True
        self._changed.set()

    async def drain(self, grace_s: float) -> int:
        """Graceful shutdown: no new assignments; every running job's tool is stopped
        (its partial data kept) and the job requeued for the next start. Returns how many
        were requeued within ``grace_s``; the rest are requeued at the next start."""
        self.begin_drain()
        requeued = 0

        async def requeue(a: Assignment) -> None:
            nonlocal requeued
            job = await self.store.requeue(
                UUID(a.job_id), a.attempt, "shutdown", "the service stopped during the job"
            )
            if job is not None:
                requeued += 1
                with contextlib.suppress(QueueUnavailable):  # the next start reconciles
                    await self.queue.push(a.job_id)
                await self.publish_update(job)

        for a in list(self.running.values()):
            if not a.finished:
                await self.stop_attempt(a, "abort", then=lambda a=a: requeue(a))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_s
        while self.running and loop.time() < deadline:
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), deadline - loop.time())
        if self.running:
            log.warning("%d jobs did not stop within %gs", len(self.running), grace_s)
        return requeued

    async def stop(self) -> None:
        self._stopping = True
        self._changed.set()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        try:
            await self.flush()
        except StoreUnavailable:
            log.warning("could not write the last progress at shutdown: PostgreSQL is down")

    def _spawn(self, coro: Awaitable[None], name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- workers -----------------------------------------------------------------------

    def worker_connected(self, sid: str, worker_id: str) -> None:
        self.workers[sid] = WorkerConn(sid, worker_id)
        log.info("worker %s connected", worker_id, extra={"workerId": worker_id})
        self._changed.set()

    async def worker_disconnected(self, sid: str) -> None:
        worker = self.workers.pop(sid, None)
        if worker is None:
            return
        log.info("worker %s disconnected", worker.worker_id, extra={"workerId": worker.worker_id})
        a = worker.assignment
        if a is None:
            return
        if a.stopping:
            await self._stopped(a)  # its tool died with it
        elif not a.finished and not self._stopping:
            await self._attempt_lost(a, "worker_crashed", "the worker stopped during the job")

    def idle_workers(self) -> int:
        return sum(1 for w in self.workers.values() if w.assignment is None)

    def _idle_worker(self) -> WorkerConn | None:
        for worker in self.workers.values():
            if worker.assignment is None:
                return worker
        return None

    # -- the loop ----------------------------------------------------------------------

    async def _dispatch_loop(self) -> None:
        outage = 0.0
        while not self._stopping:
            while not self._has_capacity():
                self._changed.clear()
                await self._changed.wait()
                if self._stopping:
                    return
            try:
                job_id = await self.queue.take(timeout_s=1.0)
                if job_id is None:
                    if not await self.queue.marked():  # Redis restarted empty
                        await self.reconcile()
                    continue
                self._taking.add(job_id)
                try:
                    await self._assign(job_id)
                finally:
                    self._taking.discard(job_id)
                if outage:
                    outage = 0.0
            except (QueueUnavailable, StoreUnavailable) as exc:
                if not outage:
                    log.warning("dispatching paused: %s", exc)
                outage = min(5.0, (outage or 0.25) * 2)
                await asyncio.sleep(outage)
                if isinstance(exc, QueueUnavailable):
                    # A Redis that comes back may have lost its lists.
                    self._spawn(self._reconcile_quietly(), "reconcile-after-outage")

    def _has_capacity(self) -> bool:
        return len(self.running) < self.config.queue.concurrency and self._idle_worker() is not None

    async def _assign(self, job_id: str) -> None:
        try:
            uuid = UUID(job_id)
        except ValueError:
            log.warning("dropping a malformed id from the queue: %r", job_id[:80])
            await self.queue.done(job_id)
            return
        worker = self._idle_worker()
        if worker is None:
            await self.queue.give_back(job_id)
            return
        job = await self.store.mark_running(uuid, worker.worker_id)
        if job is None:  # cancelled, paused, finished or a duplicate entry meanwhile
            await self.queue.done(job_id)
            return
        a = Assignment(
            job_id,
            job.attempts,
            worker.sid,
            worker.worker_id,
            interruptions=_count(job.meta, states.INTERRUPTIONS_KEY),
            failures=_count(job.meta, states.FAILURES_KEY),
        )
        self.running[job_id] = a
        if self.workers.get(worker.sid) is not worker:  # it left while we wrote the row
            await self._attempt_lost(a, "worker_crashed", "the worker left before the job started")
            return
        worker.assignment = a
        log.info(
            "job started on %s (attempt %d)",
            worker.worker_id,
            a.attempt,
            extra={"jobId": job_id, "stage": "downloading"},
        )
        await self.publish_update(job)
        await self._emit(
            "job:start",
            {
                "jobId": job_id,
                "attempt": a.attempt,
                "url": job.url,
                "type": job.type.value,
                "options": job.options,
            },
            worker.sid,
            "/worker",
        )

    # -- worker events -----------------------------------------------------------------

    def _bound(self, sid: str, job_id: str, attempt: int) -> Assignment | None:
        """The attempt bound to this worker, while its events still count."""
        a = self.running.get(job_id)
        if a is None or a.sid != sid or a.attempt != attempt or a.finished:
            self.ignored_events += 1
            return None
        return a

    async def _settle_late(self, sid: str, job_id: str, attempt: int) -> None:
        """A worker's last word (completed, failed, stopped) on an attempt being stopped:
        whatever it says, its tool is gone and the slot can go."""
        a = self.running.get(job_id)
        if a is not None and a.sid == sid and a.attempt == attempt and a.stopping:
            await self._stopped(a)

    async def on_progress(self, sid: str, data: Any) -> None:
        try:
            ev = events.parse_progress(data)
        except InvalidEvent as exc:
            self._reject(sid, "progress", exc)
            return
        a = self._bound(sid, ev.job_id, ev.attempt)
        if a is None:
            return
        # Activity is movement, not speed: aria2's speed is an average that decays for
        # seconds after the bytes stop. Unknown totals count through active heartbeats.
        if (ev.progress, ev.stage) != (a.progress, a.stage):
            a.last_activity = time.monotonic()
        a.stage, a.progress, a.speed = ev.stage, ev.progress, ev.speed
        a.eta, a.total_bytes = ev.eta, ev.total_bytes
        a.dirty = True
        payload = {
            "jobId": ev.job_id,
            "stage": ev.stage,
            "progress": ev.progress,
            "speed": ev.speed,
            "eta": ev.eta,
            "totalBytes": ev.total_bytes,
        }
        await self._emit("progress", payload, [job_room(ev.job_id), ALL_ROOM], "/jobs")

    def on_heartbeat(self, sid: str, data: Any) -> None:
        worker = self.workers.get(sid)
        if worker is None:
            return
        worker.last_seen = time.monotonic()
        a = worker.assignment
        if a is not None and isinstance(data, dict) and data.get("active") is True:
            if data.get("jobId") == a.job_id and data.get("attempt") == a.attempt:
                a.last_activity = worker.last_seen

    async def on_completed(self, sid: str, data: Any) -> None:
        try:
            ev = events.parse_completed(data)
        except InvalidEvent as exc:
            self._reject(sid, "completed", exc)
            return
        staging = results.staging_dir(self.config.storage.data_dir, ev.job_id, ev.attempt)
        names = [f.name for f in ev.files]
        a = self._bound(sid, ev.job_id, ev.attempt)
        if a is None:
            current = self.running.get(ev.job_id)
            if current is None or current.attempt != ev.attempt:  # a superseded attempt
                await asyncio.to_thread(results.discard, staging)
            await self._settle_late(sid, ev.job_id, ev.attempt)
            return
        a.finished = True
        await self._settle(a, self._complete(a, ev, staging, names))

    async def _complete(
        self, a: Assignment, ev: events.CompletedEvent, staging: Path, names: list[str]
    ) -> None:
        missing = await asyncio.to_thread(results.missing, staging, names)
        if missing:
            await self._fail_attempt(a, "tool_failed", f"the result file {missing!r} is missing")
            return
        await asyncio.to_thread(results.promote, staging, names)
        first = ev.files[0].name
        job = await self._write_terminal(
            lambda: self.store.complete(
                UUID(ev.job_id),
                ev.attempt,
                filename=first,
                size=ev.size,
                output_path=f"{ev.job_id}/{first}",
                meta={"files": [{"name": f.name, "size": f.size} for f in ev.files]},
            )
        )
        await self._release(a)
        if job is None:  # paused or cancelled meanwhile: these files are no result
            await asyncio.to_thread(results.withdraw, staging.parent, names)
            return
        log.info("job completed", extra={"jobId": ev.job_id, "stage": "finalizing"})
        await self._publish(
            "completed",
            {
                "jobId": ev.job_id,
                "filename": job.filename,
                "size": job.size,
                "outputPath": job.output_path,
            },
        )
        await self.publish_update(job)

    async def on_failed(self, sid: str, data: Any) -> None:
        try:
            ev = events.parse_failed(data)
        except InvalidEvent as exc:
            self._reject(sid, "failed", exc)
            return
        a = self._bound(sid, ev.job_id, ev.attempt)
        if a is None:
            await self._settle_late(sid, ev.job_id, ev.attempt)
            return
        a.finished = True
        await self._settle(a, self._fail_attempt(a, ev.error_code, ev.message))

    async def _settle(self, a: Assignment, outcome: Awaitable[None]) -> None:
        """Record an attempt's outcome; whatever goes wrong, the job is not left running
        with its slot held."""
        try:
            await outcome
        except Exception:
            log.exception("could not record the outcome", extra={"jobId": a.job_id})
            try:
                await self._fail_attempt(
                    a, "internal_error", "mediad could not record this attempt's outcome"
                )
            except Exception:
                log.exception("could not fail the attempt either", extra={"jobId": a.job_id})
                await self._release(a)

    async def on_stopped(self, sid: str, data: Any) -> None:
        """The worker stopped the tool as asked (pause, cancel, abort)."""
        try:
            job_id = events.job_id(data.get("jobId") if isinstance(data, dict) else None)
            attempt = events.parse_attempt(data.get("attempt"))  # type: ignore[union-attr]
        except InvalidEvent as exc:
            self._reject(sid, "stopped", exc)
            return
        await self._settle_late(sid, job_id, attempt)

    async def control_worker(self, a: Assignment, action: str) -> None:
        await self._emit(
            "job:control",
            {"jobId": a.job_id, "attempt": a.attempt, "action": action},
            a.sid,
            "/worker",
        )

    async def stop_attempt(
        self,
        a: Assignment,
        action: str,
        then: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Ask the worker to stop the attempt's tool; ``then`` runs once it has."""
        a.finished = True
        a.stopping = action
        a.after_stop = then
        await self._emit(
            "job:control",
            {"jobId": a.job_id, "attempt": a.attempt, "action": action},
            a.sid,
            "/worker",
        )
        self._spawn(self._stop_deadline(a), f"stop-deadline-{a.job_id}")

    async def _stop_deadline(self, a: Assignment) -> None:
        await asyncio.sleep(STOP_TIMEOUT_S)
        if self.running.get(a.job_id) is a:
            log.warning(
                "the worker did not confirm the stop within %ds", STOP_TIMEOUT_S,
                extra={"jobId": a.job_id, "workerId": a.worker_id},
            )  # fmt: skip
            await self._stopped(a)

    async def _stopped(self, a: Assignment) -> None:
        if a.released:
            return  # already settled
        await self._release(a)
        then, a.after_stop = a.after_stop, None
        if then is not None:
            await then()

    def _reject(self, sid: str, name: str, exc: InvalidEvent) -> None:
        self.ignored_events += 1
        worker = self.workers.get(sid)
        log.warning(
            "ignored an invalid %s event: %s",
            name,
            exc,
            extra={"workerId": worker.worker_id if worker else None},
        )

    # -- outcomes ----------------------------------------------------------------------

    async def _fail_attempt(self, a: Assignment, code: str, message: str) -> None:
        """A failed attempt: retried when the error is transient and attempts remain."""
        a.finished = True
        if self._retried(a, code):
            await self._requeue(a, code, message)
            return
        if a.dirty:
            await self._write_terminal(lambda: self.store.flush_progress([a.row()]))
        job = await self._write_terminal(
            lambda: self.store.fail(UUID(a.job_id), a.attempt, code, message)
        )
        await self._release(a)
        if job is None:
            return
        log.info("job failed: %s: %s", code, message, extra={"jobId": a.job_id, "stage": a.stage})
        await self._publish("failed", {"jobId": a.job_id, "errorCode": code, "message": message})
        await self.publish_update(job)

    def _retried(self, a: Assignment, code: str) -> bool:
        interruptions, failures = states.counted(code, a.interruptions, a.failures)
        return states.should_retry(
            code,
            failures,
            self.config.queue.max_attempts,
            interruptions=interruptions,
            max_interruptions=self.config.queue.max_interruptions,
        )

    async def _attempt_lost(self, a: Assignment, code: str, message: str) -> None:
        if not self._retried(a, code):
            attempts = a.attempt
            message = f"{message} ({attempts} attempt{'s' if attempts > 1 else ''})"
        await self._fail_attempt(a, code, message)

    async def _requeue(self, a: Assignment, code: str, message: str) -> None:
        job = await self._write_terminal(
            lambda: self.store.requeue(UUID(a.job_id), a.attempt, code, message)
        )
        await self._release(a)
        if job is None:
            return
        interruptions, failures = states.counted(code, a.interruptions, a.failures)
        if states.is_infrastructure(code):  # ours: back soon, whatever the count
            delay = states.retry_delay_s(interruptions, self.config.queue.retry_backoff_s, 30.0)
        else:
            delay = states.retry_delay_s(failures, self.config.queue.retry_backoff_s)
        log.info(
            "attempt %d lost (%s), retrying in %.1fs",
            a.attempt,
            code,
            delay,
            extra={"jobId": a.job_id},
        )
        self._spawn(self._push_later(a.job_id, delay), f"retry-{a.job_id}")
        await self.publish_update(job)

    async def _push_later(self, job_id: str, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        try:
            await self.queue.push(job_id)
        except QueueUnavailable:
            pass  # the job is queued in PostgreSQL; the reconciler pushes it when Redis is back

    async def _release(self, a: Assignment) -> None:
        """Free the attempt's slot and worker, once."""
        if a.released:
            return
        a.released = True
        if self.running.get(a.job_id) is a:
            del self.running[a.job_id]
        for worker in self.workers.values():
            if worker.assignment is a:
                worker.assignment = None
        self._changed.set()
        try:
            await self.queue.done(a.job_id)
        except QueueUnavailable:
            pass  # the reconciler clears stranded processing entries

    async def _write_terminal(self, write: Callable[[], Awaitable[Any]]) -> Any:
        """Retry a write that must land (a terminal state) while PostgreSQL is down."""
        delay = 0.2
        while True:
            try:
                return await write()
            except StoreUnavailable as exc:
                if self._stopping:
                    raise
                log.warning("retrying a terminal write in %.1fs: %s", delay, exc)
                await asyncio.sleep(delay)
                delay = min(5.0, delay * 2)

    async def _publish(self, event: str, payload: dict[str, Any]) -> None:
        await self._emit(event, payload, [job_room(payload["jobId"]), ALL_ROOM], "/jobs")

    async def publish_update(self, job: Job) -> None:
        await self._publish(
            "job-update",
            {
                "jobId": str(job.id),
                "status": job.status.value,
                "stage": job.stage,
                "progress": job.progress,
            },
        )

    # -- flusher, reconciler, watchdog -------------------------------------------------

    async def flush(self) -> int:
        """Write every job whose progress changed since the last flush, in one statement."""
        dirty = [a for a in self.running.values() if a.dirty and not a.finished]
        if not dirty:
            return 0
        for a in dirty:
            a.dirty = False
        try:
            return await self.store.flush_progress([a.row() for a in dirty])
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

    async def reconcile(self, *, startup: bool = False) -> tuple[int, int]:
        """Make Redis agree with PostgreSQL: (stranded ids requeued, missing ids pushed)."""
        if startup:
            orphans = await self.store.requeue_orphans()
            if orphans:
                log.info("requeued %d jobs left running by a previous process", len(orphans))
        queued = [str(i) for i in await self.store.queued_ids()]
        waiting = set(await self.queue.waiting())
        busy = set(self.running) | self._taking
        stranded = [i for i in await self.queue.processing() if i not in busy]
        stranded_set = set(stranded)
        missing = [
            i for i in queued if i not in waiting and i not in stranded_set and i not in busy
        ]
        if stranded or missing:
            await self.queue.restore(stranded, missing)
            log.info("reconciled the queue: %d stranded, %d missing", len(stranded), len(missing))
            self._changed.set()
        await self.queue.mark()
        return len(stranded), len(missing)

    async def _reconcile_quietly(self) -> None:
        try:
            await self.reconcile()
        except (QueueUnavailable, StoreUnavailable):
            pass

    async def _reconcile_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.queue.reconcile_interval_s)
            await self._reconcile_quietly()

    async def _watchdog_loop(self) -> None:
        limit = self.config.queue.watchdog_s
        while True:
            await asyncio.sleep(min(1.0, limit / 4))
            now = time.monotonic()
            for a in list(self.running.values()):
                if not a.finished and now - a.last_activity > limit:
                    log.warning("stalled: no progress for %gs", limit, extra={"jobId": a.job_id})

                    async def lost(a: Assignment = a) -> None:
                        await self._attempt_lost(a, "stalled", f"no progress for {limit:g} s")

                    await self.stop_attempt(a, "abort", then=lost)

    # -- views -------------------------------------------------------------------------

    def status_counts(self) -> dict[str, int]:
        return {
            "connected": len(self.workers),
            "busy": sum(1 for w in self.workers.values() if w.assignment is not None),
            "running": len(self.running),
        }

    def is_running(self, job_id: str) -> bool:
        return job_id in self.running

    def snapshot(self, job: Job) -> Job:
        """A running job's row with its in-memory (fresher) progress."""
        a = self.running.get(str(job.id))
        if a is None or job.status is not Status.RUNNING or a.attempt != job.attempts:
            return job
        return dataclasses.replace(
            job,
            stage=a.stage,
            progress=a.progress,
            speed=a.speed,
            eta=a.eta,
            total_bytes=a.total_bytes,
        )

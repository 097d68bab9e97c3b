"""In-memory stand-ins for the store, the queue and the two ports, for unit tests of the
dispatcher, outcomes, upkeep and the controller (no PostgreSQL, Redis or sockets).

``FakeStore`` copies ``mediad.store.Store``'s guarded semantics: an attempt ends only
while ``status = 'running' AND attempts = N``; ``mark_running`` only from ``queued``;
``transition`` only from the allowed statuses; ``delete_job`` never a running job.
``FakeQueue`` copies ``mediad.queue.Queue``'s reliable list (left = index 0: ``push`` is
LPUSH, ``take`` moves the rightmost id to the left of ``processing``). Both have a
``down`` switch: while it is on, every call raises ``StoreUnavailable`` /
``QueueUnavailable`` (an outage); ``calls`` counts the calls made, outages included, and
``refused`` those an outage refused.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from mediad import config as configuration
from mediad import states, wire
from mediad.config import Config
from mediad.errors import QueueUnavailable, StoreUnavailable
from mediad.models import Job, JobType, Status
from mediad.store import ProgressRow

_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def make_config(tmp_path: Path, **sections: dict[str, Any]) -> Config:
    """A validated Config whose folders live under ``tmp_path``: ``make_config(tmp_path,
    queue={"concurrency": 2})``."""
    raw: dict[str, Any] = {"storage": {"state_dir": str(tmp_path / "state")}}
    for name, values in sections.items():
        raw[name] = {**raw.get(name, {}), **values}
    c = configuration.build(raw, env={})
    Path(c.storage.data_dir).mkdir(parents=True, exist_ok=True)
    Path(c.storage.tmp_dir).mkdir(parents=True, exist_ok=True)
    return c


class FakeStore:
    """``mediad.store.Store`` in memory: rows are ``Job`` values, changed with
    ``dataclasses.replace`` under the same guards as the SQL."""

    def __init__(self) -> None:
        self.jobs: dict[UUID, Job] = {}
        self.down = False
        self.calls: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()
        self._clock = itertools.count(1)
        # Store.outbox: the terminal writes record (job id, target, event) here, as the
        # real store inserts rows into `notifications` in the same transaction.
        self.outbox: Any = None
        self.notifications: list[tuple[UUID, str, str]] = []

    # -- test controls

    def outage(self, down: bool = True) -> None:
        self.down = down

    def _enter(self, name: str) -> None:
        self.calls[name] += 1
        if self.down:
            self.refused[name] += 1
            raise StoreUnavailable("PostgreSQL is unavailable: (fake outage)")

    def _now(self) -> datetime:
        # Strictly increasing, so created_at orders jobs as inserted.
        return _EPOCH + timedelta(milliseconds=next(self._clock))

    def put(self, job: Job) -> Job:
        """Store a row as it is (for a test's set-up)."""
        self.jobs[job.id] = job
        return job

    def new_job(
        self,
        job_id: UUID,
        *,
        url: str = "http://127.0.0.1:9/video.mp4",
        job_type: JobType = JobType.ARIA2,
        options: dict[str, Any] | None = None,
        **fields: Any,
    ) -> Job:
        """A row built directly (no outage check), queued unless ``fields`` say otherwise."""
        now = self._now()
        job = Job(
            id=job_id, url=url, type=job_type, status=Status.QUEUED, stage="queued",
            progress=0, speed=None, eta=None, total_bytes=None, filename=None,
            output_path=None, size=None, error_code=None, error_message=None,
            options=dict(options or {}), meta={}, attempts=0, worker_id=None,
            created_at=now, updated_at=now, started_at=None, finished_at=None,
        )  # fmt: skip
        return self.put(dataclasses.replace(job, **fields))

    def _update(self, job: Job, **changes: Any) -> Job:
        job = dataclasses.replace(job, updated_at=self._now(), **changes)
        self.jobs[job.id] = job
        return job

    # -- Store's methods

    async def ping(self) -> None:
        self._enter("ping")

    async def insert_job(
        self, job_id: UUID, url: str, job_type: JobType, options: dict[str, Any]
    ) -> Job:
        self._enter("insert_job")
        if job_id in self.jobs:
            raise ValueError(f"duplicate key {job_id}")
        return self.new_job(job_id, url=url, job_type=job_type, options=options)

    async def get_job(self, job_id: UUID) -> Job | None:
        self._enter("get_job")
        return self.jobs.get(job_id)

    async def mark_running(
        self, job_id: UUID, worker_id: str, instance_id: str | None = None
    ) -> Job | None:
        self._enter("mark_running")
        job = self.jobs.get(job_id)
        if job is None or job.status is not Status.QUEUED:
            return None
        now = self._now()
        return self._update(
            job, status=Status.RUNNING, attempts=job.attempts + 1, worker_id=worker_id,
            instance_id=instance_id, stage="downloading", progress=None, speed=None, eta=None, error_code=None,
            error_message=None, started_at=now, finished_at=None,
        )  # fmt: skip

    def _current(self, job_id: UUID, attempt: int) -> Job | None:
        job = self.jobs.get(job_id)
        if job is None or job.status is not Status.RUNNING or job.attempts != attempt:
            return None
        return job

    async def flush_progress(self, rows: Sequence[ProgressRow]) -> int:
        if not rows:
            return 0
        self._enter("flush_progress")
        written = 0
        for r in rows:
            job = self._current(r.job_id, r.attempt)
            if job is None:
                continue
            live = r.live
            self._update(
                job, stage=live.stage, progress=live.progress, speed=live.speed,
                eta=live.eta, total_bytes=live.total_bytes,
            )  # fmt: skip
            written += 1
        return written

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
        self._enter("complete")
        job = self._current(job_id, attempt)
        if job is None:
            return None
        return self._notify(self._update(
            job, status=Status.COMPLETED, stage="finalizing", progress=100, speed=None, eta=0,
            filename=filename, size=size, output_path=output_path,
            total_bytes=job.total_bytes if job.total_bytes is not None else size,
            meta={**job.meta, **meta}, error_code=None, error_message=None,
            finished_at=self._now(),
        ), "completed")  # fmt: skip

    def _notify(self, job: Job, event: str) -> Job:
        if self.outbox is not None:
            for target in self.outbox.for_job(job, event):
                self.notifications.append((job.id, target.name, event))
        return job

    async def fail(self, job_id: UUID, attempt: int, error_code: str, message: str) -> Job | None:
        self._enter("fail")
        job = self._current(job_id, attempt)
        if job is None:
            return None
        return self._notify(self._update(
            job, status=Status.FAILED, error_code=error_code, error_message=message,
            speed=None, eta=None, finished_at=self._now(),
        ), "failed")  # fmt: skip

    async def requeue(
        self, job_id: UUID, attempt: int, error_code: str, message: str
    ) -> Job | None:
        self._enter("requeue")
        job = self._current(job_id, attempt)
        if job is None:
            return None
        meta = dict(job.meta)
        if states.is_infrastructure(error_code):
            key = states.INTERRUPTIONS_KEY
        elif error_code in states.JOB_TRANSIENT_ERRORS:
            key = states.FAILURES_KEY
        else:
            key = ""
        if key:
            meta[key] = int(meta.get(key) or 0) + 1
        return self._update(
            job, status=Status.QUEUED, stage="queued", speed=None, eta=None,
            error_code=error_code, error_message=message, worker_id=None, meta=meta,
        )  # fmt: skip

    async def transition(
        self, job_id: UUID, allowed: Iterable[Status], target: Status
    ) -> tuple[Job, Status] | None:
        self._enter("transition")
        job = self.jobs.get(job_id)
        if job is None or job.status not in set(allowed):
            return None
        previous = job.status
        changes: dict[str, Any] = {"status": target, "speed": None, "eta": None, "worker_id": None}
        if target is Status.CANCELLED:
            changes["finished_at"] = self._now()
        elif target is Status.QUEUED:
            paused = previous is Status.PAUSED
            changes.update(
                stage="queued", error_code=None, error_message=None, finished_at=None,
                progress=job.progress if paused else 0,
                total_bytes=job.total_bytes if paused else None,
            )  # fmt: skip
        elif target is not Status.PAUSED:
            raise KeyError(target)  # Store has no SET clause for any other target
        return self._update(job, **changes), previous

    async def delete_job(self, job_id: UUID) -> Status | None:
        self._enter("delete_job")
        job = self.jobs.get(job_id)
        if job is None or job.status is Status.RUNNING:
            return None
        del self.jobs[job_id]
        return job.status

    async def requeue_orphans(self, instance_id: str | None = None) -> list[UUID]:
        self._enter("requeue_orphans")
        ids = []
        for job in list(self.jobs.values()):
            if job.status is not Status.RUNNING or job.instance_id != instance_id:
                continue
            meta = {**job.meta, "interruptions": int(job.meta.get("interruptions") or 0) + 1}
            self._update(
                job, status=Status.QUEUED, stage="queued", speed=None, eta=None,
                worker_id=None, error_code="worker_lost",
                error_message="the service stopped while the job was running", meta=meta,
            )  # fmt: skip
            ids.append(job.id)
        return ids

    async def running_owners(self) -> dict[str, int]:
        self._enter("running_owners")
        running = [j.instance_id for j in self.jobs.values() if j.status is Status.RUNNING]
        return dict(Counter(i for i in running if i is not None))

    async def queued_ids(self) -> list[UUID]:
        self._enter("queued_ids")
        queued = [j for j in self.jobs.values() if j.status is Status.QUEUED]
        return [j.id for j in sorted(queued, key=lambda j: (j.created_at, str(j.id)))]


class FakeQueue:
    """``mediad.queue.Queue`` in memory: ``waiting_list`` and ``processing_list`` are the
    two Redis lists, left end first."""

    def __init__(self) -> None:
        self.waiting_list: list[str] = []
        self.processing_list: list[str] = []
        self.is_marked = False
        self.down = False
        self.calls: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()
        self._pushed = asyncio.Event()

    def outage(self, down: bool = True) -> None:
        self.down = down
        self._pushed.set()  # a blocked take notices

    def flush_all(self) -> None:
        """Redis restarted without its data."""
        self.waiting_list.clear()
        self.processing_list.clear()
        self.is_marked = False

    def _enter(self, name: str) -> None:
        self.calls[name] += 1
        if self.down:
            self.refused[name] += 1
            raise QueueUnavailable("Redis is unavailable: (fake outage)")

    def _lrem(self, items: list[str], count: int, value: str) -> None:
        removed = 0
        i = 0
        while i < len(items):
            if items[i] == value and (count == 0 or removed < count):
                del items[i]
                removed += 1
            else:
                i += 1

    async def ping(self) -> None:
        self._enter("ping")

    async def close(self) -> None:
        pass

    async def push(self, job_id: str) -> None:
        self._enter("push")
        self.waiting_list.insert(0, job_id)
        self._pushed.set()

    async def lock_reconcile(self, hold_s: float = 10.0) -> bool:
        self._enter("lock_reconcile")
        return True  # one instance: nobody else reconciles

    async def unlock_reconcile(self) -> None:
        self._enter("unlock_reconcile")

    async def processing_elsewhere(self) -> set[str]:
        self._enter("processing_elsewhere")
        return set()

    async def forget_instance(self, instance_id: str) -> None:
        self._enter("forget_instance")

    async def take(self, timeout_s: float) -> str | None:
        self._enter("take")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not self.waiting_list:
            self._pushed.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            try:
                await asyncio.wait_for(self._pushed.wait(), remaining)
            except TimeoutError:
                return None
            if self.down:
                self.refused["take"] += 1
                raise QueueUnavailable("Redis is unavailable: (fake outage)")
        job_id = self.waiting_list.pop()
        self.processing_list.insert(0, job_id)
        return job_id

    async def done(self, job_id: str) -> None:
        self._enter("done")
        self._lrem(self.processing_list, 1, job_id)

    async def give_back(self, job_id: str) -> None:
        self._enter("give_back")
        self._lrem(self.processing_list, 1, job_id)
        self.waiting_list.append(job_id)
        self._pushed.set()

    async def remove(self, job_id: str) -> None:
        self._enter("remove")
        self._lrem(self.waiting_list, 0, job_id)

    async def mark(self) -> None:
        self._enter("mark")
        self.is_marked = True

    async def marked(self) -> bool:
        self._enter("marked")
        return self.is_marked

    async def depth(self) -> int:
        self._enter("depth")
        return len(self.waiting_list)

    async def waiting(self) -> list[str]:
        self._enter("waiting")
        return list(self.waiting_list)

    async def processing(self) -> list[str]:
        self._enter("processing")
        return list(self.processing_list)

    async def restore(self, stranded: Iterable[str], missing: Iterable[str]) -> None:
        stranded, missing = list(stranded), list(missing)
        self._enter("restore")
        for job_id in stranded:
            self._lrem(self.processing_list, 0, job_id)
            self.waiting_list.append(job_id)
        for job_id in missing:
            self.waiting_list.insert(0, job_id)
        if stranded or missing:
            self._pushed.set()


class RecordingChannel:
    """``ports.WorkerChannel``: records every message, in order."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, Any]] = []  # (kind, sid, message)

    async def start(self, sid: str, message: wire.JobStart) -> None:
        self.sent.append(("start", sid, message))

    async def control(self, sid: str, message: wire.JobControl) -> None:
        self.sent.append(("control", sid, message))

    async def listing(self, sid: str, message: wire.ListingStart) -> None:
        self.sent.append(("listing", sid, message))

    @property
    def starts(self) -> list[tuple[str, wire.JobStart]]:
        return [(sid, m) for kind, sid, m in self.sent if kind == "start"]

    @property
    def controls(self) -> list[tuple[str, wire.JobControl]]:
        return [(sid, m) for kind, sid, m in self.sent if kind == "control"]

    def starts_for(self, job_id: str) -> list[tuple[str, wire.JobStart]]:
        return [(sid, m) for sid, m in self.starts if m.job_id == job_id]


class RecordingPublisher:
    """``ports.Publisher``: records what clients would be told, as (name, payload)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    async def job_update(self, job: Job) -> None:
        self.events.append(("job-update", job))

    async def progress(self, job_id: str, live: wire.Live) -> None:
        self.events.append(("progress", (job_id, live)))

    async def completed(self, job: Job) -> None:
        self.events.append(("completed", job))

    async def failed(self, job_id: str, error_code: str, message: str) -> None:
        self.events.append(("failed", (job_id, error_code, message)))

    async def subscription_update(self, subscription: dict[str, Any]) -> None:
        self.events.append(("subscription-update", subscription))

    async def subscription_deleted(self, subscription_id: str) -> None:
        self.events.append(("subscription-deleted", subscription_id))

    async def cookies_update(self, listing: dict[str, Any]) -> None:
        self.events.append(("cookies-update", (None, listing)))

    async def notification_update(self, delivery: dict[str, Any]) -> None:
        self.events.append(("notification-update", (delivery["jobId"], delivery)))

    def names(self, job_id: str | None = None) -> list[str]:
        return [name for name, p in self.events if job_id is None or _job_of(p) == job_id]

    def updates(self, job_id: str) -> list[Status]:
        """The statuses announced in this job's ``job-update`` events, in order."""
        return [p.status for n, p in self.events if n == "job-update" and str(p.id) == job_id]

    def of(self, name: str, job_id: str | None = None) -> list[Any]:
        return [p for n, p in self.events if n == name and (job_id is None or _job_of(p) == job_id)]


def _job_of(payload: Any) -> str:
    if isinstance(payload, Job):
        return str(payload.id)
    return str(payload[0])


class Rig:
    """A dispatcher, its upkeep and a controller wired to the fakes above, with helpers
    to drive them the way hub.py and a worker would."""

    def __init__(self, config: Config) -> None:
        from mediad.control import Controller
        from mediad.dispatcher import Dispatcher
        from mediad.upkeep import Upkeep

        self.config = config
        self.store = FakeStore()
        self.queue = FakeQueue()
        self.channel = RecordingChannel()
        self.publisher = RecordingPublisher()
        self.dispatcher = Dispatcher(config, self.store, self.queue, self.channel, self.publisher)  # type: ignore[arg-type]
        self.upkeep = Upkeep(self.dispatcher)
        self.controller = Controller(
            config, self.store, self.queue, self.dispatcher, self.publisher
        )  # type: ignore[arg-type]
        self._run: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the dispatch loop (the flusher, reconciler and watchdog loops are not
        started: tests call ``upkeep.flush``, ``reconcile`` and ``check_stalls``)."""
        self._run = asyncio.create_task(self.dispatcher.run(self.upkeep.reconcile))

    async def close(self) -> None:
        await self.dispatcher.stop()
        if self._run is not None:
            self._run.cancel()
            await asyncio.gather(self._run, return_exceptions=True)
            if self._run.done() and not self._run.cancelled() and self._run.exception():
                raise self._run.exception()  # type: ignore[misc]

    def connect(self, sid: str, worker_id: str | None = None) -> None:
        self.dispatcher.worker_connected(sid, worker_id or f"w-{sid}")

    async def submit(self, job_type: JobType = JobType.ARIA2, url: str | None = None) -> str:
        job = await self.controller.create(url or "http://127.0.0.1:9/video.mp4", job_type, {})
        return str(job.id)

    async def started(self, job_id: str, count: int = 1, timeout_s: float = 2) -> tuple[str, int]:
        """Wait for the ``count``-th job:start of this job: (sid, attempt)."""
        from tests.support.polling import eventually

        await eventually(
            lambda: len(self.channel.starts_for(job_id)) >= count,
            timeout_s=timeout_s, interval_s=0.002, what=f"job:start #{count} of {job_id}",
        )  # fmt: skip
        sid, start = self.channel.starts_for(job_id)[count - 1]
        return sid, start.attempt

    def job(self, job_id: str) -> Job:
        return self.store.jobs[UUID(job_id)]

    def stage(self, job_id: str, attempt: int, files: dict[str, bytes]) -> Path:
        """Put files where a worker stages an attempt's result."""
        from mediad import results

        staging = results.staging_dir(self.config.storage.data_dir, job_id, attempt)
        staging.mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            (staging / name).write_bytes(content)
        return staging

    # -- what a worker says

    async def progress(self, sid: str, job_id: str, attempt: int, **live: Any) -> None:
        ev = wire.ProgressEvent(job_id, attempt, wire.Live(**live))
        await self.dispatcher.on_progress(sid, ev.encode())

    async def completed(self, sid: str, job_id: str, attempt: int, files: dict[str, int]) -> None:
        entries = tuple(wire.FileEntry(n, s) for n, s in files.items())
        await self.dispatcher.on_completed(
            sid, wire.CompletedEvent(job_id, attempt, entries).encode()
        )

    async def failed(self, sid: str, job_id: str, attempt: int, code: str, message: str) -> None:
        ev = wire.FailedEvent(job_id, attempt, code, message)
        await self.dispatcher.on_failed(sid, ev.encode())

    async def stopped(self, sid: str, job_id: str, attempt: int, action: str = "abort") -> None:
        await self.dispatcher.on_stopped(sid, wire.StoppedEvent(job_id, attempt, action).encode())

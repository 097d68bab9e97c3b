"""What clients ask of a job: cancel, pause, resume, retry, stop (a live recording) and
delete. Each is one guarded status change in PostgreSQL, then its consequences: the
worker told to stop the tool, the id taken out of or put back into the Redis list,
files removed, and a ``job-update`` for every change."""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path
from uuid import UUID

from mediad import states
from mediad.config import Config
from mediad.dispatcher import Dispatcher
from mediad.errors import Conflict, NotFound, QueueUnavailable
from mediad.models import Job, JobType, Status
from mediad.queue import Queue
from mediad.store import Store

log = logging.getLogger(__name__)


class Controller:
    def __init__(self, config: Config, store: Store, queue: Queue, dispatcher: Dispatcher) -> None:
        self.config = config
        self.store = store
        self.queue = queue
        self.dispatcher = dispatcher

    async def apply(self, job_id: UUID, action: str) -> Job:
        job = await self._get(job_id)
        if action == "stop":
            return await self._stop_recording(job)
        if states.action_target(action, job.status) is None:
            raise _conflict(action, job.status)
        allowed, target = states.ACTIONS[action]
        changed = await self.store.transition(job_id, allowed, target)
        if changed is None:  # it moved on between our read and our write
            raise _conflict(action, (await self._get(job_id)).status)
        job, previous = changed
        log.info("%s (was %s)", action, previous.value, extra={"jobId": str(job_id)})
        await self._consequences(job, previous, action)
        await self.dispatcher.publish_update(job)
        return job

    async def delete(self, job_id: UUID) -> None:
        previous = await self.store.delete_job(job_id)
        if previous is None:
            job = await self._get(job_id)
            raise Conflict(
                "a running job cannot be deleted: cancel it first",
                code="invalid_transition",
                extra={"status": job.status.value},
            )
        if previous is Status.QUEUED:
            await self._unqueue(job_id)
        await self._remove_files(job_id, data=True)
        log.info("deleted (was %s)", previous.value, extra={"jobId": str(job_id)})

    async def _get(self, job_id: UUID) -> Job:
        job = await self.store.get_job(job_id)
        if job is None:
            raise NotFound(f"no job {job_id}")
        return job

    async def _consequences(self, job: Job, previous: Status, action: str) -> None:
        job_id = str(job.id)
        if previous is Status.RUNNING:
            a = self.dispatcher.running.get(job_id)
            if a is not None and not a.stopping:
                then = None
                if action == "cancel":

                    async def then() -> None:
                        await self._remove_files(job.id, data=True)

                await self.dispatcher.stop_attempt(a, action, then)
            elif action == "cancel":  # the attempt ended meanwhile: drop whatever it left
                await self._remove_files(job.id, data=True)
        elif previous is Status.QUEUED:
            await self._unqueue(job.id)
        if action == "cancel" and previous is not Status.RUNNING:
            await self._remove_files(job.id, data=False)  # a paused job's partial data
        if job.status is Status.QUEUED:
            try:
                await self.queue.push(job_id)
            except QueueUnavailable:
                pass  # queued in PostgreSQL: the reconciler pushes it when Redis is back

    async def _stop_recording(self, job: Job) -> Job:
        """Finish a running ffmpeg job now, keeping what was recorded (live streams)."""
        a = self.dispatcher.running.get(str(job.id))
        if job.type is not JobType.FFMPEG or job.status is not Status.RUNNING or a is None:
            raise Conflict(
                "stop finishes a running ffmpeg recording; use cancel or pause otherwise",
                code="invalid_transition",
                extra={"status": job.status.value},
            )
        await self.dispatcher.control_worker(a, "stop")
        return self.dispatcher.snapshot(job)

    async def _unqueue(self, job_id: UUID) -> None:
        try:
            await self.queue.remove(str(job_id))
        except QueueUnavailable:
            pass  # the dispatcher skips ids whose row is no longer queued

    async def _remove_files(self, job_id: UUID, *, data: bool) -> None:
        folders = [Path(self.config.storage.tmp_dir) / str(job_id)]
        if data:
            folders.append(Path(self.config.storage.data_dir) / str(job_id))
        for folder in folders:
            await asyncio.to_thread(shutil.rmtree, folder, True)


def _conflict(action: str, status: Status) -> Conflict:
    return Conflict(
        f"cannot {action} a job that is {status.value}",
        code="invalid_transition",
        extra={"status": status.value},
    )

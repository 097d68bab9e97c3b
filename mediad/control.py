"""What clients ask of jobs: create one, cancel, pause, resume, retry, stop (a live
recording) and delete. Each is one guarded change in PostgreSQL, then its consequences:
the worker told to stop the tool, the id taken out of or put back into the Redis list,
files removed, and a ``job-update`` for every change."""

from __future__ import annotations

import asyncio
import logging
import shutil
import uuid
from pathlib import Path
from typing import Any
from uuid import UUID

from mediad import states
from mediad.cluster import ControlBus
from mediad.config import Config
from mediad.dispatcher import Dispatcher
from mediad.errors import Conflict, NotFound, QueueUnavailable
from mediad.metrics import Metrics
from mediad.models import Job, JobType, Status
from mediad.ports import Publisher
from mediad.queue import Queue
from mediad.store import Store

log = logging.getLogger(__name__)


class Controller:
    def __init__(
        self,
        config: Config,
        store: Store,
        queue: Queue,
        dispatcher: Dispatcher,
        publisher: Publisher,
        bus: ControlBus | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics or Metrics()
        self.store = store
        self.queue = queue
        self.dispatcher = dispatcher
        self.publisher = publisher
        # Several instances: the actions on jobs another instance runs go to it.
        self.bus = bus

    async def create(self, url: str, job_type: JobType, options: dict[str, Any]) -> Job:
        """A new job: its row first (the truth), then its id in the Redis list."""
        job_id = uuid.uuid4()
        job = await self.store.insert_job(job_id, url, job_type, options)
        try:
            await self.queue.push(str(job_id))
        except QueueUnavailable as exc:
            # The row is the truth: the reconciler pushes it once Redis is back.
            log.warning("job accepted while Redis is down: %s", exc, extra={"jobId": str(job_id)})
        log.info(
            "job accepted (%s)", job_type.value, extra={"jobId": str(job_id), "stage": "queued"}
        )
        self.metrics.job_submitted(job)
        # Dashboards following every job see new ones at once, whoever posted them.
        await self.publisher.job_update(job)
        return job

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
        self.metrics.job_finished(job)  # counts a cancel
        log.info("%s (was %s)", action, previous.value, extra={"jobId": str(job_id)})
        await self._consequences(job, previous, action)
        await self.publisher.job_update(job)
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
            if not await self._tell_owner(job, action):
                await self.stop_tool(job_id, action)
        elif previous is Status.QUEUED:
            await self._unqueue(job.id)
        if action == "cancel" and previous is not Status.RUNNING:

            async def remove_partial() -> None:  # a paused job's partial data
                await self._remove_files(job.id, data=False)

            # A pause still being stopped: once its tool is gone.
            if not await self.dispatcher.stop_job(job_id, action, remove_partial):
                await remove_partial()
        if job.status is Status.QUEUED:
            try:
                await self.queue.push(job_id)
            except QueueUnavailable:
                pass  # queued in PostgreSQL: the reconciler pushes it when Redis is back

    async def stop_tool(self, job_id: str, action: str) -> bool:
        """Stop this instance's attempt of the job (cancel, pause), or finish its
        recording (stop); a cancel's files go once the tool is gone. Also what another
        instance asks of this one (cluster.py). False when the attempt is not here."""
        if action == "stop":
            return await self.dispatcher.finish_recording(job_id)

        async def remove_all() -> None:
            await self._remove_files(UUID(job_id), data=True)

        then = remove_all if action == "cancel" else None
        if await self.dispatcher.stop_job(job_id, action, then):
            return True
        if then is not None:
            await then()  # the attempt ended meanwhile: drop whatever it left
        return False

    async def _tell_owner(self, job: Job, action: str) -> bool:
        """The job runs on another instance: ask it (True when it listens)."""
        owner = job.instance_id
        if self.bus is None or owner is None or owner == self.dispatcher.instance_id:
            return False
        return await self.bus.tell(owner, str(job.id), action)

    async def _stop_recording(self, job: Job) -> Job:
        """Finish a running ffmpeg job now, keeping what was recorded (live streams)."""
        recording = job.type is JobType.FFMPEG and job.status is Status.RUNNING
        job_id = str(job.id)
        if not recording or not (
            await self.dispatcher.finish_recording(job_id) or await self._tell_owner(job, "stop")
        ):
            raise Conflict(
                "stop finishes a running ffmpeg recording; use cancel or pause otherwise",
                code="invalid_transition",
                extra={"status": job.status.value},
            )
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

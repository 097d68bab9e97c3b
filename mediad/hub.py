"""Socket.IO: ``/worker`` for worker processes, ``/jobs`` for clients.

``/worker`` has a connect handler that refuses every connection without a valid token:
without one, python-socketio would let anyone in. ``/jobs`` lets clients follow one job
(room ``job:{jobId}``) or all of them (room ``jobs:all``).
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any
from uuid import UUID

import socketio

from mediad import auth, probe, sockets, wire
from mediad.config import Config
from mediad.dispatcher import Dispatcher
from mediad.errors import InvalidEvent, StoreUnavailable
from mediad.models import Job
from mediad.store import Store

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 64 * 1024
MAX_ROOMS_PER_CLIENT = 100
WORKER_ID = re.compile(r"[A-Za-z0-9._:@-]{1,64}")
WORKERS = "/worker"
JOBS = "/jobs"
ALL_ROOM = "jobs:all"


def job_room(job_id: str) -> str:
    return f"job:{job_id}"


def create_server(config: Config) -> socketio.AsyncServer:
    origins: list[str] | None = list(config.server.cors_origins) or None
    # Several instances on one Redis: /jobs events go through Redis to every instance's
    # clients. The embedded Redis is this instance's own: events stay in the process.
    manager = None
    if config.redis.url:
        manager = sockets.ClusterEvents(config.redis.url, f"{config.redis.prefix}socketio")
    # sockets.Server: bad client input closes the connection with one log line; orjson
    # only (no stdlib fallback to recurse or choke on huge numbers).
    return sockets.Server(
        client_manager=manager,
        async_mode="aiohttp",
        cors_allowed_origins=origins,  # None: same origin only
        max_http_buffer_size=MAX_MESSAGE_BYTES,
    )


class WorkerChannel:
    """The dispatcher's messages to workers, on ``/worker`` (``ports.WorkerChannel``)."""

    def __init__(self, sio: socketio.AsyncServer) -> None:
        self.sio = sio

    # Workers are this instance's own: their messages never go through Redis.
    async def start(self, sid: str, message: wire.JobStart) -> None:
        await self.sio.emit(
            wire.JOB_START, message.encode(), to=sid, namespace=WORKERS, ignore_queue=True
        )

    async def control(self, sid: str, message: wire.JobControl) -> None:
        await self.sio.emit(
            wire.JOB_CONTROL, message.encode(), to=sid, namespace=WORKERS, ignore_queue=True
        )

    async def listing(self, sid: str, message: wire.ListingStart) -> None:
        await self.sio.emit(
            wire.LISTING_START, message.encode(), to=sid, namespace=WORKERS, ignore_queue=True
        )


class Publisher:
    """Job events for clients on ``/jobs``: to the job's room and to the room of those
    following every job (``ports.Publisher``)."""

    def __init__(self, sio: socketio.AsyncServer) -> None:
        self.sio = sio

    async def _emit(self, event: str, payload: dict[str, Any]) -> None:
        rooms = [job_room(payload["jobId"]), ALL_ROOM]
        await self.sio.emit(event, payload, to=rooms, namespace=JOBS)

    async def job_update(self, job: Job) -> None:
        await self._emit(
            "job-update",
            {
                "jobId": str(job.id),
                "status": job.status.value,
                "stage": job.stage,
                "progress": job.progress,
            },
        )

    async def progress(self, job_id: str, live: wire.Live) -> None:
        await self._emit("progress", {"jobId": job_id, **live.to_api()})

    async def completed(self, job: Job) -> None:
        await self._emit(
            "completed",
            {
                "jobId": str(job.id),
                "filename": job.filename,
                "size": job.size,
                "outputPath": job.output_path,
            },
        )

    async def failed(self, job_id: str, error_code: str, message: str) -> None:
        await self._emit("failed", {"jobId": job_id, "errorCode": error_code, "message": message})

    # Subscriptions (checks.py): to those following every job.
    async def subscription_update(self, subscription: dict[str, Any]) -> None:
        await self.sio.emit("subscription-update", subscription, to=ALL_ROOM, namespace=JOBS)

    async def subscription_deleted(self, subscription_id: str) -> None:
        payload = {"subscriptionId": subscription_id}
        await self.sio.emit("subscription-deleted", payload, to=ALL_ROOM, namespace=JOBS)

    async def cookies_update(self, listing: dict[str, Any]) -> None:
        """The named cookie files (``CookieFileList``), to those following every job."""
        await self.sio.emit("cookies-update", listing, to=ALL_ROOM, namespace=JOBS)

    async def notification_update(self, delivery: dict[str, Any]) -> None:
        """A delivery recorded, sent, retried or given up: to those following every job."""
        await self.sio.emit("notification-update", delivery, to=ALL_ROOM, namespace=JOBS)


class WorkerNamespace(socketio.AsyncNamespace):
    def __init__(self, dispatcher: Dispatcher, tokens: auth.WorkerTokens) -> None:
        super().__init__(WORKERS)
        self.dispatcher = dispatcher
        self.tokens = tokens

    async def on_connect(self, sid: str, environ: dict[str, Any], auth_data: Any = None) -> None:
        worker_id = auth_data.get("workerId") if isinstance(auth_data, dict) else None
        token = auth_data.get("token") if isinstance(auth_data, dict) else None
        if not isinstance(worker_id, str) or not WORKER_ID.fullmatch(worker_id):
            raise socketio.exceptions.ConnectionRefusedError("invalid worker id")
        if not self.tokens.check(worker_id, token):
            log.warning("refused a worker connection: bad or missing token")
            raise socketio.exceptions.ConnectionRefusedError("invalid worker token")
        assert isinstance(worker_id, str)
        if self.dispatcher.has_worker(worker_id):
            raise socketio.exceptions.ConnectionRefusedError("worker id already connected")
        c = self.dispatcher.config
        nonce = auth_data.get("probe") if isinstance(auth_data, dict) else None
        unshared = await asyncio.to_thread(
            probe.unshared, c.data_path, c.tmp_path, worker_id, nonce
        )
        if unshared is not None:
            log.warning("refused worker %s: %s", worker_id, unshared)
            raise socketio.exceptions.ConnectionRefusedError(unshared)
        self.dispatcher.worker_connected(sid, worker_id)

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        await self.dispatcher.worker_disconnected(sid)

    async def on_progress(self, sid: str, data: Any = None) -> None:
        await self.dispatcher.on_progress(sid, data)

    async def on_completed(self, sid: str, data: Any = None) -> None:
        await self.dispatcher.on_completed(sid, data)

    async def on_failed(self, sid: str, data: Any = None) -> None:
        await self.dispatcher.on_failed(sid, data)

    async def on_stopped(self, sid: str, data: Any = None) -> None:
        await self.dispatcher.on_stopped(sid, data)

    async def on_heartbeat(self, sid: str, data: Any = None) -> None:
        self.dispatcher.on_heartbeat(sid, data)

    async def on_listed(self, sid: str, data: Any = None) -> None:
        await self.dispatcher.on_listed(sid, data)


class JobsNamespace(socketio.AsyncNamespace):
    def __init__(self, config: Config, store: Store, dispatcher: Dispatcher) -> None:
        super().__init__(JOBS)
        self.api_tokens = config.server.api_tokens
        self.store = store
        self.dispatcher = dispatcher

    async def on_connect(self, sid: str, environ: dict[str, Any], auth_data: Any = None) -> None:
        if not self.api_tokens:
            return
        token = auth_data.get("token") if isinstance(auth_data, dict) else None
        if token is None:
            token = auth.bearer_token(environ.get("HTTP_AUTHORIZATION"))
        if not auth.matches_any(token, self.api_tokens):
            raise socketio.exceptions.ConnectionRefusedError("a valid API token is required")

    async def on_subscribe(self, sid: str, data: Any = None) -> dict[str, Any]:
        if isinstance(data, dict) and data.get("all") is True:
            return await self._join(sid, ALL_ROOM, None)
        try:
            job_id = wire.job_id(data.get("jobId") if isinstance(data, dict) else None)
        except InvalidEvent as exc:
            return _error("invalid_job_id", str(exc))
        try:
            job = await self.store.get_job(UUID(job_id))
        except StoreUnavailable:
            return _error("unavailable", "the job store is unavailable; try again")
        if job is None:
            return _error("not_found", f"no job {job_id}")
        return await self._join(sid, job_room(job_id), self.dispatcher.snapshot(job).to_api())

    async def on_unsubscribe(self, sid: str, data: Any = None) -> dict[str, Any]:
        if isinstance(data, dict) and data.get("all") is True:
            await self.leave_room(sid, ALL_ROOM)
            return {"ok": True}
        try:
            job_id = wire.job_id(data.get("jobId") if isinstance(data, dict) else None)
        except InvalidEvent as exc:
            return _error("invalid_job_id", str(exc))
        await self.leave_room(sid, job_room(job_id))
        return {"ok": True}

    async def _join(self, sid: str, room: str, job: dict[str, Any] | None) -> dict[str, Any]:
        if len(self.rooms(sid)) > MAX_ROOMS_PER_CLIENT:  # rooms() includes the sid's own room
            return _error("too_many_subscriptions", f"at most {MAX_ROOMS_PER_CLIENT} at once")
        await self.enter_room(sid, room)
        answer: dict[str, Any] = {"ok": True}
        if job is not None:
            answer["job"] = job
        return answer


def _error(code: str, message: str) -> dict[str, Any]:
    return {"ok": False, "error": {"code": code, "message": message}}

"""Control everywhere: an action posted to one instance reaches the job where it runs.

Every instance listens on its own Redis channel ``{prefix}control:{instance}``. When a
client's cancel, pause or stop is for a job that another instance runs (``jobs.instance_id``),
the instance that took the request has already changed the row (the same guarded
transition, the same answers and 409s as on one instance) and tells the owner, which
stops the tool as if the request had been its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from mediad import wire
from mediad.backoff import Backoff
from mediad.errors import InvalidEvent

log = logging.getLogger(__name__)
# What the owner does with a request: (job id, action) → whether it had the job.
Handler = Callable[[str, str], Awaitable[bool]]


class ControlBus:
    def __init__(self, client: aioredis.Redis, prefix: str, instance_id: str) -> None:
        self._redis = client
        self.prefix = prefix
        self.instance_id = instance_id
        self._handler: Handler | None = None

    def channel(self, instance_id: str) -> str:
        return f"{self.prefix}control:{instance_id}"

    async def tell(self, instance_id: str, job_id: str, action: str) -> bool:
        """Ask ``instance_id`` to apply ``action`` to its attempt of the job; False when
        that instance is not listening (it is gone: its jobs are requeued elsewhere)."""
        message = orjson.dumps({"jobId": job_id, "action": action})
        try:
            return int(await self._redis.publish(self.channel(instance_id), message)) > 0
        except (RedisError, OSError) as exc:
            log.warning("could not reach instance %s: %s", instance_id, exc)
            return False

    async def listen(self, handler: Handler) -> None:
        """Apply what other instances ask of this one's jobs, until cancelled; a Redis
        outage is waited out."""
        backoff = Backoff(0.5, 2.0, 5.0)
        while True:
            try:
                await self._listen_once(handler, backoff)
            except (RedisError, OSError) as exc:
                delay = backoff.next()
                log.warning("control channel lost, listening again in %.1fs: %s", delay, exc)
                await asyncio.sleep(delay)

    async def _listen_once(self, handler: Handler, backoff: Backoff) -> None:
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self.channel(self.instance_id))
            backoff.reset()
            async for message in pubsub.listen():
                await self._handle(handler, message.get("data"))
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pubsub.aclose(), 2.0)

    async def _handle(self, handler: Handler, data: Any) -> None:
        try:
            body = orjson.loads(data)
            job_id = wire.job_id(body.get("jobId") if isinstance(body, dict) else None)
            action = body.get("action")
            if action not in wire.CONTROL_ACTIONS - {"abort"}:
                raise InvalidEvent(f"unknown action {action!r}")
        except (orjson.JSONDecodeError, InvalidEvent, TypeError) as exc:
            log.warning("ignored a bad control message: %s", exc)
            return
        log.info("%s asked by another instance", action, extra={"jobId": job_id})
        await handler(job_id, action)

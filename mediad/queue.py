"""Redis reliable list: ids wait in ``queue`` and sit in ``processing:{instance}`` while
that instance runs them.

New ids go in on the left and are taken from the right (FIFO) with ``BLMOVE`` into the
instance's processing list, so an id is never only in memory: a crash leaves it in one
of the lists, and a reconciler puts it back. redis-py errors become ``QueueUnavailable``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from mediad.errors import QueueUnavailable


@contextlib.contextmanager
def redis_errors() -> Iterator[None]:
    """redis-py's and the socket's errors as ``QueueUnavailable``."""
    try:
        yield
    except (RedisError, OSError) as exc:
        raise QueueUnavailable(f"Redis is unavailable: {exc}") from exc


class Queue:
    def __init__(
        self, client: aioredis.Redis, prefix: str = "mediad:", instance_id: str = "local"
    ) -> None:
        self._redis = client
        self.prefix = prefix
        self.queue_key = f"{prefix}queue"
        self.processing_key = self.processing_key_of(instance_id)
        self.mark_key = f"{prefix}reconciled"

    @property
    def redis(self) -> aioredis.Redis:
        return self._redis

    def processing_key_of(self, instance_id: str) -> str:
        return f"{self.prefix}processing:{instance_id}"

    @classmethod
    def from_url(cls, url: str, prefix: str = "mediad:", instance_id: str = "local") -> Queue:
        client = aioredis.Redis.from_url(
            url,
            decode_responses=True,
            socket_connect_timeout=3,
            health_check_interval=10,
            retry_on_timeout=False,
        )
        return cls(client, prefix, instance_id)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._redis.aclose()

    async def ping(self) -> None:
        with redis_errors():
            await self._redis.ping()

    async def push(self, job_id: str) -> None:
        with redis_errors():
            await self._redis.lpush(self.queue_key, job_id)

    async def take(self, timeout_s: int) -> str | None:
        """Move the oldest id to the processing list and return it (None on timeout)."""
        with redis_errors():
            taken = await self._redis.blmove(
                self.queue_key, self.processing_key, timeout_s, "RIGHT", "LEFT"
            )
        return None if taken is None else str(taken)

    async def done(self, job_id: str) -> None:
        """Remove one occurrence of the id from the processing list."""
        with redis_errors():
            await self._redis.lrem(self.processing_key, 1, job_id)

    async def give_back(self, job_id: str) -> None:
        """Processing → front of the queue, atomically (no slot or worker took it after all)."""
        with redis_errors():
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.lrem(self.processing_key, 1, job_id)
                pipe.rpush(self.queue_key, job_id)
                await pipe.execute()

    async def remove(self, job_id: str) -> None:
        """Take the id out of the waiting list (a cancelled or paused queued job)."""
        with redis_errors():
            await self._redis.lrem(self.queue_key, 0, job_id)

    async def mark(self) -> None:
        """Note that the lists agree with PostgreSQL (see ``marked``)."""
        with redis_errors():
            await self._redis.set(self.mark_key, "1")

    async def marked(self) -> bool:
        """False after Redis lost its data (a restart without persistence): the lists
        must be rebuilt from PostgreSQL."""
        with redis_errors():
            return bool(await self._redis.exists(self.mark_key))

    async def depth(self) -> int:
        with redis_errors():
            return int(await self._redis.llen(self.queue_key))

    async def waiting(self) -> list[str]:
        with redis_errors():
            return [str(i) for i in await self._redis.lrange(self.queue_key, 0, -1)]

    async def processing(self) -> list[str]:
        with redis_errors():
            return [str(i) for i in await self._redis.lrange(self.processing_key, 0, -1)]

    async def lock_reconcile(self, hold_s: float = 10.0) -> bool:
        """One reconciler at a time among the instances on this Redis (a Redis restarted
        empty is rebuilt once); the lock lapses on its own."""
        with redis_errors():
            key = f"{self.prefix}reconcile-lock"
            return bool(await self._redis.set(key, "1", nx=True, px=int(hold_s * 1000)))

    async def unlock_reconcile(self) -> None:
        with redis_errors():
            await self._redis.delete(f"{self.prefix}reconcile-lock")

    async def processing_elsewhere(self) -> set[str]:
        """The ids in other instances' processing lists (they run, or are being taken)."""
        found: set[str] = set()
        with redis_errors():
            async for key in self._redis.scan_iter(match=f"{self.prefix}processing:*"):
                if key != self.processing_key:
                    found.update(str(i) for i in await self._redis.lrange(key, 0, -1))
        return found

    async def forget_instance(self, instance_id: str) -> None:
        """Drop the processing list of an instance that is gone (its jobs were requeued
        from PostgreSQL)."""
        with redis_errors():
            await self._redis.delete(self.processing_key_of(instance_id))

    async def restore(self, stranded: Iterable[str], missing: Iterable[str]) -> None:
        """Reconcile: stranded processing entries go back to the front, missing ids to the back.

        ``missing`` is oldest first; each is pushed so the oldest is taken first.
        """
        stranded, missing = list(stranded), list(missing)
        with redis_errors():
            async with self._redis.pipeline(transaction=True) as pipe:
                for job_id in stranded:
                    pipe.lrem(self.processing_key, 0, job_id)
                    pipe.rpush(self.queue_key, job_id)
                for job_id in missing:
                    pipe.lpush(self.queue_key, job_id)
                await pipe.execute()

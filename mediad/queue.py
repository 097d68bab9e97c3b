"""Redis reliable list: ids wait in ``queue`` and sit in ``processing`` while they run.

New ids go in on the left and are taken from the right (FIFO) with ``BLMOVE`` into the
processing list, so an id is never only in memory: a crash leaves it in one of the two
lists, and the reconciler puts it back. redis-py errors become ``QueueUnavailable``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from mediad.errors import QueueUnavailable


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except (RedisError, OSError) as exc:
        raise QueueUnavailable(f"Redis is unavailable: {exc}") from exc


class Queue:
    def __init__(self, client: aioredis.Redis, prefix: str = "mediad:") -> None:
        self._redis = client
        self.queue_key = f"{prefix}queue"
        self.processing_key = f"{prefix}processing"
        self.mark_key = f"{prefix}reconciled"

    @classmethod
    def from_url(cls, url: str, prefix: str = "mediad:") -> Queue:
        client = aioredis.Redis.from_url(
            url,
            decode_responses=True,
            socket_connect_timeout=3,
            health_check_interval=10,
            retry_on_timeout=False,
        )
        return cls(client, prefix)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._redis.aclose()

    async def ping(self) -> None:
        with _translated():
            await self._redis.ping()

    async def push(self, job_id: str) -> None:
        with _translated():
            await self._redis.lpush(self.queue_key, job_id)

    async def take(self, timeout_s: int) -> str | None:
        """Move the oldest id to the processing list and return it (None on timeout)."""
        with _translated():
            taken = await self._redis.blmove(
                self.queue_key, self.processing_key, timeout_s, "RIGHT", "LEFT"
            )
        return None if taken is None else str(taken)

    async def done(self, job_id: str) -> None:
        """Remove one occurrence of the id from the processing list."""
        with _translated():
            await self._redis.lrem(self.processing_key, 1, job_id)

    async def give_back(self, job_id: str) -> None:
        """Processing → front of the queue, atomically (no slot or worker took it after all)."""
        with _translated():
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.lrem(self.processing_key, 1, job_id)
                pipe.rpush(self.queue_key, job_id)
                await pipe.execute()

    async def remove(self, job_id: str) -> None:
        """Take the id out of the waiting list (a cancelled or paused queued job)."""
        with _translated():
            await self._redis.lrem(self.queue_key, 0, job_id)

    async def mark(self) -> None:
        """Note that the lists agree with PostgreSQL (see ``marked``)."""
        with _translated():
            await self._redis.set(self.mark_key, "1")

    async def marked(self) -> bool:
        """False after Redis lost its data (a restart without persistence): the lists
        must be rebuilt from PostgreSQL."""
        with _translated():
            return bool(await self._redis.exists(self.mark_key))

    async def depth(self) -> int:
        with _translated():
            return int(await self._redis.llen(self.queue_key))

    async def waiting(self) -> list[str]:
        with _translated():
            return [str(i) for i in await self._redis.lrange(self.queue_key, 0, -1)]

    async def processing(self) -> list[str]:
        with _translated():
            return [str(i) for i in await self._redis.lrange(self.processing_key, 0, -1)]

    async def restore(self, stranded: Iterable[str], missing: Iterable[str]) -> None:
        """Reconcile: stranded processing entries go back to the front, missing ids to the back.

        ``missing`` is oldest first; each is pushed so the oldest is taken first.
        """
        stranded, missing = list(stranded), list(missing)
        with _translated():
            async with self._redis.pipeline(transaction=True) as pipe:
                for job_id in stranded:
                    pipe.lrem(self.processing_key, 0, job_id)
                    pipe.rpush(self.queue_key, job_id)
                for job_id in missing:
                    pipe.lpush(self.queue_key, job_id)
                await pipe.execute()

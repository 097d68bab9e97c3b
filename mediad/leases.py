"""Cluster-wide slots and instance liveness, as leases in Redis.

Several ``mediad serve`` instances on one Redis (``redis.prefix``) share one concurrency
limit: a job runs only while its instance holds one of ``queue.concurrency`` slots. A
slot is a member of the sorted set ``{prefix}slots`` scored by its expiry; an instance
announces itself in ``{prefix}instances`` the same way. Holders renew every third of
``queue.lease_s``; the slots and the liveness of an instance that died expire on their
own. Every decision is one Lua script evaluated on Redis's clock (``TIME``), so the
instances' clocks never matter and two instances never take the last slot together.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

import redis.asyncio as aioredis

from mediad.queue import redis_errors

_NOW = "local t = redis.call('TIME'); local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"

# KEYS: slots, the queue's marker. ARGV: member, lease_ms, limit. 1 when the member holds
# a slot now. None is given while the marker is missing: a Redis restarted empty has lost
# the slots of the jobs that still run, until their instances renew them.
_ACQUIRE = (
    _NOW
    + """
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
  return 1
end
return 0
"""
)

# KEYS: slots, instances. ARGV: instance, lease_ms, members… Renews the instance and the
# members it holds (a member that expired meanwhile is taken again: its job still runs).
_RENEW = (
    _NOW
    + """
local expiry = now + tonumber(ARGV[2])
redis.call('ZADD', KEYS[2], expiry, ARGV[1])
for i = 3, #ARGV do redis.call('ZADD', KEYS[1], expiry, ARGV[i]) end
return expiry
"""
)

# KEYS: slots. ARGV: prefix. Drops every slot named with this prefix (a restarted
# instance's slots from before: only one process at a time has its id).
_FORGET = """
local gone = 0
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if string.sub(member, 1, #ARGV[1]) == ARGV[1] then
    redis.call('ZREM', KEYS[1], member)
    gone = gone + 1
  end
end
return gone
"""

# KEYS: instances. The instances whose lease has not expired.
_LIVE = (
    _NOW
    + """
return redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')
"""
)


class Leases:
    def __init__(
        self, client: aioredis.Redis, prefix: str, instance_id: str, lease_s: float
    ) -> None:
        self._redis = client
        self.instance_id = instance_id
        self.lease_ms = max(1000, int(lease_s * 1000))
        self.slots_key = f"{prefix}slots"
        self.mark_key = f"{prefix}reconciled"  # the queue's (Queue.mark)
        self.instances_key = f"{prefix}instances"
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._live = client.register_script(_LIVE)
        self._forget = client.register_script(_FORGET)

    def new_slot(self) -> str:
        """A name for a slot this instance may take."""
        return f"{self.instance_id}/{uuid.uuid4().hex[:12]}"

    async def acquire(self, slot: str, limit: int) -> bool:
        """Take (or keep) ``slot`` if fewer than ``limit`` slots are held cluster-wide."""
        with redis_errors():
            keys = [self.slots_key, self.mark_key]
            return bool(await self._acquire(keys=keys, args=[slot, self.lease_ms, limit]))

    async def forget_earlier(self) -> int:
        """At start-up: the slots this instance held before a crash are free again."""
        with redis_errors():
            return int(await self._forget(keys=[self.slots_key], args=[f"{self.instance_id}/"]))

    async def release(self, slot: str) -> None:
        with redis_errors():
            await self._redis.zrem(self.slots_key, slot)

    async def renew(self, slots: Iterable[str]) -> None:
        """Say this instance lives, and keep the slots it holds."""
        with redis_errors():
            await self._renew(
                keys=[self.slots_key, self.instances_key],
                args=[self.instance_id, self.lease_ms, *slots],
            )

    async def live_instances(self) -> set[str]:
        with redis_errors():
            return {str(i) for i in await self._live(keys=[self.instances_key])}

    async def held(self) -> int:
        """Slots held cluster-wide, expired ones included until the next acquisition."""
        with redis_errors():
            return int(await self._redis.zcard(self.slots_key))

    async def leave(self, slots: Iterable[str]) -> None:
        """A clean shutdown: give the slots back and stop announcing this instance."""
        slots = list(slots)
        with redis_errors():
            async with self._redis.pipeline(transaction=True) as pipe:
                if slots:
                    pipe.zrem(self.slots_key, *slots)
                pipe.zrem(self.instances_key, self.instance_id)
                await pipe.execute()

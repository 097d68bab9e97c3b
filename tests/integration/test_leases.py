"""Cluster-wide slots and instance liveness (mediad/leases.py) and the queue's cluster
keys, against a real Redis: the Lua scripts run on Redis's clock."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from mediad.leases import Leases
from mediad.queue import Queue
from tests.support.harness import RedisServer
from tests.support.polling import eventually


@pytest.fixture
async def prefix(redis_server: RedisServer) -> AsyncIterator[str]:
    yield f"test-{uuid.uuid4().hex[:8]}:"


def leases(queue: Queue, instance: str, lease_s: float = 1.0) -> Leases:
    return Leases(queue.redis, queue.prefix, instance, lease_s)


@pytest.fixture
async def queue(redis_server: RedisServer, prefix: str) -> AsyncIterator[Queue]:
    q = Queue.from_url(redis_server.url, prefix, "a")
    await q.mark()  # reconciled: slots may be given
    yield q
    await q.close()


async def test_no_more_slots_than_the_limit_across_instances(queue: Queue) -> None:
    a, b = leases(queue, "a", 30), leases(queue, "b", 30)
    held = [s for s in (a.new_slot(), b.new_slot(), a.new_slot()) if await a.acquire(s, 2)]
    assert len(held) == 2
    extra = b.new_slot()
    assert not await b.acquire(extra, 2)
    assert await b.acquire(held[0], 2)  # a holder keeps its slot (and renews it)
    await a.release(held[0])
    assert await b.acquire(extra, 2)
    assert await a.held() == 2


async def test_the_slots_of_an_instance_that_stops_renewing_come_back(queue: Queue) -> None:
    dead, alive = leases(queue, "dead", 1.0), leases(queue, "alive", 30)
    assert await dead.acquire(dead.new_slot(), 1)
    waiting = alive.new_slot()
    assert not await alive.acquire(waiting, 1)
    # About a second later, on Redis's clock, the lease has run out.
    await eventually(lambda: alive.acquire(waiting, 1), timeout_s=5, what="the lease to run out")


async def test_renewing_keeps_the_slots_and_the_instance_alive(queue: Queue) -> None:
    a = leases(queue, "a", 1.0)
    slot = a.new_slot()
    assert await a.acquire(slot, 1)
    await a.renew([slot])
    assert await a.live_instances() == {"a"}
    other = leases(queue, "b", 1.0)
    for _ in range(3):  # renewed, it stays taken
        await a.renew([slot])
        assert not await other.acquire(other.new_slot(), 1)
    await eventually(
        lambda: _gone(a), timeout_s=5, what="the instance's liveness to run out without renewals"
    )


async def _gone(a: Leases) -> bool:
    return "a" not in await a.live_instances()


async def test_a_restarted_instance_frees_what_it_held_before(queue: Queue) -> None:
    before = leases(queue, "a", 60)
    for _ in range(2):
        assert await before.acquire(before.new_slot(), 3)
    other = leases(queue, "ab", 60)  # a name that starts the same is not "a"
    assert await other.acquire(other.new_slot(), 3)
    again = leases(queue, "a", 60)
    assert await again.forget_earlier() == 2
    assert await again.held() == 1


async def test_leaving_gives_the_slots_back_and_stops_announcing(queue: Queue) -> None:
    a = leases(queue, "a", 60)
    slot = a.new_slot()
    assert await a.acquire(slot, 1)
    await a.renew([slot])
    await a.leave([slot])
    assert await a.held() == 0
    assert await a.live_instances() == set()


async def test_one_reconciler_at_a_time(queue: Queue, redis_server: RedisServer) -> None:
    other = Queue.from_url(redis_server.url, queue.prefix, "b")
    try:
        assert await queue.lock_reconcile()
        assert not await other.lock_reconcile()
        await queue.unlock_reconcile()
        assert await other.lock_reconcile()
    finally:
        await other.close()


async def test_each_instance_has_its_processing_list(
    queue: Queue, redis_server: RedisServer
) -> None:
    other = Queue.from_url(redis_server.url, queue.prefix, "b")
    try:
        for job_id in ("1", "2"):
            await queue.push(job_id)
        assert await queue.take(timeout_s=1) == "1"
        assert await other.take(timeout_s=1) == "2"
        assert await queue.processing() == ["1"]
        assert await queue.processing_elsewhere() == {"2"}
        assert await other.processing_elsewhere() == {"1"}
        await queue.forget_instance("b")
        assert await queue.processing_elsewhere() == set()
    finally:
        await other.close()


async def test_no_slot_is_given_while_redis_has_not_been_reconciled(
    redis_server: RedisServer, prefix: str
) -> None:
    """A Redis restarted empty has lost the slots of the jobs still running: none is given
    until the queue is rebuilt (its marker set), after the instances renewed theirs."""
    fresh = Queue.from_url(redis_server.url, prefix, "a")
    try:
        a = leases(fresh, "a", 30)
        slot = a.new_slot()
        assert not await a.acquire(slot, 3)
        await fresh.mark()
        assert await a.acquire(slot, 3)
    finally:
        await fresh.close()

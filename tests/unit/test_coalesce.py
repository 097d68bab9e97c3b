"""mediad.coalesce: reads asked together share one run, and nobody is answered by a query
sent before they asked."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable

import pytest

from mediad.coalesce import Coalescer, Seal, Shared
from tests.support.polling import eventually


class Source:
    """A table of values read by runs that wait on ``gate`` before they seal (a pool
    wait) and on ``in_flight`` after (the query on its way)."""

    def __init__(self) -> None:
        self.values: dict[str, int] = {"a": 1, "b": 2, "c": 3}
        self.runs: list[list[str]] = []  # the keys each run was sealed with
        self.gate: asyncio.Event | None = None
        self.in_flight: asyncio.Event | None = None
        self.sealed = asyncio.Event()
        self.waiting = asyncio.Event()  # a run waits at the gate
        self.fail: Exception | None = None

    async def run(self, seal: Seal[str]) -> dict[str, int]:
        if self.gate is not None:
            self.waiting.set()
            await self.gate.wait()
        keys = seal()
        self.runs.append(keys)
        self.sealed.set()
        snapshot = {k: self.values[k] for k in keys if k in self.values}  # the query's view
        if self.in_flight is not None:
            await self.in_flight.wait()
        if self.fail is not None:
            raise self.fail
        return snapshot


async def test_callers_of_one_iteration_share_one_run() -> None:
    source = Source()
    reads = Coalescer(source.run)
    got = await asyncio.gather(*(reads.get(k) for k in ["a", "b", "a", "zz", "c"]))
    assert got == [1, 2, 1, None, 3]  # a key the run leaves out: None
    assert source.runs == [["a", "b", "zz", "c"]]  # each key once
    assert reads.batches == 1


async def test_callers_that_come_while_the_run_waits_to_send_join_it() -> None:
    source = Source()
    source.gate = asyncio.Event()
    reads = Coalescer(source.run)
    first = asyncio.ensure_future(reads.get("a"))
    await source.waiting.wait()  # the run waits for its connection
    later = asyncio.ensure_future(reads.get("b"))
    await asyncio.sleep(0)
    source.gate.set()
    assert await asyncio.gather(first, later) == [1, 2]
    assert source.runs == [["a", "b"]]


async def test_a_caller_after_the_seal_gets_a_read_sent_after_it_asked() -> None:
    """Read-your-writes: a value written while a query is in flight, then asked for, is
    never answered by that query."""
    source = Source()
    source.in_flight = asyncio.Event()
    reads = Coalescer(source.run)
    before = asyncio.ensure_future(reads.get("a"))
    await source.sealed.wait()  # the first query is on its way, with a = 1
    source.values["a"] = 10  # a write lands and is acknowledged
    after = asyncio.ensure_future(reads.get("a"))  # then its client reads
    await eventually(lambda: len(source.runs) == 2, timeout_s=5, what="the second run's seal")
    source.in_flight.set()
    assert await before == 1
    assert await after == 10
    assert source.runs == [["a"], ["a"]]


async def test_an_error_is_every_callers_and_the_next_call_runs_again() -> None:
    source = Source()
    source.fail = RuntimeError("the store is down")
    reads = Coalescer(source.run)
    results = await asyncio.gather(reads.get("a"), reads.get("b"), return_exceptions=True)
    assert [str(r) for r in results] == ["the store is down"] * 2
    source.fail = None
    assert await reads.get("a") == 1
    assert len(source.runs) == 2


async def test_a_cancelled_caller_cancels_nobody_else() -> None:
    source = Source()
    source.in_flight = asyncio.Event()
    reads = Coalescer(source.run)
    leaving = asyncio.ensure_future(reads.get("a"))
    staying = asyncio.ensure_future(reads.get("a"))
    await source.sealed.wait()
    leaving.cancel()  # its client went away
    await asyncio.sleep(0)
    source.in_flight.set()
    assert await staying == 1
    assert leaving.cancelled()


async def test_groups_keep_unequal_keys_apart() -> None:
    source = Source()
    reads: Coalescer[str, int] = Coalescer(source.run, group=lambda key: key)
    got = await asyncio.gather(reads.get("a"), reads.get("b"), reads.get("a"))
    assert got == [1, 2, 1]
    assert sorted(source.runs) == [["a"], ["b"]]


async def test_a_batch_takes_at_most_max_keys() -> None:
    source = Source()
    source.values = {str(i): i for i in range(7)}
    reads = Coalescer(source.run, max_keys=3)
    got = await asyncio.gather(*(reads.get(str(i)) for i in [0, 1, 2, 0, 3, 4, 5, 6]))
    assert got == [0, 1, 2, 0, 3, 4, 5, 6]
    assert source.runs == [["0", "1", "2"], ["3", "4", "5"], ["6"]]


async def test_a_run_that_never_seals_answers_nobody() -> None:
    async def lazy(seal: Seal[str]) -> dict[str, int]:
        return {"a": 1}

    reads = Coalescer(lazy)
    with pytest.raises(RuntimeError, match="without sealing"):
        await reads.get("a")


@pytest.mark.parametrize("group", [None, lambda key: key])
async def test_nothing_is_left_open_after_a_run(group: Callable[[str], Hashable] | None) -> None:
    source = Source()
    reads: Coalescer[str, int] = Coalescer(source.run, group=group)
    await asyncio.gather(reads.get("a"), reads.get("b"))
    await asyncio.sleep(0)  # the runs' tasks' done callbacks
    assert reads._open == {} and reads._tasks == set()


# -- Shared: checks asked for together run once, never older than their request ------------


class Checks:
    """A run that counts itself and waits on ``gate`` (a check in progress)."""

    def __init__(self) -> None:
        self.started = 0
        self.gate: asyncio.Event | None = None
        self.running = asyncio.Event()
        self.fail: Exception | None = None

    async def run(self) -> int:
        self.started += 1
        number = self.started
        self.running.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return number


async def test_callers_together_share_one_run() -> None:
    checks = Checks()
    shared = Shared(checks.run)
    assert await asyncio.gather(*(shared.get() for _ in range(5))) == [1] * 5
    assert shared.runs == 1
    assert await shared.get() == 2  # a later caller: a run of its own, nothing kept


async def test_callers_during_a_run_share_the_next_one_never_the_one_under_way() -> None:
    checks = Checks()
    checks.gate = asyncio.Event()
    shared = Shared(checks.run, overlap_s=60)
    first = asyncio.ensure_future(shared.get())
    await checks.running.wait()  # run 1 started before the others asked
    during = [asyncio.ensure_future(shared.get()) for _ in range(4)]
    await asyncio.sleep(0.01)  # a while with run 1 under way: nothing new (a negative check)
    assert checks.started == 1  # the next waits for this one
    checks.gate.set()
    assert await first == 1
    assert await asyncio.gather(*during) == [2] * 4  # one run for the four
    assert shared.runs == 2


async def test_a_run_that_hangs_holds_the_next_back_for_overlap_s_only() -> None:
    checks = Checks()
    checks.gate = asyncio.Event()
    shared = Shared(checks.run, overlap_s=0.05)
    hung = asyncio.ensure_future(shared.get())
    await checks.running.wait()
    later = asyncio.ensure_future(shared.get())
    await asyncio.sleep(0.02)  # before overlap_s has passed: nothing new (a negative check)
    assert checks.started == 1
    await eventually(lambda: checks.started == 2, timeout_s=5, what="the run beside the hung one")
    checks.gate.set()
    assert (await hung, await later) == (1, 2)


async def test_an_error_is_its_runs_callers_and_a_cancelled_caller_cancels_no_run() -> None:
    checks = Checks()
    checks.gate = asyncio.Event()
    checks.fail = RuntimeError("down")
    shared = Shared(checks.run)
    leaving = asyncio.ensure_future(shared.get())
    staying = asyncio.ensure_future(shared.get())
    await checks.running.wait()
    leaving.cancel()
    await asyncio.sleep(0)
    checks.gate.set()
    with pytest.raises(RuntimeError, match="down"):
        await staying
    assert leaving.cancelled()
    checks.fail, checks.gate = None, None
    assert await shared.get() == 2

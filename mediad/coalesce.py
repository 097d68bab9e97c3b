"""Reads that arrive together share one query.

Under load many requests ask for the same kind of thing at once: 50 clients polling
``GET /downloads/{id}`` cost 50 pool acquisitions and 50 round trips, each a few times
the cost of the row itself, and 50 identical ``GET /downloads`` pages build the same page
50 times. A :class:`Coalescer` gathers the keys asked for while a batch is *open* and
answers them all from one run of its ``run`` coroutine.

Freshness is the point of the design: a batch is open only until its run *seals* it, and
``run`` seals it just before it sends its query. So every caller's answer comes from a
query sent after the caller asked — a client that saw its write acknowledged and then
reads never gets the state from before that write. A caller that arrives once the
batch is sealed starts the next one; nobody joins a query already on its way.

A batch runs in a task of its own, one loop iteration after it opens (everyone who asks
in the same iteration joins it), so a caller that is cancelled (its client went away)
cancels nobody else's read. An error of the run is every caller's error.

:class:`Shared` is the same rule for one result with no key: ``GET /health``'s checks,
run once for every request that came while the previous run was under way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

Seal = Callable[[], list[K]]


class _Batch(Generic[K, V]):
    __slots__ = ("waiters",)

    def __init__(self) -> None:
        self.waiters: dict[K, list[asyncio.Future[V | None]]] = {}


class Coalescer(Generic[K, V]):
    """``get(key)`` answers from ``run(seal)``: ``run`` waits for what it needs (a pooled
    connection), calls ``seal()`` right before its query, which closes the batch and
    returns its distinct keys, and returns a value per key (a key it leaves out is
    answered None). ``group(key)`` says which keys may share a batch (the default: all
    of them; ``lambda key: key``: only equal ones). A batch takes at most ``max_keys``
    distinct keys; the next ones open another."""

    def __init__(
        self,
        run: Callable[[Seal[K]], Awaitable[Mapping[K, V]]],
        *,
        group: Callable[[K], Hashable] | None = None,
        max_keys: int = 256,
    ) -> None:
        self._run = run
        self._group = group
        self._max_keys = max_keys
        self._open: dict[Hashable, _Batch[K, V]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.batches = 0  # runs started, for tests and curiosity

    async def get(self, key: K) -> V | None:
        group = self._group(key) if self._group is not None else None
        batch = self._open.get(group)
        if batch is None or (key not in batch.waiters and len(batch.waiters) >= self._max_keys):
            batch = self._open[group] = _Batch()
            task = asyncio.get_running_loop().create_task(self._batch(group, batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        waiter: asyncio.Future[V | None] = asyncio.get_running_loop().create_future()
        batch.waiters.setdefault(key, []).append(waiter)
        return await waiter

    async def _batch(self, group: Hashable, batch: _Batch[K, V]) -> None:
        self.batches += 1
        sealed = False

        def seal() -> list[K]:
            nonlocal sealed
            sealed = True
            if self._open.get(group) is batch:
                del self._open[group]
            return list(batch.waiters)

        try:
            found = await self._run(seal)
            if not sealed:  # its callers could have come after the query: no answer is fresh
                raise RuntimeError("a coalesced read returned without sealing its batch")
        except asyncio.CancelledError:
            seal()
            for waiters in batch.waiters.values():
                for waiter in waiters:
                    waiter.cancel()
            raise
        except Exception as exc:
            seal()
            for waiters in batch.waiters.values():
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_exception(exc)
            return
        for key, waiters in batch.waiters.items():
            value = found.get(key)
            for waiter in waiters:
                if not waiter.done():  # not cancelled meanwhile
                    waiter.set_result(value)


class Shared(Generic[V]):
    """``get()`` answers from the next run of ``run`` to begin: callers that come before
    a run begins share it, those that come while it is under way share the one after it.
    Runs go one at a time (each serves everyone who came during the last), except that a
    run still going after ``overlap_s`` no longer holds the next one back, so a part that
    hangs delays no answer by more than that. Nothing is kept: no answer is older than
    its request."""

    def __init__(self, run: Callable[[], Awaitable[V]], *, overlap_s: float = 0.25) -> None:
        self._run = run
        self._overlap_s = overlap_s
        self._next: asyncio.Future[V] | None = None  # the callers of the next run
        self._timer: asyncio.TimerHandle | None = None
        self._latest: asyncio.Task[None] | None = None  # the run started last
        self._latest_at = 0.0
        self._tasks: set[asyncio.Task[None]] = set()
        self.runs = 0  # runs begun, for tests and curiosity

    async def get(self) -> V:
        callers = self._next
        if callers is None:
            callers = self._next = asyncio.get_running_loop().create_future()
            callers.add_done_callback(_retrieve)  # every caller gone: nobody to tell
            self._start_when_free()
        return await asyncio.shield(callers)

    def _start_when_free(self) -> None:
        loop = asyncio.get_running_loop()
        if self._latest is not None and not self._latest.done():
            wait = self._latest_at + self._overlap_s - loop.time()
            if wait > 0:
                if self._timer is None:
                    self._timer = loop.call_later(wait, self._on_timer)
                return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        task = loop.create_task(self._one())
        self._latest, self._latest_at = task, loop.time()
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _on_timer(self) -> None:
        self._timer = None
        if self._next is not None:
            self._start_when_free()

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if task is self._latest and self._next is not None:
            self._start_when_free()

    async def _one(self) -> None:
        # Its first step: whoever asked until now shares this run; later callers the next.
        callers, self._next = self._next, None
        if callers is None:
            return
        self.runs += 1
        try:
            result = await self._run()
        except asyncio.CancelledError:
            callers.cancel()
            raise
        except Exception as exc:
            if not callers.done():
                callers.set_exception(exc)
        else:
            if not callers.done():
                callers.set_result(result)


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()

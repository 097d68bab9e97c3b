"""Pure: one attempt of one job on one worker, its phase, and the index of who runs what.

An attempt moves through one phase at a time, by the moves in :data:`MOVES` only:

    running ──outcome──▶ settling ──────────────▶ released
       │                    │ (a stop asked while       ▲
       │                    ▼  it is being recorded)    │
       └────stop──────▶ stopping ──tool gone──────────┘

* ``running``: the worker runs the tool; its events count.
* ``settling``: an outcome (completed, failed, lost) is being recorded; later events
  are ignored.
* ``stopping``: the worker was asked to stop the tool (pause, cancel, abort); the slot
  stays taken until it says ``stopped`` (or leaves, or the stop times out), so two tools
  never share ``tmp/{jobId}``.
* ``released``: the slot and the worker are free; what was to run after the stop runs.

:class:`Roster` keeps the connected workers and the attempts they run, in one index:
an attempt is bound to its worker when it starts and unbound when it is released.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from enum import Enum

from mediad import wire


class Phase(str, Enum):
    RUNNING = "running"
    SETTLING = "settling"
    STOPPING = "stopping"
    RELEASED = "released"


MOVES: dict[Phase, frozenset[Phase]] = {
    Phase.RUNNING: frozenset({Phase.SETTLING, Phase.STOPPING}),
    Phase.SETTLING: frozenset({Phase.STOPPING, Phase.RELEASED}),
    Phase.STOPPING: frozenset({Phase.RELEASED}),
    Phase.RELEASED: frozenset(),
}


class IllegalMove(Exception):
    """A move :data:`MOVES` does not allow: a bug in the caller."""


@dataclass(eq=False)
class Attempt:
    """One attempt of one job on one worker, with its live progress."""

    job_id: str
    attempt: int
    sid: str
    worker_id: str
    live: wire.Live = field(default_factory=wire.Live)
    # Progress received since the flusher last wrote it.
    dirty: bool = False
    phase: Phase = Phase.RUNNING
    # The action a stop was asked for, and what runs once the tool is gone.
    stop_action: str | None = None
    after_stop: Callable[[], Awaitable[None]] | None = None
    last_activity: float = field(default_factory=time.monotonic)
    # The cluster-wide slot (leases.py) this attempt holds, if slots are leased.
    slot: str | None = None
    # Earlier attempts lost to mediad's own faults, and to failures of the job's own
    # (states.counted): each kind has its own budget.
    interruptions: int = 0
    failures: int = 0
    # A subscription's check (checks.py) rather than a job: ``job_id`` is the check's id.
    check: bool = False

    @property
    def queue_entry(self) -> str:
        """Its entry in the Redis lists (``check:{id}`` for a check)."""
        return f"{wire.CHECK_PREFIX}{self.job_id}" if self.check else self.job_id

    def move(self, to: Phase) -> None:
        if to not in MOVES[self.phase]:
            raise IllegalMove(f"an attempt cannot go from {self.phase.value} to {to.value}")
        self.phase = to

    @property
    def counts_events(self) -> bool:
        """The worker's events still count: no outcome yet and no stop asked."""
        return self.phase is Phase.RUNNING

    def settle(self) -> None:
        """An outcome is being recorded: ignore what the worker says from now on. Once
        settling, stopping or released, the attempt stays where it is."""
        if self.phase is Phase.RUNNING:
            self.move(Phase.SETTLING)

    def stop(self, action: str, then: Callable[[], Awaitable[None]] | None) -> None:
        self.move(Phase.STOPPING)
        self.stop_action, self.after_stop = action, then

    def release(self) -> bool:
        """Mark the attempt released; False when it already was."""
        if self.phase is Phase.RELEASED:
            return False
        self.move(Phase.RELEASED)
        return True

    def also_after_stop(self, then: Callable[[], Awaitable[None]]) -> None:
        """One more thing to do once the tool being stopped is gone (a cancel asked
        while a pause is being stopped: its files go after the tool)."""
        first = self.after_stop
        if first is None:
            self.after_stop = then
            return

        async def both() -> None:
            await first()
            await then()

        self.after_stop = both

    def take_after_stop(self) -> Callable[[], Awaitable[None]] | None:
        then, self.after_stop = self.after_stop, None
        return then

    def record(self, live: wire.Live, now: float) -> None:
        """Progress from the worker. Activity is movement, not speed: aria2's speed is an
        average that decays for seconds after the bytes stop."""
        if (live.progress, live.stage) != (self.live.progress, self.live.stage):
            self.last_activity = now
        self.live = live
        self.dirty = True


@dataclass(eq=False)
class WorkerConn:
    sid: str
    worker_id: str
    last_seen: float = field(default_factory=time.monotonic)


class Roster:
    """The connected workers and the attempts bound to them: one index of who runs what."""

    def __init__(self) -> None:
        self._workers: dict[str, WorkerConn] = {}
        self._attempts: dict[str, Attempt] = {}  # by job id
        self._on_worker: dict[str, Attempt] = {}  # by worker sid

    # -- workers

    def add_worker(self, sid: str, worker_id: str) -> WorkerConn:
        worker = self._workers[sid] = WorkerConn(sid, worker_id)
        return worker

    def remove_worker(self, sid: str) -> tuple[WorkerConn | None, Attempt | None]:
        """Forget a worker; returns it and the attempt it ran (still bound to its job)."""
        worker = self._workers.pop(sid, None)
        return worker, self._on_worker.pop(sid, None)

    def worker(self, sid: str) -> WorkerConn | None:
        return self._workers.get(sid)

    def has_worker_id(self, worker_id: str) -> bool:
        return any(w.worker_id == worker_id for w in self._workers.values())

    def idle_worker(self) -> WorkerConn | None:
        for sid, worker in self._workers.items():
            if sid not in self._on_worker:
                return worker
        return None

    def attempt_on(self, sid: str) -> Attempt | None:
        return self._on_worker.get(sid)

    @property
    def worker_count(self) -> int:
        return len(self._workers)

    @property
    def busy_count(self) -> int:
        return len(self._on_worker)

    def worker_ids(self) -> list[str]:
        return [w.worker_id for w in self._workers.values()]

    # -- attempts

    def add(self, a: Attempt) -> None:
        """An attempt that holds a slot (its worker is bound by :meth:`bind`)."""
        self._attempts[a.job_id] = a

    def bind(self, a: Attempt) -> bool:
        """Bind the attempt to its worker; False when that worker has left meanwhile."""
        if a.sid not in self._workers or a.sid in self._on_worker:
            return False
        self._on_worker[a.sid] = a
        return True

    def unbind(self, a: Attempt) -> None:
        """Free the attempt's slot and its worker."""
        if self._attempts.get(a.job_id) is a:
            del self._attempts[a.job_id]
        if self._on_worker.get(a.sid) is a:
            del self._on_worker[a.sid]

    def get(self, job_id: str) -> Attempt | None:
        return self._attempts.get(job_id)

    def holds(self, a: Attempt) -> bool:
        return self._attempts.get(a.job_id) is a

    def bound(self, sid: str, job_id: str, attempt: int) -> Attempt | None:
        """The attempt ``(job_id, attempt)`` when it is this worker's, else None."""
        a = self._attempts.get(job_id)
        if a is None or a.sid != sid or a.attempt != attempt:
            return None
        return a

    def __iter__(self) -> Iterator[Attempt]:
        return iter(list(self._attempts.values()))

    def __len__(self) -> int:
        return len(self._attempts)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._attempts

    def job_ids(self) -> set[str]:
        return set(self._attempts)

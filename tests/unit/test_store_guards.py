"""The SQL guards in mediad/store.py agree with the transition table in mediad/states.py.

Each Store method runs against a connection that records the statement and its
parameters instead of sending them: the status guard of every change is read from what
the store would really send. (tests/integration/test_store_guards.py tries the same table
against a real PostgreSQL, and the fake store beside it.)"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import pytest

from mediad import states, store
from mediad.models import Status
from mediad.store import Store
from mediad.wire import Live

JOB = UUID("0b7e5a52-6f7e-4d8c-9a51-3c1f0e6d2a91")


class RecordingConn:
    def __init__(self) -> None:
        self.sent: list[tuple[str, tuple[Any, ...]]] = []

    async def fetchrow(self, sql: str, *args: Any, **kw: Any) -> None:
        self.sent.append((sql, args))

    async def fetchval(self, sql: str, *args: Any, **kw: Any) -> None:
        self.sent.append((sql, args))

    async def fetch(self, sql: str, *args: Any, **kw: Any) -> list[Any]:
        self.sent.append((sql, args))
        return []

    async def execute(self, sql: str, *args: Any, **kw: Any) -> str:
        self.sent.append((sql, args))
        return "UPDATE 0"


class RecordingPool:
    def __init__(self) -> None:
        self.conn = RecordingConn()

    def get_max_size(self) -> int:
        return 10

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[RecordingConn]:
        yield self.conn


@pytest.fixture
def recorded() -> tuple[Store, RecordingConn]:
    pool = RecordingPool()
    return Store(pool), pool.conn  # type: ignore[arg-type]


def where(sql: str) -> str:
    """The WHERE clause of a statement, whitespace collapsed."""
    clause = re.split(r"\bWHERE\b", sql, maxsplit=1)[1]
    clause = re.split(r"\bRETURNING\b", clause, maxsplit=1)[0]
    return " ".join(clause.split())


def status_literals(sql: str) -> set[str]:
    return set(re.findall(r"status\s*(?:=|<>)\s*'([a-z]+)'", where(sql)))


# -- client actions


def test_every_action_target_has_exactly_one_set_clause() -> None:
    targets = {target for _, target in states.ACTIONS.values()}
    assert set(store._TRANSITION_SETS) == targets


@pytest.mark.parametrize("action", sorted(states.ACTIONS))
def test_every_action_is_a_documented_transition(action: str) -> None:
    allowed, target = states.ACTIONS[action]
    for status in Status:
        assert (states.action_target(action, status) is not None) == (status in allowed)
        if status in allowed:
            assert states.can_transition(status, target), (action, status)


@pytest.mark.parametrize("action", sorted(states.ACTIONS))
async def test_transition_guards_exactly_the_allowed_statuses(
    action: str, recorded: tuple[Store, RecordingConn]
) -> None:
    s, conn = recorded
    allowed, target = states.ACTIONS[action]
    assert await s.transition(JOB, allowed, target) is None
    [(sql, args)] = conn.sent
    # The guard is the table's from-statuses as a parameter, and no status written in SQL.
    assert "old.previous = ANY($2::text[])" in where(sql)
    assert status_literals(sql) == set()
    assert args[0] == JOB and sorted(args[1]) == sorted(s.value for s in allowed)
    assert args[2] == target.value and "status = $3" in sql
    assert " ".join(store._TRANSITION_SETS[target].split()) in " ".join(sql.split())


async def test_the_requeue_set_clause_keeps_a_paused_jobs_progress_only(
    recorded: tuple[Store, RecordingConn],
) -> None:
    """resume (from paused) keeps progress and total_bytes; retry resets them."""
    sets = store._TRANSITION_SETS[Status.QUEUED]
    assert "progress = CASE WHEN status = 'paused' THEN progress ELSE 0 END" in sets
    assert "total_bytes = CASE WHEN status = 'paused' THEN total_bytes ELSE NULL END" in sets
    assert {s for s, t in states.ACTIONS.values() if t is Status.QUEUED} == {
        frozenset({Status.PAUSED}),
        frozenset({Status.FAILED, Status.CANCELLED}),
    }


# -- the service's own changes


async def test_mark_running_only_from_queued(recorded: tuple[Store, RecordingConn]) -> None:
    s, conn = recorded
    await s.mark_running(JOB, "w-1")
    [(sql, _)] = conn.sent
    assert "status = 'running'" in sql.split("WHERE")[0]
    assert status_literals(sql) == {"queued"}
    froms = {st for st in Status if states.can_transition(st, Status.RUNNING)}
    assert froms == {Status.QUEUED}


END_ATTEMPT = [
    pytest.param("complete", Status.COMPLETED, id="complete"),
    pytest.param("fail", Status.FAILED, id="fail"),
    pytest.param("requeue", Status.QUEUED, id="requeue"),
]


@pytest.mark.parametrize(("method", "target"), END_ATTEMPT)
async def test_an_attempt_ends_only_while_it_is_current_and_running(
    method: str, target: Status, recorded: tuple[Store, RecordingConn]
) -> None:
    s, conn = recorded
    if method == "complete":
        await s.complete(JOB, 3, filename="f", size=1, output_path="x/f", meta={})
    else:
        await getattr(s, method)(JOB, 3, "network", "m")
    [(sql, args)] = conn.sent
    assert where(sql) == "id = $1 AND status = 'running' AND attempts = $2"
    assert args[:2] == (JOB, 3)
    assert f"status = '{target.value}'" in sql.split("WHERE")[0]
    assert states.can_transition(Status.RUNNING, target)


async def test_progress_is_written_only_for_the_current_running_attempt(
    recorded: tuple[Store, RecordingConn],
) -> None:
    s, conn = recorded
    await s.flush_progress([store.ProgressRow(JOB, 2, Live(progress=5.0))])
    [(sql, args)] = conn.sent
    assert "j.status = 'running' AND j.attempts = u.attempt" in where(sql)
    assert args[0] == [JOB] and args[1] == [2]


async def test_orphans_are_requeued_only_from_running(
    recorded: tuple[Store, RecordingConn],
) -> None:
    s, conn = recorded
    await s.requeue_orphans()
    [(sql, _)] = conn.sent
    assert status_literals(sql) == {"running"}
    assert states.can_transition(Status.RUNNING, Status.QUEUED)


async def test_delete_refuses_only_a_running_job(recorded: tuple[Store, RecordingConn]) -> None:
    s, conn = recorded
    await s.delete_job(JOB)
    [(sql, args)] = conn.sent
    assert where(sql) == "id = $1 AND status <> 'running'" and args == (JOB,)


@pytest.mark.parametrize(
    ("method", "budget"),
    [("network", "failures"), ("worker_crashed", "interruptions"), ("not_found", "")],
)
def test_a_requeue_is_counted_in_the_budget_states_counts(method: str, budget: str) -> None:
    assert store._budget_key(method) == budget
    i, f = states.counted(method, 0, 0)
    assert {"interruptions": (i, f) == (1, 0), "failures": (i, f) == (0, 1), "": (i, f) == (0, 0)}[
        budget
    ]


class QueuePool:
    """A pool that hands out connections as asyncpg's does, from an asyncio queue: one
    given back goes to whoever asks next, even if others have been waiting for it."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.free: asyncio.LifoQueue[RecordingConn] = asyncio.LifoQueue()
        for _ in range(size):
            self.free.put_nowait(RecordingConn())

    def get_max_size(self) -> int:
        return self.size

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[RecordingConn]:
        conn = await self.free.get()
        try:
            yield conn
        finally:
            self.free.put_nowait(conn)


async def test_connections_go_to_those_who_asked_first() -> None:
    store = Store(QueuePool(1))  # type: ignore[arg-type]
    order: list[str] = []
    let_go = asyncio.Event()

    async def use(name: str) -> None:
        async with store.connection():
            order.append(name)

    async def first() -> None:
        async with store.connection():
            order.append("first")
            await let_go.wait()
        # Straight after giving the connection back, before the two waiting have run:
        # on the pool alone, this one would take it from under them.
        await use("late")

    holder = asyncio.create_task(first())
    await asyncio.sleep(0)  # a yield, not a wait: each task runs to where it blocks
    waiting = [asyncio.create_task(use(name)) for name in ("second", "third")]
    await asyncio.sleep(0)
    assert order == ["first"]  # the two wait for the one connection
    let_go.set()
    await asyncio.wait_for(asyncio.gather(holder, *waiting), 10)
    assert order == ["first", "second", "third", "late"]

"""mediad.attempts: an attempt's phases and moves, and the roster of who runs what."""

from __future__ import annotations

import itertools

import pytest

from mediad import wire
from mediad.attempts import MOVES, Attempt, IllegalMove, Phase, Roster

JOB = "0b7e5a52-6f7e-4d8c-9a51-3c1f0e6d2a91"
OTHER_JOB = "1c8f6b63-7a8f-4e9d-8b62-4d2a1f7e3ba2"


def attempt_in(phase: Phase, job_id: str = JOB, sid: str = "sid-1") -> Attempt:
    a = Attempt(job_id, 1, sid, "w-1")
    a.phase = phase
    return a


ALL_PAIRS = list(itertools.product(Phase, Phase))


def test_the_moves_are_the_documented_ones() -> None:
    assert MOVES == {
        Phase.RUNNING: {Phase.SETTLING, Phase.STOPPING},
        Phase.SETTLING: {Phase.STOPPING, Phase.RELEASED},
        Phase.STOPPING: {Phase.RELEASED},
        Phase.RELEASED: set(),
    }


@pytest.mark.parametrize(
    ("start", "to"), ALL_PAIRS, ids=[f"{a.value}-{b.value}" for a, b in ALL_PAIRS]
)
def test_every_move_is_allowed_or_refused_by_the_table(start: Phase, to: Phase) -> None:
    a = attempt_in(start)
    if to in MOVES[start]:
        a.move(to)
        assert a.phase is to
    else:
        with pytest.raises(IllegalMove, match=f"from {start.value} to {to.value}"):
            a.move(to)
        assert a.phase is start


def test_only_a_running_attempt_counts_events() -> None:
    assert [p for p in Phase if attempt_in(p).counts_events] == [Phase.RUNNING]


@pytest.mark.parametrize("start", list(Phase), ids=[p.value for p in Phase])
def test_settle_is_idempotent_and_only_moves_a_running_attempt(start: Phase) -> None:
    a = attempt_in(start)
    a.settle()
    a.settle()
    assert a.phase is (Phase.SETTLING if start is Phase.RUNNING else start)


@pytest.mark.parametrize("start", [Phase.RUNNING, Phase.SETTLING], ids=["running", "settling"])
def test_stop_keeps_the_action_and_what_follows(start: Phase) -> None:
    async def then() -> None:
        pass

    a = attempt_in(start)
    a.stop("pause", then)
    assert (a.phase, a.stop_action) == (Phase.STOPPING, "pause")
    assert a.take_after_stop() is then
    assert a.take_after_stop() is None  # runs once


@pytest.mark.parametrize("start", [Phase.STOPPING, Phase.RELEASED], ids=["stopping", "released"])
def test_a_second_stop_is_refused(start: Phase) -> None:
    a = attempt_in(start)
    with pytest.raises(IllegalMove):
        a.stop("cancel", None)
    assert a.phase is start and a.stop_action is None


@pytest.mark.parametrize(
    "start",
    [Phase.SETTLING, Phase.STOPPING, Phase.RELEASED],
    ids=["settling", "stopping", "released"],
)
def test_release_is_true_once(start: Phase) -> None:
    a = attempt_in(start)
    assert a.release() is (start is not Phase.RELEASED)
    assert a.release() is False
    assert a.phase is Phase.RELEASED


def test_a_running_attempt_cannot_be_released_without_an_outcome_or_a_stop() -> None:
    with pytest.raises(IllegalMove):
        attempt_in(Phase.RUNNING).release()


def test_activity_is_movement_not_speed() -> None:
    a = Attempt(JOB, 1, "sid-1", "w-1", last_activity=10.0)
    a.record(wire.Live(progress=5.0, speed=100), 20.0)
    assert (a.last_activity, a.dirty) == (20.0, True)
    a.record(wire.Live(progress=5.0, speed=999), 30.0)  # only the speed changed
    assert a.last_activity == 20.0 and a.live.speed == 999
    a.record(wire.Live(stage="merging", progress=5.0), 40.0)
    assert a.last_activity == 40.0


# -- the roster


def test_bind_fails_for_a_worker_that_left() -> None:
    roster = Roster()
    roster.add_worker("sid-1", "w-1")
    a = Attempt(JOB, 1, "sid-1", "w-1")
    roster.add(a)
    worker, running = roster.remove_worker("sid-1")
    assert worker is not None and running is None
    assert roster.bind(a) is False
    assert roster.attempt_on("sid-1") is None and roster.busy_count == 0
    assert roster.get(JOB) is a  # still holds its slot until it is released


def test_one_attempt_per_worker() -> None:
    roster = Roster()
    roster.add_worker("sid-1", "w-1")
    first, second = Attempt(JOB, 1, "sid-1", "w-1"), Attempt(OTHER_JOB, 1, "sid-1", "w-1")
    roster.add(first)
    roster.add(second)
    assert roster.bind(first) is True
    assert roster.bind(second) is False
    assert roster.bind(first) is False  # not twice either
    assert roster.attempt_on("sid-1") is first
    assert roster.idle_worker() is None and roster.busy_count == 1


def test_unbind_frees_both_the_slot_and_the_worker() -> None:
    roster = Roster()
    worker = roster.add_worker("sid-1", "w-1")
    a = Attempt(JOB, 1, "sid-1", "w-1")
    roster.add(a)
    roster.bind(a)
    assert len(roster) == 1 and JOB in roster and roster.holds(a)
    roster.unbind(a)
    assert len(roster) == 0 and JOB not in roster and not roster.holds(a)
    assert roster.attempt_on("sid-1") is None and roster.idle_worker() is worker
    assert roster.job_ids() == set()


def test_unbind_of_a_superseded_attempt_leaves_the_new_one() -> None:
    roster = Roster()
    roster.add_worker("sid-1", "w-1")
    roster.add_worker("sid-2", "w-2")
    old, new = Attempt(JOB, 1, "sid-1", "w-1"), Attempt(JOB, 2, "sid-2", "w-2")
    roster.add(old)
    roster.bind(old)
    roster.add(new)  # replaces the job's slot
    roster.bind(new)
    roster.unbind(old)
    assert roster.get(JOB) is new and roster.attempt_on("sid-2") is new
    assert roster.attempt_on("sid-1") is None


def test_bound_matches_worker_job_and_attempt() -> None:
    roster = Roster()
    roster.add_worker("sid-1", "w-1")
    a = Attempt(JOB, 3, "sid-1", "w-1")
    roster.add(a)
    roster.bind(a)
    assert roster.bound("sid-1", JOB, 3) is a
    assert roster.bound("sid-2", JOB, 3) is None
    assert roster.bound("sid-1", JOB, 2) is None
    assert roster.bound("sid-1", OTHER_JOB, 3) is None


def test_workers_are_counted_and_found_by_id() -> None:
    roster = Roster()
    roster.add_worker("sid-1", "w-1")
    roster.add_worker("sid-2", "w-2")
    assert roster.worker_count == 2 and sorted(roster.worker_ids()) == ["w-1", "w-2"]
    assert roster.has_worker_id("w-2") and not roster.has_worker_id("w-3")
    assert roster.remove_worker("sid-9") == (None, None)

"""mediad.states: the status table (docs/architecture.md, "Contracts") and the retry decision."""

from __future__ import annotations

import itertools

import pytest

from mediad import states
from mediad.models import TERMINAL, Status

Q, R, C, F, X, P = (
    Status.QUEUED,
    Status.RUNNING,
    Status.COMPLETED,
    Status.FAILED,
    Status.CANCELLED,
    Status.PAUSED,
)

# queued → running → completed | failed | cancelled | paused; paused → queued
# (resume); failed | cancelled → queued (retry); queued | paused → cancelled; running →
# queued (automatic retry). queued → paused: the dispatcher "skips [a queued id] if it was
# cancelled/paused meanwhile", so a queued job can be paused.
ALLOWED = {
    (Q, R),
    (Q, X),
    (Q, P),
    (R, C),
    (R, F),
    (R, X),
    (R, P),
    (R, Q),
    (P, Q),
    (P, X),
    (F, Q),
    (X, Q),
}

# What each client action does from each status; missing pairs are refused (409).
ACTION_TARGETS = {
    ("cancel", Q): X,
    ("cancel", R): X,
    ("cancel", P): X,
    ("pause", Q): P,
    ("pause", R): P,
    ("resume", P): Q,
    ("retry", F): Q,
    ("retry", X): Q,
}
ACTIONS = ("cancel", "pause", "resume", "retry")


@pytest.mark.parametrize(
    ("current", "new"), list(itertools.product(Status, Status)), ids=lambda s: s.value
)
def test_can_transition(current: Status, new: Status) -> None:
    assert states.can_transition(current, new) is ((current, new) in ALLOWED)


@pytest.mark.parametrize(
    ("action", "current"),
    list(itertools.product(ACTIONS, Status)),
    ids=lambda v: v if isinstance(v, str) else v.value,
)
def test_action_target(action: str, current: Status) -> None:
    assert states.action_target(action, current) == ACTION_TARGETS.get((action, current))


@pytest.mark.parametrize(("action", "current"), list(ACTION_TARGETS))
def test_every_action_is_an_allowed_transition(action: str, current: Status) -> None:
    target = states.action_target(action, current)
    assert target is not None
    assert states.can_transition(current, target)


@pytest.mark.parametrize("status", sorted(TERMINAL))
def test_terminal_statuses_never_run_again_directly(status: Status) -> None:
    assert not states.can_transition(status, R)


def test_completed_is_final() -> None:
    assert not any(states.can_transition(C, s) for s in Status)
    assert all(states.action_target(a, C) is None for a in ACTIONS)


def test_no_status_moves_to_itself() -> None:
    assert not any(states.can_transition(s, s) for s in Status)


# --- retry ----------------------------------------------------------------------------------

TRANSIENT = ["network", "worker_crashed", "worker_lost", "stalled", "rate_limited"]
PERMANENT = [
    "unsupported_url",
    "not_found",
    "http_404",
    "disk_full",
    "invalid_options",
    "cancelled",
    "",
    "Network",
]


@pytest.mark.parametrize("code", TRANSIENT)
@pytest.mark.parametrize(
    ("attempts", "max_attempts", "expected"),
    [(1, 3, True), (2, 3, True), (3, 3, False), (4, 3, False), (0, 1, True), (1, 1, False)],
)
def test_should_retry_transient(
    code: str, attempts: int, max_attempts: int, expected: bool
) -> None:
    assert states.should_retry(code, attempts, max_attempts) is expected


@pytest.mark.parametrize("code", PERMANENT)
@pytest.mark.parametrize(("attempts", "max_attempts"), [(1, 3), (1, 100), (0, 3)])
def test_should_not_retry_permanent(code: str, attempts: int, max_attempts: int) -> None:
    assert states.should_retry(code, attempts, max_attempts) is False


@pytest.mark.parametrize(
    ("attempts", "base_s", "expected"),
    [
        (0, 2.0, 0.0),
        (-1, 2.0, 0.0),
        (1, 2.0, 2.0),
        (2, 2.0, 4.0),
        (3, 2.0, 8.0),
        (4, 2.0, 16.0),
        (1, 0.5, 0.5),
        (5, 0.5, 8.0),
        (3, 0.0, 0.0),
    ],
)
def test_retry_delay_doubles(attempts: int, base_s: float, expected: float) -> None:
    assert states.retry_delay_s(attempts, base_s) == pytest.approx(expected)


@pytest.mark.parametrize("attempts", [9, 10, 20, 100, 1000, 10_000])
def test_retry_delay_is_capped(attempts: int) -> None:
    assert states.retry_delay_s(attempts, 2.0) == 300.0
    assert states.retry_delay_s(attempts, 2.0, cap_s=30.0) == 30.0


def test_retry_delay_never_decreases() -> None:
    delays = [states.retry_delay_s(n, 1.5, cap_s=100.0) for n in range(0, 50)]
    assert delays == sorted(delays)
    assert delays[-1] == 100.0


# --- whose fault: two budgets ---------------------------------------------------------------

INFRASTRUCTURE = ["interrupted", "worker_crashed", "worker_lost", "shutdown"]
JOB_TRANSIENT = ["network", "stalled", "rate_limited"]
# The tool's verdict on the user's URL: failed at the first attempt.
VERDICTS = ["not_found", "http_error", "unsupported_url", "too_large", "tool_failed",
            "blocked_address", "disk_full", "no_media", "user_not_found", "auth_failed"]  # fmt: skip


@pytest.mark.parametrize("code", INFRASTRUCTURE)
def test_mediads_own_faults_have_their_own_budget(code: str) -> None:
    assert states.is_infrastructure(code)
    # However many of the job's own failures came before.
    assert states.counted(code, 0, 2) == (1, 2)
    for n in range(1, 10):
        assert states.should_retry(code, 2, 3, interruptions=n, max_interruptions=10)
    assert not states.should_retry(code, 0, 3, interruptions=10, max_interruptions=10)


@pytest.mark.parametrize("code", JOB_TRANSIENT)
def test_the_jobs_own_transient_failures_use_max_attempts(code: str) -> None:
    assert not states.is_infrastructure(code)
    # Interruptions before do not count against it.
    assert states.counted(code, 7, 0) == (7, 1)
    assert states.should_retry(code, 1, 3, interruptions=7, max_interruptions=10)
    assert states.should_retry(code, 2, 3, interruptions=7, max_interruptions=10)
    assert not states.should_retry(code, 3, 3, interruptions=0, max_interruptions=10)


@pytest.mark.parametrize("code", VERDICTS)
def test_a_tools_verdict_is_final_at_once(code: str) -> None:
    assert not states.is_infrastructure(code)
    assert states.counted(code, 4, 1) == (4, 1)  # counted in neither budget
    assert not states.should_retry(code, 1, 100, interruptions=0, max_interruptions=100)

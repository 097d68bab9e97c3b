"""Pure: which status changes are allowed, and whether a failed attempt is retried."""

from __future__ import annotations

from mediad.models import Status

# Changes a client may ask for, by action.
ACTIONS: dict[str, tuple[frozenset[Status], Status]] = {
    "cancel": (frozenset({Status.QUEUED, Status.RUNNING, Status.PAUSED}), Status.CANCELLED),
    "pause": (frozenset({Status.QUEUED, Status.RUNNING}), Status.PAUSED),
    "resume": (frozenset({Status.PAUSED}), Status.QUEUED),
    "retry": (frozenset({Status.FAILED, Status.CANCELLED}), Status.QUEUED),
}

# Every change the service itself makes or allows (docs/architecture.md, "Contracts").
TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.QUEUED: frozenset({Status.RUNNING, Status.CANCELLED, Status.PAUSED}),
    Status.RUNNING: frozenset(
        {Status.COMPLETED, Status.FAILED, Status.CANCELLED, Status.PAUSED, Status.QUEUED}
    ),
    Status.PAUSED: frozenset({Status.QUEUED, Status.CANCELLED}),
    Status.FAILED: frozenset({Status.QUEUED}),
    Status.CANCELLED: frozenset({Status.QUEUED}),
    Status.COMPLETED: frozenset(),
}

# Failures of mediad's own parts, never the job's fault: "interrupted" (the tool was
# killed by a signal nobody in mediad sent, or the aria2 daemon was lost), a worker that
# died or lost its socket ("worker_crashed"), the service gone while the job ran
# ("worker_lost", "shutdown"). Retried within `queue.max_interruptions`.
INFRASTRUCTURE_ERRORS = frozenset({"interrupted", "worker_crashed", "worker_lost", "shutdown"})
# Failures of the job's own that the next attempt may well not meet: retried within
# `queue.max_attempts`. Every other code is the tool's verdict on the URL: final at once.
JOB_TRANSIENT_ERRORS = frozenset({"network", "stalled", "rate_limited"})
TRANSIENT_ERRORS = JOB_TRANSIENT_ERRORS | INFRASTRUCTURE_ERRORS
# Where a job keeps its counts (in its `meta`): attempts lost to each kind of failure.
INTERRUPTIONS_KEY = "interruptions"
FAILURES_KEY = "failures"


def can_transition(current: Status, new: Status) -> bool:
    return new in TRANSITIONS[current]


def action_target(action: str, current: Status) -> Status | None:
    """The status an action leads to from ``current``, or None when it is not allowed."""
    allowed, target = ACTIONS[action]
    return target if current in allowed else None


def is_infrastructure(error_code: str) -> bool:
    """Whether a failure is mediad's own (see INFRASTRUCTURE_ERRORS), not the job's."""
    return error_code in INFRASTRUCTURE_ERRORS


def counted(error_code: str, interruptions: int, failures: int) -> tuple[int, int]:
    """The job's (interruptions, failures) once an attempt that ended with
    ``error_code`` is counted: each kind of transient failure has its own budget; a
    pause, a cancel or a final failure count in neither."""
    if error_code in INFRASTRUCTURE_ERRORS:
        return interruptions + 1, failures
    if error_code in JOB_TRANSIENT_ERRORS:
        return interruptions, failures + 1
    return interruptions, failures


def should_retry(
    error_code: str,
    attempts: int,
    max_attempts: int,
    *,
    interruptions: int | None = None,
    max_interruptions: int | None = None,
) -> bool:
    """Whether a failed attempt is retried. ``attempts`` is, for a failure of the job's
    own, how many of its attempts ended that way, this one included; ``interruptions``
    the same for mediad's own failures (``max_interruptions``, defaulting to
    ``max_attempts``). Codes outside TRANSIENT_ERRORS are never retried."""
    if error_code in INFRASTRUCTURE_ERRORS:
        used = attempts if interruptions is None else interruptions
        limit = max_attempts if max_interruptions is None else max_interruptions
        return used < limit
    return error_code in JOB_TRANSIENT_ERRORS and attempts < max_attempts


def retry_delay_s(attempts: int, base_s: float, cap_s: float = 300.0) -> float:
    """Exponential backoff: base, twice base, four times base and so on, capped."""
    if attempts < 1:
        return 0.0
    return min(cap_s, base_s * 2.0 ** min(attempts - 1, 64))

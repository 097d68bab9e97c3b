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

# Every change the service itself makes or allows (DESIGN.md, "Statuses").
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

# Failures worth another attempt: the next one may well succeed.
# "interrupted": the tool was killed by a signal nobody in mediad sent.
TRANSIENT_ERRORS = frozenset(
    {"network", "worker_crashed", "worker_lost", "stalled", "rate_limited", "interrupted"}
)


def can_transition(current: Status, new: Status) -> bool:
    return new in TRANSITIONS[current]


def action_target(action: str, current: Status) -> Status | None:
    """The status an action leads to from ``current``, or None when it is not allowed."""
    allowed, target = ACTIONS[action]
    return target if current in allowed else None


def should_retry(error_code: str, attempts: int, max_attempts: int) -> bool:
    return error_code in TRANSIENT_ERRORS and attempts < max_attempts


def retry_delay_s(attempts: int, base_s: float, cap_s: float = 300.0) -> float:
    """Exponential backoff: base, twice base, four times base and so on, capped."""
    if attempts < 1:
        return 0.0
    return min(cap_s, base_s * 2.0 ** min(attempts - 1, 64))

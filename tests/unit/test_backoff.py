"""The one exponential backoff (mediad/backoff.py): its sequence, cap, reset and checks."""

from __future__ import annotations

import pytest

from mediad.backoff import Backoff, restart_backoff


def take(backoff: Backoff, n: int) -> list[float]:
    return [backoff.next() for _ in range(n)]


def test_delays_grow_by_the_factor_up_to_the_maximum_and_stay_there() -> None:
    backoff = Backoff(initial=0.5, factor=2, maximum=5)
    assert take(backoff, 7) == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]


def test_a_factor_that_is_not_a_power_of_two() -> None:
    backoff = Backoff(initial=1, factor=3, maximum=100)
    assert take(backoff, 6) == [1, 3, 9, 27, 81, 100]


def test_reset_starts_over_from_the_initial_delay() -> None:
    backoff = Backoff(initial=0.25, factor=2, maximum=10)
    take(backoff, 4)
    backoff.reset()
    assert take(backoff, 3) == [0.25, 0.5, 1.0]


def test_peek_shows_the_next_delay_without_taking_it() -> None:
    backoff = Backoff(initial=0.5, factor=2, maximum=30)
    assert backoff.peek() == 0.5
    assert backoff.peek() == 0.5
    assert backoff.next() == 0.5
    assert backoff.peek() == 1.0
    assert backoff.attempts == 1


def test_attempts_counts_delays_since_the_last_reset() -> None:
    backoff = Backoff()
    assert backoff.attempts == 0
    take(backoff, 3)
    assert backoff.attempts == 3
    backoff.reset()
    assert backoff.attempts == 0


def test_factor_one_is_a_constant_delay() -> None:
    assert take(Backoff(initial=0.5, factor=1, maximum=0.5), 4) == [0.5] * 4


def test_two_backoffs_do_not_share_state() -> None:
    first, second = restart_backoff(), restart_backoff()
    take(first, 5)
    assert second.next() == 0.5


def test_the_restart_policy_is_half_a_second_doubling_to_thirty() -> None:
    # What the supervisor (workers) and the service (managed servers) wait between restarts.
    assert take(restart_backoff(), 9) == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"initial": 0},
        {"initial": -1},
        {"factor": 0.5},
        {"initial": 2, "maximum": 1},
    ],
)
def test_nonsense_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="backoff"):
        Backoff(**kwargs)

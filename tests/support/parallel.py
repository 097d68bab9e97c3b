"""Which test process this is when pytest-xdist runs the suite in several (``-n 2``), so
that what the processes share — the machine's ports, folders, the binary build — can be
split between them. Without xdist this is the only process: worker 0 of 1.

xdist sets ``PYTEST_XDIST_WORKER`` (``gw0``, ``gw1``, …; a worker started in place of a
crashed one gets the next number) and ``PYTEST_XDIST_WORKER_COUNT`` in every worker's
environment.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

import pytest

# The ports below the ephemeral range are cut into this many slices, one per worker
# number (modulo): replacements of crashed workers get slices of their own too.
SLICES = 16


def worker_name() -> str:
    """``gw0``, ``gw1``, …, or ``main`` when xdist is not running the tests."""
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def worker_index() -> int:
    match = re.fullmatch(r"gw(\d+)", worker_name())
    return int(match.group(1)) if match else 0


def worker_count() -> int:
    try:
        return max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    except ValueError:
        return 1


def port_range(low: int = 10_000, high: int | None = None) -> range:
    """This process's own slice of the ports below the kernel's ephemeral range, so that
    two workers never pick the same port (each still checks that nothing else on the
    machine holds it)."""
    if high is None:
        ephemeral_low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
        high = max(low + SLICES, min(ephemeral_low, 30_000))
    width = (high - low) // SLICES
    start = low + (worker_index() % SLICES) * width
    return range(start, start + width)


# -- what the controller tells its workers -----------------------------------------------

_RUN_STARTED = "mediad_run_started"
_STARTED = pytest.StashKey[float]()


def is_controller(config: pytest.Config) -> bool:
    """The xdist controller (it runs no test itself): ``-n N`` with N > 0."""
    return not hasattr(config, "workerinput") and bool(getattr(config.option, "numprocesses", 0))


def note_run_start(config: pytest.Config) -> None:
    """When this run began: in a worker, when its controller did."""
    workerinput = getattr(config, "workerinput", {})
    config.stash[_STARTED] = float(workerinput.get(_RUN_STARTED, time.time()))


def tell_worker(node: Any) -> None:
    node.workerinput[_RUN_STARTED] = node.config.stash[_STARTED]


def run_started(config: pytest.Config) -> float:
    """The wall-clock time (``time.time()``) this run began, the same in every worker."""
    return config.stash.get(_STARTED, time.time())

"""What a hang leaves behind, and how it ends.

* ``watching``: when a test phase runs much longer than it should, print every asyncio
  task's stack (and every thread's) to stderr, once, while the phase goes on: a
  pytest-timeout dump shows only where the main thread is, which for an event loop is
  always ``select``. It lands in the test's captured stderr (shown if the test fails).
* ``timed_out``: the per-test timeout (pytest-timeout, ``timeout_method = "thread"``).
  A stuck event loop cannot be interrupted from inside — a signal's exception may be
  swallowed by the loop, or leave it hung in the teardown that follows — so the test
  process prints the test's captured output, its tasks and threads to the real stderr
  (which an xdist worker shares with the controller; its stdout goes nowhere), kills
  the processes it started and exits. xdist reports the test as failed ("worker crashed")
  and starts another worker for the rest of the run.
* ``guard_session``: the whole run's budget (``MEDIAD_TEST_SESSION_TIMEOUT_S``, default
  40 minutes; 0 turns it off): past it, the same dump and exit, whatever the process is
  doing — collecting, between tests, finishing the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

from tests.support import parallel

AFTER_S = float(os.environ.get("MEDIAD_TEST_HANGDUMP_S", "75"))
SESSION_S = float(os.environ.get("MEDIAD_TEST_SESSION_TIMEOUT_S", "2400"))
# The captured output of a timed-out test can be long: its end is what matters.
CAPTURED_CHARS = 30_000


def _tasks_and_threads(out: IO[str]) -> None:
    tasks = list(asyncio.tasks._all_tasks)  # racy from a thread; a diagnostic only
    print(f"----- {sum(not t.done() for t in tasks)} asyncio tasks -----", file=out)
    for task in tasks:
        if not task.done():
            task.print_stack(limit=12, file=out)
    print("----- threads -----", file=out, flush=True)
    faulthandler.dump_traceback(file=out, all_threads=True)


def _dump(what: str) -> None:
    out = sys.__stderr__
    if out is None:
        return
    print(f"\n===== {what} is still running after {AFTER_S:.0f} s: its tasks =====", file=out)
    _tasks_and_threads(out)


@contextmanager
def watching(what: str) -> Iterator[None]:
    timer = threading.Timer(AFTER_S, _dump, args=(what,))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


# -- ending a hang ------------------------------------------------------------------------


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                with open(f"/proc/{entry}/stat") as f:
                    parent = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(parent, []).append(int(entry))
    found: list[int] = []
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def _uncaptured(config: Any) -> tuple[str, str]:
    """Stop pytest's capture (so stderr is the real one again); what it had captured."""
    capman = config.pluginmanager.getplugin("capturemanager")
    if capman is None:
        return "", ""
    with contextlib.suppress(Exception):
        capman.suspend_global_capture(in_=True)
        out, err = capman.read_global_capture()
        return out, err
    return "", ""


def _exit(config: Any, headline: str, detail: str = "") -> None:
    """Print what this process was doing to the real stderr, kill what it started, exit."""
    out_text, err_text = _uncaptured(config)
    out = sys.__stderr__ or sys.stderr
    bar = "+" * 20
    who = f"{parallel.worker_name()}, pid {os.getpid()}"
    print(f"\n{bar} {headline} ({who}) {bar}", file=out)
    if detail:
        print(detail, file=out)
    for name, text in (("stdout", out_text), ("stderr", err_text)):
        if text:
            print(
                f"----- its captured {name} (the last {CAPTURED_CHARS} characters) -----", file=out
            )
            print(text[-CAPTURED_CHARS:], file=out)
    _tasks_and_threads(out)
    pids = _descendants(os.getpid())
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    print(f"{bar} {who} exits; {len(pids)} processes it started killed {bar}", file=out, flush=True)
    os._exit(1)


def timed_out(item: Any, timeout_s: float) -> None:
    """pytest-timeout's thread method, with the dump above (``pytest_timeout_set_timer``
    in tests/conftest.py)."""
    with contextlib.suppress(ImportError):
        import pytest_timeout

        if pytest_timeout.is_debugging():
            return
    _exit(item.config, f"Timeout: {item.nodeid} ran past {timeout_s:.0f} s")


_current: dict[str, float] = {}  # the test items under way in this process, since when


def started(nodeid: str) -> None:
    _current[nodeid] = time.monotonic()


def finished(nodeid: str) -> None:
    _current.pop(nodeid, None)


def _session_expired(config: Any, budget_s: float) -> None:
    now = time.monotonic()
    running = "\n".join(
        f"  {nodeid} (for {now - since:.0f} s)" for nodeid, since in list(_current.items())
    )
    _exit(
        config,
        f"the test run passed its budget of {budget_s:.0f} s (MEDIAD_TEST_SESSION_TIMEOUT_S)",
        f"tests under way:\n{running}" if running else "no test under way",
    )


def guard_session(config: Any, slack_s: float = 0) -> None:
    """Arm the whole run's budget (plus ``slack_s``) for this process."""
    if SESSION_S <= 0:
        return
    timer = threading.Timer(SESSION_S + slack_s, _session_expired, args=(config, SESSION_S))
    timer.daemon = True
    timer.name = "mediad test session guard"
    timer.start()

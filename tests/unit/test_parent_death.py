"""The one parent-death helper (mediad/parent_death.py), checked in child processes: the
test runner itself must not ask to die with its own parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mediad import parent_death
from tests.support.polling import eventually

# Prints the parent-death signal the kernel holds for this process after the call.
READ_BACK = """
import ctypes, os, signal, sys
from mediad.parent_death import die_with_parent
print(die_with_parent(int(sys.argv[1]), parent_pid=int(sys.argv[2]) or None))
value = ctypes.c_int(0)
ctypes.CDLL(None).prctl(2, ctypes.byref(value), 0, 0, 0)  # PR_GET_PDEATHSIG
print(value.value)
"""

# Starts a grandchild that sleeps with a parent-death signal, prints its pid, then waits
# (to be SIGKILLed by the test).
MIDDLE = """
import subprocess, sys, time, signal
from mediad.parent_death import die_with_parent
child = subprocess.Popen(
    [sys.executable, "-c", "import time; time.sleep(60)"],
    preexec_fn=lambda: die_with_parent(signal.SIGTERM, strict=True),
)
print(child.pid, flush=True)
time.sleep(60)
"""


def run_child(sig: int, parent_pid: int = 0) -> tuple[str, int]:
    out = subprocess.run(
        [sys.executable, "-c", READ_BACK, str(int(sig)), str(parent_pid)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split()
    return out[0], int(out[1])


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
def test_the_kernel_holds_the_signal_asked_for(sig: signal.Signals) -> None:
    assert run_child(sig) == ("True", int(sig))


def test_the_parent_that_is_still_there_is_recognised() -> None:
    assert run_child(signal.SIGTERM, parent_pid=os.getpid()) == ("True", int(signal.SIGTERM))


def test_a_parent_that_is_gone_already_is_reported() -> None:
    # Not our parent any more (as after it died and we were reparented): nobody will signal.
    other = os.getppid() if os.getppid() != os.getpid() else 1
    answer, held = run_child(signal.SIGTERM, parent_pid=other)
    assert answer == "False" and held == int(signal.SIGTERM)


async def test_a_child_goes_when_its_parent_is_sigkilled() -> None:
    middle = subprocess.Popen([sys.executable, "-c", MIDDLE], stdout=subprocess.PIPE, text=True)
    try:
        assert middle.stdout is not None
        grandchild = int(middle.stdout.readline())
        assert Path(f"/proc/{grandchild}").exists()
        middle.kill()
        middle.wait(timeout=30)

        def gone() -> bool:
            try:
                stat = Path(f"/proc/{grandchild}/stat").read_text()
            except OSError:
                return True
            return stat.rpartition(")")[2].split()[0] == "Z"  # dead, not yet reaped

        await eventually(gone, timeout_s=20, what="the grandchild to die with its parent")
    finally:
        middle.kill()
        middle.wait(timeout=30)
        if middle.stdout is not None:
            middle.stdout.close()


def test_a_refused_call_is_ignored_unless_strict() -> None:
    # Signal 1000 does not exist: the kernel refuses it (and sets nothing here).
    assert parent_death.die_with_parent(1000) is True
    with pytest.raises(OSError, match="PR_SET_PDEATHSIG"):
        parent_death.die_with_parent(1000, strict=True)


def test_without_prctl_only_strict_callers_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parent_death, "_prctl", None)
    assert parent_death.die_with_parent(signal.SIGTERM) is True
    assert parent_death.die_with_parent(signal.SIGTERM, parent_pid=os.getppid()) is True
    assert parent_death.die_with_parent(signal.SIGTERM, parent_pid=-5) is False
    with pytest.raises(OSError, match="not available"):
        parent_death.die_with_parent(signal.SIGTERM, strict=True)

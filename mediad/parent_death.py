"""The parent-death signal: one way for a child to go when the process that started it
goes, even when that process is SIGKILLed.

``die_with_parent`` is called in the child itself: between fork and exec (a
``preexec_fn``: the embedded servers, aria2c, every tool), in a forked tool (yt-dlp), in a
worker at its start, or in ``mediad serve`` under the single binary's bootloader. The
kernel sends the signal when the parent *thread* dies; asyncio starts children from the
main thread, so that is the parent process.

libc's ``prctl`` is looked up once, when this module is imported (in the parent): the
child between fork and exec should do as little as it can.
"""

from __future__ import annotations

import ctypes
import os
import signal
from collections.abc import Callable

PR_SET_PDEATHSIG = 1

_prctl: Callable[..., int] | None
try:
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux: there is no parent-death signal
    _prctl = None


def die_with_parent(
    sig: int = signal.SIGKILL, *, parent_pid: int | None = None, strict: bool = False
) -> bool:
    """Ask the kernel to send ``sig`` to this process when its parent dies.

    With ``parent_pid`` (the parent's pid, read before the fork), also check that it is
    still our parent: if it died before the signal was armed, nobody will send it, and the
    answer is False. Without it the answer is True.

    A kernel without the call (or a refusal) is ignored, unless ``strict``: then it
    raises ``OSError``. Call it after any change of credentials (setuid clears it).
    """
    if _prctl is None:
        if strict:
            raise OSError("prctl(PR_SET_PDEATHSIG) is not available")
    elif _prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0 and strict:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    return parent_pid is None or os.getppid() == parent_pid

"""When a test phase runs much longer than it should, print every asyncio task's stack
(and every thread's) to stderr, once, while the phase goes on: pytest-timeout shows only
where the main thread is, which for an event loop is always ``select``."""

from __future__ import annotations

import asyncio
import faulthandler
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

AFTER_S = float(os.environ.get("MEDIAD_TEST_HANGDUMP_S", "75"))


def _dump(what: str) -> None:
    out = sys.__stderr__
    if out is None:
        return
    print(f"\n===== {what} is still running after {AFTER_S:.0f} s: its tasks =====", file=out)
    tasks = list(asyncio.tasks._all_tasks)  # racy from a thread; a diagnostic only
    for task in tasks:
        if not task.done():
            task.print_stack(limit=12, file=out)
    print("===== and its threads =====", file=out, flush=True)
    faulthandler.dump_traceback(file=out, all_threads=True)


@contextmanager
def watching(what: str) -> Iterator[None]:
    timer = threading.Timer(AFTER_S, _dump, args=(what,))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()

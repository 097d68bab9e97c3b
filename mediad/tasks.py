"""Stopping background tasks for good.

``task.cancel()`` once and ``gather`` is not enough: a task that swallows its
cancellation — a library turning ``CancelledError`` into an error of its own mid-call,
which a loop then catches and retries — goes back to sleep, still ``cancelling``, and the
``gather`` waits forever (a service's shutdown, hung). ``cancel_all`` cancels again until
every task has ended, for a bounded time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

log = logging.getLogger(__name__)
RETRY_S = 0.5


async def cancel_all(
    tasks: Iterable[asyncio.Future[Any]], what: str, *, patience_s: float = 10.0
) -> None:
    """Cancel ``tasks`` and wait until they have ended, cancelling again every
    ``RETRY_S`` those that have not; after ``patience_s`` the rest are logged and left."""
    every = list(tasks)
    pending = {t for t in every if not t.done()}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience_s
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=RETRY_S)
        if pending and loop.time() >= deadline:
            names = ", ".join(sorted(_name(t) for t in pending))
            log.warning("%s: %d tasks did not stop: %s", what, len(pending), names)
            break
    for task in every:  # their errors were theirs to log; this only marks them retrieved
        if task.done() and not task.cancelled():
            task.exception()


def swallowed_cancel() -> bool:
    """Whether the current task was asked to stop although what it awaited ended with
    another error: a loop that retries on that error must stop instead."""
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no event loop running
        return False
    return task is not None and task.cancelling() > 0


def _name(task: asyncio.Future[Any]) -> str:
    return task.get_name() if isinstance(task, asyncio.Task) else repr(task)

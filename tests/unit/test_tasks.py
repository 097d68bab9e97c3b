"""cancel_all ends tasks that swallow a cancellation, and gives up on one that never ends."""

from __future__ import annotations

import asyncio
import logging

import pytest

from mediad.tasks import cancel_all, swallowed_cancel


async def _swallows_once(log: list[str]) -> None:
    """A loop whose call turns the first cancellation into an error it retries on."""
    swallowed = False
    while True:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            if swallowed:
                raise
            swallowed = True
            log.append(f"swallowed (cancelling: {swallowed_cancel()})")


async def test_a_task_that_swallows_its_cancellation_is_cancelled_again() -> None:
    seen: list[str] = []
    plain = asyncio.create_task(asyncio.sleep(3600))
    stubborn = asyncio.create_task(_swallows_once(seen))
    failing = asyncio.create_task(asyncio.sleep(0))
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_all([plain, stubborn, failing], "test"), 5)
    assert plain.cancelled() and stubborn.cancelled() and failing.done()
    assert seen == ["swallowed (cancelling: True)"]


async def test_a_task_that_never_ends_is_logged_and_left(caplog: pytest.LogCaptureFixture) -> None:
    release = asyncio.Event()

    async def deaf() -> None:
        while not release.is_set():
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                continue

    task = asyncio.create_task(deaf(), name="deaf")
    await asyncio.sleep(0)
    with caplog.at_level(logging.WARNING, logger="mediad.tasks"):
        await asyncio.wait_for(cancel_all([task], "test", patience_s=0.6), 5)
    assert "test: 1 tasks did not stop: deaf" in caplog.text
    assert not task.done()
    release.set()
    task.cancel()
    await asyncio.wait_for(task, 5)


def test_outside_a_task_nothing_was_swallowed() -> None:
    assert swallowed_cancel() is False

"""Socket.IO connection churn leaves nothing behind: a closed Engine.IO session's ping
timer goes with it (python-engineio keeps every closed session alive for its 25-second ping
sleep otherwise: 11 MB per 2,000 connect/close cycles). The memory curve itself is a
benchmark: `python -m tests.bench churn`."""

from __future__ import annotations

import asyncio

import aiohttp

from mediad.service import Service
from tests.bench.churn import cycle
from tests.support.polling import eventually

CYCLES = 200


def ping_timers() -> int:
    """Engine.IO ping tasks alive in this process (the service runs in it)."""
    return sum(
        1
        for task in asyncio.all_tasks()
        if getattr(task.get_coro(), "__qualname__", "") == "AsyncSocket._send_ping"
    )


async def test_closed_sessions_leave_no_ping_timer_behind(shared_service: Service) -> None:
    before = ping_timers()  # the workers' sessions, and whatever else is connected
    async with aiohttp.ClientSession() as http:
        for _ in range(CYCLES):
            await cycle(http, shared_service.base_url)
    # Each closed session's timer is cancelled with it: the count comes back at once,
    # not 25 s later.
    await eventually(lambda: ping_timers() <= before + 2, timeout_s=5, what="the ping timers to go")

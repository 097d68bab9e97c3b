"""A python-socketio client on /jobs that records every event it receives."""

from __future__ import annotations

import asyncio
from typing import Any

import socketio


class JobsClient:
    """A python-socketio client on /jobs that records every event it receives."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._arrived = asyncio.Event()
        for name in ("progress", "completed", "failed", "job-update"):
            self.sio.on(name, self._recorder(name), namespace="/jobs")

    def _recorder(self, name: str):  # type: ignore[no-untyped-def]
        async def record(data: dict[str, Any]) -> None:
            self.events.append((name, data))
            self._arrived.set()

        return record

    async def __aenter__(self) -> JobsClient:
        await self.sio.connect(self.base_url, namespaces=["/jobs"], transports=["websocket"])
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.sio.disconnect()

    async def subscribe(self, **payload: Any) -> dict[str, Any]:
        return await self.sio.call("subscribe", payload, namespace="/jobs", timeout=10)  # type: ignore[no-any-return]

    def of(self, job_id: str) -> list[tuple[str, dict[str, Any]]]:
        return [(n, d) for n, d in self.events if d.get("jobId") == job_id]

    async def first(
        self, job_id: str, names: tuple[str, ...] = ("completed", "failed"), timeout_s: float = 300
    ) -> tuple[str, dict[str, Any]]:
        """The job's first event named in ``names``, already received or the next to come
        (woken by each event as it arrives: no polling interval adds to the wait)."""
        async with asyncio.timeout(timeout_s):
            while True:
                for name, data in self.of(job_id):
                    if name in names:
                        return name, data
                self._arrived.clear()
                await self._arrived.wait()

    def ended(self, job_id: str, status: str = "completed") -> bool:
        """Both of a job's last events have arrived: ``completed`` (or ``failed``) and the
        ``job-update`` with that status the server sends right after it — each its own
        message, so the second may arrive a moment later."""
        events = self.of(job_id)
        return any(n == status for n, _ in events) and any(
            n == "job-update" and d.get("status") == status for n, d in events
        )

"""A local webhook receiver for the notification tests: an aiohttp server on loopback
that records every request (path, headers, raw body) and answers as told per path — a
script of statuses (``500, 500, 200``), or a hold until the test lets it go."""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int | None = None  # what was answered (None: never, the client left)

    def json(self) -> Any:
        return orjson.loads(self.body)

    @property
    def delivery_id(self) -> str | None:
        return self.headers.get("X-Mediad-Delivery")


@dataclass
class Receiver:
    host: str = "127.0.0.1"
    port: int = 0
    requests: list[Received] = field(default_factory=list)
    _scripts: dict[str, deque[int]] = field(default_factory=lambda: defaultdict(deque))
    _holds: dict[str, asyncio.Event] = field(default_factory=dict)
    _held: dict[str, asyncio.Event] = field(default_factory=dict)
    _runner: web.AppRunner | None = None

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for hold in [*self._holds.values(), *self._held.values()]:
            hold.set()
        assert self._runner is not None
        await self._runner.cleanup()

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}/{path.lstrip('/')}"

    def script(self, path: str, *statuses: int) -> None:
        """Answer the next requests to ``path`` with these statuses (then 200)."""
        self._scripts["/" + path.lstrip("/")].extend(statuses)

    def hold(self, path: str) -> asyncio.Event:
        """Hold the next request to ``path`` until the returned event is set (then 503)."""
        event = asyncio.Event()
        self._holds["/" + path.lstrip("/")] = event
        return event

    def hold_all(self, path: str) -> asyncio.Event:
        """Hold every request to ``path`` until the returned event is set (then 503)."""
        event = asyncio.Event()
        self._held["/" + path.lstrip("/")] = event
        return event

    def at(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == "/" + path.lstrip("/")]

    async def _handle(self, request: web.Request) -> web.Response:
        record = Received(request.path, dict(request.headers), await request.read())
        self.requests.append(record)
        hold = self._holds.pop(request.path, None) or self._held.get(request.path)
        if hold is not None and not hold.is_set():
            await hold.wait()
            record.status = 503
            return web.Response(status=503)
        script = self._scripts.get(request.path)
        record.status = script.popleft() if script else 200
        return web.Response(status=record.status, text="ok")

"""Slow and greedy clients: what one client may hold of the HTTP server.

* **Request heads** (``server.header_timeout_s``): a connection that has not sent a whole
  request head within this time of opening — or of finishing its previous request — is
  closed. aiohttp's keep-alive timer does this (``keepalive_timeout``), so idle keep-alive
  connections go after the same time.
* **Bodies** (``server.body_timeout_s``): a request body must arrive in full within this
  time, else ``408 request_timeout``; one announced larger than ``server.max_body_bytes``
  is refused with 413 before a byte of it is read. Either way the connection is closed
  (after at most ``LINGER_S`` more of reading and dropping).
  The body is read here, before any handler, which then gets it from aiohttp's cache.
* **Connections** (``server.max_connections_per_client``, ``server.max_connections``): a
  connection beyond a client address's share, or beyond the total, is closed as soon as
  it is accepted, so a flood of sockets from one address cannot use up the process's file
  descriptors. The total defaults to what the open-file limit leaves after a reserve for
  the database pool, Redis, aria2, the workers and the files being served; at start-up
  the soft limit is raised to the hard one (at most ``MAX_OPEN_FILES``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

log = logging.getLogger(__name__)

MAX_OPEN_FILES = 65536
FD_RESERVE = 256  # descriptors kept for everything that is not a client connection
MIN_CONNECTIONS = 64
# After an answer sent before its body was read (413, 408), aiohttp reads and drops what
# still comes for this long, so that closing does not reset the answer away; its default
# of 10 s would hold every such connection that long.
LINGER_S = 1.0
REFUSAL_LOG_S = 60.0  # at most one warning this often about refused connections

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def raise_open_file_limit(target: int = MAX_OPEN_FILES) -> int:
    """Raise the soft open-file limit towards the hard one; the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = target if hard == resource.RLIM_INFINITY else min(target, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
    return int(soft) if soft != resource.RLIM_INFINITY else target


def connection_cap(configured: int, open_files: int) -> int:
    """The total number of client connections: ``configured`` (0: no number of its own),
    never more than the open-file limit leaves."""
    room = max(MIN_CONNECTIONS, open_files - FD_RESERVE)
    return min(configured, room) if configured else room


def _error(status: int, code: str, message: str) -> web.Response:
    response = web.json_response({"error": {"code": code, "message": message}}, status=status)
    response.force_close()  # the rest of the body is never read: the connection goes
    return response


def body_middleware(max_body_bytes: int, timeout_s: float) -> Middleware:
    @web.middleware
    async def read_body(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.body_exists:
            # A route may take more (a cookie file: cookies_api.with_body_limit).
            limit = getattr(request.match_info.handler, "max_body_bytes", max_body_bytes)
            if limit != request.client_max_size:
                request = request.clone(client_max_size=limit)
            length = request.content_length
            if length is not None and length > limit:
                return _error(413, "payload_too_large", f"the body is larger than {limit} bytes")
            try:
                await asyncio.wait_for(request.read(), timeout_s)
            except TimeoutError:
                return _error(
                    408,
                    "request_timeout",
                    f"the request body did not arrive within {timeout_s:g} s"
                    " (server.body_timeout_s)",
                )
            except web.HTTPRequestEntityTooLarge:  # chunked, and longer than allowed
                return _error(413, "payload_too_large", f"the body is larger than {limit} bytes")
        return await handler(request)

    return read_body


class LimitedServer(web.Server):
    """aiohttp's connection manager, with a cap per client address and in total."""

    def __init__(self, *args: Any, per_client: int = 0, total: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.per_client = per_client
        self.total = total
        self.by_client: Counter[str] = Counter()
        self._peers: dict[Any, str] = {}
        self.refused = 0
        self._refused_logged = 0
        self._last_log = -REFUSAL_LOG_S

    def connection_made(self, handler: Any, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        peer = transport.get_extra_info("peername")
        client = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
        over_total = self.total and len(self._peers) >= self.total
        over_client = self.per_client and self.by_client[client] >= self.per_client
        if over_total or over_client:
            self._refuse(client, "in total" if over_total else "from this address")
            transport.abort()
            return
        self._peers[handler] = client
        self.by_client[client] += 1

    def connection_lost(self, handler: Any, exc: BaseException | None = None) -> None:
        client = self._peers.pop(handler, None)
        if client is not None:
            self.by_client[client] -= 1
            if self.by_client[client] <= 0:
                del self.by_client[client]
        super().connection_lost(handler, exc)

    def _refuse(self, client: str, where: str) -> None:
        self.refused += 1
        now = time.monotonic()
        if now - self._last_log >= REFUSAL_LOG_S:
            self._last_log = now
            log.warning(
                "refused a connection from %s: too many open %s (%d refused so far;"
                " server.max_connections_per_client is %d, the total %d)",
                client, where, self.refused, self.per_client, self.total,
            )  # fmt: skip


class Runner(web.AppRunner):
    """``web.AppRunner`` whose server is a ``LimitedServer``."""

    def __init__(self, app: web.Application, *, per_client: int, total: int, **kwargs: Any) -> None:
        kwargs.setdefault("lingering_time", LINGER_S)
        super().__init__(app, **kwargs)
        self._limits = {"per_client": per_client, "total": total}

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()
        return LimitedServer(
            plain.request_handler,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            loop=plain._loop,
            **self._limits,
            **plain._kwargs,
        )

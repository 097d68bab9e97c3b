"""Relaying: the two linked protocols of one proxied connection and how it ends.

What one side receives is written straight to the other side's transport, and a full
write buffer on one side pauses reading on the other. Unlike asyncio streams this costs
no buffer copies and no task switch per chunk: a bulk download costs the proxy about one
``recv`` and one ``send`` per 256 KiB. (Plain asyncio streams took about half again as
much CPU per byte here.) Once a download is under way, its bytes from the origin to the
tool go through the kernel alone (``splice.SplicePump``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, cast

from mediad.egress import causes, splice
from mediad.egress.protocol import (
    HEADER_LIMIT_BYTES,
    Target,
    close_response_head,
    error_response,
    response_status,
)

if TYPE_CHECKING:
    from mediad.egress.proxy import EgressProxy

log = logging.getLogger("mediad.egress")

# Bytes queued toward a slow peer before reading from the other side pauses.
WRITE_HIGH_WATER_BYTES = 1024 * 1024


class Pipe(asyncio.Protocol):
    """One end of a relay: what arrives is written to the other end's transport, and a
    full write buffer here pauses reading over there (flow control both ways)."""

    def __init__(self, proxy: EgressProxy) -> None:
        self.proxy = proxy
        self.transport: asyncio.Transport | None = None
        self.peer: Pipe | None = None
        self.relay: Relay | None = None
        self.lost = False
        self.spliced = False  # its reading is the splice pump's (an origin's only)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        with contextlib.suppress(AttributeError, NotImplementedError):
            self.transport.set_write_buffer_limits(high=WRITE_HIGH_WATER_BYTES)

    def data_received(self, data: bytes) -> None:
        self.forward(data)

    def forward(self, data: bytes) -> None:
        peer = self.peer.transport if self.peer is not None else None
        if peer is None or peer.is_closing():
            return
        if self.relay is not None:
            self.relay.last_data_at = self.relay.loop.time()
        self.proxy.bytes_relayed += len(data)
        peer.write(data)

    def pause_writing(self) -> None:
        set_reading(self.peer, False)

    def resume_writing(self) -> None:
        set_reading(self.peer, True)

    def eof_received(self) -> bool:
        return self.relay.on_eof(self) if self.relay is not None else False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.relay is not None:
            self.relay.on_lost(self, exc)

    def abort(self) -> None:
        if self.transport is not None and not self.lost:
            self.transport.abort()


class ClientPipe(Pipe):
    """The tool's side: reads the request head (with a deadline and a size limit), hands
    it to :meth:`EgressProxy.serve`, then relays like any pipe."""

    def __init__(self, proxy: EgressProxy) -> None:
        super().__init__(proxy)
        self._head: bytearray | None = bytearray()
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self.eof_seen = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if not self.proxy.client_opened(self):
            self.refuse(503, "too many connections")
            return
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(
            self.proxy.header_timeout_s, self.refuse, 408, "no complete request header in time"
        )

    def data_received(self, data: bytes) -> None:
        if self._head is None:
            self.forward(data)
            return
        self._head += data
        end = self._head.find(b"\r\n\r\n")
        if end < 0 and len(self._head) <= HEADER_LIMIT_BYTES:
            return
        if end < 0 or end + 4 > HEADER_LIMIT_BYTES:
            self.refuse(400, "request header block over 64 KiB")
            return
        head, rest = bytes(self._head[: end + 4]), bytes(self._head[end + 4 :])
        self._head = None
        self._cancel_timer()
        assert self.transport is not None
        self.transport.pause_reading()  # until the origin is connected
        self._task = self.proxy.spawn(self, head, rest)

    def eof_received(self) -> bool:
        if self.relay is not None:
            return self.relay.on_eof(self)
        if self._task is not None:
            self.eof_seen = True  # half-closed after its request: keep it for the answer
            return True
        return False  # EOF before a complete head: just close

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.proxy.client_closed(self)
        self._cancel_timer()
        if self.relay is not None:
            self.relay.on_lost(self, exc)
        elif self._task is not None:
            self._task.cancel()  # gone while we resolve or connect

    def refuse(self, status: int, reason: str) -> None:
        """Answer an error and close, once what is queued is sent."""
        self._head = None
        self._cancel_timer()
        if status != 403:
            log.info("egress answered %d: %s", status, reason)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(error_response(status, reason))
            self.transport.close()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class OriginPipe(Pipe):
    """The origin's side. For a plain request it first rewrites the response head
    (``Connection: close``) and passes ``1xx`` heads on; a tunnel relays from the start."""

    def __init__(self, relay: Relay, expect_head: bool) -> None:
        super().__init__(relay.proxy)
        self.relay = relay
        self.peer = relay.client
        self._head: bytearray | None = bytearray() if expect_head else None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        relay = self.relay
        if relay is not None:  # always: set in __init__
            relay.connected(self)

    def data_received(self, data: bytes) -> None:
        if self._head is None:
            self.forward(data)
            return
        self._head += data
        while self._head is not None:
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                if len(self._head) > HEADER_LIMIT_BYTES:
                    self._bad_response()
                return
            head = bytes(self._head[: end + 4])
            del self._head[: end + 4]
            status = response_status(head)
            if status is None:
                self._bad_response()
                return
            if 100 <= status < 200 and status != 101:
                self.forward(head)  # 100 Continue and friends: more heads follow
                continue
            rest, self._head = bytes(self._head), None
            self.forward(close_response_head(head) + rest)

    def forward(self, data: bytes) -> None:
        super().forward(data)
        relay = self.relay
        if relay is not None and relay.splice_wanted and self._head is None:
            relay.origin_bytes += len(data)
            if relay.origin_bytes >= splice.SPLICE_AFTER_BYTES:
                relay.start_splice()

    def eof_received(self) -> bool:
        if self._head is not None:
            self._bad_response()
            return False
        return super().eof_received()

    def _bad_response(self) -> None:
        self._head = None
        assert self.relay is not None
        target = self.relay.target
        self.relay.proxy.record_failure(causes.bad_response(target.host, target.port))
        self.relay.client.refuse(502, "no valid HTTP response from the origin")
        self.abort()


class Relay:
    """The two pipes of one connection and how they end: the origin's EOF completes
    the answer (sent, then closed); the client's EOF is passed on in a tunnel (a
    half-close) and means it left otherwise; either side lost ends both. ``done``
    resolves once both are closed; no byte in either direction for
    ``idle_timeout_s`` aborts both."""

    def __init__(
        self, proxy: EgressProxy, client: ClientPipe, target: Target, preamble: bytes, rest: bytes
    ) -> None:
        self.proxy = proxy
        self.client = client
        self.target = target
        self.tunnel = target.tunnel
        self.origin: OriginPipe | None = None
        self.loop = asyncio.get_running_loop()
        self.done: asyncio.Future[None] = self.loop.create_future()
        self.last_data_at = self.loop.time()
        self._preamble = preamble
        self._rest = rest
        self._idle_timer: asyncio.TimerHandle | None = None
        self._lost: set[Pipe] = set()
        # Origin to client through the kernel, once this much has gone through here.
        self.splice_wanted = False
        self.origin_bytes = 0
        self.pump: splice.SplicePump | None = None

    def new_origin(self) -> OriginPipe:
        return OriginPipe(self, expect_head=not self.tunnel)

    def connected(self, origin: OriginPipe) -> None:
        """The origin answered: link both ends, send what was waiting, start relaying.
        Runs inside ``connection_made``, before the origin can deliver a byte."""
        self.origin = origin
        client = self.client
        client.peer, client.relay = origin, self
        assert origin.transport is not None and client.transport is not None
        if client.transport.is_closing():
            origin.abort()
            return
        # Not behind TLS of the proxy's own (an absolute-form https:// request).
        self.splice_wanted = (
            splice.SUPPORTED and origin.transport.get_extra_info("sslcontext") is None
        )
        if self.tunnel:
            client.transport.write(self._preamble)
        else:
            origin.transport.write(self._preamble)
        if self._rest:
            client.forward(self._rest)
        if client.eof_seen and not self.on_eof(client):
            return
        client.transport.resume_reading()
        self._idle_timer = self.loop.call_later(self.proxy.idle_timeout_s, self._check_idle)

    def start_splice(self) -> None:
        """Hand origin → client to a ``SplicePump``: now, unless bytes are still queued
        for the client (then at the origin's next data) or it cannot be (then never)."""
        origin, client = self.origin, self.client
        if origin is None or origin.transport is None or client.transport is None:
            return
        if origin.transport.is_closing() or client.transport.is_closing():
            return
        if client.transport.get_write_buffer_size():
            return  # they must go first: try again with the next data
        self.splice_wanted = False
        try:
            source = origin.transport.get_extra_info("socket").fileno()
            target = client.transport.get_extra_info("socket").fileno()
            pump = splice.SplicePump(
                self.loop,
                source,
                target,
                on_data=self._spliced,
                on_eof=self._spliced_eof,
                on_error=self._splice_failed,
            )
        except (AttributeError, OSError) as exc:
            log.debug("egress: relaying without splice (%s)", exc)
            return
        origin.transport.pause_reading()
        origin.spliced = True
        self.pump = pump
        pump.start()

    def _spliced(self, n: int) -> None:
        self.last_data_at = self.loop.time()
        self.proxy.bytes_relayed += n
        self.proxy.bytes_spliced += n

    def _spliced_eof(self) -> None:
        """The origin's EOF, everything before it passed on: ``on_eof`` for it, and its
        transport closed (paused for the pump, it never saw the EOF itself)."""
        origin = self.origin
        if origin is not None:
            self.on_eof(origin)
            if origin.transport is not None:
                origin.transport.close()

    def _splice_failed(self, exc: OSError) -> None:
        log.debug("egress: splice ended: %s", exc)
        self.abort()

    def _close_pump(self) -> None:
        pump, self.pump = self.pump, None
        if pump is not None:
            pump.close()

    def on_eof(self, pipe: Pipe) -> bool:
        """``eof_received`` of either end; True keeps that transport open for writing."""
        if pipe is self.origin:
            if self.client.transport is not None:
                self.client.transport.close()  # after the queued bytes
            return False
        origin = self.origin.transport if self.origin is not None else None
        if self.tunnel and origin is not None and origin.can_write_eof():
            origin.write_eof()
            return True
        self.abort()  # a plain-request client that hangs up has left
        return False

    def on_lost(self, pipe: Pipe, exc: Exception | None) -> None:
        self._close_pump()
        self._lost.add(pipe)
        other = self.origin if pipe is self.client else self.client
        if other is not None and other.transport is not None and not other.lost:
            if pipe is self.client or exc is not None:
                other.abort()
            else:
                other.transport.close()  # the client gets what is queued, then EOF
        if other is None or other in self._lost:
            self._finish()

    def abort(self) -> None:
        self.client.abort()
        if self.origin is not None:
            self.origin.abort()
        self._finish()

    def _finish(self) -> None:
        self._close_pump()
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        if not self.done.done():
            self.done.set_result(None)

    def _check_idle(self) -> None:
        idle_s = self.loop.time() - self.last_data_at
        if idle_s >= self.proxy.idle_timeout_s:
            log.info("egress: no data for %.0f s, closing", idle_s)
            self.abort()
        else:
            self._idle_timer = self.loop.call_later(
                self.proxy.idle_timeout_s - idle_s, self._check_idle
            )


def set_reading(pipe: Pipe | None, reading: bool) -> None:
    if pipe is not None and pipe.spliced:
        return  # the pump reads it, and pauses itself
    transport = pipe.transport if pipe is not None else None
    if transport is None or transport.is_closing():
        return
    if reading:
        transport.resume_reading()
    else:
        transport.pause_reading()

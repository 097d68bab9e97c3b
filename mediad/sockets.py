"""A python-socketio server that takes bad client input calmly.

Anyone may open a Socket.IO connection (``/jobs`` needs no token on loopback), so what a
client sends is checked before python-socketio acts on it. A message that is not a valid
Engine.IO or Socket.IO packet — broken or deeply nested JSON, numbers no float holds, an
event that is not ``[name, ...]``, unknown packet types, more than ``MAX_ATTACHMENTS``
binary attachments or one nobody announced, events for a namespace the client has not
joined — closes that connection with one warning line naming the client and the reason:
never a traceback, never more than one line per connection (python-socketio would log
every such packet, most with a full traceback).

Engine.IO and python-socketio log through ``mediad.engineio`` and ``mediad.socketio`` at
warning level, so their lines are mediad's JSON lines too (with ``logger=False`` they
would each add a plain-text handler of their own).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import re
import time
from typing import Any

import engineio
import orjson
import socketio
from aiohttp import web
from engineio.async_drivers import aiohttp as eio_aiohttp
from socketio import packet as sio_packet

log = logging.getLogger(__name__)

MAX_REASON = 200
MAX_NAMESPACE = 100
# Engine.IO packet types a client may send: open, close, ping, pong, message, upgrade, noop,
# and "b" (base64 binary, in polling payloads).
ENGINEIO_TYPES = frozenset("0123456b")
RECORD_SEPARATOR = "\x1e"  # between the packets of a polling payload


class BadPacket(ValueError):
    """A client sent something that is not a packet mediad accepts."""


class Json:
    """orjson for Socket.IO packets. What orjson refuses but a worker's stdlib encoder
    writes (NaN, Infinity, lone surrogates: the events are validated afterwards) goes to the
    stdlib, but only below ``FALLBACK_MAX_DEPTH`` levels of nesting, checked first without
    recursion, and with integers of at most ``MAX_INT_DIGITS`` digits: the fallback this
    replaces raised RecursionError on 1,050-deep arrays and ValueError on 4,301-digit
    numbers, and each one logged a traceback. Whatever it refuses raises ValueError."""

    @staticmethod
    def dumps(obj: Any, **_: Any) -> str:
        return orjson.dumps(obj).decode()

    @staticmethod
    def loads(text: str | bytes, **_: Any) -> Any:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            if isinstance(text, bytes) or nesting_depth(text) > FALLBACK_MAX_DEPTH:
                raise
            error = exc
        try:
            return json.loads(text, parse_int=_bounded_int)
        except (ValueError, RecursionError):
            raise error from None


FALLBACK_MAX_DEPTH = 64
MAX_INT_DIGITS = 1000
_STRINGS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?')
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")
_DEPTH_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def nesting_depth(text: str) -> int:
    """How deeply arrays and objects nest in JSON ``text`` (strings skipped), without
    recursion and at C speed."""
    brackets = _NOT_BRACKETS.sub("", _STRINGS.sub("", text))
    return max(itertools.accumulate(map(_DEPTH_STEP.__getitem__, brackets)), default=0)


def _bounded_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(digits)} digits")
    return int(digits)


BINARY_TYPES = frozenset({sio_packet.BINARY_EVENT, sio_packet.BINARY_ACK})
ACCEPTED_TYPES = frozenset(
    {sio_packet.CONNECT, sio_packet.DISCONNECT, sio_packet.EVENT, sio_packet.ACK, *BINARY_TYPES}
)
# Binary attachments a packet may announce: python-socketio buffers them (64 KiB each at
# most) until they have all come.
MAX_ATTACHMENTS = 4


class CheckedPacket(sio_packet.Packet):
    """A Socket.IO packet whose decoding refuses what mediad's protocol has no use for."""

    json = Json

    def decode(self, encoded_packet: Any) -> int:
        if not isinstance(encoded_packet, str):
            raise BadPacket("a binary message where a packet was expected")
        try:
            count: int = super().decode(encoded_packet)
        except (ValueError, TypeError, IndexError, RecursionError) as exc:
            raise BadPacket(f"{type(exc).__name__}: {exc}") from None
        kind, data = self.packet_type, self.data
        if kind not in ACCEPTED_TYPES:
            raise BadPacket(f"packet type {kind!r} is not accepted")
        if count > MAX_ATTACHMENTS or (count and kind not in BINARY_TYPES):
            raise BadPacket(f"{count} binary attachments")
        if self.namespace is not None and len(self.namespace) > MAX_NAMESPACE:
            raise BadPacket("namespace too long")
        if kind in (sio_packet.EVENT, sio_packet.BINARY_EVENT) and not (
            isinstance(data, list) and data and isinstance(data[0], str)
        ):
            raise BadPacket("an event must be a list that starts with its name")
        if kind in (sio_packet.ACK, sio_packet.BINARY_ACK) and (
            self.id is None or not isinstance(data, list)
        ):
            raise BadPacket("an acknowledgement needs an id and a list")
        if kind == sio_packet.CONNECT and data is not None and not isinstance(data, dict):
            raise BadPacket("connection data must be an object")
        return count


def _remote(environ: dict[str, Any] | None) -> str:
    request = (environ or {}).get("aiohttp.request")
    return str(getattr(request, "remote", None) or "?")


def _short(reason: str) -> str:
    return reason[:MAX_REASON].encode("unicode_escape").decode("ascii")


def report(environ: dict[str, Any] | None, reason: str) -> None:
    log.warning("closed a Socket.IO connection from %s: %s", _remote(environ), _short(reason))


def engineio_problem(message: Any) -> str | None:
    """Why ``message`` (one websocket message, or a polling payload) is not Engine.IO text
    mediad accepts; None when it is."""
    if isinstance(message, bytes):
        return None  # an attachment: Socket.IO decides whether one is due
    if not isinstance(message, str):
        return "not a text or binary message"
    for part in message.split(RECORD_SEPARATOR):
        if not part or part[0] not in ENGINEIO_TYPES:
            return f"not an Engine.IO packet: {part[:20]!r}"
    return None


class _CheckedWebSocket(eio_aiohttp.WebSocket):
    """One websocket connection: the first message that is not an Engine.IO packet ends
    it (``None`` reads as the client closing), reported once; so does any message once its
    session is closed (after a bad Socket.IO packet, say)."""

    async def wait(self) -> Any:
        message = await super().wait()
        session = getattr(self.handler, "__self__", None)  # engineio's AsyncSocket
        if session is not None and session.closed:
            return None  # refused by Socket.IO (Server below): end the connection too
        problem = engineio_problem(message)
        if problem is None:
            return message
        report(getattr(self, "environ", None), problem)
        return None


class _CachedBody:
    """``environ['wsgi.input']`` for a polling POST whose body was read (and checked)
    already."""

    def __init__(self, request: Any) -> None:
        self._request = request

    async def read(self, size: int = -1) -> bytes:
        return bytes(await self._request.read())


def _translate_request(request: Any) -> dict[str, Any]:
    environ: dict[str, Any] = eio_aiohttp.translate_request(request)
    environ["wsgi.input"] = _CachedBody(request)
    return environ


async def close_session(server: Any, sid: str | None) -> None:
    """Close an Engine.IO session now: ``disconnect()`` would wait until a polling
    client fetched the close packet, holding the request (and its task) until then."""
    session = server.sockets.get(sid) if sid else None
    if session is not None:
        await session.close(wait=False, abort=False, reason=server.reason.TRANSPORT_ERROR)
        server.sockets.pop(sid, None)


def release_closed_sessions(server: Any) -> None:
    """Cancel each Engine.IO session's ping timer when the session closes.

    python-engineio (4.x) starts, for every session, a task that sleeps
    ``ping_interval`` (25 s) before its next ping and keeps no handle on it: a session
    that closes stays in memory, with its queue, until the sleep ends. Under connection
    churn that is every session of the last 25 s — about 5 KB each, 11 MB per 2,000
    connect/close cycles, growing as long as the churn goes on (the bench in
    tests/bench/churn.py; docs/upstream/python-socketio-churn.md for the report). This
    keeps the ping tasks by session id and cancels a session's task when it closes.
    Installed on the instance, so it works for any ``engineio.AsyncServer``.
    """
    from engineio.async_socket import AsyncSocket

    pings: dict[str, asyncio.Future[Any]] = {}
    start_background_task = server.start_background_task
    trigger_event = server._trigger_event

    def start(target: Any, *args: Any, **kwargs: Any) -> Any:
        task = start_background_task(target, *args, **kwargs)
        session = getattr(target, "__self__", None)
        if getattr(target, "__func__", None) is AsyncSocket._send_ping and session is not None:
            sid = session.sid
            pings[sid] = task
            task.add_done_callback(lambda t: pings.pop(sid, None) if pings.get(sid) is t else None)
        return task

    async def trigger(event: str, *args: Any, **kwargs: Any) -> Any:
        if event == "disconnect" and args:
            task = pings.pop(args[0], None)
            if task is not None and task is not asyncio.current_task():
                task.cancel()  # not the ping task closing its own session: it ends by itself
        return await trigger_event(event, *args, **kwargs)

    server.start_background_task = start
    server._trigger_event = trigger
    server.mediad_ping_tasks = pings  # for tests


class _EngineServer(engineio.AsyncServer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._async: dict[str, Any] = {
            **self._async,
            "websocket": _CheckedWebSocket,
            "translate_request": _translate_request,
        }
        release_closed_sessions(self)

    async def handle_request(self, *args: Any, **kwargs: Any) -> Any:
        """A polling POST is read and checked whole first: the session of one that is not
        Engine.IO text is closed, and the request answered 400 at once."""
        request = args[0] if args else None
        if request is not None and getattr(request, "method", None) == "POST":
            raw = await request.read()  # bounded by the app's client_max_size
            try:
                problem = engineio_problem(bytes(raw).decode("utf-8"))
            except UnicodeDecodeError:
                problem = "not UTF-8 text"
            if problem is not None:
                sid = request.query.get("sid")
                if sid in self.sockets:  # once a session: later posts find it closed
                    report({"aiohttp.request": request}, problem)
                    await close_session(self, sid)
                return web.json_response(
                    {"error": {"code": "bad_packet", "message": problem[:MAX_REASON]}},
                    status=400,
                )
        return await super().handle_request(*args, **kwargs)


class Server(socketio.AsyncServer):
    """``socketio.AsyncServer`` for aiohttp with mediad's checks (see the module)."""

    def __init__(self, **kwargs: Any) -> None:
        for name in ("socketio", "engineio"):
            logging.getLogger(f"mediad.{name}").setLevel(logging.WARNING)
        kwargs.setdefault("logger", logging.getLogger("mediad.socketio"))
        kwargs.setdefault("engineio_logger", logging.getLogger("mediad.engineio"))
        super().__init__(serializer=CheckedPacket, json=Json, **kwargs)
        self._closing: set[str] = set()

    def _engineio_server_class(self) -> type:
        return _EngineServer

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        if eio_sid in self._closing:
            return  # in flight when its connection was refused
        try:
            if eio_sid in self._binary_packet:  # an attachment is due
                if not isinstance(data, bytes):
                    raise BadPacket("a text message where a binary attachment was due")
            elif not data or not isinstance(data, str):  # python-socketio skips decoding ""
                raise BadPacket("an empty or unexpected binary message")
            await super()._handle_eio_message(eio_sid, data)
        except BadPacket as exc:
            self._closing.add(eio_sid)
            report(self.environ.get(eio_sid), str(exc))
            await close_session(self.eio, eio_sid)

    async def _handle_event(self, eio_sid: str, namespace: Any, id: Any, data: Any) -> None:
        self._check_connected(eio_sid, namespace)
        await super()._handle_event(eio_sid, namespace, id, data)

    async def _handle_ack(self, eio_sid: str, namespace: Any, id: Any, data: Any) -> None:
        self._check_connected(eio_sid, namespace)
        await super()._handle_ack(eio_sid, namespace, id, data)

    def _check_connected(self, eio_sid: str, namespace: Any) -> None:
        # python-socketio would log a warning for each such packet.
        if not self.manager.sid_from_eio_sid(eio_sid, namespace or "/"):
            raise BadPacket(f"not connected to namespace {str(namespace)[:MAX_NAMESPACE]}")

    async def _handle_eio_disconnect(self, eio_sid: str, reason: Any = None) -> None:
        self._closing.discard(eio_sid)
        self._binary_packet.pop(eio_sid, None)  # python-socketio keeps a partial one forever
        await super()._handle_eio_disconnect(eio_sid, reason)


# A shutdown never waits longer than this for a Redis connection to close.
CLOSE_TIMEOUT_S = 2.0


class ClusterEvents(socketio.AsyncRedisManager):
    """python-socketio's Redis manager, quiet while Redis is down: an event that cannot be
    published is dropped (clients resync over REST when they reconnect) with one warning
    per outage instead of two error lines per event, and connections time out."""

    connected: bool  # the base class's: whether its Redis client is set up

    def __init__(self, url: str, channel: str) -> None:
        super().__init__(
            url,
            channel=channel,
            redis_options={"socket_connect_timeout": 2, "socket_timeout": 5},
        )
        self._down_until = 0.0
        self._closing: set[asyncio.Task[None]] = set()
        # Publishing has a client of its own. Reconnecting through _redis_connect, the
        # base class's way, also replaced the pubsub the listener was subscribing with,
        # and closed it before its connection was made: that connection was then left
        # open for the garbage collector (a ResourceWarning after a Redis restart).
        self._publisher: Any = None

    async def _publish(self, data: Any) -> Any:
        now = time.monotonic()
        if now < self._down_until:
            return None
        try:
            if self._publisher is None:
                self._publisher = self._get_redis_module().Redis.from_url(
                    self.redis_url, **self.redis_options
                )
            result = await self._publisher.publish(self.channel, self.json.dumps(data))
        except Exception as exc:  # redis-py's and the socket's: the event is dropped
            self._close_later(self._publisher)
            self._publisher = None
            if not self._down_until:
                log.warning("Socket.IO events reach only this instance's clients: %s", exc)
            self._down_until = now + 1.0
            return None
        if self._down_until:
            log.info("Socket.IO events reach every instance again")
            self._down_until = 0.0
        return result

    def _redis_connect(self) -> None:
        """The listener's new client for each reconnection (the base class's way), the old
        one closed rather than left to the garbage collector with its sockets open."""
        old = [getattr(self, "pubsub", None), getattr(self, "redis", None)]
        super()._redis_connect()
        for client in old:
            self._close_later(client)

    def _close_later(self, client: Any) -> None:
        if client is not None:
            task = asyncio.get_running_loop().create_task(client.aclose())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        """Stop listening and close the Redis connections (at shutdown)."""
        thread = getattr(self, "thread", None)
        if thread is not None:
            thread.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(thread, CLOSE_TIMEOUT_S)
        clients = (getattr(self, "pubsub", None), getattr(self, "redis", None), self._publisher)
        for client in clients:
            if client is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.aclose(), CLOSE_TIMEOUT_S)
        if self._closing:
            await asyncio.wait(self._closing, timeout=CLOSE_TIMEOUT_S)

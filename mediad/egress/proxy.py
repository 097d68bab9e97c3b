"""The proxy itself: listens on 127.0.0.1, checks each request, connects, records.

See :mod:`mediad.egress` for what it guards and :mod:`mediad.egress.causes` for what it
records about a job.
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable

from mediad.egress import causes
from mediad.egress.causes import Blocked, UpstreamFailure, Verdict
from mediad.egress.protocol import (
    ESTABLISHED,
    Refusal,
    Request,
    SchemeRefused,
    Target,
    origin_request,
    parse_request,
    parse_target,
)
from mediad.egress.relay import ClientPipe, Relay
from mediad.netpolicy import IPAddress, NetPolicy, parse_host_literal

log = logging.getLogger("mediad.egress")

Resolver = Callable[[str, int], Awaitable[list[str]]]

HEADER_TIMEOUT_S = 30.0
IDLE_TIMEOUT_S = 300.0
MAX_CONNECTIONS = 512
# Upstream failures kept per job (the newest): enough to name the cause, bounded.
MAX_FAILURES = 100


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, in the resolver's order, without duplicates."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class EgressProxy:
    """The forward proxy in front of every tool; see :mod:`mediad.egress`.

    Runs in the caller's loop: ``async with EgressProxy(policy) as proxy: proxy.url``.
    ``tls_context`` verifies origins of absolute-form ``https://`` requests (clients
    normally tunnel HTTPS with CONNECT instead, which needs no TLS here).

    What went wrong since the last :meth:`clear` (one job's worth, in a worker) is kept in
    :attr:`blocked` (connections the policy refused) and :attr:`failures` (connections
    that could not be made); :meth:`verdict` says what the job's error is.
    """

    def __init__(
        self,
        policy: NetPolicy,
        *,
        resolver: Resolver | None = None,
        connect_timeout_s: float = 15,
        header_timeout_s: float = HEADER_TIMEOUT_S,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        max_connections: int = MAX_CONNECTIONS,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.policy = policy
        self.blocked: list[Blocked] = []
        self.failures: collections.deque[UpstreamFailure] = collections.deque(maxlen=MAX_FAILURES)
        self.bytes_relayed = 0  # bytes passed on after the request heads, both ways
        self.bytes_spliced = 0  # of them, origin to tool by the kernel (egress.splice)
        self.resolver = resolver or system_resolver
        self.connect_timeout_s = connect_timeout_s
        self.header_timeout_s = header_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self.max_connections = max_connections
        self.tls_context = tls_context
        self._server: asyncio.Server | None = None
        self._clients: set[ClientPipe] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._port = 0

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("EgressProxy already started")
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: ClientPipe(self), "127.0.0.1", 0, backlog=1024
        )
        self._port = self._server.sockets[0].getsockname()[1]
        log.debug("egress proxy listening on %s", self.url)

    async def stop(self) -> None:
        """Stop listening and end every connection, mid-request or mid-download."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for client in list(self._clients):
            client.abort()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()

    async def __aenter__(self) -> EgressProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``, for the tools' proxy options."""
        if self._server is None:
            raise RuntimeError("EgressProxy is not started")
        return f"http://127.0.0.1:{self._port}"

    @property
    def connections(self) -> int:
        """Client connections open now."""
        return len(self._clients)

    # -- what went wrong -----------------------------------------------------------------

    def clear(self) -> None:
        """Forget what was refused and what failed: a new job starts."""
        self.blocked.clear()
        self.failures.clear()

    def verdict(self, tool_code: str | None = None, tool_message: str = "") -> Verdict | None:
        """The job's error as the guard sees it, given how the tool ended (``tool_code``
        None: it succeeded); None when the tool's own outcome stands. See
        :func:`mediad.egress.causes.verdict`."""
        return causes.verdict(self.blocked, list(self.failures), tool_code, tool_message)

    def record_blocked(self, blocked: Blocked) -> None:
        self.blocked.append(blocked)
        log.warning(
            "egress refused %s:%s (%s)",
            blocked.host,
            blocked.port,
            blocked.reason,
            extra={"stage": "egress"},
        )

    def record_failure(self, failure: UpstreamFailure) -> None:
        self.failures.append(failure)  # the 502 it answers is logged (info) by the client pipe
        log.debug("egress: %s", failure.reason, extra={"stage": "egress"})

    # -- the client connections ----------------------------------------------------------

    def client_opened(self, client: ClientPipe) -> bool:
        """Count a new client connection; False when it is one too many."""
        self._clients.add(client)
        return len(self._clients) <= self.max_connections

    def client_closed(self, client: ClientPipe) -> None:
        self._clients.discard(client)

    def spawn(self, client: ClientPipe, head: bytes, rest: bytes) -> asyncio.Task[None]:
        """Serve the request whose head ``client`` has read, in a task of its own."""
        task = asyncio.get_running_loop().create_task(
            self.serve(client, head, rest), name=f"egress-{id(client):x}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- one request -----------------------------------------------------------------------

    async def serve(self, client: ClientPipe, head: bytes, rest: bytes) -> None:
        relay: Relay | None = None
        try:
            request = parse_request(head)
            target = self._parse_target(request)
            addresses = await self._resolve_and_check(target)
            preamble = ESTABLISHED if target.tunnel else origin_request(request, target)
            relay = Relay(self, client, target, preamble, rest)
            await self._connect(relay, target, addresses)
            await relay.done
        except Refusal as refusal:
            client.refuse(refusal.status, refusal.reason)
        except BaseException as exc:
            if not isinstance(exc, asyncio.CancelledError):
                log.exception("egress proxy: unexpected error")
            if relay is not None:
                relay.abort()
            client.abort()
            if not isinstance(exc, Exception):
                raise

    def _parse_target(self, request: Request) -> Target:
        try:
            return parse_target(request)
        except SchemeRefused as refused:
            reason = f"scheme not allowed: {refused.scheme}"
            self.record_blocked(Blocked(refused.host, refused.port, None, reason))
            raise

    async def _resolve_and_check(self, target: Target) -> list[str]:
        """The addresses to connect to, each checked; refuses if any is not allowed."""
        literal = parse_host_literal(target.host)
        found = [str(literal)] if literal is not None else await self._resolve(target)
        checked = []
        for raw in found:
            address = parse_host_literal(raw)
            if address is None:
                raise Refusal(502, f"resolver gave a non-address for {target.host}")
            reason = self.policy.check_address(address, target.host)
            if reason is None and self._is_self(address, target.port):
                reason = "the egress proxy itself"
            if reason is not None:
                self.record_blocked(Blocked(target.host, target.port, str(address), reason))
                raise Refusal(403, reason)
            # Connect to the address as checked, in canonical form; keep an IPv6 zone.
            zone = raw.partition("%")[2] if isinstance(address, ipaddress.IPv6Address) else ""
            checked.append(f"{address}%{zone}" if zone else str(address))
        return checked

    async def _resolve(self, target: Target) -> list[str]:
        """What the name resolves to; a recorded failure and a 502 when nothing."""
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                found = await self.resolver(target.host, target.port)
        except (OSError, TimeoutError, UnicodeError) as exc:
            self._unresolved(target, exc)
            raise Refusal(502, f"cannot resolve {target.host} ({exc})") from None
        if not found:
            self._unresolved(target, None)
            raise Refusal(502, f"cannot resolve {target.host} (no address)")
        return found

    def _unresolved(self, target: Target, exc: BaseException | None) -> None:
        timeout_s = self.connect_timeout_s
        self.record_failure(causes.unresolved(target.host, target.port, exc, timeout_s))

    def _is_self(self, address: IPAddress, port: int) -> bool:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        local = (ipaddress.IPv4Address("127.0.0.1"), ipaddress.IPv4Address("0.0.0.0"))
        return port == self._port and address in local

    async def _connect(self, relay: Relay, target: Target, addresses: list[str]) -> None:
        """Connect ``relay`` to the first checked address that answers, never by name."""
        loop = asyncio.get_running_loop()
        tls = None
        if target.scheme == "https":
            tls = self.tls_context or ssl.create_default_context()
        last_error: BaseException | None = None
        tried: str | None = None
        for address in addresses:
            sock = None
            tried = address
            try:
                # AI_NUMERICHOST: parse the checked address, never look anything up.
                family, type_, proto, _, sockaddr = socket.getaddrinfo(
                    address, target.port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST
                )[0]
                sock = socket.socket(family, type_, proto)
                sock.setblocking(False)
                async with asyncio.timeout(self.connect_timeout_s):
                    await loop.sock_connect(sock, sockaddr)
                    await loop.create_connection(
                        relay.new_origin,
                        sock=sock,
                        ssl=tls,
                        server_hostname=target.host if tls else None,
                    )
                return
            except (OSError, TimeoutError, ssl.SSLError) as exc:
                last_error = exc
                if sock is not None:
                    sock.close()
            except BaseException:
                if sock is not None:
                    sock.close()
                raise
        self.record_failure(
            causes.not_connected(
                target.host, target.port, tried, last_error, self.connect_timeout_s
            )
        )
        detail = f"{type(last_error).__name__}: {last_error}" if last_error else "no address"
        raise Refusal(502, f"cannot connect to {target.host}:{target.port} ({detail})")

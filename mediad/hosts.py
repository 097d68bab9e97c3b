"""The ``Host`` allow-list, against DNS rebinding.

Without tokens (the loopback default) anything that reaches the port is trusted, and a
web page the user visits can reach it: its own name, re-pointed by DNS at 127.0.0.1, is
same-origin for the browser, ``Origin`` and all. The ``Host`` header still carries that
name. So every request — REST, files, the page, the Socket.IO handshake — must name an
allowed host:

* loopback names and addresses: ``localhost``, ``*.localhost`` (RFC 6761: never sent to
  DNS), ``127.0.0.0/8``, ``::1``;
* the configured ``server.host``; with a wildcard such as ``0.0.0.0``, the address the
  connection came in on, when the Host is that address (a rebinding needs a name);
* what ``server.allowed_hosts`` adds: names, ``*.domain``, addresses, CIDRs; ``*`` lets
  every host in, on purpose.

Ports are not compared, names are compared in their IDNA/NFKC form
(``mediad.netpolicy.normalize_host_name``). A request without ``Host`` (HTTP/1.0) comes
from no browser and is let through. Others get 403 ``host_not_allowed``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Iterable

from aiohttp import hdrs, web
from aiohttp.typedefs import Middleware

from mediad.errors import ApiError
from mediad.netpolicy import NetPolicy, parse_host_literal

LOOPBACK = ("localhost", "*.localhost", "127.0.0.0/8", "::1")
WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::", "[::]"})
MAX_SHOWN = 100

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class HostNotAllowed(ApiError):
    """The request's Host header names a host that is not allowed."""

    status = 403
    code = "host_not_allowed"


class AllowedHosts:
    """Raises ValueError naming a bad ``server.allowed_hosts`` entry."""

    def __init__(self, server_host: str, extra: Iterable[str] = ()) -> None:
        extra = tuple(extra)
        self.everything = "*" in extra
        entries = [*LOOPBACK, *(e for e in extra if e != "*")]
        if server_host.strip() not in WILDCARD_BINDS:
            entries.append(server_host.strip())
        try:
            self._policy = NetPolicy(allow_hosts=entries)
        except ValueError as exc:
            raise ValueError(str(exc).replace("allow_hosts entry", "entry", 1)) from None
        # Answers by (Host header, local address): parsing them is a tenth of a cheap
        # request, and a client sends the same header every time.
        self._answers: dict[tuple[str, str | None], bool] = {}

    def allows(self, host_header: str | None, local_address: str | None = None) -> bool:
        """Whether a request with this ``Host`` header may be served; ``local_address``
        is the address the connection came in on (a wildcard bind serves each of the
        machine's addresses, and a Host naming that very address rebinds nothing)."""
        if host_header is None or self.everything:
            return True
        key = (host_header, local_address)
        known = self._answers.get(key)
        if known is None:
            host = split_host(host_header)
            known = host is not None and (
                self._policy.host_allowed(host) or _same_address(host, local_address)
            )
            if len(self._answers) >= 256:  # the header is the client's: keep it bounded
                self._answers.clear()
            self._answers[key] = known
        return known


def _same_address(host: str, local_address: str | None) -> bool:
    if not local_address:
        return False
    literal = parse_host_literal(host)
    try:
        local = ipaddress.ip_address(local_address.split("%", 1)[0])
    except ValueError:
        return False
    if literal is None:
        return False
    if isinstance(local, ipaddress.IPv6Address) and local.ipv4_mapped is not None:
        local = local.ipv4_mapped
    return literal == local


def split_host(value: str) -> str | None:
    """The host of a ``Host`` header (``name``, ``name:port``, ``[v6]:port``), or None
    when it is not one."""
    value = value.strip()
    if value.startswith("["):
        host, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not (rest.startswith(":") and rest[1:].isdigit())):
            return None
        return host or None
    host, colon, port = value.rpartition(":")
    if not colon:
        host = value
    elif not port.isdigit() or ":" in host:
        return None
    if not host or any(ch in host for ch in "/\\@ \t"):
        return None
    return host


def _local_address(request: web.Request) -> str | None:
    local = request.transport.get_extra_info("sockname") if request.transport else None
    return local[0] if isinstance(local, tuple) else None


def validate(server_host: str, extra: Iterable[str]) -> None:
    AllowedHosts(server_host, extra)


def middleware(server_host: str, extra: Iterable[str]) -> Middleware:
    allowed = AllowedHosts(server_host, extra)

    @web.middleware
    async def check_host(request: web.Request, handler: Handler) -> web.StreamResponse:
        header = request.headers.get(hdrs.HOST)
        # The address the connection came in on only matters for a Host the names and
        # addresses allowed do not cover; the transport builds it anew on every ask.
        if not allowed.allows(header) and not allowed.allows(header, _local_address(request)):
            shown = (header or "")[:MAX_SHOWN]
            raise HostNotAllowed(
                f"the Host {shown!r} is not allowed here (a DNS rebinding attempt, or a name"
                " missing from server.allowed_hosts)"
            )
        return await handler(request)

    return check_host

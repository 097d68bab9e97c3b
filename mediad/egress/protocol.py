"""Pure: the HTTP/1.x the egress proxy speaks, request heads in, error answers out.

No sockets here: :mod:`mediad.egress.proxy` reads a client's head, asks
:func:`parse_request` and :func:`split_authority` what it wants, sends the origin
:func:`origin_request`, and answers refusals with :func:`error_response`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from http import HTTPStatus

from mediad.netpolicy import ALLOWED_SCHEMES, parse_host_literal

HEADER_LIMIT_BYTES = 64 * 1024

ESTABLISHED = b"HTTP/1.1 200 Connection established\r\n\r\n"
# Request headers that concern this hop only (RFC 9110 §7.6.1) or the proxy itself.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
        "proxy-authenticate",
        "te",
        "trailer",
        "upgrade",
    }
)
# Never dropped even when Connection names them: the body is relayed as framed.
_FRAMING = frozenset({"content-length", "transfer-encoding", "host"})
_TOKEN = re.compile(rb"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*$")
_HOST_NAME = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,251}[A-Za-z0-9_.])?$")
_BAD_VALUE_BYTES = re.compile(rb"[\r\n\x00]")
_UNSAFE_REASON = re.compile(r"[^\x20-\x7e]")


class Refusal(Exception):
    """End this client's request with an error answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class SchemeRefused(Refusal):
    """A scheme other than http and https: refused (403), and recorded as blocked."""

    def __init__(self, host: str, port: int, scheme: str) -> None:
        super().__init__(403, "scheme not allowed")
        self.host = host
        self.port = port
        self.scheme = scheme


@dataclass
class Request:
    method: str
    target: str
    version: str
    headers: list[tuple[bytes, bytes]]


@dataclass
class Target:
    scheme: str  # "connect" for a tunnel
    host: str
    port: int
    authority: str
    path: str = ""

    @property
    def tunnel(self) -> bool:
        return self.scheme == "connect"


def parse_target(request: Request) -> Target:
    """Where a request goes: ``CONNECT host:port`` or an absolute ``http(s)://`` URL."""
    if request.method == "CONNECT":
        host, port = split_authority(request.target, None)
        return Target("connect", host, port, request.target)
    scheme, sep, rest = request.target.partition("://")
    if not sep or not _SCHEME.match(scheme):
        raise Refusal(400, "not a proxy request: expected CONNECT or an absolute URL")
    scheme = scheme.lower()
    end = min((i for i in map(rest.find, "/?#") if i >= 0), default=len(rest))
    authority = rest[:end].rpartition("@")[2]  # credentials are the client's business
    path = rest[end:].partition("#")[0]
    if scheme not in ALLOWED_SCHEMES:
        try:
            host, port = split_authority(authority, 0)
        except Refusal:
            host, port = authority, 0
        raise SchemeRefused(host, port, scheme)
    host, port = split_authority(authority, 443 if scheme == "https" else 80)
    return Target(scheme, host, port, authority, path if path.startswith("/") else "/" + path)


def parse_request(head: bytes) -> Request:
    lines = head[:-4].split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not _TOKEN.match(parts[0]) or parts[2] not in (b"HTTP/1.0", b"HTTP/1.1"):
        raise Refusal(400, "malformed request line")
    method, target, version = (p.decode("latin-1") for p in parts)
    headers: list[tuple[bytes, bytes]] = []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not _TOKEN.match(name) or _BAD_VALUE_BYTES.search(line):
            raise Refusal(400, "malformed header line")
        headers.append((name, value.strip(b" \t")))
    return Request(method, target, version, headers)


def split_authority(authority: str, default_port: int | None) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` → (host, port); a 400 when malformed."""
    if authority.startswith("["):
        end = authority.find("]")
        host, rest = authority[1:end], authority[end + 1 :]
        if end < 0 or (rest and not rest.startswith(":")) or parse_host_literal(host) is None:
            raise Refusal(400, "malformed IPv6 host")
        port_text = rest[1:]
    else:
        host, sep, port_text = authority.rpartition(":")
        if not sep:
            host, port_text = authority, ""
        if ":" in host:
            raise Refusal(400, "IPv6 host without brackets")
        if parse_host_literal(host) is None and not _HOST_NAME.match(host):
            raise Refusal(400, "malformed host")
    if not port_text:
        if default_port is None:
            raise Refusal(400, "CONNECT needs host:port")
        return host, default_port
    if not port_text.isascii() or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise Refusal(400, "malformed port")
    return host, int(port_text)


def origin_request(request: Request, target: Target) -> bytes:
    """The request line and headers to send to the origin: origin form, our Host
    (RFC 9112 §3.2.2: a proxy replaces it with the target's authority), no hop-by-hop
    headers, ``Connection: close``."""
    listed = set()
    for name, value in request.headers:
        if name.lower() in (b"connection", b"proxy-connection"):
            listed |= {t.strip().lower().decode("latin-1") for t in value.split(b",")}
    drop = (_HOP_BY_HOP | listed) - _FRAMING
    out = [
        f"{request.method} {target.path} {request.version}".encode("latin-1"),
        b"Host: " + target.authority.encode("latin-1"),
    ]
    for name, value in request.headers:
        lowered = name.lower().decode("latin-1")
        if lowered not in drop and lowered != "host":
            out.append(name + b": " + value)
    out.append(b"Connection: close")
    return b"\r\n".join(out) + b"\r\n\r\n"


def close_response_head(head: bytes) -> bytes:
    lines = head[:-4].split(b"\r\n")
    kept = [lines[0]]
    for line in lines[1:]:
        name = line.partition(b":")[0].strip().lower()
        if name not in (b"connection", b"keep-alive", b"proxy-connection"):
            kept.append(line)
    kept.append(b"Connection: close")
    return b"\r\n".join(kept) + b"\r\n\r\n"


def error_response(status: int, reason: str) -> bytes:
    safe = _UNSAFE_REASON.sub("?", reason)[:500]
    phrase = HTTPStatus(status).phrase
    body = f"{status} {phrase}: {safe}\n".encode()
    head = (
        f"HTTP/1.1 {status} {phrase}\r\n"
        f"X-Mediad-Egress: {safe}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


def response_status(head: bytes) -> int | None:
    """The status code of a response head, or None if it is not HTTP/1.x."""
    if not head.startswith(b"HTTP/1.") or len(head) < 13 or head[12:13] not in b" \r":
        return None
    code = head[9:12]
    return int(code) if code.isdigit() else None

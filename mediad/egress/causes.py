"""Pure: what the egress guard saw go wrong for a job, and what the job's failure says.

The guard knows causes a tool never sees: a tool asks the proxy for ``host:port`` and
gets a ``403`` (refused by the policy) or a ``502`` (no connection could be made) that
it reports in its own words ("HTTP Error 502: Bad Gateway", "Proxy connection failed",
"Server returned 5XX"). The proxy records both kinds per job (:class:`Blocked`,
:class:`UpstreamFailure`), and :func:`verdict` turns them into the job's error:

* a refused connection fails the job with ``blocked_address``, whatever the tool made
  of it and even when the tool then succeeded (a playlist with a hole in it);
* a connection the guard could not make (``network``: the name did not resolve, the
  connection was refused, timed out or had no route; ``http_error``: the origin did not
  speak HTTP) replaces the tool's words only when the tool failed, and only when those
  words are what a failed connection looks like: ``network``, ``tool_failed``, or an
  ``http_error`` that names no HTTP status but the proxy's 502. A site's own verdict (a
  404, a 403, "unsupported URL", a full disk) stands.
"""

from __future__ import annotations

import errno
import re
import ssl
from collections.abc import Sequence
from dataclasses import dataclass

# Tool error codes a connection failure can be behind (see the module docstring).
EXPLAINABLE_CODES = frozenset({"network", "tool_failed", "http_error"})
# The HTTP status a tool's message names: yt-dlp "HTTP Error 404", aria2 "status=404",
# ffmpeg "HTTP error 404" / "Server returned 404" / "Server returned 5XX".
_NAMED_STATUS = re.compile(
    r"(?:HTTP Error|HTTP error|status=|Server returned|response status)\s*(\d{3}|[1-5]XX)\b"
)
# What the proxy answers for a connection it could not make, as tools report it.
_PROXY_STATUSES = frozenset({"502", "5XX"})
_UNREACHABLE = frozenset({errno.ENETUNREACH, errno.EHOSTUNREACH})


@dataclass(frozen=True)
class Blocked:
    """One refused connection: what the client asked for and why it was refused.
    ``address`` is the refused IP, None when no address was involved (a bad scheme)."""

    host: str
    port: int
    address: str | None
    reason: str


@dataclass(frozen=True)
class UpstreamFailure:
    """One connection the guard could not make for a tool. ``cause`` is one of
    ``unresolved``, ``refused``, ``timeout``, ``unreachable``, ``failed`` (another socket
    error), ``tls`` and ``bad_response``; ``address`` is the address last tried (None
    when the name did not resolve); ``reason`` says it for people ("connection to
    127.0.0.1:9 refused")."""

    host: str
    port: int
    address: str | None
    cause: str
    reason: str

    @property
    def error_code(self) -> str:
        """The job's errorCode for it: an origin that answers something other than HTTP
        is the site's doing (final); every other cause is ``network`` (retried)."""
        return "http_error" if self.cause == "bad_response" else "network"


@dataclass(frozen=True)
class Verdict:
    """How the egress guard says a job failed: its errorCode and message."""

    error_code: str
    message: str


def endpoint(host: str, port: int, address: str | None = None) -> str:
    """``host:port``, ``[v6]:port``, and the address tried when the host is a name:
    ``www.example.com:443 (203.0.113.5)``."""

    def joined(name: str) -> str:
        return f"[{name}]:{port}" if ":" in name else f"{name}:{port}"

    if address is None or address == host:
        return joined(host)
    return f"{joined(host)} ({address})"


def unresolved(
    host: str, port: int, exc: BaseException | None, timeout_s: float
) -> UpstreamFailure:
    """The name did not resolve: ``exc`` is what the resolver raised (None: no address)."""
    if exc is None:
        detail = "no address"
    elif isinstance(exc, TimeoutError):
        detail = f"no answer within {timeout_s:g} s"
    elif isinstance(exc, UnicodeError):
        detail = "not a valid host name"
    elif isinstance(exc, OSError) and exc.strerror:
        detail = exc.strerror  # socket.gaierror: "Name or service not known"
    else:
        detail = str(exc) or type(exc).__name__
    return UpstreamFailure(host, port, None, "unresolved", f"could not resolve {host} ({detail})")


def not_connected(
    host: str, port: int, address: str | None, exc: BaseException | None, timeout_s: float
) -> UpstreamFailure:
    """No connection to ``address`` (the last one tried) could be made; ``exc`` says why."""
    where = endpoint(host, port, address)
    if isinstance(exc, TimeoutError):
        cause = "timeout"
        reason = f"connection to {where} timed out (no answer within {timeout_s:g} s)"
    elif isinstance(exc, ssl.SSLError):
        detail = exc.reason or str(exc)
        verify = getattr(exc, "verify_message", None)  # a certificate: what is wrong with it
        if verify:
            detail += f" ({verify})"
        cause, reason = "tls", f"TLS with {where} failed: {detail}"
    elif isinstance(exc, ConnectionRefusedError):
        cause, reason = "refused", f"connection to {where} refused"
    elif isinstance(exc, OSError) and exc.errno in _UNREACHABLE:
        cause, reason = "unreachable", f"no route to {where} ({exc.strerror})"
    elif isinstance(exc, OSError):
        cause, reason = "failed", f"connection to {where} failed ({exc.strerror or exc})"
    else:
        cause, reason = "failed", f"connection to {where} failed"
    return UpstreamFailure(host, port, address, cause, reason)


def bad_response(host: str, port: int) -> UpstreamFailure:
    where = endpoint(host, port)
    return UpstreamFailure(host, port, None, "bad_response", f"{where} did not answer with HTTP")


def verdict(
    blocked: Sequence[Blocked],
    failures: Sequence[UpstreamFailure],
    tool_code: str | None = None,
    tool_message: str = "",
) -> Verdict | None:
    """The guard's word on a job that ended with ``tool_code`` (None: the tool succeeded)
    and ``tool_message``, or None when the tool's own outcome stands. See the module
    docstring; of several failed connections the last one is named (the one the tool
    gave up on)."""
    if blocked:
        first = blocked[0]
        return Verdict(
            "blocked_address",
            f"refused a connection to {first.host}:{first.port}: {first.reason}"
            " (network.allow_private / network.allow_hosts)",
        )
    if tool_code is None or not failures or not explained_by_guard(tool_code, tool_message):
        return None
    last = failures[-1]
    return Verdict(last.error_code, last.reason)


def explained_by_guard(tool_code: str, tool_message: str) -> bool:
    """Whether a tool's failure is what a connection the proxy could not make looks
    like, rather than the site's own answer."""
    if tool_code not in EXPLAINABLE_CODES:
        return False
    if tool_code != "http_error":
        return True
    named = {m.group(1) for m in _NAMED_STATUS.finditer(tool_message)}
    return not named or bool(named & _PROXY_STATUSES)

"""The egress guard: an HTTP forward proxy on 127.0.0.1 that every tool connects through.

Each tool is pointed at :attr:`EgressProxy.url` (yt-dlp ``--proxy``, aria2c
``--all-proxy``, ffmpeg ``-http_proxy``, twmd ``-p``), so every connection it makes, for
the first URL, a redirect, a playlist segment or a URL found in a page, arrives here as
either

* ``CONNECT host:port`` (HTTPS, aria2's ``--proxy-method=tunnel``): a tunnel, or
* ``GET http://host:port/path HTTP/1.1`` (absolute form, plain HTTP): one request,
  forwarded in origin form with ``Connection: close``.

For both the host is resolved once, every address it resolves to is checked with
:class:`~mediad.netpolicy.NetPolicy`, and the connection goes to the checked address
itself, never to the name again: a DNS answer that changes between check and connect
(rebinding) cannot slip through. A refusal is a ``403`` with an ``X-Mediad-Egress:
<reason>`` header, recorded in :attr:`EgressProxy.blocked`; a connection that cannot be
made (the name does not resolve, the connection is refused or times out) is a ``502``,
recorded in :attr:`EgressProxy.failures` with a reason a person can act on.
:meth:`EgressProxy.verdict` turns both into a job's errorCode and message
(:mod:`mediad.egress.causes`), since a tool only sees a 403 or a 502.

The parts: :mod:`~mediad.egress.proxy` (the server, checks and connects),
:mod:`~mediad.egress.relay` (two linked protocols per connection, with flow control),
:mod:`~mediad.egress.protocol` (pure: request heads, error answers),
:mod:`~mediad.egress.causes` (pure: what is recorded, and the verdict) and
:mod:`~mediad.egress.environment` (a tool's environment)."""

from mediad.egress.causes import Blocked, UpstreamFailure, Verdict
from mediad.egress.environment import tool_environment
from mediad.egress.proxy import EgressProxy, Resolver, system_resolver

__all__ = [
    "Blocked",
    "EgressProxy",
    "Resolver",
    "UpstreamFailure",
    "Verdict",
    "system_resolver",
    "tool_environment",
]

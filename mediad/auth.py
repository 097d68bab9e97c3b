"""Tokens: per-worker tokens issued by the supervisor, the shared remote-worker token, and
the API's bearer tokens. Every comparison is constant-time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterable
from typing import TypeVar

F = TypeVar("F", bound=Callable[..., object])


def public(handler: F) -> F:
    """Mark a request handler as open to everyone, API tokens or not: the page and the
    API description, which carry no job data."""
    handler.public = True  # type: ignore[attr-defined]  # a mark on a function, read by getattr
    return handler


def new_token() -> str:
    return secrets.token_urlsafe(32)


def matches_any(candidate: object, tokens: Iterable[str]) -> bool:
    """True when ``candidate`` equals one of ``tokens``; checks them all to keep timing flat."""
    if not isinstance(candidate, str) or not candidate:
        return False
    found = False
    for token in tokens:
        found |= hmac.compare_digest(candidate.encode(), token.encode())
    return found


class WorkerTokens:
    """Which worker ids may connect, with which token."""

    def __init__(self, shared_token: str | None = None) -> None:
        self._shared = shared_token
        self._issued: dict[str, str] = {}

    def issue(self, worker_id: str) -> str:
        token = new_token()
        self._issued[worker_id] = token
        return token

    def revoke(self, worker_id: str) -> None:
        self._issued.pop(worker_id, None)

    def check(self, worker_id: object, token: object) -> bool:
        if not isinstance(worker_id, str) or not isinstance(token, str):
            return False
        expected = self._issued.get(worker_id)
        own = expected is not None and hmac.compare_digest(token.encode(), expected.encode())
        shared = self._shared is not None and hmac.compare_digest(
            token.encode(), self._shared.encode()
        )
        # A remote worker may not borrow the id of a local one.
        return own or (shared and expected is None)


class FileLinks:
    """Signed links to a job's files, for clients that cannot send a header (a browser's
    ``<video src>``, a plain link). Only when API tokens are set: the key is derived from
    them, so changing the tokens revokes every link, and every instance with the same
    tokens accepts the same links."""

    TTL_S = 12 * 3600

    def __init__(self, api_tokens: Iterable[str]) -> None:
        tokens = sorted(api_tokens)
        self._key = (
            hashlib.sha256(b"mediad file links\0" + "\0".join(tokens).encode()).digest()
            if tokens
            else None
        )

    @property
    def enabled(self) -> bool:
        return self._key is not None

    def sign(self, job_id: str, name: str | None, now: float) -> dict[str, str]:
        """The query parameters that make a link to ``name`` (None: the zip) valid."""
        if self._key is None:
            return {}
        expires = str(int(now) + self.TTL_S)
        return {"expires": expires, "signature": self._mac(job_id, name, expires)}

    def check(
        self, job_id: str, name: str | None, expires: object, signature: object, now: float
    ) -> bool:
        if self._key is None or not isinstance(expires, str) or not isinstance(signature, str):
            return False
        if not (expires.isascii() and expires.isdigit() and len(expires) <= 12):
            return False
        if int(expires) < now:
            return False
        expected = self._mac(job_id, name, expires)
        return hmac.compare_digest(signature.encode(), expected.encode())

    def _mac(self, job_id: str, name: str | None, expires: str) -> str:
        assert self._key is not None
        message = f"{job_id}\n{'' if name is None else name}\n{expires}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header. The scheme is
    case-insensitive (RFC 7235: ``bearer``, ``BEARER``), the separator any run of spaces or
    tabs; None when the header is another scheme or carries no token."""
    if not header:
        return None
    scheme, _, rest = header.strip().partition(" ")
    if "\t" in scheme:
        scheme, _, more = scheme.partition("\t")
        rest = f"{more} {rest}"
    token = rest.strip(" \t")
    if scheme.lower() != "bearer" or not token:
        return None
    return token

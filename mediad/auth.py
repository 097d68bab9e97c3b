"""Tokens: per-worker tokens issued by the supervisor, the shared remote-worker token, and
the API's bearer tokens. Every comparison is constant-time."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterable


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

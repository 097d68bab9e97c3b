"""The JSON-RPC client of an aria2 daemon (`daemons.aria2` runs the daemon), used by the
workers' aria2 runner and by the service's health check."""

from __future__ import annotations

from typing import Any

import aiohttp

from mediad.errors import MediadError


class Aria2Error(MediadError):
    """aria2 answered with an error."""


class Aria2Unavailable(Aria2Error):
    """The aria2 daemon did not answer (down, restarting, or its answer was cut off): a
    fault of mediad's, never of the job's."""


class Aria2Rpc:
    """A JSON-RPC client for one aria2 daemon (``token:SECRET`` goes first in every call)."""

    def __init__(self, url: str, secret: str) -> None:
        self.url = url
        self._token = f"token:{secret}"
        self._session: aiohttp.ClientSession | None = None
        self._ids = 0

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def call(self, method: str, *params: Any, timeout_s: float = 10) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s))
        self._ids += 1
        body = {"jsonrpc": "2.0", "id": str(self._ids), "method": method,
                "params": [self._token, *params]}  # fmt: skip
        try:
            async with self._session.post(self.url, json=body) as resp:
                data = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise Aria2Unavailable(
                f"aria2 RPC {method} failed: {exc or type(exc).__name__}"
            ) from exc
        if not isinstance(data, dict):
            raise Aria2Error(f"aria2 RPC {method}: unexpected answer")
        if "error" in data:
            error = data["error"] or {}
            raise Aria2Error(f"aria2 RPC {method}: {error.get('message', 'error')}")
        return data.get("result")

    async def version(self) -> str:
        result = await self.call("aria2.getVersion", timeout_s=3)
        return str(result.get("version", "?"))

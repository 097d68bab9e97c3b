"""The REST side of the client commands: where the server and the token come from, and a
client of the REST API that turns every error into a ClientError.

aiohttp is imported when a request is made, not with this module.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from mediad.client_cli.exits import (
    EXIT_FILES,
    EXIT_REFUSED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    ClientError,
    reason,
)
from mediad.config import Config, local_url

if TYPE_CHECKING:
    import aiohttp

CONNECT_TIMEOUT_S = 10.0
CHUNK_BYTES = 256 * 1024


def server_url(given: str | None, config: Config, env: Mapping[str, str]) -> str:
    """``--server``, else ``MEDIAD_URL``, else the configuration's server.host and port."""
    url = given or env.get("MEDIAD_URL") or ""
    if not url:
        if not config.server.port:
            raise ClientError(EXIT_USAGE, "server.port is 0: pass --server URL or set MEDIAD_URL")
        url = local_url(config.server.host, config.server.port)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ClientError(
            EXIT_USAGE, f"the server's URL must be http(s)://HOST[:PORT], not {url!r}"
        )
    return url.rstrip("/")


def api_token(given: str | None, config: Config, env: Mapping[str, str]) -> str | None:
    """``--token``, else ``MEDIAD_TOKEN``, else the first of server.api_tokens."""
    if given:
        return given
    if env.get("MEDIAD_TOKEN"):
        return env["MEDIAD_TOKEN"]
    tokens = config.server.api_tokens
    return tokens[0] if tokens else None


class Client:
    """The REST API with every error turned into a ClientError."""

    def __init__(self, base_url: str, token: str | None) -> None:
        self.base_url = base_url
        self.token = token
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._session: aiohttp.ClientSession | None = None

    async def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            import aiohttp

            self._session = aiohttp.ClientSession(
                headers=self.headers,
                timeout=aiohttp.ClientTimeout(total=None, connect=CONNECT_TIMEOUT_S, sock_read=60),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def url(self, path: str) -> str:
        return self.base_url + path

    async def request(
        self,
        method: str,
        path: str,
        *,
        expect: tuple[int, ...] = (200,),
        body: Any = None,
        query: Mapping[str, Any] | None = None,
    ) -> Any:
        """The answer's JSON (None for an empty one) when its status is in ``expect``."""
        import aiohttp

        session = await self.session()
        target = self.url(path) + (f"?{urlencode(query)}" if query else "")
        try:
            async with session.request(method, target, json=body) as resp:
                status, raw = resp.status, await resp.read()
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise ClientError(
                EXIT_UNREACHABLE, f"cannot reach {self.base_url}: {reason(exc)}"
            ) from None
        data = _json_or_none(raw)
        if status in expect:
            if raw and data is None:
                raise ClientError(EXIT_UNREACHABLE, f"{self.base_url} does not answer like mediad")
            return data
        raise answer_error(status, data, self.base_url)

    async def download(self, link: str, destination: Path, size: int | None) -> None:
        """Write one file (a link from GET /files/{id}) to ``destination`` atomically."""
        import aiohttp

        session = await self.session()
        partial = destination.with_name(f".{destination.name}.mediad-partial")
        try:
            async with session.get(self.url(link) if link.startswith("/") else link) as resp:
                if resp.status != 200:
                    raise answer_error(resp.status, _json_or_none(await resp.read()), self.base_url)
                written = 0
                with partial.open("wb") as out:
                    async for chunk in resp.content.iter_chunked(CHUNK_BYTES):
                        out.write(chunk)
                        written += len(chunk)
                    out.flush()
                    os.fsync(out.fileno())
            if size is not None and written != size:
                raise ClientError(EXIT_FILES, f"{destination.name}: got {written} bytes of {size}")
            partial.replace(destination)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ClientError(EXIT_FILES, f"{destination.name}: {reason(exc)}") from None
        except OSError as exc:
            raise ClientError(
                EXIT_FILES, f"cannot write {destination}: {exc.strerror or exc}"
            ) from None
        finally:
            partial.unlink(missing_ok=True)


def answer_error(status: int, data: Any, base_url: str) -> ClientError:
    """The server's error answer as one line: its message, its code, the job's status."""
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        error = {}
    code = str(error.get("code") or f"http_{status}")
    message = str(error.get("message") or f"the server answered {status}")
    line = f"{message} ({code}, HTTP {status})"
    if "status" in error:
        line += f"; the job is {error['status']}"
    if status == 401:
        line += "; pass --token or set MEDIAD_TOKEN"
    if 400 <= status < 500:
        return ClientError(EXIT_REFUSED, line, status)
    return ClientError(EXIT_UNREACHABLE, f"{base_url}: {line}", status)


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None

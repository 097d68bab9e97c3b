"""``/cookies``: named cookie files (``mediad/cookies.py``). ``GET /cookies`` lists names,
sizes, counts and dates; ``PUT /cookies/{name}`` stores a Netscape cookies.txt (at most
1 MiB, a limit of its own beside ``server.max_body_bytes``); ``DELETE`` removes one. Each
change is announced to the clients following every job as ``cookies-update``. Like every
route but the page, the spec and health, these need the API token when tokens are set.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from mediad import cookies
from mediad.cookies import CookieFiles
from mediad.errors import ApiError, BadRequest, NotFound, PayloadTooLarge
from mediad.ports import Publisher

if TYPE_CHECKING:
    from mediad.config import Config
    from mediad.web import Parts

log = logging.getLogger(__name__)
FILES = web.AppKey("cookie_files", CookieFiles)
PUBLISHER = web.AppKey("cookie_publisher", Publisher)
# One change at a time: a listing announced after a PUT is never older than another's.
LOCK = web.AppKey("cookie_lock", asyncio.Lock)


class UnsupportedMediaType(ApiError):
    status = 415
    code = "unsupported_media_type"


def add_routes(app: web.Application, config: Config, parts: Parts | None) -> None:
    app[FILES] = cookies.store_for(config.state_path)
    app[LOCK] = asyncio.Lock()
    if parts is not None:
        app[PUBLISHER] = parts.dispatcher.publisher
    app.router.add_get("/cookies", list_cookies)
    app.router.add_put("/cookies/{name}", with_body_limit(put_cookies, cookies.MAX_BYTES))
    app.router.add_delete("/cookies/{name}", delete_cookies)


def with_body_limit(handler: Any, limit: int) -> Any:
    """Mark a handler whose body may be larger than ``server.max_body_bytes``
    (``connections.body_middleware`` reads it)."""
    handler.max_body_bytes = limit
    return handler


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(data),
        status=status,
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


async def _listing(app: web.Application) -> dict[str, Any]:
    files = await asyncio.to_thread(app[FILES].list)
    return {"items": [f.to_api() for f in files]}


async def _announce(app: web.Application) -> None:
    publisher = app.get(PUBLISHER)
    if publisher is None:
        return
    try:
        await publisher.cookies_update(await _listing(app))
    except Exception:  # an event that cannot go out must not fail the change itself
        log.warning("could not announce cookies-update", exc_info=True)


async def list_cookies(request: web.Request) -> web.Response:
    return _json(await _listing(request.app))


async def put_cookies(request: web.Request) -> web.Response:
    name = cookies.check_name(request.match_info["name"])
    if request.content_type != "text/plain":
        raise UnsupportedMediaType(
            "send the cookies.txt with Content-Type: text/plain", code="unsupported_media_type"
        )
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(f"a cookie file is at most {cookies.MAX_BYTES} bytes") from None
    if len(body) > cookies.MAX_BYTES:
        raise PayloadTooLarge(f"a cookie file is at most {cookies.MAX_BYTES} bytes")
    text = cookies.decode(body)
    entries = await asyncio.to_thread(cookies.count, text)
    async with request.app[LOCK]:
        stored, created = await asyncio.to_thread(
            request.app[FILES].put, name, text.encode(), entries
        )
        log.info("cookie file %s stored (%d cookies)", name, entries)
        await _announce(request.app)
    return _json(stored.to_api(), 201 if created else 200)


async def delete_cookies(request: web.Request) -> web.Response:
    name = cookies.check_name(request.match_info["name"])
    async with request.app[LOCK]:
        if not await asyncio.to_thread(request.app[FILES].delete, name):
            raise NotFound(f"no cookie file {name}")
        log.info("cookie file %s removed", name)
        await _announce(request.app)
    return web.Response(status=204)


async def check_options(app: web.Application, options: dict[str, Any]) -> None:
    """A job may only name a cookie file that exists (400 ``unknown_cookies``)."""
    name = options.get("cookies")
    if name is not None and not await asyncio.to_thread(app[FILES].exists, name):
        raise BadRequest(
            f"no cookie file {name}: store it first with PUT /cookies/{name}",
            code="unknown_cookies",
        )

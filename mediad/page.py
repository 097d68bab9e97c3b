"""The web page: the React app built from ``ui/`` into ``mediad/static/``.

Found through ``importlib.resources``, so a wheel or a single binary carries it. Served at
``/`` with the page's security headers; hashed files under ``/assets/`` are cached for
good, everything else is revalidated (``no-cache``). A ``.gz`` beside a file, written by the
build, is sent to browsers that accept gzip (aiohttp's ``FileResponse`` does that). A GET
for an unknown path from a browser (``Accept: text/html``) gets ``index.html``, so the
page's own routes survive a reload; API clients keep getting JSON 404s.

When the page was not built (a plain checkout installed with pip), ``/`` answers a short
HTML page saying how to build it.
"""

from __future__ import annotations

import contextlib
import html
import importlib.resources
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Middleware

from mediad.auth import public

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
# Paths that belong to the API: a browser asking for one of them gets the API's answer,
# never the page.
API_PREFIXES = ("/downloads", "/files", "/health", "/detect", "/openapi.json", "/socket.io")
_HOST = re.compile(r"[A-Za-z0-9.\-]{1,253}(?::\d{1,5})?|\[[0-9A-Fa-f:.]{2,45}\](?::\d{1,5})?")
NOT_BUILT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mediad</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><h1>mediad is running, but its web page was not built</h1>
<p>The REST API, Socket.IO and the files work as usual (see <a href="/openapi.json">the API
description</a>). To build the page, run <code>make page</code> in mediad's checkout (it
needs Node.js 20 and npm: <code>cd ui &amp;&amp; npm ci &amp;&amp; npm run build</code>),
then reload this page.</p>
<p>Looked for it in: <code>{where}</code></p></body></html>
"""


def static_root() -> Path:
    """Where the build is: ``mediad/static`` inside the installed package."""
    return Path(str(importlib.resources.files("mediad") / "static"))


def security_headers(request: web.Request) -> dict[str, str]:
    """The headers every answer that is part of the page carries."""
    connect = "'self'"
    if _HOST.fullmatch(request.host):
        connect += f" ws://{request.host} wss://{request.host}"
    csp = (
        "default-src 'self'; "
        f"connect-src {connect}; "
        "img-src 'self' data: blob:; media-src 'self' blob:; "
        "style-src 'self'; script-src 'self'; object-src 'none'; "
        "base-uri 'self'; form-action 'self'; frame-ancestors 'none'; "
        "manifest-src 'self'; worker-src 'self'"
    )
    return {
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "X-Frame-Options": "DENY",
    }


class Page:
    """The built page in ``root``: its routes and the browser fallback."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or static_root()

    @property
    def index(self) -> Path:
        return self.root / "index.html"

    def built(self) -> bool:
        return self.index.is_file()

    def add_routes(self, app: web.Application) -> None:
        """Open routes (no API token needed: the page carries no job data)."""
        app.router.add_get("/", public(self._handler(self.serve_index)))
        app.router.add_get("/assets/{name}", public(self._handler(self.serve_asset)))
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            for entry in sorted(self.root.iterdir()):
                # The build's top-level files: manifest, icons, service worker.
                if entry.is_file() and entry.suffix != ".gz" and entry.name != "index.html":
                    app.router.add_get(f"/{entry.name}", public(self._top_level(entry.name)))

    @staticmethod
    def _handler(method: Handler) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            return await method(request)

        return handle

    async def serve_index(self, request: web.Request) -> web.StreamResponse:
        if not self.built():
            page = NOT_BUILT.format(where=html.escape(str(self.root)))
            return web.Response(
                text=page,
                content_type="text/html",
                headers={**security_headers(request), "Cache-Control": REVALIDATE},
            )
        return self._file(request, self.index, REVALIDATE)

    async def serve_asset(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        path = self.root / "assets" / name
        if name.startswith(".") or name.endswith(".gz") or not path.is_file():
            raise web.HTTPNotFound()
        return self._file(request, path, IMMUTABLE)

    def _top_level(self, name: str) -> Handler:
        async def serve(request: web.Request) -> web.StreamResponse:
            path = self.root / name
            if not path.is_file():
                raise web.HTTPNotFound()
            return self._file(request, path, REVALIDATE)

        return serve

    def _file(self, request: web.Request, path: Path, cache: str) -> web.FileResponse:
        headers = {**security_headers(request), "Cache-Control": cache}
        if path.suffix == ".webmanifest":
            headers["Content-Type"] = "application/manifest+json"
        return web.FileResponse(path, headers=headers)

    def middleware(self) -> Middleware:
        """Unknown GET paths from a browser get the page (its client routes)."""

        @web.middleware
        async def fallback(request: web.Request, handler: Handler) -> web.StreamResponse:
            try:
                return await handler(request)
            except web.HTTPNotFound:
                if not self.wants_page(request):
                    raise
                return await self.serve_index(request)

        return fallback

    @staticmethod
    def wants_page(request: web.Request) -> bool:
        """A browser asking for a page (not an API path, not an asset)."""
        if request.method not in ("GET", "HEAD") or request.path.startswith("/assets/"):
            return False
        if any(request.path == p or request.path.startswith(p + "/") for p in API_PREFIXES):
            return False
        return "text/html" in request.headers.get("Accept", "")

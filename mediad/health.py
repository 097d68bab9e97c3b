"""Probes for orchestrators, beside ``GET /health`` (web.py), open without a token like it:

* ``GET /health/live`` — the process answers: always ``200 {"status": "ok"}``, no I/O.
* ``GET /health/ready`` — it can serve: PostgreSQL and Redis answer and at least one
  worker is connected. ``200`` or ``503 {"status": "unavailable", "checks": {…}}``, the
  checks shaped as ``/health``'s. Optional parts (aria2, twmd) are ``/health``'s business.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from mediad.auth import public

if TYPE_CHECKING:
    from mediad.dispatcher import Dispatcher
    from mediad.web import Parts

Check = Callable[[], Awaitable[dict[str, Any]]]
# Each check's bound: a probe's own timeout should be longer (the README says 3 s).
CHECK_TIMEOUT_S = 2.0
READY_CHECKS = web.AppKey("ready_checks", dict[str, Check])


def add_routes(app: web.Application, parts: Parts | None) -> None:
    app[READY_CHECKS] = {} if parts is None else ready_checks(parts)
    app.router.add_get("/health/live", public(live))
    app.router.add_get("/health/ready", public(ready))


def ready_checks(parts: Parts) -> dict[str, Check]:
    async def postgres() -> dict[str, Any]:
        await parts.store.ping()
        return {"status": "ok"}

    async def redis() -> dict[str, Any]:
        await parts.queue.ping()
        return {"status": "ok"}

    async def workers() -> dict[str, Any]:
        return workers_check(parts.dispatcher)

    return {"postgres": postgres, "redis": redis, "workers": workers}


def workers_check(dispatcher: Dispatcher) -> dict[str, Any]:
    counts = dispatcher.status_counts()
    return {"status": "ok" if counts["connected"] else "down", **counts}


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(data),
        status=status,
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


async def live(request: web.Request) -> web.Response:
    """The process answers (an event loop that runs this handler is alive)."""
    return _json({"status": "ok"})


async def ready(request: web.Request) -> web.Response:
    """Whether this instance can serve: PostgreSQL, Redis, a worker."""
    checks = request.app[READY_CHECKS]
    names = list(checks)
    results = await asyncio.gather(*(run_check(checks[n]) for n in names))
    report = dict(zip(names, results, strict=True))
    up = bool(report) and all(r["status"] == "ok" for r in report.values())
    return _json({"status": "ok" if up else "unavailable", "checks": report}, 200 if up else 503)


async def run_check(check: Check) -> dict[str, Any]:
    try:
        return await asyncio.wait_for(check(), CHECK_TIMEOUT_S)
    except TimeoutError:
        return {"status": "down", "error": "timed out"}
    except Exception as exc:  # a check reports every failure, whatever it is
        return {"status": "down", "error": str(exc)[:300]}

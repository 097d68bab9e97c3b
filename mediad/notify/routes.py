"""REST for notifications: the deliveries (``GET /notifications``), the targets
(``GET /notifications/targets``) and a test delivery to one target
(``POST /notifications/targets/{name}/test``); and the check of a job's
``options.notify`` against the configured targets (``unknown_target``)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

import orjson
from aiohttp import web

from mediad import inputs
from mediad.config import Config
from mediad.errors import BadRequest, NotFound, StoreUnavailable
from mediad.notify import targets as t
from mediad.notify.outbox import Outbox

if TYPE_CHECKING:
    from mediad.web import Parts

OUTBOX = web.AppKey("outbox", Outbox)
NOTIFY_TARGETS = web.AppKey("notify_targets", dict[str, t.NotifyTarget])
_STATUSES = ("pending", "delivered", "failed")


def add_routes(app: web.Application, config: Config, parts: Parts | None) -> None:
    app[NOTIFY_TARGETS] = {x.name: x for x in config.notify}
    if parts is not None and parts.outbox is not None:
        app[OUTBOX] = parts.outbox
    app.router.add_get("/notifications", list_deliveries)
    app.router.add_get("/notifications/targets", list_targets)
    app.router.add_post("/notifications/targets/{name}/test", test_target)


def check_options(config: Config, options: dict[str, Any]) -> None:
    """A job may only name configured targets (it never brings its own URL)."""
    unknown = t.unknown_names(config.notify, options.get("notify") or [])
    if unknown:
        known = ", ".join(x.name for x in config.notify) or "none are configured"
        raise BadRequest(
            f"unknown notification target(s) {', '.join(map(repr, unknown[:5]))} (known: {known})",
            code="unknown_target",
        )


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _outbox(request: web.Request) -> Outbox:
    outbox = request.app.get(OUTBOX)
    if outbox is None:
        raise StoreUnavailable("notifications are not available")
    return outbox


async def list_deliveries(request: web.Request) -> web.Response:
    query = request.query
    unknown = set(query) - {"status", "limit", "cursor"}
    if unknown:
        raise BadRequest(f"unknown parameter(s): {', '.join(sorted(unknown))}", code="bad_query")
    statuses = [s for s in query.get("status", "").split(",") if s] or None
    if "status" in query and (not statuses or any(s not in _STATUSES for s in statuses)):
        raise BadRequest(
            f"status must be one or more (comma-separated) of {', '.join(_STATUSES)}",
            code="bad_query",
        )
    limit = _limit(query.get("limit"))
    after = inputs.decode_cursor(query["cursor"]) if "cursor" in query else None
    rows = await _outbox(request).list(statuses=statuses, limit=limit + 1, after=after)
    page, more = rows[:limit], len(rows) > limit
    cursor = None
    if more:
        last = page[-1]
        cursor = inputs.encode_cursor(
            datetime.fromisoformat(last["createdAt"]), UUID(last["deliveryId"])
        )
    return _json({"items": page, "nextCursor": cursor})


def _limit(text: str | None) -> int:
    if text is None:
        return 50
    if not (text.isascii() and text.isdigit() and len(text) <= 3) or not 1 <= int(text) <= 200:
        raise BadRequest("limit must be a whole number from 1 to 200", code="bad_query")
    return int(text)


async def list_targets(request: web.Request) -> web.Response:
    targets = request.app[NOTIFY_TARGETS]
    return _json({"items": [x.to_api() for x in targets.values()]})


async def test_target(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if not t.NAME.fullmatch(name):
        raise BadRequest(
            "a target name is 1-64 of A-Z a-z 0-9 . _ - (a letter or digit first)",
            code="invalid_target_name",
        )
    target = request.app[NOTIFY_TARGETS].get(name)
    if target is None:
        raise NotFound(f"no notification target {name!r}")
    return _json(await _outbox(request).record_test(target), 202)

"""REST for subscriptions: ``/subscriptions`` and ``/subscriptions/{id}`` (…``/check``,
…``/checks``). Validation is pure (``parse_new``, ``parse_patch``); the work is
``checks.Checks``'s."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from aiohttp import web

from mediad import inputs
from mediad import web as webapp
from mediad.checks import Checks
from mediad.config import Config
from mediad.errors import BadRequest
from mediad.models import JobType
from mediad.netpolicy import NetPolicy

CHECKS = web.AppKey("checks", Checks)
MAX_INTERVAL_S = 2_592_000
MAX_ITEMS = 1000
# Each entry is its own job: a subscription's jobs never list a playlist themselves.
_NOT_OPTIONS = frozenset({"playlist", "maxItems"})
_NEW_FIELDS = frozenset({"url", "type", "options", "intervalS", "maxItems", "backfill", "enabled"})
_PATCH_FIELDS = frozenset({"options", "intervalS", "maxItems", "enabled"})


def add_routes(app: web.Application, checks: Checks | None) -> None:
    if checks is not None:  # None: an app for tests of the routes alone (the spec's)
        app[CHECKS] = checks
    app.router.add_post("/subscriptions", create)
    app.router.add_get("/subscriptions", list_all)
    app.router.add_get("/subscriptions/{sub_id}", get_one)
    app.router.add_patch("/subscriptions/{sub_id}", update)
    app.router.add_delete("/subscriptions/{sub_id}", delete)
    app.router.add_post("/subscriptions/{sub_id}/check", check_now)
    app.router.add_get("/subscriptions/{sub_id}/checks", history)


# -- validation (pure) -------------------------------------------------------------------


def parse_id(value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise BadRequest(
            "the subscription id must be a UUID", code="invalid_subscription_id"
        ) from None


def _options(value: Any) -> dict[str, Any]:
    if isinstance(value, dict) and _NOT_OPTIONS & set(value):
        raise BadRequest(
            "playlist and maxItems do not apply to a subscription's jobs (each entry is its"
            " own job; maxItems is the subscription's own field)",
            code="invalid_options",
        )
    return inputs.parse_options(JobType.YTDLP, value)


def _int(body: dict[str, Any], key: str, low: int, high: int) -> int:
    value = body[key]
    if type(value) is not int or not low <= value <= high:
        raise BadRequest(f"{key} must be a whole number from {low} to {high}", code="invalid_body")
    return value


def _flag(body: dict[str, Any], key: str) -> bool:
    if not isinstance(body[key], bool):
        raise BadRequest(f"{key} must be true or false", code="invalid_body")
    return bool(body[key])


def _object(body: Any, allowed: frozenset[str]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object", code="invalid_body")
    unknown = set(body) - allowed
    if unknown:
        shown = ", ".join(repr(str(k)[:40]) for k in sorted(map(str, unknown))[:10])
        raise BadRequest(f"unknown field(s): {shown}", code="unknown_field")
    return body


def _kind(value: Any) -> str:
    if value is None or value == "ytdlp":
        return "ytdlp"
    if value == "twitter":
        raise BadRequest(
            "twitter subscriptions are not supported yet: twmd cannot list a profile"
            " without downloading it",
            code="invalid_type",
        )
    raise BadRequest("type must be ytdlp (or twitter, not supported yet)", code="invalid_type")


def parse_new(body: Any, config: Config) -> dict[str, Any]:
    """The columns of a new subscription from a ``POST /subscriptions`` body."""
    body = _object(body, _NEW_FIELDS)
    if "intervalS" not in body:
        raise BadRequest("intervalS is required", code="invalid_body")
    url = inputs.parse_url(body.get("url"))
    kind = _kind(body.get("type"))
    low = config.subscriptions.min_interval_s
    return {
        "url": url,
        "kind": kind,
        "options": _options(body.get("options")),
        "interval_s": _int(body, "intervalS", low, MAX_INTERVAL_S),
        "max_items": _int(body, "maxItems", 1, MAX_ITEMS) if "maxItems" in body else 100,
        "backfill": _flag(body, "backfill") if "backfill" in body else True,
        "enabled": _flag(body, "enabled") if "enabled" in body else True,
    }


def parse_patch(body: Any, config: Config) -> dict[str, Any]:
    """The columns to change from a ``PATCH /subscriptions/{id}`` body."""
    body = _object(body, _PATCH_FIELDS)
    if not body:
        raise BadRequest("give at least one field to change", code="invalid_body")
    changes: dict[str, Any] = {}
    if "options" in body:
        changes["options"] = _options(body["options"])
    if "intervalS" in body:
        low = config.subscriptions.min_interval_s
        changes["interval_s"] = _int(body, "intervalS", low, MAX_INTERVAL_S)
    if "maxItems" in body:
        changes["max_items"] = _int(body, "maxItems", 1, MAX_ITEMS)
    if "enabled" in body:
        changes["enabled"] = _flag(body, "enabled")
    return changes


# -- handlers ----------------------------------------------------------------------------


async def create(request: web.Request) -> web.Response:
    config = request.app[webapp.CONFIG]
    fields = parse_new(await webapp.json_body(request), config)
    await webapp.check_named(request.app, fields["options"])
    reason = NetPolicy(config.network.allow_private, config.network.allow_hosts).check_url(
        fields["url"]
    )
    if reason is not None:
        raise BadRequest(f"this URL is not allowed: {reason}", code="blocked_address")
    sub = await request.app[CHECKS].create(fields)
    return webapp.json_response(sub.to_api(), 201)


async def list_all(request: web.Request) -> web.Response:
    subs = await request.app[CHECKS].subs.all()
    return webapp.json_response({"items": [s.to_api() for s in subs]})


async def get_one(request: web.Request) -> web.Response:
    sub = await request.app[CHECKS].get(parse_id(request.match_info["sub_id"]))
    return webapp.json_response(sub.to_api())


async def update(request: web.Request) -> web.Response:
    sub_id = parse_id(request.match_info["sub_id"])
    changes = parse_patch(await webapp.json_body(request), request.app[webapp.CONFIG])
    if changes.get("options"):
        await webapp.check_named(request.app, changes["options"])
    sub = await request.app[CHECKS].update(sub_id, changes)
    return webapp.json_response(sub.to_api())


async def delete(request: web.Request) -> web.Response:
    await request.app[CHECKS].delete(parse_id(request.match_info["sub_id"]))
    return web.Response(status=204)


async def check_now(request: web.Request) -> web.Response:
    sub = await request.app[CHECKS].check_now(parse_id(request.match_info["sub_id"]))
    return webapp.json_response(sub.to_api(), 202)


async def history(request: web.Request) -> web.Response:
    checks = await request.app[CHECKS].history(parse_id(request.match_info["sub_id"]))
    return webapp.json_response({"items": [c.to_api() for c in checks]})

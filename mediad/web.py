"""The aiohttp app: REST, files and health. Every error answer is
``{"error": {"code", "message"}}``."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import importlib.resources
import logging
import math
import mimetypes
import os
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import orjson
import yaml
from aiohttp import web
from aiohttp.typedefs import Middleware

from mediad import connections, cookies_api, hosts, inputs, metrics, zipstream
from mediad import health as probes
from mediad.auth import FileLinks, public
from mediad.checks import Checks
from mediad.coalesce import Coalescer, Seal, Shared
from mediad.config import Config
from mediad.control import Controller
from mediad.detect import detect_type, twitter_target
from mediad.dispatcher import Dispatcher
from mediad.errors import (
    ApiError,
    BadRequest,
    InsufficientStorage,
    InvalidEvent,
    NotFound,
    PayloadTooLarge,
    QueueUnavailable,
    StoreUnavailable,
    TooManyRequests,
    Unauthorized,
)
from mediad.metrics import Metrics
from mediad.models import JobType
from mediad.netpolicy import NetPolicy
from mediad.notify import routes as notify_routes
from mediad.notify.outbox import Outbox
from mediad.page import Page
from mediad.queue import Queue
from mediad.ratelimit import RateLimiter
from mediad.store import Store
from mediad.wire import safe_file_name

log = logging.getLogger(__name__)
HealthCheck = Callable[[], Awaitable[dict[str, Any]]]

CONFIG = web.AppKey("config", Config)
STORE = web.AppKey("store", Store)
QUEUE = web.AppKey("queue", Queue)
DISPATCHER = web.AppKey("dispatcher", Dispatcher)
CONTROLLER = web.AppKey("controller", Controller)
RATE_LIMITER = web.AppKey("rate_limiter", RateLimiter)
NET_POLICY = web.AppKey("net_policy", NetPolicy)
FILE_LINKS = web.AppKey("file_links", FileLinks)
# Extra health checks (aria2, …): name → coroutine that raises when the part is down.
HEALTH_CHECKS = web.AppKey("health_checks", dict[str, HealthCheck])
PAGES = web.AppKey("pages", Coalescer[inputs.ListQuery, bytes])
HEALTH = web.AppKey("health", Shared[tuple[bytes, int]])


@dataclass(frozen=True)
class Parts:
    """What the routes work with; ``mediad serve`` builds them (service.py)."""

    store: Store
    queue: Queue
    dispatcher: Dispatcher
    controller: Controller
    health_checks: dict[str, HealthCheck] = field(default_factory=dict)
    metrics: Metrics | None = None
    checks: Checks | None = None  # subscriptions (subs_web.py)
    outbox: Outbox | None = None


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# The longest request line aiohttp reads: room for a URL of inputs.MAX_URL_LENGTH
# characters in a query string (GET /detect?url=…), each percent-encoded UTF-8 (aiohttp's
# default, 8190 bytes, answers a long one with a plain-text 400 instead of ours).
MAX_REQUEST_LINE = 16 + inputs.MAX_URL_LENGTH * 12 + 4096
_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def error_response(
    status: int, code: str, message: str, extra: dict[str, Any] | None = None
) -> web.Response:
    return json_response({"error": {"code": code, "message": message, **(extra or {})}}, status)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        response = error_response(exc.status, exc.code, exc.message, exc.extra)
        response.headers.update(exc.headers)
        return response
    except StoreUnavailable:
        return error_response(503, "unavailable", "the job store is unavailable; try again soon")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _STATUS_CODES.get(exc.status, "http_error")
        message = {
            404: f"no such route: {request.path[:200]}",
            405: f"{request.method} is not allowed on {request.path[:200]}",
        }.get(exc.status, exc.reason)
        response = error_response(exc.status, code, message)
        if "Allow" in exc.headers:  # RFC 9110: a 405 names the methods that are allowed
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return error_response(500, "internal_error", "an internal error occurred (logged)")


def auth_middleware(tokens: tuple[str, ...]) -> Middleware:
    from mediad.auth import bearer_token, matches_any

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if (
            request.path == "/health"
            or request.path.startswith("/socket.io/")
            or getattr(request.match_info.handler, "public", False)  # the page, the spec
            # No such route, asked by a browser: the page's own routes (index.html).
            or (request.match_info.http_exception is not None and Page.wants_page(request))
            or _signed_file_link(request)
        ):
            return await handler(request)
        token = bearer_token(request.headers.get("Authorization"))
        if not matches_any(token, tokens):
            raise Unauthorized(
                "send Authorization: Bearer <token> with a configured API token",
                headers={"WWW-Authenticate": 'Bearer realm="mediad"'},
            )
        return await handler(request)

    return check


def _signed_file_link(request: web.Request) -> bool:
    """A ``/files/{id}/download`` link signed by ``list_files`` for this very file."""
    if request.match_info.handler is not download_file:
        return False
    return request.app[FILE_LINKS].check(
        request.match_info.get("job_id", ""),
        request.query.get("name"),
        request.query.get("expires"),
        request.query.get("signature"),
        time.time(),
    )


def create_app(
    config: Config, parts: Parts | None = None, page: Page | None = None
) -> web.Application:
    """The REST API, the files, health and the page. Without ``parts`` only what needs no
    service answers (the page, the spec): for tests of those alone."""
    from mediad import subs_web  # it builds on this module

    page = page or Page()
    # The Host check comes first: a DNS-rebinding request gets nothing else (hosts.py).
    host_check = hosts.middleware(config.server.host, config.server.allowed_hosts)
    # Then the body, whole, within server.body_timeout_s (connections.py).
    body_check = connections.body_middleware(
        config.server.max_body_bytes, config.server.body_timeout_s
    )
    middlewares = [errors_middleware, host_check, body_check, page.middleware()]
    if config.server.api_tokens:
        middlewares.append(auth_middleware(config.server.api_tokens))
    app = web.Application(middlewares=middlewares, client_max_size=config.server.max_body_bytes)
    app[CONFIG] = config
    app[FILE_LINKS] = FileLinks(config.server.api_tokens)
    app[HEALTH_CHECKS] = {}
    # The instance's name is worked out once (a path resolved and hashed: a tenth of a run).
    app[HEALTH] = Shared(functools.partial(_health, app, config.instance_id))
    if parts is not None:
        app[STORE], app[QUEUE] = parts.store, parts.queue
        app[DISPATCHER], app[CONTROLLER] = parts.dispatcher, parts.controller
        app[HEALTH_CHECKS] = parts.health_checks
        app[PAGES] = _pages(parts.store, parts.dispatcher)
    app[RATE_LIMITER] = RateLimiter(config.server.rate_limit_per_min)
    app[NET_POLICY] = NetPolicy(config.network.allow_private, config.network.allow_hosts)
    app.router.add_post("/downloads", post_download)
    app.router.add_get("/downloads", list_downloads)
    app.router.add_get("/downloads/{job_id}", get_download)
    app.router.add_delete("/downloads/{job_id}", delete_download)
    app.router.add_post("/downloads/{job_id}/{action:cancel|pause|resume|retry|stop}", control)
    app.router.add_get("/files/{job_id}", list_files)
    app.router.add_get("/files/{job_id}/download", download_file)
    app.router.add_get("/health", health)
    probes.add_routes(app, parts)  # /health/live, /health/ready: open, like /health
    metrics.add_route(app, parts.metrics if parts else None)  # /metrics: a token when set
    subs_web.add_routes(app, parts.checks if parts else None)  # /subscriptions…
    app.router.add_get("/detect", detect)
    cookies_api.add_routes(app, config, parts)  # /cookies: named cookie files
    notify_routes.add_routes(app, config, parts)  # /notifications…
    app.router.add_get("/openapi.json", public(openapi))
    page.add_routes(app)
    return app


async def _json_body(request: web.Request) -> Any:
    if request.content_type != "application/json":
        raise BadRequest(
            "send a JSON body with Content-Type: application/json", code="invalid_body"
        )
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(
            f"the body is larger than {request.app[CONFIG].server.max_body_bytes} bytes"
        ) from None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequest("the body is not valid JSON", code="invalid_json") from None


json_body = _json_body  # for the routes of other modules (subs_web.py)


def _check_rate(request: web.Request) -> None:
    config = request.app[CONFIG]
    if not config.server.rate_limit_per_min:
        return
    wait = request.app[RATE_LIMITER].take(request.remote or "?", time.monotonic())
    if wait is not None:
        seconds = max(1, math.ceil(wait))
        raise TooManyRequests(
            f"at most {config.server.rate_limit_per_min} new downloads a minute; retry in {seconds} s",
            headers={"Retry-After": str(seconds)},
        )


async def _check_capacity(request: web.Request) -> None:
    config = request.app[CONFIG]
    for folder in {config.storage.data_dir, config.storage.tmp_dir}:
        free = shutil.disk_usage(folder).free
        if free < config.storage.min_free_bytes:
            raise InsufficientStorage(
                f"only {free // 2**20} MiB free in {folder} (storage.min_free_bytes is"
                f" {config.storage.min_free_bytes // 2**20} MiB): new downloads are refused"
            )
    try:
        depth = await request.app[QUEUE].depth()
    except QueueUnavailable:
        return  # PostgreSQL accepts the job; the queue catches up later
    if depth >= config.queue.max_queued:
        raise TooManyRequests(
            f"{depth} jobs are already waiting (queue.max_queued); try again later",
            code="queue_full",
            headers={"Retry-After": "30"},
        )


async def check_named(app: web.Application, options: dict[str, Any]) -> None:
    """What options name must exist: the cookie file (400 ``unknown_cookies``) and the
    notification targets (400 ``unknown_target``). For jobs and subscriptions alike."""
    await cookies_api.check_options(app, options)
    notify_routes.check_options(app[CONFIG], options)


async def post_download(request: web.Request) -> web.Response:
    _check_rate(request)
    url, job_type, options = inputs.parse_new_download(await _json_body(request))
    await check_named(request.app, options)
    # Early and without DNS: literal addresses in every form, localhost. The egress
    # proxy every tool goes through checks each connection it makes.
    reason = request.app[NET_POLICY].check_url(url)
    if reason is not None:
        raise BadRequest(f"this URL is not allowed: {reason}", code="blocked_address")
    await _check_capacity(request)
    job = await request.app[CONTROLLER].create(url, job_type, options)
    return json_response(
        {"jobId": str(job.id), "status": job.status.value, "type": job.type.value}, 201
    )


async def list_downloads(request: web.Request) -> web.Response:
    query = inputs.parse_list_query(request.query)
    body = await request.app[PAGES].get(query)
    assert body is not None  # every sealed query is answered
    return web.Response(body=body, content_type="application/json")


def _pages(store: Store, dispatcher: Dispatcher) -> Coalescer[inputs.ListQuery, bytes]:
    """``GET /downloads`` answers: queries asked together that differ at most in their
    ``limit`` get their answers from one read, sent after they were all asked
    (coalesce.py) — a page that many clients poll at once, or reload all together when
    the service is back, is read and encoded once, and pages of other sizes of the same
    list (the page's 50, the command line's 20, a script's 100) are the first rows of
    the longest one: the order (created_at, id) is total, so each is exactly the page
    its own query would have read."""

    async def read(seal: Seal[inputs.ListQuery]) -> dict[inputs.ListQuery, bytes]:
        queries = seal()
        first = queries[0]
        longest = max(query.limit for query in queries)
        jobs = await store.list_jobs_api(
            statuses=first.statuses,
            search=first.search,
            limit=longest + 1,
            after=first.after,
            subscription=first.subscription,
        )
        for job in jobs[:longest]:  # Dispatcher.snapshot's rule, on the API's view
            if job["status"] == "running":
                live = dispatcher.live(job["jobId"], job["attempts"])
                if live is not None:
                    job.update(live.to_api())
        answers: dict[inputs.ListQuery, bytes] = {}
        for query in queries:
            page, more = jobs[: query.limit], len(jobs) > query.limit
            last = page[-1] if more else None
            cursor = inputs.encode_cursor(last["createdAt"], last["jobId"]) if last else None
            answers[query] = orjson.dumps({"items": page, "nextCursor": cursor})
        return answers

    return Coalescer(read, group=lambda query: dataclasses.replace(query, limit=0))


async def _job(request: web.Request) -> Any:
    job_id = inputs.parse_job_id(request.match_info["job_id"])
    job = await request.app[STORE].get_job(job_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    return job


async def get_download(request: web.Request) -> web.Response:
    job = await _job(request)
    return json_response(request.app[DISPATCHER].snapshot(job).to_api_orjson())


async def control(request: web.Request) -> web.Response:
    job_id = inputs.parse_job_id(request.match_info["job_id"])
    job = await request.app[CONTROLLER].apply(job_id, request.match_info["action"])
    return json_response(request.app[DISPATCHER].snapshot(job).to_api_orjson())


async def delete_download(request: web.Request) -> web.Response:
    job_id = inputs.parse_job_id(request.match_info["job_id"])
    await request.app[CONTROLLER].delete(job_id)
    return web.Response(status=204)


def _job_files(config: Config, job_id: str) -> list[os.DirEntry[str]]:
    folder = Path(config.storage.data_dir) / job_id
    try:
        with os.scandir(folder) as entries:
            files = [e for e in entries if e.is_file(follow_symlinks=False)]
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(files, key=lambda e: e.name)


def _mime(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


async def list_files(request: web.Request) -> web.Response:
    job = await _job(request)
    job_id = str(job.id)
    files = _job_files(request.app[CONFIG], job_id)
    links, now = request.app[FILE_LINKS], time.time()

    def link(name: str | None) -> str:
        query = {"name": name} if name is not None else {}
        query.update(links.sign(job_id, name, now))
        return f"/files/{job_id}/download" + (f"?{urlencode(query)}" if query else "")

    items = [
        {"name": e.name, "size": e.stat().st_size, "mimeType": _mime(e.name), "url": link(e.name)}
        for e in files
    ]
    return json_response(
        {
            "jobId": job_id,
            "files": items,
            "totalSize": sum(i["size"] for i in items),
            "zipUrl": link(None) if len(items) > 1 else None,
        }
    )


def content_disposition(name: str) -> str:
    """RFC 6266: an ASCII fallback plus the exact UTF-8 name."""
    fallback = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\' else "_" for ch in name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


class ExactFileResponse(web.FileResponse):
    """A job's file exactly as stored. aiohttp's FileResponse would send a sibling
    ``NAME.gz`` as ``Content-Encoding: gzip`` instead: a job that downloaded both
    ``a.txt`` and ``a.txt.gz`` must not have one served in place of the other."""

    def _get_file_path_stat_encoding(self, accept_encoding: str) -> Any:
        return super()._get_file_path_stat_encoding("")


async def download_file(request: web.Request) -> web.StreamResponse:
    job = await _job(request)
    config = request.app[CONFIG]
    files = _job_files(config, str(job.id))
    if not files:
        raise NotFound("this job has no files (yet)", code="no_files")
    name = request.query.get("name")
    if name is None:
        if len(files) > 1:
            return await zipstream.respond(request, files, f"{job.id}.zip")
        name = files[0].name
    try:
        safe_file_name(name)
    except InvalidEvent as exc:
        raise BadRequest(str(exc), code="invalid_name") from None
    folder = (Path(config.storage.data_dir) / str(job.id)).resolve()
    path = (folder / name).resolve()
    if path.parent != folder or not path.is_file():
        raise NotFound(f"no file {name!r} in this job", code="no_such_file")
    return ExactFileResponse(
        path,
        headers={
            "Content-Disposition": content_disposition(name),
            "Content-Type": _mime(name),
            "X-Content-Type-Options": "nosniff",
        },
    )


async def detect(request: web.Request) -> web.Response:
    """What ``POST /downloads`` would make of a URL, without making a job."""
    url = inputs.parse_detect_query(request.query)
    job_type = detect_type(url)
    target = twitter_target(url) if job_type is JobType.TWITTER else None
    twitter: dict[str, str] | None = None
    if target is not None:
        kind, value = target
        twitter = {"kind": kind, "id" if kind == "tweet" else "name": value}
    return json_response(
        {
            "type": job_type.value,
            "twitter": twitter,
            "options": inputs.option_names(job_type),
            "blocked": request.app[NET_POLICY].check_url(url),
        }
    )


@functools.cache
def _openapi_json() -> bytes:
    spec = importlib.resources.files("mediad").joinpath("openapi.yaml").read_text("utf-8")
    return orjson.dumps(yaml.safe_load(spec))


async def openapi(request: web.Request) -> web.Response:
    """The OpenAPI 3.1 description of this API (mediad/openapi.yaml, as JSON)."""
    return web.Response(
        body=_openapi_json(),
        content_type="application/json",
        headers={"Cache-Control": "no-cache"},
    )


async def health(request: web.Request) -> web.Response:
    """Every part, checked live. Requests that come while the checks run share the next
    run (coalesce.Shared): each answer is from checks that started after it was asked."""
    body, status = await request.app[HEALTH].get()
    return web.Response(body=body, status=status, content_type="application/json")


async def _health(app: web.Application, instance: str) -> tuple[bytes, int]:
    extra: dict[str, HealthCheck] = app[HEALTH_CHECKS]
    checks: dict[str, HealthCheck] = {
        "postgres": lambda: _ping(app[STORE].ping()),
        "redis": lambda: _ping(app[QUEUE].ping()),
        **extra,
        "workers": lambda: _workers(app[DISPATCHER]),
    }
    names = list(checks)
    results = await asyncio.gather(*(_run_check(checks[n]) for n in names))
    report = dict(zip(names, results, strict=True))
    # "down" fails the service; other words ("unconfigured", "missing") inform about
    # optional parts such as twmd.
    healthy = all(r["status"] != "down" for r in report.values())
    try:
        depth: int | None = await asyncio.wait_for(app[QUEUE].depth(), 2)
    except (QueueUnavailable, TimeoutError):
        depth = None
    body = {
        "status": "ok" if healthy else "unavailable",
        "instance": instance,
        "checks": report,
        "queue": {"depth": depth},
    }
    return orjson.dumps(body), 200 if healthy else 503


async def _ping(coro: Awaitable[None]) -> dict[str, Any]:
    await coro
    return {"status": "ok"}


async def _workers(dispatcher: Dispatcher) -> dict[str, Any]:
    counts = dispatcher.status_counts()
    return {"status": "ok" if counts["connected"] else "down", **counts}


async def _run_check(check: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
    try:
        return await asyncio.wait_for(check(), 3)
    except TimeoutError:
        return {"status": "down", "error": "timed out"}
    except Exception as exc:  # a health check reports every failure, whatever it is
        return {"status": "down", "error": str(exc)[:300]}

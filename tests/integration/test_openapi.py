"""The one contract of the REST API: ``mediad/openapi.yaml``.

* The spec is valid OpenAPI 3.1, names the component schemas the page's generated types
  rely on, and ``GET /openapi.json`` serves exactly it.
* Every route of the aiohttp router is in the spec and every operation in the spec is
  routed. Not compared (the rule): the Socket.IO endpoint (``/socket.io/``, described in
  ``x-socketio``), the page's static files (``/assets/{name}`` and the build's top-level
  files such as ``/manifest.webmanifest``: they are files, not API) and the HEAD that
  aiohttp adds beside every GET. ``GET /`` is the page itself and is in the spec.
* Which operations are open (``security: []``) is exactly which routes the server lets
  through without a token.
* schemathesis runs against a live ``mediad serve`` (in-process, loopback), first without
  tokens, then with ``server.api_tokens`` and the token sent: no 5xx, and every answer's
  status code, content type, headers and body are the ones the spec documents. Jobs in
  every status exist beforehand (completed with one file and with several, failed,
  running, queued, paused, cancelled) and the generated job ids, file names, URLs and
  Range headers are drawn from them often, so the answers checked are real ones, not only
  404s. Without a token every secured operation answers 401 with the ``Error`` shape.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import orjson
import pytest
import referencing
import referencing.jsonschema
import yaml

import mediad
from mediad import hub, page
from mediad.config import Config
from mediad.service import Service
from mediad.web import create_app
from tests.support.harness import Api, running_service
from tests.support.mediaserver import MediaServer

SPEC_PATH = Path(mediad.__file__).parent / "openapi.yaml"
TOKEN = "openapi-test-token-0123456789abcdef"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# The generated TypeScript types and other clients use these names: they are a contract.
CONTRACT_SCHEMAS = (
    "Job", "JobPage", "NewDownload", "Created", "FileList", "FileEntry", "Health",
    "Detection", "Error", "JobType", "Status", "YtdlpOptions", "FfmpegOptions",
    "TwitterOptions", "Check", "Subscription", "NewSubscription", "CheckRecord", "CookieFile",
    "Delivery", "Target", "WebhookBody",
)  # fmt: skip
# schemathesis' budget: examples per operation and generation mode in the fuzzing phase
# (35 operations since subscriptions, cookies and notifications: about 40 s in all).
MAX_EXAMPLES = 30
MAX_EXAMPLES_WITH_TOKENS = 10


def load_spec() -> dict[str, Any]:
    return yaml.safe_load(SPEC_PATH.read_text("utf-8"))  # type: ignore[no-any-return]


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method in METHODS:
            if method in item:
                yield method.upper(), path, item[method]


def schema_validator(spec: dict[str, Any], pointer: str) -> jsonschema.Draft202012Validator:
    """A validator for one of the spec's schemas, ``$ref``s resolved within the spec."""
    resource = referencing.Resource.from_contents(
        spec, default_specification=referencing.jsonschema.DRAFT202012
    )
    registry = referencing.Registry().with_resource("urn:mediad:openapi", resource)
    return jsonschema.Draft202012Validator(
        {"$ref": f"urn:mediad:openapi#{pointer}"},
        registry=registry,
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    )


# ---------------------------------------------------------------------------- the file


def test_spec_is_valid_openapi_3_1() -> None:
    from openapi_spec_validator import validate
    from openapi_spec_validator.validation.validators import OpenAPIV31SpecValidator

    spec = load_spec()
    assert spec["openapi"].startswith("3.1.")
    assert spec["info"]["version"]
    validate(spec, cls=OpenAPIV31SpecValidator)
    # schemathesis loads it too (its own checks of references and parameters).
    import schemathesis

    schema = schemathesis.openapi.from_dict(spec)
    loaded = [r.ok() for r in schema.get_all_operations()]
    assert len(loaded) == len(list(operations(spec)))


def test_spec_names_the_contract_schemas_and_security() -> None:
    spec = load_spec()
    schemas = spec["components"]["schemas"]
    assert set(CONTRACT_SCHEMAS) <= set(schemas)
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {
        **spec["components"]["securitySchemes"]["bearerAuth"],
        "type": "http",
        "scheme": "bearer",
    }
    assert spec["security"] == [{"bearerAuth": []}]
    open_ops = {(m, p) for m, p, op in operations(spec) if op.get("security") == []}
    assert open_ops == {
        ("GET", "/health"), ("GET", "/health/live"), ("GET", "/health/ready"),
        ("GET", "/openapi.json"), ("GET", "/"),
    }  # fmt: skip
    assert "x-socketio" in spec
    # Every operation documents its answers, 401 included where a token is needed.
    for method, path, op in operations(spec):
        assert op.get("operationId"), (method, path)
        codes = set(op["responses"])
        assert any(c.startswith("2") for c in codes), (method, path)
        if op.get("security") != []:
            assert "401" in codes, (method, path)


def test_spec_shapes_match_the_models() -> None:
    """The Job schema lists exactly ``Job.to_api()``'s keys; enums match the code."""
    from datetime import UTC, datetime

    from mediad import inputs
    from mediad.models import STAGES, Job, JobType, Status

    spec = load_spec()
    schemas = spec["components"]["schemas"]
    now = datetime.now(UTC)
    job = Job(
        id=uuid.uuid4(), url="https://example.com/a.mp4", type=JobType.ARIA2,
        status=Status.QUEUED, stage="queued", progress=None, speed=None, eta=None,
        total_bytes=None, filename=None, output_path=None, size=None, error_code=None,
        error_message=None, options={}, meta={}, attempts=0, worker_id=None,
        created_at=now, updated_at=now, started_at=None, finished_at=None,
    )  # fmt: skip
    api = job.to_api()
    assert set(schemas["Job"]["properties"]) == set(api)
    assert set(schemas["Job"]["required"]) == set(api)
    schema_validator(spec, "/components/schemas/Job").validate(api)
    assert schemas["Status"]["enum"] == [s.value for s in Status]
    assert schemas["JobType"]["enum"] == [t.value for t in JobType]
    assert schemas["Stage"]["enum"] == list(STAGES)
    for job_type, name in [
        (JobType.YTDLP, "YtdlpOptions"),
        (JobType.FFMPEG, "FfmpegOptions"),
        (JobType.TWITTER, "TwitterOptions"),
        (JobType.ARIA2, "Aria2Options"),
    ]:
        assert sorted(schemas[name].get("properties", {})) == inputs.option_names(job_type)
        assert schemas[name]["additionalProperties"] is False


# ---------------------------------------------------------------------------- routes


def _normalise(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path)


_GROUP = re.compile(r"\(\?P<(\w+)>((?:[^()]|\([^()]*\))*)\)")


def _route_paths(resource: Any) -> list[str]:
    """The paths a resource answers, ``{}`` for a parameter; a parameter whose regex is a
    list of words (``{action:cancel|pause|…}``) is one path per word."""
    info = resource.get_info()
    if "path" in info:
        return [info["path"]]
    if "pattern" not in info:
        return [resource.canonical]
    pattern = info["pattern"].pattern.removeprefix("^").removesuffix("$").replace("\\/", "/")
    paths = [""]
    position = 0
    for match in _GROUP.finditer(pattern):
        literal = pattern[position : match.start()].replace("\\", "")
        words = match.group(2)
        options = words.split("|") if re.fullmatch(r"[\w|-]+", words) else ["{}"]
        paths = [p + literal + o for p in paths for o in options]
        position = match.end()
    tail = pattern[position:].replace("\\", "")
    return [p + tail for p in paths]


def _ignored(path: str, built: set[str]) -> bool:
    return path.startswith("/socket.io/") or path.startswith("/assets/") or path in built


def _router_operations(config: Config) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(method, normalised path) of every compared route, and of those open without a token."""
    app = create_app(config)
    hub.create_server(config).attach(app)
    root = page.static_root()
    built = {f"/{p.name}" for p in root.iterdir()} if root.is_dir() else set()
    routed: set[tuple[str, str]] = set()
    public: set[tuple[str, str]] = set()
    for route in app.router.routes():
        for path in _route_paths(route.resource):
            if _ignored(path, built):
                continue
            key = (route.method, _normalise(path))
            routed.add(key)
            if getattr(route.handler, "public", False) or path == "/health":
                public.add(key)
    get_paths = {p for m, p in routed if m == "GET"}
    routed = {(m, p) for m, p in routed if not (m == "HEAD" and p in get_paths)}
    return routed, public & routed


async def test_every_route_is_in_the_spec_and_every_operation_is_routed(new_config: Any) -> None:
    config = await new_config(server={"api_tokens": [TOKEN]})
    routed, public = _router_operations(config)
    spec = load_spec()
    documented = {(m, _normalise(p)) for m, p, _ in operations(spec)}
    assert routed - documented == set(), "routes missing from mediad/openapi.yaml"
    assert documented - routed == set(), "operations in mediad/openapi.yaml that are not routed"
    open_in_spec = {(m, _normalise(p)) for m, p, op in operations(spec) if op.get("security") == []}
    assert public == open_in_spec, "open (no token) routes differ from security: [] in the spec"


def test_route_expansion() -> None:
    from aiohttp import web

    app = web.Application()
    resource = app.router.add_resource("/downloads/{job_id}/{action:cancel|pause}")
    assert _route_paths(resource) == ["/downloads/{}/cancel", "/downloads/{}/pause"]
    assert _route_paths(app.router.add_resource("/files/{job_id}/download")) == [
        "/files/{}/download"
    ]


# ---------------------------------------------------------------------------- services


@contextlib.asynccontextmanager
async def _service(new_module_config: Any, **server: Any) -> AsyncIterator[Service]:
    config = await new_module_config(
        server={"rate_limit_per_min": 0, **server},
        # One slot, held by a stalled download: jobs created by schemathesis wait (and
        # after max_queued of them POST /downloads answers 429 queue_full) instead of
        # keeping the machine busy.
        queue={"concurrency": 1, "max_queued": 25, "max_attempts": 1, "watchdog_s": 600},
    )
    async with running_service(config) as service:
        yield service


async def _seed(service: Service, media: MediaServer, token: str | None) -> dict[str, Any]:
    """Jobs in every status, and the values schemathesis should draw from."""
    api = Api(service.base_url, token)
    try:
        ids: dict[str, str] = {}
        one = await api.submit(media.url("video.mp4"))
        many = await api.submit(media.url("blob.bin"))
        failed = await api.submit(media.url("missing.mp4"))
        for key, job in (("completed", one), ("completed_many", many), ("failed", failed)):
            ids[key] = job["jobId"]
        for key in ("completed", "completed_many"):
            await api.wait_status(ids[key], "completed", timeout_s=60)
        await api.wait_status(ids["failed"], "failed", timeout_s=60)
        # A second file makes a multi-file job (its download without name is a zip).
        data = Path(service.config.storage.data_dir) / ids["completed_many"]
        (only,) = (p for p in data.iterdir() if p.is_file())
        shutil.copy(only, data / "copy of blob.bin")
        # The only slot, from now on: a download at 2 kB/s (4 MiB: it outlasts the test).
        running = await api.submit(media.url("blob.bin", rate=2000))
        ids["running"] = running["jobId"]
        await api.wait_status(ids["running"], "running", timeout_s=60)
        for key in ("queued", "paused", "cancelled"):
            ids[key] = (await api.submit(media.url(f"{key}.mp4")))["jobId"]
        assert (await api.request("POST", f"/downloads/{ids['paused']}/pause"))[0] == 200
        assert (await api.request("POST", f"/downloads/{ids['cancelled']}/cancel"))[0] == 200
        status, body = await api.request("GET", f"/files/{ids['completed']}")
        assert status == 200 and len(body["files"]) == 1, body
        status, body = await api.request("GET", f"/files/{ids['completed_many']}")
        assert status == 200 and len(body["files"]) == 2, body
        names = sorted({f["name"] for f in body["files"]} | {only.name, "video.mp4"})
        return {
            "ids": ids,
            "names": names,
            "urls": [
                media.url("video.mp4"),
                "https://example.com/watch?v=abc",
                "https://example.com/live/index.m3u8",
                "https://x.com/jack/status/20",
                "https://twitter.com/jack",
                "http://10.0.0.1/private.mp4",
                "http://localhost/x",
            ],
        }
    finally:
        await api.close()


def _schemathesis_config(base_url: str, seed: dict[str, Any], max_examples: int,
                         token: str | None) -> dict[str, Any]:  # fmt: skip
    config: dict[str, Any] = {
        "base-url": base_url,
        "seed": 7,
        "workers": 1,
        "request-timeout": 20,
        "continue-on-failure": True,
        "max-failures": 50,
        "generation": {
            "mode": "all",
            "max-examples": max_examples,
            "deterministic": True,
            "database": "none",
            "no-shrink": True,
        },
        "phases": {
            "examples": {"enabled": True},
            "coverage": {"enabled": True},
            "fuzzing": {"enabled": True},
            "stateful": {"enabled": False},
        },
        "checks": {
            "enabled": False,
            "not_a_server_error": {"enabled": True},
            "status_code_conformance": {"enabled": True},
            "content_type_conformance": {"enabled": True},
            "response_schema_conformance": {"enabled": True},
            "response_headers_conformance": {"enabled": True},
        },
        "dictionaries": {
            "jobIds": {"values": list(seed["ids"].values())},
            "names": {"values": seed["names"]},
            "urls": {"values": seed["urls"]},
            "ranges": {"values": ["bytes=0-99", "bytes=100-", "bytes=-50", "bytes=99999999-"]},
        },
        "parameters": {
            "path.jobId": {"dictionary": "jobIds", "probability": 0.7},
            "query.name": {"dictionary": "names", "probability": 0.6},
            "query.url": {"dictionary": "urls", "probability": 0.5},
            "body.url": {"dictionary": "urls", "probability": 0.5},
            "header.Range": {"dictionary": "ranges", "probability": 0.5},
        },
    }
    if token:
        config["headers"] = {"Authorization": f"Bearer {token}"}
    return config


def _run_schemathesis(
    spec: dict[str, Any], config: dict[str, Any], seed: dict[str, Any]
) -> list[str]:
    """Run schemathesis (in a thread: the service answers on the event loop) and return a
    description of every failure and error: first the answers that generated data rarely
    reaches (206, 416, a zip, 409, 413), then the engine's phases (examples, coverage,
    fuzzing) in two passes: everything but DELETE, then DELETE (so the seeded jobs are not
    gone before the other operations see them)."""
    import schemathesis

    schema = schemathesis.openapi.from_dict(spec, config=schemathesis.Config.from_dict(config))
    problems: list[str] = []
    tested: set[str] = set()
    answers: dict[str, int] = {}
    problems += _explicit_cases(schema, config, seed)
    for part in (
        schema.exclude(operation_id="deleteDownload"),
        schema.include(operation_id="deleteDownload"),
    ):
        problems += _engine_pass(part, tested, answers)
    print("schemathesis answers:", ", ".join(f"{k}: {n}" for k, n in sorted(answers.items())))
    missing = {f"{m} {p}" for m, p, _ in operations(spec)} - tested
    if missing:
        problems.append(f"operations not tested: {sorted(missing)}")
    return problems


def _explicit_cases(schema: Any, config: dict[str, Any], seed: dict[str, Any]) -> list[str]:
    """Chosen requests, each with the status it must get, checked by the same checks."""
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi import checks as openapi_checks

    ids = seed["ids"]
    big = {"url": "https://example.com/" + "a" * 2000, "options": {"format": "b" * 2_000_000}}
    cases: list[tuple[str, str, dict[str, Any], int]] = [
        ("GET", "/files/{jobId}/download", {"path_parameters": {"jobId": ids["completed"]},
         "headers": {"Range": "bytes=0-99"}}, 206),
        ("GET", "/files/{jobId}/download", {"path_parameters": {"jobId": ids["completed"]},
         "headers": {"Range": "bytes=999999999-"}}, 416),
        ("GET", "/files/{jobId}/download", {"path_parameters": {"jobId": ids["completed"]},
         "headers": {"If-None-Match": "*"}}, 304),
        ("GET", "/files/{jobId}/download", {"path_parameters": {"jobId": ids["completed"]},
         "headers": {"If-Match": '"other"'}}, 412),
        ("GET", "/files/{jobId}/download", {"path_parameters": {"jobId": ids["completed"]}}, 200),
        ("GET", "/files/{jobId}/download", {"path_parameters": {"jobId": ids["completed_many"]}}, 200),
        ("GET", "/files/{jobId}/download", {"path_parameters": {"jobId": ids["completed_many"]},
         "query": {"name": "nothing.bin"}}, 404),
        ("GET", "/files/{jobId}/download", {"path_parameters": {"jobId": ids["failed"]}}, 404),
        ("GET", "/files/{jobId}", {"path_parameters": {"jobId": ids["completed_many"]}}, 200),
        ("GET", "/downloads", {"query": {"status": "running,paused", "q": "blob", "limit": 1}}, 200),
        ("GET", "/downloads", {"query": {"limit": 201}}, 400),
        ("GET", "/downloads/{jobId}", {"path_parameters": {"jobId": ids["running"]}}, 200),
        ("GET", "/downloads/{jobId}", {"path_parameters": {"jobId": ids["failed"]}}, 200),
        ("DELETE", "/downloads/{jobId}", {"path_parameters": {"jobId": ids["running"]}}, 409),
        ("POST", "/downloads/{jobId}/stop", {"path_parameters": {"jobId": ids["running"]}}, 409),
        ("POST", "/downloads/{jobId}/resume", {"path_parameters": {"jobId": ids["completed"]}}, 409),
        ("POST", "/downloads", {"body": {"url": seed["urls"][1], "options": {"format": "720p"}},
         "media_type": "application/json"}, 201),
        ("POST", "/downloads", {"body": {"url": seed["urls"][5]},
         "media_type": "application/json"}, 400),
        ("POST", "/downloads", {"body": big, "media_type": "application/json"}, 413),
        ("GET", "/detect", {"query": {"url": "https://x.com/jack/status/20"}}, 200),
        ("GET", "/detect", {"query": {"url": "ftp://example.com/a"}}, 400),
        ("GET", "/health", {}, 200),
        ("GET", "/health/live", {}, 200),
        ("GET", "/health/ready", {}, 200),
        ("GET", "/metrics", {}, 200),
    ]  # fmt: skip
    chosen = [
        not_a_server_error,
        openapi_checks.status_code_conformance,
        openapi_checks.content_type_conformance,
        openapi_checks.response_schema_conformance,
        openapi_checks.response_headers_conformance,
    ]
    problems = []
    for method, path, parts, expected in cases:
        case = schema[path][method].Case(**parts)
        response = case.call(base_url=config["base-url"], headers=config.get("headers"))
        label = f"{method} {path} {parts}"[:300]
        if response.status_code != expected:
            problems.append(
                f"{label}: {response.status_code}, not {expected}: {response.content[:300]!r}"
            )
        try:
            case.validate_response(response, checks=chosen, headers=config.get("headers"))
        except (AssertionError, BaseExceptionGroup) as exc:  # schemathesis' FailureGroup
            problems.append(f"{label}: {exc}"[:2000])
    return problems


def _engine_pass(schema: Any, tested: set[str], answers: dict[str, int]) -> list[str]:
    from schemathesis.engine import Status, events, from_schema

    problems: list[str] = []
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            if event.label and event.status is not Status.SKIP:
                tested.add(event.label)
            for interaction in event.recorder.interactions.values():
                if interaction.response is not None:
                    key = f"{event.label} {interaction.response.status_code}"
                    answers[key] = answers.get(key, 0) + 1
            if event.status in (Status.FAILURE, Status.ERROR):
                problems.extend(_describe(event))
        elif isinstance(event, events.NonFatalError):
            problems.append(
                f"{event.label}: error: {event.value!r}\n{event.info.code_sample or ''}"
            )
        elif isinstance(event, events.FatalError):
            problems.append(f"schemathesis failed: {event.exception!r}")
        elif isinstance(event, events.EngineFinished):
            if event.stop_reason.value != "completed":
                problems.append(f"schemathesis stopped: {event.stop_reason.value}")
    return problems


def _describe(event: Any) -> Iterator[str]:
    seen: set[str] = set()
    for case_id, checks in event.recorder.checks.items():
        for check in checks:
            info = check.failure_info
            if info is None:
                continue
            failure = info.failure
            key = f"{check.name}:{failure.title}:{failure.message}"
            if key in seen:
                continue
            seen.add(key)
            response = event.recorder.find_response(case_id=case_id)
            answer = ""
            if response is not None:
                answer = f"\n  answer: {response.status_code} {response.content[:300]!r}"
            yield (
                f"{event.label} [{event.phase.value}] {check.name}: {failure.title}\n"
                f"  {failure.message[:600]}\n  {info.code_sample}{answer}"
            )


async def _schemathesis(service: Service, seed: dict[str, Any], max_examples: int,
                        token: str | None) -> None:  # fmt: skip
    spec = load_spec()
    config = _schemathesis_config(service.base_url, seed, max_examples, token)
    started = time.monotonic()
    problems = await asyncio.to_thread(_run_schemathesis, spec, config, seed)
    print(f"schemathesis: {time.monotonic() - started:.1f} s")
    assert not problems, "\n\n".join(problems)


# ---------------------------------------------------------------------------- live


async def test_openapi_json_serves_the_spec(new_config: Any) -> None:
    """The app's own route, open even with tokens (no database needed: an app alone)."""
    from aiohttp.test_utils import TestClient, TestServer

    app = create_app(await new_config(server={"api_tokens": [TOKEN]}))
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        resp = await client.get("/openapi.json")
        assert resp.status == 200
        assert resp.content_type == "application/json"
        assert orjson.loads(await resp.read()) == load_spec()
        assert (await client.get("/downloads")).status == 401


@pytest.mark.timeout(300)
async def test_schemathesis_without_tokens(
    new_module_config: Any, media_server: MediaServer
) -> None:
    async with _service(new_module_config) as service:
        seed = await _seed(service, media_server, None)
        await _schemathesis(service, seed, MAX_EXAMPLES, None)


@pytest.mark.timeout(300)
async def test_schemathesis_with_tokens(new_module_config: Any, media_server: MediaServer) -> None:
    async with _service(new_module_config, api_tokens=[TOKEN]) as service:
        seed = await _seed(service, media_server, TOKEN)
        await _without_token(service, seed)
        await _schemathesis(service, seed, MAX_EXAMPLES_WITH_TOKENS, TOKEN)


async def _without_token(service: Service, seed: dict[str, Any]) -> None:
    """Every secured operation answers 401 with the Error shape, without a token or with a
    wrong one; the open ones answer as usual."""
    spec = load_spec()
    error = schema_validator(spec, "/components/schemas/Error")
    job_id = seed["ids"]["completed"]
    values = {"jobId": job_id, "subscriptionId": job_id, "name": "some-name"}
    async with aiohttp.ClientSession(service.base_url) as session:
        for method, path, op in operations(spec):
            url = re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)
            kwargs: dict[str, Any] = {}
            if method == "POST" and path == "/downloads":
                kwargs["json"] = {"url": seed["urls"][0]}
            if path == "/detect":
                kwargs["params"] = {"url": seed["urls"][0]}
            for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789abcdef"},
                            {"Authorization": f"Basic {TOKEN}"}):  # fmt: skip
                async with session.request(method, url, headers=headers, **kwargs) as resp:
                    body = await resp.read()
                    if op.get("security") == []:
                        assert resp.status in (200, 503), (method, url, resp.status, body)
                        continue
                    assert resp.status == 401, (method, url, headers, resp.status, body)
                    assert resp.content_type == "application/json"
                    parsed = orjson.loads(body)
                    error.validate(parsed)
                    assert parsed["error"]["code"] == "unauthorized"
                    assert resp.headers.get("WWW-Authenticate", "").startswith("Bearer")
        # The signed links that GET /files gives out need no header, and only those.
        async with session.get(
            f"/files/{job_id}", headers={"Authorization": f"Bearer {TOKEN}"}
        ) as resp:
            listing = await resp.json()
        link = listing["files"][0]["url"]
        assert "signature=" in link and "expires=" in link, link
        async with session.get(link) as resp:
            assert resp.status == 200
        async with session.get(re.sub(r"signature=[^&]+", "signature=AAAA", link)) as resp:
            assert resp.status == 401

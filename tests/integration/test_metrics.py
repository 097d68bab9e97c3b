"""Operators' view of a running service: ``GET /metrics`` (Prometheus text, a token when
tokens are set), ``GET /health/live`` and ``/health/ready`` (open), and error reports to a
local stand-in for a Sentry collector."""

from __future__ import annotations

import gzip
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import socketio
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from mediad import config as configuration
from mediad import errorreport
from mediad.service import Service
from tests.support.harness import Api, RedisServer, running_service
from tests.support.mediaserver import MediaServer
from tests.support.polling import eventually
from tests.support.workers import ScriptedWorker

TOKEN = "metrics-test-token-0123456789abcdef"
WORKER_TOKEN = "metrics-worker-token-0123456789abcdef"


async def scrape(api: Api) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``GET /metrics``: (name, sorted labels) → value."""
    status, body = await api.request("GET", "/metrics")
    assert status == 200, (status, body)
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_count_a_known_set_of_jobs(
    new_config: Any, media_server: MediaServer, media_dir: Path
) -> None:
    config = await new_config(
        server={"api_tokens": [TOKEN]},
        queue={"concurrency": 2, "max_attempts": 1},
        progress={"throttle_ms": 100},
    )
    blocked = f"metrics-{uuid.uuid4().hex[:8]}/x.bin"
    media_server.add_redirect(blocked, "http://127.0.0.2:9/x.bin")
    async with running_service(config) as service:
        api, anonymous = Api(service.base_url, TOKEN), Api(service.base_url)
        try:
            status, body = await anonymous.request("GET", "/metrics")
            assert status == 401 and body["error"]["code"] == "unauthorized"
            async with api.session.get("/metrics") as resp:
                assert resp.content_type == "text/plain"
            before = await scrape(api)
            assert value(before, "mediad_jobs_submitted_total", type="aria2") == 0
            # Held at 2 kB/s until cancelled: it reports progress meanwhile.
            slow = await api.submit(media_server.url("blob.bin", rate=2000), type="aria2")
            await api.wait_status(slow["jobId"], "running")
            names = ["blob.bin", "video.mp4", "blob.bin"]
            done = [await api.submit(media_server.url(n), type="aria2") for n in names]
            missing = await api.submit(media_server.url("nothing-here.bin"), type="aria2")
            refused = await api.submit(media_server.url(blocked), type="aria2")
            for job in done:
                await api.wait_status(job["jobId"], "completed")
            await api.wait_status(missing["jobId"], "failed")
            failed = await api.wait_status(refused["jobId"], "failed")
            assert failed["errorCode"] == "blocked_address", failed

            async def progress_written() -> bool:
                s = await scrape(api)
                return (
                    value(s, "mediad_progress_events_forwarded_total") > 0
                    and value(s, "mediad_db_progress_rows_written_total") > 0
                )

            await eventually(progress_written, what="progress forwarded and written")
            assert (await api.request("POST", f"/downloads/{slow['jobId']}/cancel"))[0] == 200
            await eventually(
                lambda: service.dispatcher is not None and not len(service.dispatcher.roster),
                what="every slot free",
            )
            async with following(service) as _:
                after = await eventually(_one_client(api), what="the /jobs client counted")
        finally:
            await api.close()
            await anonymous.close()

    sizes = sum((media_dir / n).stat().st_size for n in names)
    aria2 = {"type": "aria2"}
    assert value(after, "mediad_jobs_submitted_total", **aria2) == 6
    finished = {
        s: value(after, "mediad_jobs_finished_total", status=s, **aria2)
        for s in ("completed", "failed", "cancelled")
    }
    assert finished == {"completed": 3, "failed": 2, "cancelled": 1}
    assert value(after, "mediad_jobs_finished_total", type="ytdlp", status="completed") == 0
    assert value(after, "mediad_downloaded_bytes_total", **aria2) == sizes
    assert value(after, "mediad_egress_refusals_total") == 1
    runs = {
        s: value(after, "mediad_job_run_seconds_count", status=s, **aria2)
        for s in ("completed", "failed", "cancelled")
    }
    assert runs == {"completed": 3, "failed": 2, "cancelled": 1}
    assert value(after, "mediad_job_queue_wait_seconds_count", **aria2) == 6
    assert value(after, "mediad_db_writes_total", kind="terminal") == 5
    assert value(after, "mediad_db_writes_total", kind="progress") >= 1
    assert value(after, "mediad_db_query_duration_seconds_count", method="insert_job") == 6
    received = value(after, "mediad_progress_events_received_total")
    assert received >= value(after, "mediad_progress_events_forwarded_total") > 0
    # Scrape-time gauges: this instance, then the cluster's (PostgreSQL and Redis).
    assert value(after, "mediad_jobs_running") == 0
    assert value(after, "mediad_slots_free") == 2
    assert value(after, "mediad_workers_connected") == 2
    assert value(after, "mediad_workers_busy") == 0
    assert value(after, "mediad_jobs_clients_connected") == 1
    jobs = {s: value(after, "mediad_jobs", status=s) for s in ("completed", "failed", "cancelled")}
    assert jobs == {"completed": 3, "failed": 2, "cancelled": 1}
    assert value(after, "mediad_jobs", status="queued") == 0
    assert ("mediad_queue_depth", ()) in after and value(after, "mediad_queue_depth") == 0
    for backend in ("postgres", "redis"):
        assert value(after, "mediad_backend_errors_total", backend=backend) == 0
        assert value(after, "mediad_scrape_errors_total", source=backend) == 0
    assert not any("job" in k for _, labels in after for k, _ in labels if k != "type")


def _one_client(api: Api) -> Any:
    async def check() -> dict[Any, float] | None:
        s = await scrape(api)
        return s if value(s, "mediad_jobs_clients_connected") == 1 else None

    return check


class following:
    """A Socket.IO client on ``/jobs`` (with the token) for the duration of a block."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.sio = socketio.AsyncClient(reconnection=False)

    async def __aenter__(self) -> socketio.AsyncClient:
        await self.sio.connect(
            self.service.base_url, namespaces=["/jobs"], auth={"token": TOKEN},
            transports=["websocket"], wait_timeout=5,
        )  # fmt: skip
        return self.sio

    async def __aexit__(self, *exc: object) -> None:
        await self.sio.disconnect()


async def _worker(service: Service, worker_id: str) -> socketio.AsyncClient:
    """A worker connection (the shared remote-worker token): enough to be counted."""
    worker = ScriptedWorker(service.base_url, worker_id, token=WORKER_TOKEN, storage=service.config)
    await worker.connect()
    return worker.sio


async def _status(api: Api, path: str) -> tuple[int, Any]:
    return await api.request("GET", path)


async def test_live_and_ready_without_a_token(new_config: Any) -> None:
    config = await new_config(
        server={"api_tokens": [TOKEN]}, workers={"processes": 0, "token": WORKER_TOKEN}
    )
    async with running_service(config) as service:
        api = Api(service.base_url)  # no token: the probes are open
        try:
            assert await _status(api, "/health/live") == (200, {"status": "ok"})
            status, body = await _status(api, "/health/ready")
            assert status == 503, body
            assert body["status"] == "unavailable"
            assert body["checks"]["workers"] == {
                "status": "down", "connected": 0, "busy": 0, "running": 0,
            }  # fmt: skip
            assert body["checks"]["postgres"] == {"status": "ok"}
            assert body["checks"]["redis"] == {"status": "ok"}
            assert (await _status(api, "/metrics"))[0] == 401
            worker = await _worker(service, "probe-worker")
            try:

                async def ready() -> Any:
                    status, body = await _status(api, "/health/ready")
                    return body if status == 200 else None

                body = await eventually(ready, what="ready once a worker is connected")
                assert body["status"] == "ok" and body["checks"]["workers"]["connected"] == 1
            finally:
                await worker.disconnect()
            await eventually(
                lambda: _status_is(api, "/health/ready", 503), what="not ready without workers"
            )
        finally:
            await api.close()


async def _status_is(api: Api, path: str, expected: int) -> bool:
    return (await _status(api, path))[0] == expected


async def test_ready_fails_while_redis_is_unreachable(new_config: Any) -> None:
    redis = RedisServer()
    await redis.start()
    try:
        config = await new_config(
            redis_url=redis.url, workers={"processes": 0, "token": WORKER_TOKEN}
        )
        async with running_service(config) as service:
            api = Api(service.base_url)
            worker = await _worker(service, "redis-probe-worker")
            try:
                await eventually(lambda: _status_is(api, "/health/ready", 200), what="ready")
                await redis.stop()

                async def unready() -> Any:
                    status, body = await _status(api, "/health/ready")
                    return body if status == 503 else None

                body = await eventually(unready, what="not ready while Redis is down")
                assert body["checks"]["redis"]["status"] == "down", body
                assert body["checks"]["postgres"] == {"status": "ok"}
                assert await _status(api, "/health/live") == (200, {"status": "ok"})
                # /metrics still answers: the queue depth omitted, the failures counted.
                samples = await scrape(api)
                assert ("mediad_queue_depth", ()) not in samples
                assert value(samples, "mediad_scrape_errors_total", source="redis") >= 1
                assert value(samples, "mediad_backend_errors_total", backend="redis") >= 1
                assert ("mediad_jobs", (("status", "queued"),)) in samples
                await redis.start()
                await eventually(lambda: _status_is(api, "/health/ready", 200), what="ready again")
            finally:
                await worker.disconnect()
                await api.close()
    finally:
        await redis.close()


# ---------------------------------------------------------------------------- Sentry


@pytest.fixture
async def collector() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A local stand-in for a Sentry collector: the events of every envelope posted."""
    from sentry_sdk.envelope import Envelope

    events: list[dict[str, Any]] = []

    async def envelope(request: web.Request) -> web.Response:
        body = await request.read()  # aiohttp inflates a Content-Encoding: gzip body itself
        if body[:2] == b"\x1f\x8b":
            body = gzip.decompress(body)
        for item in Envelope.deserialize(body).items:
            if item.type == "event" and item.payload.json is not None:
                events.append(item.payload.json)
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/api/{project}/envelope/", envelope)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://publickey@127.0.0.1:{port}/1", events
    finally:
        await runner.cleanup()


async def test_errors_are_reported_with_the_job_tags(
    collector: tuple[str, list[dict[str, Any]]],
) -> None:
    import sentry_sdk

    dsn, events = collector
    config = configuration.build({"logging": {"sentry_dsn": dsn}})
    assert errorreport.setup(config)
    log = logging.getLogger("mediad.outcomes")
    job_id = str(uuid.uuid4())
    try:
        try:
            raise RuntimeError("the outcome could not be recorded")
        except RuntimeError:
            log.exception(
                "could not record the outcome", extra={"jobId": job_id, "stage": "finalizing"}
            )
        log.warning("only a breadcrumb", extra={"jobId": job_id})
        log.error("a plain error", extra={"workerId": "worker-1"})

        def both() -> bool:
            return len(events) >= 2

        await eventually(both, timeout_s=20, what="two events at the collector")
    finally:
        sentry_sdk.get_client().close(timeout=2)
        sentry_sdk.get_global_scope().set_client(None)
    first, second = events[0], events[1]
    (exc,) = first["exception"]["values"]
    assert exc["type"] == "RuntimeError" and exc["value"] == "the outcome could not be recorded"
    assert first["logentry"]["message"] == "could not record the outcome"
    assert first["tags"]["jobId"] == job_id and first["tags"]["stage"] == "finalizing"
    assert first["tags"]["process"] == "serve"
    frames = exc["stacktrace"]["frames"]
    assert all("vars" not in f for f in frames)  # no local variables leave the process
    assert second["logentry"]["message"] == "a plain error"
    assert second["tags"]["workerId"] == "worker-1" and "jobId" not in second["tags"]
    assert len(events) == 2  # the warning went as a breadcrumb only


def test_without_a_dsn_sentry_is_not_imported() -> None:
    code = (
        "import sys\n"
        "from mediad import cli, errorreport, service\n"
        "from mediad.config import build\n"
        "assert not errorreport.setup(build({}))\n"
        "assert 'sentry_sdk' not in sys.modules, 'imported'\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "SENTRY_DSN"}
    ran = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr


def test_metrics_route_is_documented_as_text() -> None:
    """The spec says text/plain for /metrics (the contract test compares routes)."""
    import yaml

    import mediad

    spec = yaml.safe_load((Path(mediad.__file__).parent / "openapi.yaml").read_text())
    content = spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(content) == ["text/plain"]
    assert spec["paths"]["/health/live"]["get"]["security"] == []
    assert spec["paths"]["/health/ready"]["get"]["security"] == []

"""Prometheus metrics of one service instance, served as ``GET /metrics``.

Each :class:`Metrics` has its own ``CollectorRegistry`` (never the global one: tests run
several services in one process). Three kinds of figures:

* **Events**, counted by one-line hooks where they happen: a job submitted
  (``control.py``), started (``dispatcher.py``: its queue wait), finished (``outcomes.py``,
  and ``control.py`` for a cancel: run time, bytes, egress refusals), progress events
  received and forwarded (``dispatcher.py``).
* **The stores' calls**: :meth:`Metrics.instrument` wraps the public coroutine methods of
  the ``Store`` and the ``Queue`` instance: PostgreSQL latency per method, the writes
  (progress batches and their rows, terminal writes) and every ``StoreUnavailable`` /
  ``QueueUnavailable`` they raise — nothing to add in ``store.py`` or ``queue.py``.
* **State**, read at scrape time by a custom collector: slots, workers, ``/jobs`` clients,
  and — cluster-wide, from PostgreSQL and Redis, each bounded by
  :data:`SCRAPE_TIMEOUT_S` and omitted (and counted) when it fails — jobs by status and
  the queue depth.

No label names a job: labels are job types, statuses, store methods and backends.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import prometheus_client
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mediad.errors import QueueUnavailable, StoreUnavailable
from mediad.models import TERMINAL, Job, JobType, Status

if TYPE_CHECKING:
    from mediad.dispatcher import Dispatcher
    from mediad.queue import Queue
    from mediad.store import Store

log = logging.getLogger(__name__)

# A counter's ``_created`` series doubles every series for no use here.
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]  # unannotated upstream

SCRAPE_TIMEOUT_S = 2.0
# The classic text format: every name here is a legacy one, so it is what Prometheus 2
# and 3 both read (prometheus-client's own CONTENT_TYPE_LATEST says 1.0.0 in recent versions).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
JOBS_NAMESPACE = "/jobs"
# The store's writes, by method name (see Metrics.instrument).
PROGRESS_WRITE = "flush_progress"
TERMINAL_WRITES = frozenset({"complete", "fail", "requeue"})
# Not wrapped: opening and closing are not queries.
NOT_INSTRUMENTED = frozenset({"open", "from_url", "close"})

RUN_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0)
WAIT_BUCKETS = (0.05, 0.25, 1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
QUERY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
FINISHED = (Status.COMPLETED, Status.FAILED, Status.CANCELLED)


def queue_wait_s(job: Job) -> float | None:
    """Submission to first start, for a job's first attempt (later attempts' rows no
    longer say when they were queued)."""
    if job.attempts != 1 or job.started_at is None:
        return None
    return max(0.0, (job.started_at - job.created_at).total_seconds())


def run_time_s(job: Job) -> float | None:
    """Start to end of the job's last attempt (None when it never started)."""
    if job.started_at is None or job.finished_at is None:
        return None
    return max(0.0, (job.finished_at - job.started_at).total_seconds())


@dataclass
class Cluster:
    """What one scrape read from PostgreSQL and Redis; None where the read failed."""

    by_status: dict[str, int] | None = None
    queue_depth: int | None = None


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.submitted = Counter(
            "mediad_jobs_submitted", "Jobs submitted to this instance", ["type"], registry=r
        )
        self.finished = Counter(
            "mediad_jobs_finished",
            "Jobs this instance saw finish, by final status",
            ["type", "status"],
            registry=r,
        )
        self.run_seconds = Histogram(
            "mediad_job_run_seconds",
            "Run time of a finished job's last attempt (started to finished)",
            ["type", "status"],
            buckets=RUN_BUCKETS,
            registry=r,
        )
        self.wait_seconds = Histogram(
            "mediad_job_queue_wait_seconds",
            "Time from submission to the first start of a job",
            ["type"],
            buckets=WAIT_BUCKETS,
            registry=r,
        )
        self.downloaded = Counter(
            "mediad_downloaded_bytes", "Bytes of completed jobs' files", ["type"], registry=r
        )
        self.egress_refused = Counter(
            "mediad_egress_refusals",
            "Jobs failed by the egress guard (blocked_address)",
            registry=r,
        )
        self._events(r)
        self._backends(r)
        for t in JobType:
            self.submitted.labels(t.value)
            self.downloaded.labels(t.value)
            for s in FINISHED:
                self.finished.labels(t.value, s.value)
        self._state = _State(self)
        r.register(self._state)

    def _events(self, r: CollectorRegistry) -> None:
        self.progress_in = Counter(
            "mediad_progress_events_received", "Progress events from workers", registry=r
        )
        self.progress_out = Counter(
            "mediad_progress_events_forwarded",
            "Progress events forwarded to /jobs clients",
            registry=r,
        )

    def _backends(self, r: CollectorRegistry) -> None:
        self.db_seconds = Histogram(
            "mediad_db_query_duration_seconds",
            "PostgreSQL calls of the store (pool wait included), by store method",
            ["method"],
            buckets=QUERY_BUCKETS,
            registry=r,
        )
        self.db_writes = Counter(
            "mediad_db_writes",
            "Writes: progress batches (the flusher's, and a failing job's last progress) and"
            " terminal writes (an attempt completed, failed or requeued)",
            ["kind"],
            registry=r,
        )
        self.db_progress_rows = Counter(
            "mediad_db_progress_rows_written",
            "Job rows updated by progress batches",
            registry=r,
        )
        self.backend_errors = Counter(
            "mediad_backend_errors",
            "Calls that failed because PostgreSQL or Redis was unavailable",
            ["backend"],
            registry=r,
        )
        self.scrape_errors = Counter(
            "mediad_scrape_errors",
            "Reads for /metrics that failed or timed out (their gauges omitted)",
            ["source"],
            registry=r,
        )
        for kind in ("progress", "terminal"):
            self.db_writes.labels(kind)
        for backend in ("postgres", "redis"):
            self.backend_errors.labels(backend)
            self.scrape_errors.labels(backend)

    # -- hooks -------------------------------------------------------------------------

    def job_submitted(self, job: Job) -> None:
        self.submitted.labels(job.type.value).inc()

    def job_started(self, job: Job) -> None:
        wait = queue_wait_s(job)
        if wait is not None:
            self.wait_seconds.labels(job.type.value).observe(wait)

    def job_finished(self, job: Job) -> None:
        """A job's row after a change; counted when that change finished it."""
        if job.status not in TERMINAL:
            return
        kind, status = job.type.value, job.status.value
        self.finished.labels(kind, status).inc()
        run = run_time_s(job)
        if run is not None:
            self.run_seconds.labels(kind, status).observe(run)
        if job.status is Status.COMPLETED and job.size:
            self.downloaded.labels(kind).inc(job.size)
        if job.status is Status.FAILED and job.error_code == "blocked_address":
            self.egress_refused.inc()

    def progress_received(self) -> None:
        self.progress_in.inc()

    def progress_forwarded(self) -> None:
        self.progress_out.inc()

    # -- the stores --------------------------------------------------------------------

    def instrument(self, target: Store | Queue, backend: str) -> None:
        """Wrap ``target``'s public coroutine methods (on the instance): failures of the
        backend counted, and for PostgreSQL the latency and the writes. Methods added to
        the class later are covered as they come; a method patched on the class after
        this call is not seen by this instance (patch the instance instead)."""
        timed = backend == "postgres"
        for name in dir(type(target)):
            if name.startswith("_") or name in NOT_INSTRUMENTED:
                continue
            method = getattr(target, name)
            if inspect.iscoroutinefunction(method):
                setattr(target, name, self._observed(method, name, backend, timed))

    def _observed(
        self, method: Callable[..., Awaitable[Any]], name: str, backend: str, timed: bool
    ) -> Callable[..., Awaitable[Any]]:
        errors = self.backend_errors.labels(backend)
        latency = self.db_seconds.labels(name) if timed else None

        @functools.wraps(method)
        async def observed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                result = await method(*args, **kwargs)
            except (StoreUnavailable, QueueUnavailable):
                errors.inc()
                raise
            finally:
                if latency is not None:
                    latency.observe(time.perf_counter() - started)
            if timed:
                self._wrote(name, result)
            return result

        return observed

    def _wrote(self, method: str, result: Any) -> None:
        if method == PROGRESS_WRITE:
            self.db_writes.labels("progress").inc()
            if isinstance(result, int):
                self.db_progress_rows.inc(result)
        elif method in TERMINAL_WRITES:
            self.db_writes.labels("terminal").inc()

    # -- scrapes -----------------------------------------------------------------------

    def watch(self, dispatcher: Dispatcher, store: Store, queue: Queue, sio: Any) -> None:
        """Where the scrape-time gauges come from (``mediad serve`` wires it)."""
        self._state.parts = (dispatcher, store, queue, sio)

    async def render(self) -> bytes:
        """The exposition: the cluster-wide reads first (bounded), then every metric."""
        cluster = Cluster()
        parts = self._state.parts
        if parts is not None:
            _, store, queue, _ = parts
            cluster.by_status, cluster.queue_depth = await asyncio.gather(
                self._bounded("postgres", store.count_by_status()),
                self._bounded("redis", queue.depth()),
            )
        self._state.cluster = cluster
        return prometheus_client.generate_latest(self.registry)

    async def _bounded(self, source: str, read: Awaitable[Any]) -> Any:
        try:
            return await asyncio.wait_for(read, SCRAPE_TIMEOUT_S)
        except (StoreUnavailable, QueueUnavailable, TimeoutError) as exc:
            self.scrape_errors.labels(source).inc()
            log.warning("metrics: could not read %s: %s", source, exc or "timed out")
            return None

    def value(self, name: str, **labels: str) -> float:
        """One sample's value (0 when absent): for tests and ``mediad`` itself."""
        return self.registry.get_sample_value(name, labels) or 0.0


class _State(Collector):
    """The gauges read at scrape time."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.parts: tuple[Dispatcher, Store, Queue, Any] | None = None
        self.cluster = Cluster()

    def describe(self) -> list[Metric]:
        return []  # unchecked: its families come and go (omitted when a read fails)

    def collect(self) -> Iterator[Metric]:
        if self.parts is not None:
            dispatcher, _, _, sio = self.parts
            yield from instance_gauges(
                dispatcher.status_counts(),
                dispatcher.config.queue.concurrency,
                dispatcher.ignored_events,
                jobs_clients(sio),
            )
        yield from cluster_gauges(self.cluster)


def instance_gauges(
    counts: dict[str, int], concurrency: int, ignored_events: int, clients: int
) -> Iterator[Metric]:
    """This instance's state, from the dispatcher's counts."""
    running = counts.get("running", 0)
    for name, text, value in (
        ("mediad_jobs_running", "Jobs holding a slot on this instance", running),
        ("mediad_slots_free", "Free slots (queue.concurrency minus running)", concurrency - running),
        ("mediad_workers_connected", "Workers connected to this instance", counts.get("connected", 0)),
        ("mediad_workers_busy", "Workers of this instance running a job", counts.get("busy", 0)),
        ("mediad_jobs_clients_connected", "Socket.IO clients connected on /jobs", clients),
    ):  # fmt: skip
        yield GaugeMetricFamily(name, text, value=max(0, value))
    yield CounterMetricFamily(
        "mediad_worker_events_rejected",
        "Worker events rejected: invalid, or about an attempt that no longer counts"
        " (progress among them)",
        value=ignored_events,
    )


def cluster_gauges(cluster: Cluster) -> Iterator[Metric]:
    """What PostgreSQL and Redis hold for every instance; omitted when not read."""
    if cluster.by_status is not None:
        family = GaugeMetricFamily(
            "mediad_jobs",
            "Jobs by status (cluster-wide: every instance's jobs in PostgreSQL)",
            labels=["status"],
        )
        for status in Status:
            family.add_metric([status.value], cluster.by_status.get(status.value, 0))
        yield family
    if cluster.queue_depth is not None:
        yield GaugeMetricFamily(
            "mediad_queue_depth",
            "Jobs waiting in the Redis queue (cluster-wide: shared by every instance)",
            value=cluster.queue_depth,
        )


def jobs_clients(sio: Any) -> int:
    """Clients connected on ``/jobs``: python-socketio's manager keeps every connected
    sid of a namespace in its room ``None``."""
    rooms = getattr(getattr(sio, "manager", None), "rooms", None) or {}
    return len(rooms.get(JOBS_NAMESPACE, {}).get(None, ()))


METRICS = web.AppKey("metrics", Metrics)


def add_route(app: web.Application, metrics: Metrics | None) -> None:
    """``GET /metrics``; protected like the REST API (auth_middleware) when tokens are set."""
    app[METRICS] = metrics or Metrics()
    app.router.add_get("/metrics", serve_metrics)


async def serve_metrics(request: web.Request) -> web.Response:
    """The Prometheus text format (version 0.0.4)."""
    body = await request.app[METRICS].render()
    return web.Response(
        body=body,
        headers={
            "Content-Type": CONTENT_TYPE,
            "Cache-Control": "no-store",
        },
    )

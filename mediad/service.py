"""``mediad serve``: every part of the service, started in dependency order and stopped in
reverse.

    managed PostgreSQL / Redis (when no URL is configured)
    → store (pool + migrations) → queue → dispatcher, control, the app
    → aria2 daemon → HTTP + Socket.IO on server.host:port
    → reconciler pass → dispatcher and its upkeep loops → worker processes

Background tasks are named and watched: if one dies, the service stops instead of
limping on without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Any

from aiohttp import web

from mediad import connections, hub, sockets
from mediad import web as webapp
from mediad.aria2_rpc import Aria2Rpc
from mediad.auth import WorkerTokens
from mediad.backoff import restart_backoff
from mediad.checks import Checks
from mediad.cluster import ControlBus
from mediad.config import Config, local_url
from mediad.control import Controller
from mediad.daemons import (
    Aria2Daemon,
    ManagedPostgres,
    ManagedRedis,
    ManagedServer,
    find_postgres_bin_dir,
    find_redis_server,
)
from mediad.dispatcher import Dispatcher
from mediad.errors import MediadError, QueueUnavailable, ServiceError
from mediad.leases import Leases
from mediad.metrics import Metrics
from mediad.notify.outbox import Outbox
from mediad.notify.sender import Sender
from mediad.queue import Queue
from mediad.store import Store
from mediad.supervisor import Supervisor, worker_settings
from mediad.tasks import cancel_all
from mediad.upkeep import Upkeep

log = logging.getLogger(__name__)


class Service:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.port: int | None = None
        self.store: Store | None = None
        self.queue: Queue | None = None
        self.dispatcher: Dispatcher | None = None
        self.upkeep: Upkeep | None = None
        self.checks: Checks | None = None
        self.outbox: Outbox | None = None
        self.supervisor: Supervisor | None = None
        self.aria2: Aria2Daemon | None = None
        self._aria2_client: Aria2Rpc | None = None
        self.postgres: ManagedPostgres | None = None
        self.redis: ManagedRedis | None = None
        self.tokens = WorkerTokens(config.workers.token)
        self.metrics = Metrics()  # this instance's own registry (GET /metrics)
        self.failed: asyncio.Future[BaseException] | None = None
        self._stack = contextlib.AsyncExitStack()
        self._site: web.TCPSite | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    @property
    def base_url(self) -> str:
        return local_url(self.config.server.host, self.port or 0)

    async def __aenter__(self) -> Service:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        self.failed = asyncio.get_running_loop().create_future()
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        c = self.config
        for folder in (c.state_path, c.data_path, c.tmp_path):
            folder.mkdir(parents=True, exist_ok=True)
        dsn = c.database.url or await self._start_postgres()
        redis_url = c.redis.url or await self._start_redis()
        store, queue = await self._open_store(dsn), self._open_queue(redis_url)
        app = self._build(store, queue)

        await self._start_aria2()
        await self._listen(app)
        # /health answers (503) while an unavailable Redis holds the rest of start-up.
        await self._wait_for_redis()

        assert self.upkeep is not None and self.dispatcher is not None
        await self.upkeep.reconcile(startup=True)
        self._stack.push_async_callback(self.upkeep.stop)
        for task in self.upkeep.start():
            self._watch_task(task)
        assert self.checks is not None
        self._watch(self.checks.run(), "subscriptions")
        assert self.outbox is not None
        self._watch(Sender(c, self.outbox).run(), "notify-sender")

        assert self.aria2 is not None
        settings = worker_settings(c, self.aria2.url, self.aria2.secret)
        self.supervisor = Supervisor(c, self.tokens, self.base_url, settings)
        self._stack.push_async_callback(self.supervisor.stop, c.server.shutdown_grace_s)
        for task in self.supervisor.start():
            self._watch_task(task)
        # Runs before the workers are stopped: their goodbyes are not crashes.
        self._stack.callback(self.dispatcher.begin_drain)

    def _build(self, store: Store, queue: Queue) -> web.Application:
        """The engine and the app around it: dispatcher and its upkeep, control, the
        Socket.IO namespaces and the routes. With a Redis of its own (the embedded one)
        the instance is alone; on a shared one it is one of several (cluster.py)."""
        c = self.config
        sio = hub.create_server(c)
        if isinstance(sio.manager, sockets.ClusterEvents):
            self._stack.push_async_callback(sio.manager.close)
        publisher = hub.Publisher(sio)
        leases = Leases(queue.redis, c.redis.prefix, c.instance_id, c.queue.lease_s)
        self.dispatcher = Dispatcher(
            c, store, queue, hub.WorkerChannel(sio), publisher, leases=leases, metrics=self.metrics
        )
        self.upkeep = Upkeep(self.dispatcher)
        sio.register_namespace(hub.WorkerNamespace(self.dispatcher, self.tokens))
        sio.register_namespace(hub.JobsNamespace(c, store, self.dispatcher))
        bus = ControlBus(queue.redis, c.redis.prefix, c.instance_id) if c.redis.url else None
        controller = Controller(c, store, queue, self.dispatcher, publisher, bus, self.metrics)
        # Notifications: recorded with the terminal writes, sent by the sender task.
        self.outbox = store.outbox = Outbox(c, store, publisher.notification_update)
        self.checks = Checks(
            c, store, queue, publisher, self.dispatcher, self.metrics, outbox=self.outbox
        )
        self.metrics.watch(self.dispatcher, store, queue, sio)
        if bus is not None:
            self._watch(bus.listen(controller.stop_tool), "control-bus")
        checks: dict[str, webapp.HealthCheck] = {
            "aria2": self._aria2_check,
            "twmd": self._twmd_check,
        }
        parts = webapp.Parts(
            store,
            queue,
            self.dispatcher,
            controller,
            checks,
            self.metrics,
            self.checks,
            self.outbox,
        )
        app = webapp.create_app(c, parts)
        sio.attach(app)
        return app

    async def _open_store(self, dsn: str) -> Store:
        c = self.config.database
        self.store = await Store.open(dsn, min_size=c.pool_min, max_size=c.pool_max)
        self._stack.push_async_callback(self.store.close)
        self.metrics.instrument(self.store, "postgres")
        applied = await self.store.migrate()
        if applied:
            log.info("applied migrations: %s", ", ".join(applied))
        return self.store

    def _open_queue(self, redis_url: str) -> Queue:
        c = self.config
        self.queue = Queue.from_url(redis_url, c.redis.prefix, c.instance_id)
        self.metrics.instrument(self.queue, "redis")
        self._stack.push_async_callback(self.queue.close)
        return self.queue

    async def _start_aria2(self) -> None:
        c = self.config
        self.aria2 = Aria2Daemon(
            c.state_path / "aria2",
            binary=c.tools.aria2c,
            max_downloads=c.queue.concurrency + 2,
            overall_limit=c.tools.total_rate_limit,
        )
        await self.aria2.start()
        self._stack.push_async_callback(self.aria2.stop)
        self._watch(self._keep_alive(self.aria2, "aria2"), "keep-aria2")
        self._aria2_client = self.aria2.client()
        self._stack.push_async_callback(self._aria2_client.close)

    async def _aria2_check(self) -> dict[str, Any]:
        if self._aria2_client is None:
            return {"status": "starting"}
        return {"status": "ok", "version": await self._aria2_client.version()}

    async def _listen(self, app: web.Application) -> None:
        """HTTP and Socket.IO on server.host:port, with head and body timeouts and
        connection caps for slow and greedy clients (connections.py)."""
        c = self.config
        runner = connections.Runner(
            app,
            per_client=c.server.max_connections_per_client,
            total=connections.connection_cap(
                c.server.max_connections, connections.raise_open_file_limit()
            ),
            keepalive_timeout=c.server.header_timeout_s,
            access_log=None,
            shutdown_timeout=2,
            max_line_size=webapp.MAX_REQUEST_LINE,
        )
        await runner.setup()
        self._stack.push_async_callback(runner.cleanup)
        site = web.TCPSite(runner, c.server.host, c.server.port, reuse_address=True)
        await site.start()
        self._site = site
        self.port = _bound_port(runner)
        log.info("listening on %s", self.base_url)

    async def _twmd_check(self) -> dict[str, Any]:
        """twmd is optional: a missing one fails Twitter/X jobs, not the service."""
        path = self.config.tools.twmd
        if not path:
            return {"status": "unconfigured"}
        usable = os.path.isfile(path) and os.access(path, os.X_OK)  # noqa: ASYNC240 - a stat
        return {"status": "ok" if usable else "missing", "path": path}

    async def _start_postgres(self) -> str:
        bin_dir = find_postgres_bin_dir(self.config.tools.postgres_bin_dir)
        self.postgres = ManagedPostgres(self.config.state_path / "postgres", bin_dir=bin_dir)
        return await self._start_managed(self.postgres, "PostgreSQL")

    async def _start_redis(self) -> str:
        binary = find_redis_server(self.config.tools.redis_server)
        self.redis = ManagedRedis(self.config.state_path / "redis", binary=binary)
        return await self._start_managed(self.redis, "Redis")

    async def _start_managed(self, server: ManagedPostgres | ManagedRedis, name: str) -> str:
        """Start an embedded server, keep it running, stop it at shutdown."""
        url = await server.start()
        self._stack.push_async_callback(server.stop)
        self._watch(self._keep_alive(server, name), f"keep-{name.lower()}")
        log.info("embedded %s running in %s", name, server.root)
        return url

    async def _keep_alive(self, server: ManagedServer, name: str) -> None:
        """Restart a managed server that exits while the service runs."""
        backoff = restart_backoff()
        while True:
            code = await server.wait()
            if self._stopping:
                return
            delay = backoff.next()
            log.error("%s exited with code %s; restarting it in %.1fs", name, code, delay)
            await asyncio.sleep(delay)
            try:
                await server.start()
                backoff.reset()
            except ServiceError as exc:
                log.error("%s did not restart: %s", name, exc)

    async def _wait_for_redis(self, timeout_s: float | None = None) -> None:
        """Start-up waits for Redis (saying so) rather than failing at the first refusal."""
        assert self.queue is not None
        loop = asyncio.get_running_loop()
        started, said = loop.time(), 0.0
        while True:
            try:
                await self.queue.ping()
                return
            except QueueUnavailable as exc:
                waited = loop.time() - started
                if timeout_s is not None and waited > timeout_s:
                    raise
                if waited - said >= 5 or not said:
                    log.warning("waiting for Redis: %s", exc)
                    said = waited or 0.001
                await asyncio.sleep(0.5)

    def _watch(self, coro: Any, name: str) -> None:
        self._watch_task(asyncio.create_task(coro, name=name))

    def _watch_task(self, task: asyncio.Task[None]) -> None:
        self._tasks.append(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or self._stopping:
            return
        exc = task.exception()
        if exc is not None:
            log.error("background task %s died", task.get_name(), exc_info=exc)
        else:
            exc = RuntimeError(f"background task {task.get_name()} ended")
            log.error("background task %s ended unexpectedly", task.get_name())
        if self.failed is not None and not self.failed.done():
            self.failed.set_result(exc)

    async def stop(self) -> None:
        """Graceful: stop listening, requeue running jobs (partial data kept) within
        server.shutdown_grace_s, flush progress, stop everything in reverse order."""
        if self._stopping:
            return
        self._stopping = True
        if self._site is not None:
            with contextlib.suppress(Exception):
                await self._site.stop()  # no new clients; connected workers stay
        if self.dispatcher is not None:
            try:
                requeued = await self.dispatcher.drain(self.config.server.shutdown_grace_s)
                if requeued:
                    log.info("requeued %d running jobs for the next start", requeued)
            except MediadError as exc:
                log.warning("could not requeue running jobs: %s", exc)
        await cancel_all(self._tasks, "the service")
        await self._stack.aclose()
        log.info("stopped")


def _bound_port(runner: web.AppRunner) -> int:
    for site in runner.sites:
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            return int(server.sockets[0].getsockname()[1])
    raise ServiceError("the HTTP server is not listening")

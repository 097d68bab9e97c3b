"""The worker process: a Socket.IO client on ``/worker`` that runs one job at a time.

It never touches PostgreSQL or Redis: it runs the tool, reports progress (at most
``progress_hz`` times a second), publishes the result by atomic rename and says
``completed`` or ``failed``. The server decides everything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import signal
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import socketio

from mediad import cookies, probe, results, wire
from mediad.aria2_rpc import Aria2Rpc
from mediad.backoff import Backoff
from mediad.egress import EgressProxy, tool_environment
from mediad.errors import InvalidEvent
from mediad.netpolicy import NetPolicy
from mediad.secrecy import child_environment
from mediad.worker import procs, run_aria2, run_ytdlp
from mediad.worker.forkserver import ForkServer
from mediad.worker.jobs import (
    JobContext,
    JobFailed,
    ProgressEmitter,
    Toolkit,
    publish,
    remove_tree,
)
from mediad.worker.progress import Progress
from mediad.worker.settings import WorkerSettings

log = logging.getLogger(__name__)
NS = "/worker"
T = TypeVar("T")
_Message = (
    wire.ProgressEvent
    | wire.CompletedEvent
    | wire.FailedEvent
    | wire.StoppedEvent
    | wire.Heartbeat
    | wire.ListedEvent
)

Runner = Callable[[JobContext], Awaitable[list[Path]]]


def _imported(module: str) -> Runner:
    """A runner whose module is imported by its first job (a worker may never run one)."""

    async def run(ctx: JobContext) -> list[Path]:
        runner: Runner = importlib.import_module(module).run
        return await runner(ctx)

    return run


# Every job type's runner: ``run(ctx)``, the tools it needs in ``ctx.toolkit``.
RUNNERS: dict[str, Runner] = {
    "ytdlp": run_ytdlp.run,
    "aria2": run_aria2.run,
    "ffmpeg": _imported("mediad.worker.run_ffmpeg"),
    "twitter": _imported("mediad.worker.run_twitter"),
}


class Worker:
    def __init__(self, settings: WorkerSettings, forks: ForkServer | None = None) -> None:
        """``forks``: the fork server ``main`` started before anything else (without one,
        ``run`` starts it, for yt-dlp run by the fork server, not by an executable)."""
        self.settings = settings
        self.forks = forks
        self.toolkit = Toolkit()
        self.exit_code = 0
        self.sio = socketio.AsyncClient(
            reconnection=True,
            reconnection_delay=0.2,
            reconnection_delay_max=2,
            handle_sigint=False,
        )
        self.rpc = (
            Aria2Rpc(settings.aria2_url, settings.aria2_secret or "")
            if settings.aria2_url
            else None
        )
        self.current: tuple[JobContext, asyncio.Task[None]] | None = None
        self.egress = EgressProxy(NetPolicy(settings.allow_private, settings.allow_hosts))
        self._stop = asyncio.Event()
        self.sio.on(wire.JOB_START, self._on_start, namespace=NS)
        self.sio.on(wire.JOB_CONTROL, self._on_control, namespace=NS)
        self.sio.on(wire.LISTING_START, self._on_listing, namespace=NS)
        self.sio.on("disconnect", self._on_disconnect, namespace=NS)
        self.sio.on("connect_error", self._on_connect_error, namespace=NS)
        self._refused: str | None = None

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        if self.forks is None and not self.settings.ytdlp:
            self.forks = ForkServer.start(self.settings.ffmpeg)
        if self.forks is not None:
            self.forks.on_lost = self._forks_lost
            self.forks.watch()
        try:
            await self.egress.start()
            env = tools_environment(os.environ, self.egress.url)
            self.toolkit = Toolkit(env=env, forks=self.forks, aria2=self.rpc)
            if not await self._connect():
                return 1
            heartbeat = asyncio.create_task(self._heartbeat(), name="heartbeat")
            await self._stop.wait()
            heartbeat.cancel()
            await self._abort_current("shutdown")
            with contextlib.suppress(Exception):
                await self.sio.disconnect()
        finally:
            await self.egress.stop()
            s = self.settings
            await asyncio.to_thread(probe.remove, s.data_dir, s.tmp_dir, s.worker_id)
            if self.forks is not None:
                await self.forks.stop()
        if self.rpc is not None:
            await self.rpc.close()
        return self.exit_code

    def _forks_lost(self) -> None:
        """Without its fork server a worker cannot run yt-dlp, and a new one forked from
        here would not be forked from one thread: stop, the supervisor starts a fresh
        worker (the server requeues the job as mediad's fault)."""
        self.exit_code = 1
        self._stop.set()

    async def _connect(self, deadline_s: float = 60) -> bool:
        """Connect, retrying with backoff while the server is not up; a refusal (a bad
        token, storage not shared) is final."""
        s = self.settings
        loop = asyncio.get_running_loop()
        deadline = loop.time() + deadline_s
        backoff = Backoff(0.1, 2.0, 2.0)
        nonce = await asyncio.to_thread(probe.write, s.data_dir, s.tmp_dir, s.worker_id)
        auth = {"token": s.token, "workerId": s.worker_id, "probe": nonce}
        while not self._stop.is_set():
            self._refused = None
            try:
                await self.sio.connect(
                    s.server_url, namespaces=[NS], auth=auth, transports=["websocket"],
                    wait_timeout=10,
                )  # fmt: skip
                log.info("connected to %s", s.server_url)
                return True
            except socketio.exceptions.ConnectionError as exc:
                if self._refused is not None:
                    log.error("the server %s refused this worker: %s", s.server_url, self._refused)
                    return False
                if loop.time() > deadline:
                    log.error("could not connect to %s: %s", s.server_url, exc)
                    return False
                await asyncio.sleep(backoff.next())
        return False

    def _on_connect_error(self, data: Any = None) -> None:
        """The server refused the connection (socketio's ConnectionRefusedError)."""
        message = data.get("message") if isinstance(data, dict) else data
        self._refused = str(message or "connection refused")

    async def _emit(self, event: str, message: _Message) -> None:
        try:
            await self.sio.emit(event, message.encode(), namespace=NS)
        except socketio.exceptions.SocketIOError as exc:
            log.warning("could not send %s: %s", event, exc)

    async def _heartbeat(self) -> None:
        """Say we are alive, and whether the job's tool is working: its progress moved or
        its processes used CPU since the last beat (a long merge prints nothing but works;
        a download stuck on a dead socket does neither)."""
        last: tuple[str, float, int] = ("", 0.0, 0)
        while True:
            await asyncio.sleep(self.settings.heartbeat_s)
            beat = wire.Heartbeat()
            if self.current is not None:
                ctx = self.current[0]
                ticks = sum(p.cpu_ticks() for p in ctx.tools if p.returncode is None)
                now = (ctx.job_id, ctx.emitter.last_change, ticks)
                active = now[0] == last[0] and (now[1] != last[1] or now[2] > last[2])
                last = now
                beat = wire.Heartbeat(ctx.job_id, ctx.attempt, active)
            await self._emit(wire.HEARTBEAT, beat)

    # -- server events -----------------------------------------------------------------

    async def _busy(self, job_id: str, attempt: int) -> bool:
        if self.current is None:
            return False
        busy = "the worker was already running a job"
        await self._emit(wire.FAILED, wire.FailedEvent(job_id, attempt, "worker_busy", busy))
        return True

    async def _on_listing(self, data: Any) -> None:
        """A subscription's check: list the entries, send them in ``listed`` messages."""
        start = _parsed(wire.parse_listing_start, wire.LISTING_START, data)
        if start is None or await self._busy(start.check_id, start.attempt):
            return

        async def no_progress(p: Progress) -> None:
            return None

        ctx = JobContext(
            job_id=start.check_id,
            attempt=start.attempt,
            url=start.url,
            type="listing",
            options={"maxItems": start.max_items, "cookies": start.cookies},
            settings=self.settings,
            emitter=ProgressEmitter(no_progress, self.settings.progress_hz),
            proxy_url=self.egress.url,
        )
        task = asyncio.create_task(
            self._run_listing(ctx, start.max_items), name=f"listing-{ctx.job_id}"
        )
        self.current = (ctx, task)
        task.add_done_callback(lambda _: self._clear(task))

    async def _run_listing(self, ctx: JobContext, max_items: int) -> None:
        from mediad.worker import run_listing

        self.egress.clear()
        ctx.toolkit = self.toolkit  # the environment, the fork server
        try:
            await asyncio.to_thread(ctx.work_dir.mkdir, parents=True, exist_ok=True)
            try:
                listing = await run_listing.run(ctx, max_items)
            except JobFailed:
                self._check_egress()
                raise
            self._check_egress()
            for message in wire.listed_chunks(
                ctx.job_id, ctx.attempt, listing.title, listing.entries
            ):
                await self._emit(wire.LISTED, message)
            log.info("listed %d entries", len(listing.entries), extra={"jobId": ctx.job_id})
        except JobFailed as exc:
            await self._fail(ctx, exc.error_code, exc.message)
        except OSError as exc:
            await self._fail(ctx, "tool_failed", f"{exc.strerror or exc}")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug: say so now, not after the watchdog
            log.exception("the listing failed", extra={"jobId": ctx.job_id})
            await self._fail(ctx, "internal_error", f"mediad's listing failed: {exc!r}")
        finally:
            remove_tree(ctx.work_dir)  # nothing of a listing is kept (it wrote nothing)

    async def _on_start(self, data: Any) -> None:
        start = _parsed(wire.parse_job_start, wire.JOB_START, data)
        if start is None:
            return
        job_id, attempt = start.job_id, start.attempt
        if await self._busy(job_id, attempt):
            return

        async def send(p: Progress) -> None:
            await self._emit(wire.PROGRESS, wire.ProgressEvent(job_id, attempt, p.live()))

        emitter = ProgressEmitter(send, self.settings.progress_hz)
        ctx = JobContext(
            job_id=job_id,
            attempt=attempt,
            url=start.url,
            type=start.type,
            options=start.options,
            settings=self.settings,
            emitter=emitter,
            proxy_url=self.egress.url,
        )
        task = asyncio.create_task(self._run_job(ctx), name=f"job-{job_id}")
        self.current = (ctx, task)
        task.add_done_callback(lambda _: self._clear(task))

    def _clear(self, task: asyncio.Task[None]) -> None:
        if self.current is not None and self.current[1] is task:
            self.current = None

    async def _on_control(self, data: Any) -> None:
        control = _parsed(wire.parse_job_control, wire.JOB_CONTROL, data)
        if control is None or self.current is None:
            return
        ctx = self.current[0]
        if (control.job_id, control.attempt) != (ctx.job_id, ctx.attempt):
            return
        if control.action == "stop":
            ctx.stop_requested.set()  # the runner finishes with what it has
        else:
            await self._abort_current(control.action)

    async def _on_disconnect(self, *_: Any) -> None:
        # The server requeues the job of a worker that left; finishing it would be wasted.
        await self._abort_current("disconnected")

    async def _abort_current(self, reason: str) -> None:
        """Stop the running tool. Its partial data stays in tmp/{jobId} for a resume,
        except after a cancel; the server hears ``stopped`` once the tool is gone."""
        if self.current is None:
            return
        ctx, task = self.current
        log.info("stopping the job: %s", reason, extra={"jobId": ctx.job_id})
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if reason == "cancel":
            await asyncio.to_thread(remove_tree, ctx.work_dir)
        if reason in wire.STOPPING_ACTIONS:
            await self._emit(wire.STOPPED, wire.StoppedEvent(ctx.job_id, ctx.attempt, reason))

    # -- running a job -----------------------------------------------------------------

    async def _run_job(self, ctx: JobContext) -> None:
        extra = {"jobId": ctx.job_id}
        log.info("running %s job (attempt %d)", ctx.type, ctx.attempt, extra=extra)
        self.egress.clear()  # one job at a time: what it refuses belongs to this job
        try:
            await asyncio.to_thread(ctx.work_dir.mkdir, parents=True, exist_ok=True)
            try:
                files = await self._run_tool(ctx)
            except JobFailed:
                self._check_egress()  # a refused connection explains it better
                raise
            self._check_egress()
            ctx.report(Progress(stage="finalizing", progress=100.0))
            staging = results.staging_dir(self.settings.data_dir, ctx.job_id, ctx.attempt)
            published = await asyncio.to_thread(publish, files, staging)
            await ctx.emitter.close()
            await asyncio.to_thread(remove_tree, ctx.work_dir)
            entries = tuple(wire.FileEntry(f["name"], f["size"]) for f in published)
            await self._emit(wire.COMPLETED, wire.CompletedEvent(ctx.job_id, ctx.attempt, entries))
            log.info("completed: %d file(s)", len(published), extra=extra)
        except JobFailed as exc:
            await self._fail(ctx, exc.error_code, exc.message)
        except OSError as exc:
            code = "disk_full" if exc.errno == 28 else "tool_failed"  # ENOSPC
            await self._fail(ctx, code, f"{exc.strerror or exc}")
        except asyncio.CancelledError:
            await ctx.emitter.close()
            raise
        except Exception as exc:  # a bug in a runner: say so now, not after the watchdog
            log.exception("the %s runner failed", ctx.type, extra=extra)
            await self._fail(ctx, "internal_error", f"mediad's {ctx.type} runner failed: {exc!r}")
        finally:
            cookies.remove_copy(ctx.work_dir)  # done, failed, paused or cancelled

    def _check_egress(self) -> None:
        """The egress guard's verdict fails the job with its cause: a refused connection
        whatever the tool made of it (a 403, a missing segment, a partial playlist); and
        when the tool failed (the JobFailed being handled, if any) a connection the guard
        could not make (no such name, refused, timed out) over the tool's words for it
        (a 502). See mediad.egress.causes."""
        import sys

        failed = sys.exception()
        if isinstance(failed, JobFailed):
            verdict = self.egress.verdict(failed.error_code, failed.message)
        else:
            verdict = self.egress.verdict()  # the tool succeeded
        if verdict is not None:
            raise JobFailed(verdict.error_code, verdict.message)

    async def _run_tool(self, ctx: JobContext) -> list[Path]:
        runner = RUNNERS.get(ctx.type)
        if runner is None:
            raise JobFailed("unsupported_type", f"this worker cannot run {ctx.type} jobs")
        ctx.toolkit = self.toolkit  # the environment, the fork server, the aria2 client
        return await runner(ctx)

    async def _fail(self, ctx: JobContext, code: str, message: str) -> None:
        await ctx.emitter.close()
        if code in ("disk_full", "too_large"):  # partial files are of no use and take the space
            await asyncio.to_thread(remove_tree, ctx.work_dir)
        log.info("failed: %s: %s", code, message, extra={"jobId": ctx.job_id})
        await self._emit(wire.FAILED, wire.FailedEvent(ctx.job_id, ctx.attempt, code, message))


def tools_environment(env: Mapping[str, str], proxy_url: str) -> dict[str, str]:
    """What every tool runs with: none of mediad's settings or secrets (``child_environment``:
    the worker's token, database URLs, anything secret-like) and no way around the egress
    guard."""
    return tool_environment(child_environment(env), proxy_url)


def _parsed(parse: Callable[[Any], T], name: str, data: Any) -> T | None:
    """A message from the server, or None (logged) when it is not one."""
    try:
        return parse(data)
    except InvalidEvent as exc:
        log.warning("ignored an invalid %s: %s", name, exc)
        return None


def main(settings: WorkerSettings, forks: ForkServer | None = None) -> int:
    """``forks``: the channel to the zygote, for a worker it forked (it forks the jobs)."""
    procs.die_with_parent(signal.SIGTERM)
    if settings.parent_pid is not None and os.getppid() != settings.parent_pid:
        return 1  # the service that started us is already gone
    # First of all, while this process has one thread: the fork server, which preloads
    # yt-dlp and forks every yt-dlp job (none from here, where the loop starts threads).
    if forks is None and not settings.ytdlp:
        forks = ForkServer.start(settings.ffmpeg)
    return asyncio.run(Worker(settings, forks).run())

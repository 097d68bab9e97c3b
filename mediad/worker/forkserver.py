"""The fork server: the one process that forks yt-dlp jobs, and it has a single thread.

A worker's event loop starts threads (``getaddrinfo``, ``asyncio.to_thread``, the child
watcher), and a child forked from a process with threads may inherit a lock another
thread held, and hang. So the worker forks this server before its event loop, its egress
proxy or any thread exists (``client.main``). The server preloads yt-dlp once
(``run_ytdlp.preload``), never starts a thread, and forks one fresh child per job:

* the channel: a ``SOCK_SEQPACKET`` socketpair, one JSON message per request or reply;
  a request names the entry point (``module:function``) and carries the job's argv, cwd,
  environment and process title, with the write end of the job's output pipe as
  ancillary data (``socket.send_fds``);
* before each fork the server runs the entry's ``prepare(argv)``, if it has one and its
  module is loaded here (``run_ytdlp.pick_extractor``): what it works out, the child
  inherits without paying for it in copied pages;
* the replies: ``{"id", "pid", "threads", "pythonThreads"}`` once forked (the server's
  thread counts at fork time: always 1), or ``{"id", "error"}``; ``{"exit": pid,
  "code"}`` when it has reaped a child (``code`` as ``waitstatus_to_exitcode``);
* the worker signals a child's process group itself (``os.killpg``, the same user) and
  reads its CPU ticks from /proc as for any tool (``procs.ToolProcess``); only waiting
  for the exit status goes through the server;
* dying: each child has a parent-death signal (SIGKILL) on the server, which has one on
  the worker, so a dead worker takes both down. A server that loses the worker (end of
  file) kills every child's group and exits; a worker that loses the server sees its
  children as killed (``-SIGKILL``) and calls ``on_lost``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import io
import logging
import os
import select
import signal
import socket
import sys
import threading
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from mediad.worker import procs

log = logging.getLogger(__name__)

TITLE = "mediad: fork-server"
# One request (argv and environment of one job) fits in this, and in a socket buffer.
MAX_MESSAGE = 1 << 17


class ForkServerLost(ConnectionError):
    """The fork server is gone (killed, or it failed); its children died with it."""


def thread_count() -> int:
    """This process's threads as the kernel counts them."""
    return len(os.listdir("/proc/self/task"))


def set_title(title: str) -> None:
    """What ``ps`` shows for this process (/proc/PID/cmdline)."""
    import setproctitle

    setproctitle.setproctitle(title)


class ForkedProcess(procs.ToolProcess):
    """A child of the fork server: waited for through the server, signalled directly."""

    def __init__(
        self,
        pid: int,
        reader: asyncio.StreamReader,
        waiter: asyncio.Future[int],
        server_threads: int,
    ) -> None:
        super().__init__(pid, reader, waiter)
        self.server_threads = server_threads  # the server's threads when it forked this


class Spawned(NamedTuple):
    """A child the server forked: its pid, its exit code to come (reported by the server),
    and the server's thread count when it forked it (always 1)."""

    pid: int
    exited: asyncio.Future[int]
    threads: int


class ForkServer:
    """The worker's end: ``start`` forks the server, ``fork`` asks it for a child."""

    def __init__(
        self, pid: int, sock: socket.socket, name: str = "fork server", *, ours: bool = True
    ) -> None:
        self.pid = pid
        self.name = name  # for the log
        self.ours = ours  # the server is this process's child (stop waits for its exit)
        self._sock = sock
        self._next_id = 0
        self._started: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._exits: dict[int, asyncio.Future[int]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self.lost = False
        # Called once if the server goes away while in use (the worker stops then).
        self.on_lost: Callable[[], None] | None = None

    @property
    def unreaped(self) -> int:
        """Children forked for us whose exit the server has not reported yet."""
        return len(self._exits)

    @classmethod
    def start(cls, ffmpeg: str | None = None, *, preload: bool = True) -> ForkServer:
        """Fork the server from this process (call it while this process has one thread)
        and return our end. ``preload``: do yt-dlp's start-up in it once."""
        if thread_count() != 1:
            log.warning("the fork server is started by a process with %d threads", thread_count())
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        worker = os.getpid()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        pid = os.fork()
        if pid == 0:  # never returns
            _server_main(theirs, worker, ffmpeg, preload)
        theirs.close()
        return cls(pid, ours)

    async def fork(
        self,
        entry: str,
        argv: Sequence[str],
        cwd: Path,
        env: Mapping[str, str] | None,
        title: str,
    ) -> ForkedProcess:
        """Run ``entry(argv)`` (``module:function``) in a fresh child of the server, in
        ``cwd`` with ``env`` (None: the server's), stdin closed, its stdout and stderr one
        pipe that the returned process reads."""
        read_fd, write_fd = os.pipe()
        try:
            try:
                child = await self.spawn(entry, argv, cwd, env, title, write_fd)
            finally:
                os.close(write_fd)
        except BaseException:
            os.close(read_fd)
            raise
        reader = await procs.reader_for(read_fd)
        return ForkedProcess(child.pid, reader, child.exited, child.threads)

    async def spawn(
        self,
        entry: str,
        argv: Sequence[str],
        cwd: Path,
        env: Mapping[str, str] | None,
        title: str,
        output_fd: int,
        *,
        channel: bool = False,
    ) -> Spawned:
        """As ``fork``, with the child's stdout and stderr on ``output_fd`` (a copy of it;
        the caller keeps its own). ``channel``: the child gets a channel of its own to the
        server (``ForkServer.inherited``) to ask for children of its own on."""
        if self.lost or self._closed:
            raise ForkServerLost("the fork server is gone")
        self.watch()
        assert self._loop is not None
        self._next_id += 1
        request_id = self._next_id
        request = {"id": request_id, "entry": entry, "argv": list(argv), "cwd": str(cwd),
                   "env": None if env is None else dict(env), "title": title,
                   "channel": channel}  # fmt: skip
        data = orjson.dumps(request)
        if len(data) > MAX_MESSAGE:
            raise ValueError(f"a fork request of {len(data)} bytes is too large")
        started = self._loop.create_future()
        self._started[request_id] = started
        try:
            try:
                socket.send_fds(self._sock, [data], [output_fd])
            except OSError as exc:
                self._lose()
                raise ForkServerLost(f"the fork server is gone: {exc}") from None
            reply = await started
            return Spawned(int(reply["pid"]), reply["exited"], int(reply["threads"]))
        finally:
            self._started.pop(request_id, None)

    def watch(self) -> None:
        """Read the server's replies on the running loop from now on (a server that dies
        is noticed at once, not at the next fork)."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._loop.add_reader(self._sock.fileno(), self._on_readable)

    def _on_readable(self) -> None:
        try:
            data = self._sock.recv(MAX_MESSAGE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._lose()
            return
        message = orjson.loads(data)
        if "exit" in message:
            exited = self._exits.pop(message["exit"], None)
            if exited is not None and not exited.done():
                exited.set_result(int(message["code"]))
            return
        self._on_started(message)

    def _on_started(self, message: dict[str, Any]) -> None:
        assert self._loop is not None
        pid = message.get("pid")
        if pid is not None:  # its exit may be read before the asker resumes: keep it here
            message["exited"] = self._exits[pid] = self._loop.create_future()
        started = self._started.get(message["id"])
        if started is None or started.done():  # whoever asked gave up: no orphan job
            if pid is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
            return
        if pid is None:
            started.set_exception(OSError(f"the fork server could not fork: {message['error']}"))
        else:
            started.set_result(message)

    def _lose(self) -> None:
        """The server is gone: so are its children (parent-death signal)."""
        if self.lost:
            return
        self.lost = True
        self._stop_listening()
        for started in self._started.values():
            if not started.done():
                started.set_exception(ForkServerLost("the fork server is gone"))
        for exited in self._exits.values():
            if not exited.done():
                exited.set_result(-signal.SIGKILL)
        self._exits.clear()
        if not self._closed:
            log.error("the %s (pid %d) is gone", self.name, self.pid)
            if self.on_lost is not None:
                self.on_lost()

    def _stop_listening(self) -> None:
        if self._loop is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self._sock.fileno())

    def close(self) -> None:
        """Close the channel without waiting (for a server that is not this process's
        child, or one whose exit someone else waits for): it kills what it still runs and
        exits."""
        self._closed = True
        self._stop_listening()
        self._sock.close()
        self._lose()

    @classmethod
    def inherited(cls) -> ForkServer:
        """The channel this process was given by the server that forked it (a child that
        asked for one: ``spawn(..., channel=True)``), on ``CHANNEL_FD``. Its server is
        this process's parent, not its child: ``stop`` only closes the channel, and the
        server kills what was forked on it."""
        sock = socket.socket(fileno=CHANNEL_FD)
        return cls(os.getppid(), sock, "zygote", ours=False)

    async def stop(self, grace_s: float = 5.0) -> int:
        """``close``, then wait for the server's exit code if it is this process's child
        (0 at once for an inherited channel)."""
        if not self.ours:
            self.close()
            return 0
        exited = procs.wait_child(self.pid)
        self.close()
        try:
            return await asyncio.wait_for(asyncio.shield(exited), grace_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            return await exited


# -- the server ----------------------------------------------------------------------------


def _server_main(
    sock: socket.socket, worker: int, ffmpeg: str | None, preload: bool, title: str = TITLE
) -> None:
    code = 0
    try:
        procs.die_with_parent(signal.SIGKILL)
        if os.getppid() != worker:
            os._exit(0)  # the worker died before it could have been noticed
        # Whatever the worker had set up (a loop, signal handlers) is not ours: the worker
        # stops us by closing the channel, never by a signal meant for it or its group.
        asyncio.events._set_running_loop(None)
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        keep = sock.fileno()
        os.closerange(3, keep)
        os.closerange(keep + 1, os.sysconf("SC_OPEN_MAX"))
        set_title(title)
        if preload:
            from mediad.worker import run_ytdlp

            run_ytdlp.preload(ffmpeg)
        _Server(sock).serve()
    except BaseException:
        with contextlib.suppress(BaseException):
            traceback.print_exc()
        code = 1
    finally:
        os._exit(code)


# The descriptor a child asked for with "channel" finds its own channel to the server on.
CHANNEL_FD = 3


class _Server:
    """The server's loop over its channels: the first one (``sock``, whoever started the
    server: its end ends the server) and one per child that asked for a channel of its
    own (``"channel": true``: the zygote's workers, who ask for their yt-dlp jobs on it).
    A child's exit is reported on the channel it was asked on; a channel that ends takes
    the children asked on it with it."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.pid = os.getpid()
        self.poller = select.poll()
        self.channels: dict[int, socket.socket] = {}  # fd → channel
        self.children: dict[int, tuple[int, int]] = {}  # pidfd → (pid, channel fd)
        self._add_channel(sock)

    def _add_channel(self, channel: socket.socket) -> None:
        self.channels[channel.fileno()] = channel
        self.poller.register(channel, select.POLLIN)

    def serve(self) -> None:
        try:
            while True:
                for fd, _ in self.poller.poll():
                    if not self._handle(fd):
                        return
        except _MainLost:  # the worker (or the service) is gone: a reply could not be sent
            pass
        finally:
            self._kill_all()

    def _handle(self, fd: int) -> bool:
        """One descriptor that poll found ready; False once the first channel has ended.
        One round of poll can name a descriptor that an earlier one in the same round
        took away (a worker's channel ended: its children were killed and reaped, their
        pidfds closed): that one is skipped."""
        if fd in self.channels:
            if self._request(fd):
                return True
            if fd == self.sock.fileno():
                return False
            self._drop(fd)
        elif fd in self.children:
            self._reap(fd)
        return True

    def _send(self, fd: int, message: dict[str, Any]) -> None:
        channel = self.channels.get(fd)
        if channel is None:
            return  # dropped already: nobody asks for that child's exit any more
        try:
            channel.send(orjson.dumps(message))
        except OSError:
            if fd == self.sock.fileno():
                raise _MainLost from None
            self._drop(fd)

    def _request(self, fd: int) -> bool:
        """Fork one child for the request waiting on channel ``fd``; False at its end."""
        try:
            data, fds, flags, _ = socket.recv_fds(self.channels[fd], MAX_MESSAGE, 1)
        except OSError:
            return False
        if not data:
            return False
        request = orjson.loads(data)
        if len(fds) != 1 or flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
            for received in fds:
                os.close(received)
            self._send(fd, {"id": request["id"], "error": "a malformed request"})
            return True
        _prepare(request)
        threads, python_threads = thread_count(), threading.active_count()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        own = (
            socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            if request.get("channel")
            else None
        )
        # The child says when it leads its own group: the worker may signal the group
        # (cancel, the watchdog) as soon as it hears the pid.
        ready_r, ready_w = os.pipe()
        try:
            pid = os.fork()
        except OSError as exc:
            for received in (fds[0], ready_r, ready_w):
                os.close(received)
            for end in own or ():
                end.close()
            self._send(fd, {"id": request["id"], "error": str(exc)})
            return True
        if pid == 0:  # never returns
            os.close(ready_r)
            _run_child(request, fds[0], self.pid, ready_w, own[1].fileno() if own else None)
        os.close(fds[0])
        os.close(ready_w)
        os.read(ready_r, 1)  # b"" if it died first: its exit is reported as any other
        os.close(ready_r)
        if own is not None:
            own[1].close()
            self._add_channel(own[0])
        pidfd = os.pidfd_open(pid)
        self.children[pidfd] = (pid, fd)
        self.poller.register(pidfd, select.POLLIN)
        self._send(fd, {"id": request["id"], "pid": pid, "threads": threads,
                        "pythonThreads": python_threads})  # fmt: skip
        return True

    def _reap(self, pidfd: int) -> None:
        pid, fd = self.children.pop(pidfd)
        self.poller.unregister(pidfd)
        os.close(pidfd)
        _, status = os.waitpid(pid, 0)
        self._send(fd, {"exit": pid, "code": os.waitstatus_to_exitcode(status)})

    def _drop(self, fd: int) -> None:
        """A child's channel ended (the child is gone, or closed it): kill and reap every
        child asked for on it."""
        channel = self.channels.pop(fd, None)
        if channel is None:
            return
        self.poller.unregister(fd)
        channel.close()
        self._kill([pidfd for pidfd, (_, asked_on) in self.children.items() if asked_on == fd])

    def _kill_all(self) -> None:
        self._kill(list(self.children))

    def _kill(self, pidfds: list[int]) -> None:
        for pidfd in pidfds:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.children[pidfd][0], signal.SIGKILL)
        for pidfd in pidfds:
            pid, _ = self.children.pop(pidfd)
            with contextlib.suppress(ValueError, KeyError):
                self.poller.unregister(pidfd)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            os.close(pidfd)


class _MainLost(Exception):
    """The server's first channel is gone."""


def _prepare(request: dict[str, Any]) -> None:
    """What an entry asks its server to work out before each fork: ``entry.prepare(argv)``
    of an entry whose module this server has loaded already (never imported here for a
    request). The child inherits what it leaves, so it costs the server once instead of
    every child's copied pages (``run_ytdlp.pick_extractor``). Its failure is printed
    and the child forked all the same: a preparation is only ever a shortcut."""
    module, _, function = str(request.get("entry") or "").partition(":")
    prepare = getattr(getattr(sys.modules.get(module), function, None), "prepare", None)
    if prepare is None:
        return
    try:
        prepare(list(request["argv"]))
    except Exception:
        with contextlib.suppress(Exception):
            traceback.print_exc()


def _entry_point(name: str) -> Callable[[list[str]], object]:
    module, _, function = name.partition(":")
    entry: Callable[[list[str]], object] = getattr(importlib.import_module(module), function)
    return entry


def _run_child(
    request: dict[str, Any], out_fd: int, server: int, ready_fd: int, channel: int | None
) -> None:
    """The job's child: its own session, fds 0-2 only (and its own channel to the server
    on ``CHANNEL_FD`` if it asked for one), the job's cwd and environment."""
    code: object = 1
    try:
        os.setsid()
        os.write(ready_fd, b"1")
        os.close(ready_fd)
        procs.die_with_parent(signal.SIGKILL)
        if os.getppid() != server:
            os._exit(1)  # the server died before it could have been noticed
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        set_title(str(request.get("title") or "mediad: tool"))
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(out_fd, 1)
        os.dup2(out_fd, 2)
        first_closed = CHANNEL_FD
        if channel is not None:
            os.dup2(channel, CHANNEL_FD, inheritable=False)
            first_closed += 1
        os.closerange(first_closed, os.sysconf("SC_OPEN_MAX"))
        os.chdir(request["cwd"])
        if request.get("env") is not None:  # yt-dlp and the ffmpeg it starts read these
            os.environ.clear()
            os.environ.update(request["env"])
        # Fresh streams on fds 1 and 2: whatever sys.stdout was in the server is not the pipe.
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), line_buffering=True)
        sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), line_buffering=True)
        code = _entry_point(request["entry"])(list(request["argv"]))
    except SystemExit as exc:
        code = exc.code
    except KeyboardInterrupt:
        code = 130
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        if code is None:
            code = 0
        elif not isinstance(code, int):
            with contextlib.suppress(BaseException):
                print(code, file=sys.stderr, flush=True)
            code = 1
        os._exit(code)

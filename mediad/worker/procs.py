"""Tool processes: each in its own session (so cancel, pause and the watchdog can signal
the whole group, children included), stdout and stderr merged into one line stream, and
a parent-death signal so that a tool never outlives its worker.

Two ways to start one: ``spawn`` runs an executable; ``fork_tool`` forks this process and
calls a Python entry point in the child. The second is for yt-dlp: the worker imports it
once, and each job costs a fork instead of ~0.9 s of interpreter start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import signal
import sys
import traceback
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

from mediad.parent_death import die_with_parent  # also procs.die_with_parent to callers

READ_LIMIT = 1 << 20

# The environment every tool gets (see ``use_environment``); None: this process's own.
_tool_env: dict[str, str] | None = None


def use_environment(env: dict[str, str]) -> None:
    """Start every tool from now on with ``env`` (the worker's, with the proxy variables
    pointing at its egress guard and no ``no_proxy`` to slip past it)."""
    global _tool_env
    _tool_env = dict(env)


class ToolProcess:
    def __init__(self, pid: int, reader: asyncio.StreamReader, waiter: asyncio.Future[int]) -> None:
        self.pid = pid
        self._reader = reader
        self._waiter = waiter

    async def lines(self) -> AsyncIterator[str]:
        """Output lines; a ``\\r``-separated update counts as a line too."""
        while True:
            try:
                raw = await self._reader.readuntil(b"\n")
            except asyncio.IncompleteReadError as exc:
                raw = exc.partial
                if not raw:
                    return
            except asyncio.LimitOverrunError:
                raw = await self._reader.read(READ_LIMIT)  # an absurdly long line: skip it
                continue
            for part in raw.decode("utf-8", "replace").replace("\r\n", "\n").split("\r"):
                part = part.rstrip("\n")
                if part:
                    yield part

    @property
    def output(self) -> asyncio.StreamReader:
        """The raw merged output, for a tool whose text ``lines()`` cannot split (twmd's
        prompts end without a newline)."""
        return self._reader

    async def wait(self) -> int:
        return await asyncio.shield(self._waiter)

    @property
    def returncode(self) -> int | None:
        return self._waiter.result() if self._waiter.done() else None

    def cpu_ticks(self) -> int:
        """CPU time used so far by the process group (clock ticks), children included."""
        return group_cpu_ticks(self.pid)

    def signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    async def stop(self, first: int = signal.SIGINT, grace_s: float = 5.0) -> int:
        """Signal the group, give it ``grace_s`` to finish, then kill what is left."""
        if self.returncode is None:
            self.signal_group(first)
            try:
                await asyncio.wait_for(self.wait(), grace_s)
            except TimeoutError:
                pass
        self.signal_group(signal.SIGKILL)  # children that outlived the leader, too
        return await self.wait()


def group_cpu_ticks(pgid: int) -> int:
    """utime + stime (+ those of reaped children) of every live process in a group."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        # Fields after the command: state ppid pgrp … utime(12) stime(13) cutime(14) cstime(15)
        if int(fields[2]) == pgid and fields[0] != b"Z":
            total += sum(int(v) for v in fields[11:15])
    return total


async def _reader_for(fd: int) -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=READ_LIMIT, loop=loop)
    pipe = os.fdopen(fd, "rb", buffering=0)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader, loop=loop), pipe)
    return reader


def _wait_pid(pid: int) -> asyncio.Future[int]:
    """A future for the exit code of a child we forked ourselves (via a pidfd)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[int] = loop.create_future()
    pidfd = os.pidfd_open(pid)

    def reap() -> None:
        loop.remove_reader(pidfd)
        os.close(pidfd)
        try:
            _, status = os.waitpid(pid, 0)
            code = os.waitstatus_to_exitcode(status)
        except ChildProcessError:
            code = -1  # reaped by someone else; the exit code is lost
        if not future.done():
            future.set_result(code)

    loop.add_reader(pidfd, reap)
    return future


async def spawn(argv: Sequence[str], cwd: Path, env: dict[str, str] | None = None) -> ToolProcess:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=env if env is not None else _tool_env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=die_with_parent,
        limit=READ_LIMIT,
    )
    assert proc.stdout is not None
    waiter = asyncio.ensure_future(proc.wait())
    return ToolProcess(proc.pid, proc.stdout, waiter)


async def fork_tool(
    entry: Callable[[list[str]], object], argv: list[str], cwd: Path
) -> ToolProcess:
    """Run ``entry(argv)`` in a forked child of this (already-imported) interpreter."""
    read_fd, write_fd = os.pipe()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        _child(entry, argv, cwd, write_fd)
    os.close(write_fd)
    reader = await _reader_for(read_fd)
    return ToolProcess(pid, reader, _wait_pid(pid))


def _child(entry: Callable[[list[str]], object], argv: list[str], cwd: Path, out_fd: int) -> None:
    code: object = 1
    try:
        os.setsid()
        die_with_parent(signal.SIGKILL)
        # The parent's event loop, signal handlers and sockets are not ours to use.
        asyncio.events._set_running_loop(None)
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(out_fd, 1)
        os.dup2(out_fd, 2)
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))
        os.chdir(cwd)
        if _tool_env is not None:  # yt-dlp and the ffmpeg it starts read these
            os.environ.clear()
            os.environ.update(_tool_env)
        # Fresh streams on fds 1 and 2: whatever sys.stdout was in the parent (a logging
        # redirect, a test's capture) is not the pipe.
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), line_buffering=True)
        sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), line_buffering=True)
        code = entry(argv)
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

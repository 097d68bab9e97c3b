"""Tool processes: each in its own session (so cancel, pause and the watchdog can signal
the whole group, children included), stdout and stderr merged into one line stream, and
a parent-death signal so that a tool never outlives its worker.

``spawn`` runs an executable with the environment it is given (the worker's tool
environment: ``JobContext.spawn``). yt-dlp is not an executable here: the worker's fork
server (``forkserver.py``) forks it from a preloaded interpreter that has one thread, so
each job costs a fork instead of ~0.9 s of interpreter start-up; its children are
``ToolProcess``es too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path

from mediad.parent_death import die_with_parent  # also procs.die_with_parent to callers

READ_LIMIT = 1 << 20


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


async def reader_for(fd: int) -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=READ_LIMIT, loop=loop)
    pipe = os.fdopen(fd, "rb", buffering=0)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader, loop=loop), pipe)
    return reader


def wait_child(pid: int) -> asyncio.Future[int]:
    """A future for the exit code of a child this process forked itself (via a pidfd)."""
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


async def spawn(
    argv: Sequence[str], cwd: Path, env: Mapping[str, str] | None = None
) -> ToolProcess:
    """Run ``argv`` in ``cwd`` with ``env`` (None: this process's environment)."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=env,
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

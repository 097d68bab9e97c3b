"""A zip of a job's files, streamed as it is written: nothing is staged on disk.

zipfile is synchronous, so it runs in a thread and hands chunks to the event loop through
a small queue; a client that goes away stops the thread at its next write.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import threading
import zipfile
from collections.abc import Sequence
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

CHUNK = 256 * 1024


class _Cancelled(Exception):
    pass


class _QueueWriter(io.RawIOBase):
    """A write-only, unseekable file whose bytes go to an asyncio queue in CHUNK pieces."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[bytes | None],
                 cancelled: threading.Event) -> None:  # fmt: skip
        super().__init__()
        self._loop = loop
        self._queue = queue
        self._cancelled = cancelled
        self._buffer = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: ReadableBuffer, /) -> int:
        view = memoryview(data)  # zipfile writes bytes; any buffer has its size in nbytes
        self._buffer += view
        if len(self._buffer) >= CHUNK:
            self._send(bytes(self._buffer))
            self._buffer.clear()
        return view.nbytes

    def flush(self) -> None:
        if self._buffer:
            self._send(bytes(self._buffer))
            self._buffer.clear()

    def _send(self, chunk: bytes | None) -> None:
        while True:
            if self._cancelled.is_set():
                raise _Cancelled
            future = asyncio.run_coroutine_threadsafe(self._queue.put(chunk), self._loop)
            try:
                future.result(timeout=1)
                return
            except TimeoutError:
                future.cancel()  # the reader is slow or gone: look at the flag again

    def finish(self) -> None:
        self.flush()
        self._send(None)


def _write_zip(files: Sequence[os.DirEntry[str]], out: _QueueWriter) -> None:
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for entry in files:
            zf.write(entry.path, arcname=entry.name)
    out.finish()


async def respond(
    request: web.Request, files: Sequence[os.DirEntry[str]], name: str
) -> web.StreamResponse:
    from mediad.web import content_disposition

    response = web.StreamResponse(
        headers={
            "Content-Type": "application/zip",
            "Content-Disposition": content_disposition(name),
        }
    )
    await response.prepare(request)
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=8)
    cancelled = threading.Event()
    writer = _QueueWriter(loop, queue, cancelled)
    producer = loop.run_in_executor(None, _write_zip, files, writer)
    try:
        while (chunk := await queue.get()) is not None:
            await response.write(chunk)
        await producer
    except BaseException:
        cancelled.set()
        while not queue.empty():
            queue.get_nowait()
        with contextlib.suppress(_Cancelled, Exception):
            await producer
        raise
    await response.write_eof()
    return response

"""The bulk of a download, origin to tool, relayed by the kernel: ``splice(2)`` from the
origin's socket into a pipe and from the pipe into the tool's socket, so that the bytes
never come up into Python (nor are copied twice, into it and out of it).

Relayed through the protocols (``relay.Pipe``), 200 MB from a loopback origin to aria2c
cost the proxy 0.136 s of CPU (0.126 of it in the kernel, copying each byte in from one
socket and out to the other); on 2 cores that is CPU taken from aria2c and the origin
while they download. Spliced it is 0.088 s, under uvloop and asyncio's own loop alike.

A relay hands over only once its connection is set up and checked: for a plain request
once the origin's response head has been read and rewritten, in a tunnel once the
tunnel is up, and in both only after ``SPLICE_AFTER_BYTES`` (a small download is over
before the hand-over would pay for itself), with nothing left in the tool's write buffer
(so that no byte overtakes one queued before it). The origin's transport then stops
reading; the pump reads its socket through a duplicate of its descriptor, and writes the
tool's socket through another. The other direction, tool to origin (request bodies, a
tunnel's TLS records), stays with the protocols. Not for an origin behind TLS (an
absolute-form ``https://`` request, which the proxy itself encrypts), nor where the
platform has no ``os.splice``.

What the protocols did, the pump does too: at most a pipe's worth (1 MiB) is in flight,
and a tool that does not read stops the reading from the origin; each read counts as
data for the relay's idle timer and in ``bytes_relayed``; the origin's end of file
closes the tool's connection once everything has been passed on; an error on either
side aborts both. Whatever ends the relay first closes the pump (``Relay`` calls
``close``), and with it the duplicates, which would otherwise keep both sockets open.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import Callable

SUPPORTED = hasattr(os, "splice")

# What a relay passes on through the protocols before it hands the rest to the kernel.
SPLICE_AFTER_BYTES = 256 * 1024
PIPE_BYTES = 1024 * 1024  # bytes in flight (the default pipe holds 64 KiB)
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_FLAGS = getattr(os, "SPLICE_F_MOVE", 1) | getattr(os, "SPLICE_F_NONBLOCK", 2)


class SplicePump:
    """Moves everything that arrives on ``source`` to ``target`` (two socket
    descriptors, duplicated here; the caller keeps its own) until the source's end of
    file (``on_eof``, once all of it is passed on) or an error on either side
    (``on_error``). ``on_data(n)`` is told of each read. ``close`` stops it at any time."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        source: int,
        target: int,
        *,
        on_data: Callable[[int], None],
        on_eof: Callable[[], None],
        on_error: Callable[[OSError], None],
    ) -> None:
        self.loop = loop
        self.on_data = on_data
        self.on_eof = on_eof
        self.on_error = on_error
        self.closed = False
        self._source = self._target = self._pipe_r = self._pipe_w = -1
        try:
            self._source = os.dup(source)
            self._target = os.dup(target)
            self._pipe_r, self._pipe_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            self._close_fds()
            raise
        with contextlib.suppress(OSError):  # a smaller pipe only means more calls
            fcntl.fcntl(self._pipe_w, _F_SETPIPE_SZ, PIPE_BYTES)
        self._pending = 0  # bytes in the pipe, not yet written to the target
        self._eof = False
        self._reading = self._writing = False

    def start(self) -> None:
        self._read_again()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._reading:
            self.loop.remove_reader(self._source)
        if self._writing:
            self.loop.remove_writer(self._target)
        self._reading = self._writing = False
        self._close_fds()

    # -- the loop's callbacks --------------------------------------------------------------

    def _on_readable(self) -> None:
        try:
            n = os.splice(self._source, self._pipe_w, PIPE_BYTES, flags=_FLAGS)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._fail(exc)
            return
        if n == 0:
            self._eof = True
            self._stop_reading()
            self._maybe_done()
            return
        self._pending += n
        self.on_data(n)
        if not self.closed:
            self._flush()

    def _on_writable(self) -> None:
        self._flush()

    # -- moving what is in the pipe --------------------------------------------------------

    def _flush(self) -> None:
        while self._pending:
            try:
                n = os.splice(self._pipe_r, self._target, self._pending, flags=_FLAGS)
            except (BlockingIOError, InterruptedError):
                # The tool is not reading: no more from the origin until it has room.
                self._stop_reading()
                if not self._writing:
                    self._writing = True
                    self.loop.add_writer(self._target, self._on_writable)
                return
            except OSError as exc:
                self._fail(exc)
                return
            self._pending -= n
        if self._writing:
            self._writing = False
            self.loop.remove_writer(self._target)
        if self._eof:
            self._maybe_done()
        else:
            self._read_again()

    def _read_again(self) -> None:
        if not self._reading and not self.closed:
            self._reading = True
            self.loop.add_reader(self._source, self._on_readable)

    def _stop_reading(self) -> None:
        if self._reading:
            self._reading = False
            self.loop.remove_reader(self._source)

    def _maybe_done(self) -> None:
        if self._eof and not self._pending and not self.closed:
            self.close()
            self.on_eof()

    def _fail(self, exc: OSError) -> None:
        self.close()
        self.on_error(exc)

    def _close_fds(self) -> None:
        for fd in (self._source, self._target, self._pipe_r, self._pipe_w):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._source = self._target = self._pipe_r = self._pipe_w = -1

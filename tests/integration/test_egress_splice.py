"""The egress proxy's kernel relay (``egress/splice.py``): once a download is under way,
its bytes from the origin to the tool are spliced, and everything the protocols did
still holds — whole and in order, flow control, a client or an origin that goes away,
the idle timeout, ``stop``, and no descriptor left behind.

Each case runs twice: in the test's own asyncio loop, and in a uvloop loop of its own
(in a thread), the loop the workers run. The media server, the proxy and the client all
live in the loop of the case.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import uvloop

from mediad.egress import EgressProxy
from mediad.netpolicy import NetPolicy
from tests.support.media import make_random_file, sha256_file
from tests.support.mediaserver import MediaServer
from tests.support.polling import eventually

BIG_BYTES = 24 * 1024 * 1024
POLICY = NetPolicy(allow_hosts=["127.0.0.1"])
CASE_TIMEOUT_S = 30


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("splice-media")
    make_random_file(root / "big.bin", BIG_BYTES, seed=11)
    make_random_file(root / "small.bin", 100 * 1024, seed=12)
    return root


Case = Callable[[Path], Awaitable[None]]


@pytest.fixture(params=["asyncio", "uvloop"])
def in_loop(request: pytest.FixtureRequest) -> Callable[[Case, Path], Awaitable[None]]:
    async def run(case: Case, media: Path) -> None:
        bounded = asyncio.wait_for(case(media), CASE_TIMEOUT_S)  # a failure, never a hang
        if request.param == "asyncio":
            await bounded
        else:
            await asyncio.to_thread(uvloop.run, bounded)

    return run


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def proxy_port(proxy: EgressProxy) -> int:
    return int(proxy.url.rsplit(":", 1)[1])


class Setup(NamedTuple):
    server: MediaServer
    proxy: EgressProxy
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    fds: int  # the process's descriptors before the client connected


@contextlib.asynccontextmanager
async def connected(media: Path, **proxy_options: Any) -> AsyncIterator[Setup]:
    """A media server, a proxy and a client connected to it. The client is aborted on the
    way out: a case that fails midway must not leave the media server waiting for a
    reader that is gone."""
    async with MediaServer(media) as server, EgressProxy(POLICY, **proxy_options) as proxy:
        fds = open_fds()
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy_port(proxy))
        try:
            yield Setup(server, proxy, reader, writer, fds)
        finally:
            writer.transport.abort()


def get(url: str) -> bytes:
    return f"GET {url} HTTP/1.1\r\nHost: ignored.example\r\nUser-Agent: test\r\n\r\n".encode()


async def read_all(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """The response head and its body, up to the proxy's close."""
    head = await reader.readuntil(b"\r\n\r\n")
    body = await reader.read()
    return head, body


async def settled(proxy: EgressProxy, fds: int) -> None:
    """The proxy has let go of everything: no connection, no relay task, no descriptor."""
    await eventually(lambda: proxy.connections == 0, timeout_s=10, what="connections closed")
    await eventually(lambda: open_fds() == fds, timeout_s=10, what=f"back to {fds} fds")


# -- the cases ------------------------------------------------------------------------------


async def plain_download(media: Path) -> None:
    async with connected(media) as (server, proxy, reader, writer, fds):
        writer.write(get(server.url("big.bin")))
        head, body = await read_all(reader)
        writer.close()
        assert head.startswith(b"HTTP/1.1 200") and b"connection: close" in head.lower()
        assert len(body) == BIG_BYTES
        assert hashlib.sha256(body).hexdigest() == sha256_file(media / "big.bin")
        assert proxy.bytes_spliced > BIG_BYTES // 2, proxy.bytes_spliced  # the kernel's
        assert proxy.bytes_relayed == len(head) + BIG_BYTES
        await settled(proxy, fds)


async def tunnel_download(media: Path) -> None:
    async with connected(media) as (server, proxy, reader, writer, fds):
        authority = server.base_url.removeprefix("http://")
        writer.write(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
        established = await reader.readuntil(b"\r\n\r\n")
        assert established.startswith(b"HTTP/1.1 200")
        # Through the tunnel, straight to the origin (which keeps the connection open).
        writer.write(
            b"GET /big.bin HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n"
            b"GET /small.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        await reader.readuntil(b"\r\n\r\n")
        body = await reader.readexactly(BIG_BYTES)
        assert hashlib.sha256(body).hexdigest() == sha256_file(media / "big.bin")
        head2, small = await read_all(reader)  # the second answer, after the first
        assert head2.startswith(b"HTTP/1.1 200")
        assert small == (media / "small.bin").read_bytes()
        writer.close()
        assert proxy.bytes_spliced > BIG_BYTES // 2
        await settled(proxy, fds)


async def small_download(media: Path) -> None:
    async with connected(media) as (server, proxy, reader, writer, fds):
        writer.write(get(server.url("small.bin")))
        _, body = await read_all(reader)
        writer.close()
        assert body == (media / "small.bin").read_bytes()
        assert proxy.bytes_spliced == 0  # over before a hand-over would pay
        await settled(proxy, fds)


async def slow_client(media: Path) -> None:
    async with connected(media) as (server, proxy, reader, writer, fds):
        writer.write(get(server.url("big.bin")))
        await reader.readuntil(b"\r\n\r\n")
        start = await reader.readexactly(2 * 1024 * 1024)  # the hand-over is behind us
        await eventually(lambda: proxy.bytes_spliced > 0, timeout_s=10, what="spliced")
        # Then not reading: the pump must stop reading the origin, not fill up.
        seen: list[int] = []

        def stalled() -> bool:  # the same count four polls (0.3 s) in a row
            seen.append(proxy.bytes_relayed)
            return len(seen) >= 4 and len(set(seen[-4:])) == 1

        await eventually(stalled, timeout_s=10, interval_s=0.1, what="relay to stall")
        assert seen[-1] < BIG_BYTES // 3, "the proxy kept reading from the origin"
        rest = await reader.read()
        writer.close()
        body = start + rest
        assert len(body) == BIG_BYTES
        assert hashlib.sha256(body).hexdigest() == sha256_file(media / "big.bin")
        await settled(proxy, fds)


async def client_leaves(media: Path) -> None:
    async with connected(media) as (server, proxy, reader, writer, fds):
        writer.write(get(server.url("big.bin", rate=8_000_000)))
        await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(1024 * 1024)
        await eventually(lambda: proxy.bytes_spliced > 0, timeout_s=10, what="spliced")
        writer.transport.abort()
        await settled(proxy, fds)
        cut = await eventually(
            lambda: [s for s in server.served if s.path == "big.bin"],
            timeout_s=10,
            what="the origin's response ended",
        )
        assert cut[0].bytes_sent < BIG_BYTES  # the origin saw its client leave


async def origin_resets(media: Path) -> None:
    """An origin that promises 8 MiB, sends 2 and resets: the client's answer ends short
    (never a hang), and the proxy lets go of everything."""
    chunk = os.urandom(2 * 1024 * 1024)

    async def origin(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 8388608\r\n\r\n" + chunk)
        await writer.drain()
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # an RST, not a FIN

    resetting = await asyncio.start_server(origin, "127.0.0.1", 0)
    port = resetting.sockets[0].getsockname()[1]
    async with resetting, connected(media) as (_, proxy, reader, writer, fds):
        writer.write(get(f"http://127.0.0.1:{port}/x"))
        await reader.readuntil(b"\r\n\r\n")
        got = b""
        async with asyncio.timeout(10):
            try:
                while data := await reader.read(1024 * 1024):
                    got += data
            except ConnectionResetError:
                pass
        writer.close()
        assert got == chunk[: len(got)] and len(got) <= len(chunk)
        await settled(proxy, fds)


async def idle_origin(media: Path) -> None:
    async with connected(media, idle_timeout_s=0.3) as (server, proxy, reader, writer, fds):
        stall = 3 * 1024 * 1024
        writer.write(get(server.url("big.bin", stall_after=stall)))
        async with asyncio.timeout(10):
            _, body = await read_all(reader)  # until the proxy gives up on the origin
        writer.close()
        assert len(body) == stall and proxy.bytes_spliced > 0
        await settled(proxy, fds)


async def stop_mid_download(media: Path) -> None:
    # (connected's own stop() of the proxy, after ours, does nothing)
    async with connected(media) as (server, proxy, reader, writer, fds):
        writer.write(get(server.url("big.bin", rate=8_000_000)))
        await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(1024 * 1024)
        await eventually(lambda: proxy.bytes_spliced > 0, timeout_s=10, what="spliced")
        async with asyncio.timeout(10):
            await proxy.stop()
            while await reader.read(1024 * 1024):  # the client sees the end
                pass
        writer.close()
        # Everything let go of, the proxy's listening socket too.
        await eventually(lambda: open_fds() == fds - 1, timeout_s=10, what="fds released")


# -- the tests ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "case",
    [
        plain_download,
        tunnel_download,
        small_download,
        slow_client,
        client_leaves,
        origin_resets,
        idle_origin,
        stop_mid_download,
    ],
    ids=lambda case: case.__name__,
)
async def test_spliced_relay(
    in_loop: Callable[[Case, Path], Awaitable[None]], case: Case, media: Path
) -> None:
    await in_loop(case, media)

"""The egress proxy records each connection it could not make, with a reason a person
can act on, and the worker's verdict comes from there. Loopback sockets only; names are
answered by a fixed table, never by DNS."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator

import pytest

from mediad.egress import EgressProxy, UpstreamFailure, Verdict
from mediad.egress import proxy as proxy_module
from mediad.netpolicy import NetPolicy

pytestmark = pytest.mark.timeout(30)


async def table_resolver(host: str, port: int) -> list[str]:
    if host == "site.test":
        return ["127.0.0.1"]
    if host == "empty.test":
        return []
    if host == "slow.test":
        await asyncio.Event().wait()  # never answers
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


@pytest.fixture
async def proxy() -> AsyncIterator[EgressProxy]:
    policy = NetPolicy(allow_hosts=["127.0.0.1", "site.test"])
    async with EgressProxy(policy, resolver=table_resolver, connect_timeout_s=0.3) as proxy:
        yield proxy


@pytest.fixture
def closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now: a connection is refused
    return int(port)


@pytest.fixture
def full_backlog() -> Iterator[int]:
    """A port whose accept queue is full: the kernel drops further SYNs, so a connect
    neither succeeds nor fails until its deadline."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(3):
        sock = socket.socket()
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", port))
        fillers.append(sock)
    yield int(port)
    for sock in [*fillers, listener]:
        sock.close()


async def ask(proxy: EgressProxy, request: bytes) -> tuple[int, str]:
    """The proxy's status and X-Mediad-Egress header for ``request``."""
    port = int(proxy.url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        async with asyncio.timeout(10):
            data = await reader.read()
    finally:
        writer.close()
    head = data.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
    headers = dict(line.partition(": ")[::2] for line in head[1:])
    return int(head[0].split()[1]), headers.get("X-Mediad-Egress", "")


def get(url: str) -> bytes:
    return f"GET {url} HTTP/1.1\r\nHost: x\r\n\r\n".encode()


def connect(authority: str) -> bytes:
    return f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode()


async def test_a_name_that_does_not_resolve(proxy: EgressProxy) -> None:
    # The tool's answer is unchanged (a 502 naming the cause in X-Mediad-Egress) ...
    for request in (get("http://www.example.invalid/x.mp4"), connect("www.example.invalid:443")):
        status, header = await ask(proxy, request)
        assert status == 502 and header.startswith("cannot resolve www.example.invalid (")
    # ... and the failure is recorded, in words for people.
    reason = "could not resolve www.example.invalid (Name or service not known)"
    assert list(proxy.failures) == [
        UpstreamFailure("www.example.invalid", 80, None, "unresolved", reason),
        UpstreamFailure("www.example.invalid", 443, None, "unresolved", reason),
    ]
    assert proxy.blocked == []


async def test_a_resolver_that_answers_nothing_or_never(proxy: EgressProxy) -> None:
    assert (await ask(proxy, get("http://empty.test/")))[0] == 502
    assert (await ask(proxy, get("http://slow.test/")))[0] == 502
    assert [f.reason for f in proxy.failures] == [
        "could not resolve empty.test (no address)",
        "could not resolve slow.test (no answer within 0.3 s)",
    ]


async def test_a_refused_port(proxy: EgressProxy, closed_port: int) -> None:
    status, header = await ask(proxy, get(f"http://127.0.0.1:{closed_port}/x"))
    assert status == 502 and header.startswith(f"cannot connect to 127.0.0.1:{closed_port}")
    assert (await ask(proxy, connect(f"site.test:{closed_port}")))[0] == 502
    assert list(proxy.failures) == [
        UpstreamFailure(
            "127.0.0.1",
            closed_port,
            "127.0.0.1",
            "refused",
            f"connection to 127.0.0.1:{closed_port} refused",
        ),
        UpstreamFailure(
            "site.test",
            closed_port,
            "127.0.0.1",
            "refused",
            f"connection to site.test:{closed_port} (127.0.0.1) refused",
        ),
    ]


async def test_a_connection_that_times_out(proxy: EgressProxy, full_backlog: int) -> None:
    assert (await ask(proxy, connect(f"127.0.0.1:{full_backlog}")))[0] == 502
    [failure] = proxy.failures
    assert failure.cause == "timeout"
    assert failure.reason == (
        f"connection to 127.0.0.1:{full_backlog} timed out (no answer within 0.3 s)"
    )


async def test_an_origin_that_does_not_speak_http(proxy: EgressProxy) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(garbage, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        assert await ask(proxy, get(f"http://127.0.0.1:{port}/")) == (
            502,
            "no valid HTTP response from the origin",
        )
    finally:
        server.close()
        await server.wait_closed()
    [failure] = proxy.failures
    assert (failure.cause, failure.reason) == (
        "bad_response",
        f"127.0.0.1:{port} did not answer with HTTP",
    )
    assert proxy.verdict("tool_failed", "x") == Verdict("http_error", failure.reason)


async def test_a_tls_origin_that_fails_the_handshake(proxy: EgressProxy) -> None:
    async def plain(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            await reader.read(100)
            writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")  # not a TLS record
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(plain, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        assert (await ask(proxy, get(f"https://127.0.0.1:{port}/")))[0] == 502
    finally:
        server.close()
        await server.wait_closed()
    [failure] = proxy.failures
    assert failure.cause == "tls"
    assert failure.reason == f"TLS with 127.0.0.1:{port} failed: WRONG_VERSION_NUMBER"
    assert failure.error_code == "network"


async def test_verdict_and_clear(proxy: EgressProxy, closed_port: int) -> None:
    await ask(proxy, get(f"http://127.0.0.1:{closed_port}/x"))
    refused = Verdict("network", f"connection to 127.0.0.1:{closed_port} refused")
    assert proxy.verdict("http_error", "HTTP Error 502: Bad Gateway") == refused
    assert proxy.verdict("not_found", "HTTP Error 404: Not Found") is None
    assert proxy.verdict() is None  # the tool succeeded
    await ask(proxy, get("http://127.0.0.2/x"))  # loopback, not allowed
    assert proxy.verdict() == Verdict(
        "blocked_address",
        "refused a connection to 127.0.0.2:80: loopback address 127.0.0.2"
        " (network.allow_private / network.allow_hosts)",
    )
    proxy.clear()
    assert list(proxy.failures) == [] and proxy.blocked == []
    assert proxy.verdict("tool_failed", "x") is None


async def test_failures_kept_are_bounded(
    proxy: EgressProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert proxy.failures.maxlen == proxy_module.MAX_FAILURES
    for i in range(proxy_module.MAX_FAILURES + 5):
        proxy.record_failure(UpstreamFailure(f"h{i}.test", 80, None, "unresolved", f"r{i}"))
    assert len(proxy.failures) == proxy_module.MAX_FAILURES
    assert proxy.failures[-1].reason == f"r{proxy_module.MAX_FAILURES + 4}"  # the newest kept


async def test_a_good_request_records_nothing(proxy: EgressProxy) -> None:
    async def ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(ok, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        assert (await ask(proxy, get(f"http://site.test:{port}/")))[0] == 200
    finally:
        server.close()
        await server.wait_closed()
    assert list(proxy.failures) == [] and proxy.blocked == []

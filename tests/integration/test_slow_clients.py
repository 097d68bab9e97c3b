"""Slow and greedy clients: partial request heads and short bodies are closed within the
configured timeouts, a body announced too large is refused at once, connections beyond a
client's share are closed when accepted, and /health keeps answering throughout — also
when 1,100 such sockets meet a 1,024-descriptor limit."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from mediad.service import Service
from tests.support.harness import Databases, RedisServer, running_service, shared_tmp
from tests.support.polling import eventually
from tests.support.ports import fixed_port

HEADER_TIMEOUT_S = 1.0
BODY_TIMEOUT_S = 1.0
PER_CLIENT = 40
# How long past a timeout a connection may take to be closed, on a busy machine.
MARGIN_S = 5.0
ATTACKER = "127.0.0.2"  # another loopback address: another client


@pytest.fixture(scope="module")
async def service(new_module_config: Any) -> AsyncIterator[Service]:
    config = await new_module_config(
        server={
            "header_timeout_s": HEADER_TIMEOUT_S,
            "body_timeout_s": BODY_TIMEOUT_S,
            "max_connections_per_client": PER_CLIENT,
        },
        workers={"processes": 1},
    )
    async with running_service(config) as service:
        yield service


async def connect(port: int, source: str = "127.0.0.1") -> tuple[Any, Any]:
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def closed_within(reader: asyncio.StreamReader, timeout_s: float) -> bytes:
    """What the server sent before closing; fails if it is still open after timeout_s."""
    data = b""
    async with asyncio.timeout(timeout_s):
        with contextlib.suppress(ConnectionResetError):  # closed at once: a reset
            while chunk := await reader.read(65536):
                data += chunk
    return data


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


async def health(base: str) -> int:
    async with aiohttp.ClientSession() as http, http.get(f"{base}/health") as resp:
        return resp.status


async def test_a_partial_request_head_is_closed_after_the_header_timeout(
    service: Service,
) -> None:
    assert service.port is not None
    reader, writer = await connect(service.port)
    started = time.monotonic()
    writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    await writer.drain()
    assert await closed_within(reader, HEADER_TIMEOUT_S + MARGIN_S) == b""
    assert time.monotonic() - started >= HEADER_TIMEOUT_S * 0.9
    await close(writer)


async def test_an_idle_connection_is_closed_after_the_header_timeout(service: Service) -> None:
    assert service.port is not None
    reader, writer = await connect(service.port)
    assert await closed_within(reader, HEADER_TIMEOUT_S + MARGIN_S) == b""
    await close(writer)


async def test_a_body_announced_too_large_is_refused_at_once(service: Service) -> None:
    assert service.port is not None
    reader, writer = await connect(service.port)
    writer.write(
        b"POST /downloads HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000000000000\r\n\r\n{}"
    )
    await writer.drain()
    answer = await closed_within(reader, MARGIN_S)  # no waiting for a body timeout
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b'"payload_too_large"' in answer
    await close(writer)


async def test_a_short_body_is_answered_408_after_the_body_timeout(service: Service) -> None:
    assert service.port is not None
    reader, writer = await connect(service.port)
    started = time.monotonic()
    writer.write(
        b"POST /downloads HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n{}"
    )
    await writer.drain()
    answer = await closed_within(reader, BODY_TIMEOUT_S + MARGIN_S)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b'"request_timeout"' in answer
    assert time.monotonic() - started >= BODY_TIMEOUT_S * 0.9
    await close(writer)


async def test_a_client_gets_its_share_of_connections_and_health_answers(
    service: Service,
) -> None:
    """Three times the share of slow sockets from one address: the excess is closed when
    accepted, /health answers for everyone else all along, and the rest go at the header
    timeout."""
    assert service.port is not None
    base = service.base_url
    held = []
    for _ in range(PER_CLIENT * 3):
        reader, writer = await connect(service.port, ATTACKER)
        writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finished
        held.append((reader, writer))
    assert await health(base) == 200

    async def closed(pair: tuple[Any, Any]) -> bool:
        with contextlib.suppress(TimeoutError):
            await closed_within(pair[0], 0.01)
            return True
        return False

    async def refused() -> bool:
        return sum([await closed(p) for p in held]) >= PER_CLIENT * 2

    await eventually(refused, timeout_s=MARGIN_S, interval_s=0.05, what="the excess closed")
    assert await health(base) == 200
    # Within its share, the same address may still be served once its slow sockets go.
    await eventually(
        lambda: shut_all(held), timeout_s=HEADER_TIMEOUT_S + MARGIN_S, what="all closed"
    )
    async with aiohttp.ClientSession() as http:
        from_attacker = aiohttp.TCPConnector(local_addr=(ATTACKER, 0))
        async with (
            aiohttp.ClientSession(connector=from_attacker) as attacker,
            attacker.get(f"{base}/health") as resp,
        ):
            assert resp.status == 200
        async with http.get(f"{base}/health") as resp:
            assert resp.status == 200
    for _, writer in held:
        await close(writer)


async def shut_all(held: list[tuple[Any, Any]]) -> bool:
    for reader, _ in held:
        try:
            await closed_within(reader, 0.01)
        except TimeoutError:
            return False
    return True


# --- the case: a 1,024-descriptor limit -----------------------------------------


def _limit_files() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))


@pytest.mark.slow
async def test_1100_slow_sockets_do_not_exhaust_1024_descriptors(
    databases: Databases, redis_server: RedisServer
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1300:
        pytest.skip("this test needs 1,300 descriptors of its own")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1300), hard))
    state = shared_tmp("mediad-test-slow-")
    port = fixed_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIAD_")}
    env.update(
        DATABASE_URL=await databases.create(),
        REDIS_URL=redis_server.url,
        MEDIAD_REDIS_PREFIX=f"mediad-slow-{os.getpid()}:",
        MEDIAD_STORAGE_STATE_DIR=str(state),
        MEDIAD_SERVER_PORT=str(port),
        MEDIAD_SERVER_HEADER_TIMEOUT_S="3",
        MEDIAD_WORKERS_PROCESSES="1",
    )
    log = state / "serve.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mediad", "serve"], env=env, stderr=err, preexec_fn=_limit_files
        )
    held: list[tuple[Any, Any]] = []
    try:

        async def up() -> bool:
            assert proc.poll() is None, log.read_text()[-2000:]
            with contextlib.suppress(aiohttp.ClientError):
                return await health(base) == 200
            return False

        await eventually(up, timeout_s=60, interval_s=0.1, what="mediad serve")
        for _ in range(1100):
            with contextlib.suppress(OSError):
                reader, writer = await connect(port, ATTACKER)
                writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                held.append((reader, writer))
        for _ in range(5):
            assert await health(base) == 200
        await eventually(lambda: shut_all(held), timeout_s=3 + MARGIN_S, what="all closed")
        assert await health(base) == 200
        assert proc.poll() is None
        assert b"Too many open files" not in log.read_bytes()
    finally:
        for _, writer in held:
            await close(writer)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        shutil.rmtree(state, ignore_errors=True)

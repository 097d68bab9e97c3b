"""Bad Socket.IO input against `mediad serve` as users run it (JSON logs on stderr): each
malformed packet is answered by closing its connection, logged at most once per connection
in one line and without a traceback, and the service carries on."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.support.harness import Databases, RedisServer, shared_tmp
from tests.support.jobs_client import JobsClient
from tests.support.polling import eventually
from tests.support.ports import fixed_port

BAD_PACKETS = {
    "truncated": '42/jobs,["subscribe",',  # the 21 bytes
    "deep_array": '42/jobs,["subscribe",' + "[" * 1050 + "]" * 1050 + "]",
    "huge_number": '42/jobs,["subscribe",' + "9" * 4301 + "]",
    "event_not_a_list": '42/jobs,{"subscribe":1}',
    "unknown_type": "47/jobs,[]",
    "other_namespace": '42/nope,["subscribe",{}]',
    "engineio_garbage": "9zz",
    "too_many_attachments": '4599-/jobs,["subscribe",{"_placeholder":true,"num":0}]',
}
REPEATS = 50


class Serve:
    def __init__(self, state: Path, dsn: str, redis_url: str) -> None:
        self.state = state
        self.port = fixed_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = state / "serve.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIAD_")}
        env.update(
            DATABASE_URL=dsn,
            REDIS_URL=redis_url,
            MEDIAD_REDIS_PREFIX=f"mediad-sockin-{os.getpid()}:",
            MEDIAD_STORAGE_STATE_DIR=str(state),
            MEDIAD_SERVER_PORT=str(self.port),
            MEDIAD_WORKERS_PROCESSES="1",
        )
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mediad", "serve"], env=self.env, stderr=log
            )
        async with aiohttp.ClientSession() as http:

            async def healthy() -> bool:
                assert self.proc is not None and self.proc.poll() is None, self.log.read_text()
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"{self.base}/health") as resp:
                        return resp.status == 200
                return False

            await eventually(healthy, timeout_s=60, interval_s=0.1, what="mediad serve")

    def stop(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
async def serve(databases: Databases, redis_server: RedisServer) -> AsyncIterator[Serve]:
    state = shared_tmp("mediad-test-sockin-")
    server = Serve(state, await databases.create(), redis_server.url)
    await server.start()
    try:
        yield server
    finally:
        server.stop()
        import shutil

        shutil.rmtree(state, ignore_errors=True)


async def flood_websocket(base: str, packet: str) -> None:
    """One connection on /jobs that sends ``packet`` REPEATS times, as fast as it can."""
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{base}/socket.io/?EIO=4&transport=websocket") as ws,
    ):
        assert (await ws.receive_str()).startswith("0{")
        await ws.send_str("40/jobs,")
        assert (await ws.receive_str()).startswith("40/jobs,")
        with contextlib.suppress(ConnectionError, aiohttp.ClientError):
            for _ in range(REPEATS):
                await ws.send_str(packet)
        # The server answers by closing the connection.
        message = await asyncio.wait_for(ws.receive(), 10)
        while message.type == aiohttp.WSMsgType.TEXT:
            assert message.data in ("1", "2"), message.data  # close (or a ping before it)
            message = await asyncio.wait_for(ws.receive(), 10)
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)


async def flood_polling(base: str, body: str) -> int:
    """One polling session that posts ``body`` REPEATS times; the statuses it got."""
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/socket.io/?EIO=4&transport=polling") as resp:
            sid = json.loads((await resp.text())[1:])["sid"]
        url = f"{base}/socket.io/?EIO=4&transport=polling&sid={sid}"
        async with http.post(url, data="40/jobs,") as resp:
            assert resp.status == 200
        statuses = set()
        for _ in range(REPEATS):
            async with http.post(url, data=body) as resp:
                statuses.add(resp.status)
        return max(statuses)


def log_lines(path: Path, offset: int) -> list[str]:
    return path.read_bytes()[offset:].decode().splitlines()


async def test_malformed_packets_cost_one_log_line_per_connection(serve: Serve) -> None:
    offset = serve.log.stat().st_size
    await asyncio.gather(*(flood_websocket(serve.base, p) for p in BAD_PACKETS.values()))
    polling = ["9zz", '42/jobs,["subscribe",', "\x00\xff"]
    statuses = await asyncio.gather(*(flood_polling(serve.base, b) for b in polling))
    assert all(s == 400 for s in statuses), statuses
    connections = len(BAD_PACKETS) + len(polling)

    async def settled() -> list[str]:
        lines = log_lines(serve.log, offset)
        return lines if len(lines) >= connections else []

    lines = await eventually(settled, timeout_s=10, what="one line per connection")
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    closed = [e for e in entries if "closed a Socket.IO connection" in e["msg"]]
    assert len(closed) == connections, [e["msg"] for e in entries]
    assert all(e["level"] == "warning" and "\n" not in e["msg"] for e in closed)
    assert not [e for e in entries if "exc" in e or "Traceback" in json.dumps(e)]
    # Whatever else was logged in the meantime ("Invalid session" for polling posts
    # after their session was closed) is one line too, and little of it.
    assert len(entries) <= connections + len(polling), [e["msg"] for e in entries]
    assert sum(len(line) for line in lines) < 10_000
    # The service carries on.
    async with JobsClient(serve.base) as client:
        assert await client.subscribe(all=True) == {"ok": True}
    async with aiohttp.ClientSession() as http, http.get(f"{serve.base}/health") as resp:
        assert resp.status == 200

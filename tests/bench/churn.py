"""Socket.IO connection churn: the memory of a server while clients connect to ``/jobs``
and leave, round after round. It prints the curve (RSS of the server process after each
round) and asserts nothing.

    python -m tests.bench churn                   # `mediad serve`, 5 rounds x 2,000
    python -m tests.bench.churn bare              # a bare python-socketio server
    python -m tests.bench.churn bare --no-fix     # ... without mediad's workaround

Each cycle is what a browser tab does when it opens and closes: a websocket, Engine.IO's
open packet, a Socket.IO connect to ``/jobs`` and its answer, a disconnect, the close.
``CONCURRENCY`` cycles run at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp

CONCURRENCY = 20


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def cycle(http: aiohttp.ClientSession, base: str) -> None:
    async with http.ws_connect(f"{base}/socket.io/?EIO=4&transport=websocket") as ws:
        opened = await ws.receive_str()
        assert opened.startswith("0{"), opened
        await ws.send_str("40/jobs,")
        answer = await ws.receive_str()
        assert answer.startswith("40/jobs,"), answer
        await ws.send_str("41/jobs,")


async def _runner(http: aiohttp.ClientSession, base: str, pending: Iterator[int]) -> None:
    for _ in pending:  # shared: the runners take cycles from it until none are left
        await cycle(http, base)


async def rounds(base: str, pid: int, count: int, cycles: int, label: str) -> list[float]:
    """``count`` rounds of ``cycles`` connect/close cycles; RSS (MiB) before and after each."""
    curve = [rss_mib(pid)]
    print(f"{label}: RSS of pid {pid} before: {curve[0]:.1f} MiB", flush=True)
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as http:
        for n in range(1, count + 1):
            started = time.perf_counter()
            pending = iter(range(cycles))
            await asyncio.gather(*(_runner(http, base, pending) for _ in range(CONCURRENCY)))
            took = time.perf_counter() - started
            curve.append(rss_mib(pid))
            print(
                f"  round {n}: {cycles} cycles in {took:.1f} s, RSS {curve[-1]:.1f} MiB"
                f" ({curve[-1] - curve[-2]:+.1f})",
                flush=True,
            )
    print(f"  {label}: {curve[0]:.1f} -> {curve[-1]:.1f} MiB over {count} x {cycles} cycles")
    return curve


# --- a bare python-socketio server, for the upstream report -----------------------------


def serve_bare(port: int, fix: bool) -> None:
    """python-socketio on aiohttp with one ``/jobs`` namespace and nothing else."""
    import socketio
    from aiohttp import web

    sio = socketio.AsyncServer(async_mode="aiohttp")
    if fix:
        from mediad.sockets import release_closed_sessions

        release_closed_sessions(sio.eio)
    app = web.Application()
    sio.attach(app)

    async def connect(sid: str, environ: dict, auth: object = None) -> None:
        return None

    sio.on("connect", connect, namespace="/jobs")

    async def collect(request: web.Request) -> web.Response:
        gc.collect()
        return web.Response(text="ok")

    app.router.add_get("/gc", collect)
    web.run_app(app, host="127.0.0.1", port=port, print=None)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def bare_server(fix: bool) -> AsyncIterator[tuple[str, int]]:
    from mediad.daemons import free_port

    port = free_port()
    argv = [sys.executable, "-m", "tests.bench.churn", "serve-bare", str(port)]
    proc = subprocess.Popen([*argv, *([] if fix else ["--no-fix"])])
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            deadline = time.monotonic() + 30
            while True:
                try:
                    async with http.get(f"{base}/gc"):
                        break
                except aiohttp.ClientError:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.05)
        yield base, proc.pid
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)


async def bare(count: int, cycles: int, fix: bool) -> None:
    label = "bare python-socketio" + (" with mediad's workaround" if fix else "")
    async with bare_server(fix) as (base, pid):
        await rounds(base, pid, count, cycles, label)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.churn")
    parser.add_argument("what", choices=["bare", "serve-bare"])
    parser.add_argument("port", nargs="?", type=int)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cycles", type=int, default=2000)
    parser.add_argument("--no-fix", action="store_true")
    args = parser.parse_args()
    if args.what == "serve-bare":
        serve_bare(args.port, fix=not args.no_fix)
    else:
        asyncio.run(bare(args.rounds, args.cycles, fix=not args.no_fix))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()

"""Speed benchmarks (issue 8), run by hand: `make bench` runs them all after the others,
`python -m tests.bench.speed NAME...` runs some. Each prints its figure, a baseline
measured in the same run and the ratio; none asserts anything.

* ytdlp: tiny (1 KiB) yt-dlp jobs through mediad at concurrency 3, against one `yt-dlp`
  process per URL 3 at a time and against yt-dlp looping inside one process;
* aria2: tiny aria2 jobs through mediad, against bare `aria2c` per URL 3 at a time;
* overhead: the pipeline itself (POST → queue → dispatch → worker → completed → row) with
  a tool stand-in that does nothing (tools.ytdlp pointed at a shell script that writes
  the file and prints yt-dlp's `[file]` line): jobs/s at concurrency 3 and ms per job
  one at a time;
* reads: `GET /downloads/{id}`, `GET /downloads` (a page of 50) and `GET /health` at 50
  connections, against a bare aiohttp app answering the same bodies (the load generator
  is `wrk` when installed, else an aiohttp client loop: the output says which). The first
  two are measured twice: the same request every time, and a mix (each of the 50 jobs in
  turn; pages of 41 to 50, which share one read; pages of 40 after ten different jobs,
  which share nothing), since reads that arrive together for the same thing share a
  query. Each also prints CPU per request: mediad's processes (serve, PostgreSQL...)
  against the bare app's (this process; wrk's own is in neither);
* idle: RSS and PSS per process of serve, its workers and aria2c after the tiny jobs;
* ingest: progress events/s from 3 stand-in workers on /worker to one /jobs client,
  through mediad serve (no local workers) and through a bare python-socketio relay.

Everything runs over loopback against the tests' media server, bounded in count and time.
The machine may be shared: run it three times and take medians.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from mediad.daemons import free_port
from mediad.worker import run_ytdlp
from tests.bench.__main__ import (
    Serve,
    children,
    command_name,
    memory_kib,
    pss_kib,
    uss_kib,
    zygote_sharing,
)
from tests.support.harness import shared_tmp
from tests.support.mediaserver import MediaServer
from tests.support.proctree import worker_tree

METUBE_JOBS_S = 9.1  # issue 8's side-by-side figure for MeTube (not measured here)
TINY = 1024


@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    """Serve() copies os.environ: set extra MEDIAD_* settings around it."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _ratio(ours: float, base: float) -> str:
    return f"{ours / base:.2f}x" if base else "n/a"


async def _through_mediad(serve: Serve, urls: list[str], job_type: str) -> float:
    """Post every URL at once; jobs/s from the first POST to the last ``completed``, followed
    as the page follows jobs (a Socket.IO client on /jobs subscribed to all of them: polling
    the list would load the server more than the jobs do)."""
    from tests.support.jobs_client import JobsClient

    async with aiohttp.ClientSession(serve.base) as http, JobsClient(serve.base) as client:
        await client.subscribe(all=True)
        started = time.perf_counter()
        ids = []
        for url in urls:
            async with http.post("/downloads", json={"url": url, "type": job_type}) as r:
                body = await r.json()
                if r.status != 201:
                    raise RuntimeError(f"POST /downloads: {r.status} {body}")
                ids.append(body["jobId"])
        pending = set(ids)
        seen = 0
        deadline = started + 300
        while pending:
            for name, data in client.events[seen:]:
                if name == "failed" and data["jobId"] in pending:
                    raise RuntimeError(f"job failed: {data['errorCode']}: {data['message']}")
                if name == "completed":
                    pending.discard(data["jobId"])
            seen = len(client.events)
            if time.perf_counter() > deadline:
                raise RuntimeError(f"{len(pending)} jobs still not done after 300 s")
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - started
        for job_id in ids:  # every one completed, as its row says; keep the next run's list short
            async with http.get(f"/downloads/{job_id}") as r:
                status = (await r.json())["status"]
                if status != "completed":
                    raise RuntimeError(f"job {job_id} is {status} after its completed event")
            await http.delete(f"/downloads/{job_id}")
    return len(urls) / elapsed


_TICK = os.sysconf("SC_CLK_TCK")


def _kind(pid: int) -> str:
    """What a process of mediad's tree is, for the CPU account."""
    name = command_name(pid)
    for marker, kind in (("mediad serve", "serve"), ("mediad: worker", "workers"),
                         ("mediad: zygote", "zygote"), ("mediad worker", "workers"),
                         ("fork-server", "fork servers"), ("aria2c", "aria2c"),
                         ("postgres", "postgres"), ("redis", "redis")):  # fmt: skip
        if marker in name:
            return kind
    return "other"


def tree_cpu(root: int) -> dict[str, float]:
    """CPU seconds (user + system) of ``root`` and every descendant, by kind; a process's
    reaped children count with it, but for the zygote's (and a remote worker's fork
    server's): those are the yt-dlp jobs (the zygote's workers are alive, not reaped)."""
    totals: dict[str, float] = {}
    todo = [root]
    while todo:
        pid = todo.pop()
        todo.extend(children(pid))
        try:
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        own, reaped = int(stat[11]) + int(stat[12]), int(stat[13]) + int(stat[14])
        kind = _kind(pid)
        if kind in ("zygote", "fork servers"):  # the forking process, then its children
            totals["yt-dlp children"] = totals.get("yt-dlp children", 0.0) + reaped / _TICK
            reaped = 0
        totals[kind] = totals.get(kind, 0.0) + (own + reaped) / _TICK
    return totals


async def quiet_fork_servers(root: int, timeout_s: float = 90) -> None:
    """Wait until the zygote, which forks the workers and their yt-dlp jobs, has finished
    its start-up (yt-dlp's preload and warm-up job, ~1 s of CPU, which would otherwise
    land in the first figures): it used no CPU over the last 0.3 s, with workers there."""

    def ticks() -> dict[int, int] | None:
        tree = worker_tree(root)
        forks = [p for p, kind in tree if kind == "zygote"]
        if not any(kind == "worker" for _, kind in tree):
            return None
        found = {}
        for pid in forks:
            try:
                stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                return None
            found[pid] = int(stat[11]) + int(stat[12])
        return found

    deadline = time.perf_counter() + timeout_s
    last = ticks()
    while time.perf_counter() < deadline:
        await asyncio.sleep(0.3)
        now = ticks()
        if now is not None and now == last:
            return
        last = now
    raise RuntimeError(f"the zygote was still busy after {timeout_s:.0f} s")


class CpuAccount:
    """CPU per job of mediad's processes over a run (and of this process: the load and the
    media server), independent of how busy the machine is otherwise."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.before = tree_cpu(root)
        self.self_before = time.process_time()

    @classmethod
    async def settled(cls, serve: Serve) -> CpuAccount:
        """An account started once the service's start-up is over."""
        assert serve.proc is not None
        await quiet_fork_servers(serve.proc.pid)
        return cls(serve.proc.pid)

    def report(self, jobs: int) -> str:
        after = tree_cpu(self.root)
        spent = {k: after.get(k, 0.0) - self.before.get(k, 0.0) for k in after}
        spent["bench process"] = time.process_time() - self.self_before
        total = sum(spent.values())
        cores = os.cpu_count() or 1
        parts = ", ".join(
            f"{k} {v * 1000 / jobs:.1f}" for k, v in sorted(spent.items(), key=lambda kv: -kv[1])
            if v > 0
        )  # fmt: skip
        ceiling = jobs * cores / total if total else 0.0
        return (
            f"CPU per job {total * 1000 / jobs:.1f} ms ({parts}); with every core busy at"
            f" most {ceiling:.1f} jobs/s on {cores} cores"
        )


async def _by_hand(argvs: list[list[str]], root: Path, concurrency: int = 3) -> float:
    """Each argv in a fresh folder, ``concurrency`` at a time: jobs/s."""
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int, argv: list[str]) -> None:
        async with gate:
            cwd = root / f"h{i}"
            cwd.mkdir(parents=True, exist_ok=True)
            proc = await asyncio.create_subprocess_exec(
                *[a.replace("{dir}", str(cwd)) for a in argv],
                cwd=cwd,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            if await proc.wait() != 0:
                raise RuntimeError(f"{argv[0]} failed")

    started = time.perf_counter()
    await asyncio.gather(*(one(i, a) for i, a in enumerate(argvs)))
    return len(argvs) / (time.perf_counter() - started)


LOOP_SCRIPT = textwrap.dedent(
    """
    import sys, time, yt_dlp
    from pathlib import Path
    from mediad.worker import run_ytdlp
    root, urls = Path(sys.argv[1]), sys.argv[2:]
    for i, url in enumerate(urls):
        if i == 1:  # the first one pays the start-up
            started = time.perf_counter()
        args = run_ytdlp.build_args(url, {}, root / f"l{i}", None)
        opts = yt_dlp.parse_options(args).ydl_opts
        with yt_dlp.YoutubeDL(opts) as ydl:
            if ydl.download([url]) != 0:
                sys.exit(f"{url} failed")
    print("jobs/s", (len(urls) - 1) / (time.perf_counter() - started))
    """
)


async def ytdlp(n: int, hand_n: int) -> None:
    root = shared_tmp("mediad-bench-tiny-")
    try:
        for i in range(n):
            (root / f"t{i}.mp4").write_bytes(os.urandom(TINY))
        async with MediaServer(root) as server:
            urls = [server.url(f"t{i}.mp4") for i in range(n)]
            scratch = root / "by-hand"
            # The same arguments mediad gives yt-dlp (no egress proxy: the bare tool).
            argvs = [
                [sys.executable, "-m", "yt_dlp",
                 *run_ytdlp.build_args(url, {}, Path("{dir}"), None)]
                for url in urls[:hand_n]
            ]  # fmt: skip
            hand = await _by_hand(argvs, scratch)
            # In a subprocess (the media server runs on this event loop).
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-c", LOOP_SCRIPT, str(scratch / "loop"), *urls,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            stdout, stderr = await proc.communicate()
            if proc.returncode != 0:
                raise RuntimeError(f"the yt-dlp loop failed: {stderr.decode()[-2000:]}")
            loop = float(stdout.decode().strip().splitlines()[-1].split()[-1])
            with environment(MEDIAD_SERVER_RATE_LIMIT_PER_MIN="0"):
                async with Serve() as serve:
                    await _through_mediad(serve, urls[:6], "ytdlp")  # warm: workers connected
                    account = await CpuAccount.settled(serve)
                    ours = await _through_mediad(serve, urls, "ytdlp")
                    cpu = account.report(n)
        print(f"yt-dlp tiny jobs ({TINY} B), concurrency 3:")
        print(f"  mediad {ours:6.2f} jobs/s ({n} jobs); {cpu}")
        print(f"  one yt-dlp process per URL, 3 at a time {hand:6.2f} jobs/s ({hand_n} jobs)"
              f"   ratio {_ratio(ours, hand)}")  # fmt: skip
        print(f"  yt-dlp looping in one process (sequential) {loop:6.2f} jobs/s"
              f"   ratio {_ratio(ours, loop)}")  # fmt: skip
        print(f"  MeTube (issue 8's figure, not measured here) {METUBE_JOBS_S} jobs/s"
              f"   ratio {_ratio(ours, METUBE_JOBS_S)}   goal >= 28 jobs/s")  # fmt: skip
    finally:
        shutil.rmtree(root, ignore_errors=True)


async def aria2(n: int) -> None:
    root = shared_tmp("mediad-bench-tiny-")
    try:
        for i in range(n):
            (root / f"a{i}.bin").write_bytes(os.urandom(TINY))
        async with MediaServer(root) as server:
            urls = [server.url(f"a{i}.bin") for i in range(n)]
            argvs = [["aria2c", "--allow-overwrite=true", "--file-allocation=none",
                      "--follow-torrent=false", "--follow-metalink=false",
                      "--console-log-level=warn", "--summary-interval=0", url]
                     for url in urls]  # fmt: skip
            hand = await _by_hand(argvs, root / "by-hand")
            with environment(MEDIAD_SERVER_RATE_LIMIT_PER_MIN="0"):
                async with Serve() as serve:
                    await _through_mediad(serve, urls[:6], "aria2")
                    account = await CpuAccount.settled(serve)
                    ours = await _through_mediad(serve, urls, "aria2")
                    cpu = account.report(n)
        print(f"aria2 tiny jobs ({TINY} B), concurrency 3, {n} jobs; mediad's {cpu}:")
        print(f"  mediad {ours:6.2f} jobs/s   bare aria2c per URL, 3 at a time {hand:6.2f} jobs/s"
              f"   ratio {_ratio(ours, hand)}   goal >= 0.8x")  # fmt: skip
    finally:
        shutil.rmtree(root, ignore_errors=True)


# A yt-dlp stand-in that does nothing but what the runner needs: the file in -P's folder
# and the `[file]` line of PROGRESS_ARGS.
NOOP_TOOL = """#!/bin/sh
dir=.
while [ $# -gt 0 ]; do
  case "$1" in -P) dir=$2; shift;; esac
  shift
done
printf x > "$dir/noop.bin"
printf '[file] "%s/noop.bin"\\n' "$dir"
"""


async def overhead(n: int, sequential: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="mediad-bench-noop-"))
    tool = folder / "noop-ytdlp"
    tool.write_text(NOOP_TOOL)
    tool.chmod(0o755)
    try:
        # The stand-in's own cost, the floor of what follows.
        started = time.perf_counter()
        for _ in range(20):
            subprocess.run([str(tool), "-P", str(folder)], check=True, capture_output=True)
        tool_ms = (time.perf_counter() - started) / 20 * 1000
        url = "http://127.0.0.1:9/noop"  # never fetched
        env = {"MEDIAD_SERVER_RATE_LIMIT_PER_MIN": "0", "MEDIAD_TOOLS_YTDLP": str(tool)}
        with environment(**env):
            async with Serve() as serve:
                await _through_mediad(serve, [url] * 6, "ytdlp")
                account = await CpuAccount.settled(serve)
                rate = await _through_mediad(serve, [url] * n, "ytdlp")
                cpu = account.report(n)
                one_by_one = [await serve.run_job(url, "ytdlp") for _ in range(sequential)]
        ms = statistics.median(one_by_one) * 1000
        print("pipeline overhead, a tool stand-in that does nothing (/bin/sh script):")
        print(f"  {cpu}")
        print(
            f"  concurrency 3: {rate:6.1f} jobs/s ({n} jobs), {1000 / rate:.1f} ms/job of wall time"
        )
        print(f"  one at a time: POST to completed {ms:.1f} ms/job (median of {sequential},"
              f" each followed on /jobs), the stand-in alone {tool_ms:.1f} ms")  # fmt: skip
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# -- reads ---------------------------------------------------------------------------


async def _bare_app(bodies: dict[str, bytes], port: int) -> web.AppRunner:
    """One route per path; a path asked with several query strings answers each one's body."""
    by_path: dict[str, dict[str, bytes]] = {}
    for path_qs, body in bodies.items():
        by_path.setdefault(path_qs.partition("?")[0], {})[path_qs] = body
    app = web.Application()
    for path, variants in by_path.items():

        async def handler(
            request: web.Request, variants: dict[str, bytes] = variants
        ) -> web.Response:
            return web.Response(body=variants[request.path_qs], content_type="application/json")

        app.router.add_get(path, handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


def _wrk_ms(value: str) -> float:
    for unit, scale in (("us", 0.001), ("ms", 1.0), ("s", 1000.0), ("m", 60_000.0)):
        if value.endswith(unit):
            return float(value[: -len(unit)]) * scale
    return float(value)


# wrk asks for each path in turn (one Lua state per thread, each starting at its own).
WRK_PATHS = """
local paths = {%s}
local i = math.random(#paths)
request = function()
  i = i %% #paths + 1
  return wrk.format("GET", paths[i])
end
"""


Load = tuple[float, float, int]  # requests a second, p99 in ms, requests answered


def _wrk(base: str, paths: list[str], seconds: int, connections: int) -> Load:
    argv = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        if len(paths) > 1:
            script.write(WRK_PATHS % ", ".join(f'"{p}"' for p in paths))
            script.flush()
            argv += ["-s", script.name]
        out = subprocess.run(
            [*argv, base + paths[0]],
            check=True, capture_output=True, text=True, timeout=seconds + 30,
        ).stdout  # fmt: skip
    rate = p99 = 0.0
    count = 0
    for line in out.splitlines():
        parts = line.split()
        if line.startswith("Requests/sec:"):
            rate = float(parts[1])
        elif parts[:1] == ["99%"]:
            p99 = _wrk_ms(parts[1])
        elif parts[1:3] == ["requests", "in"]:
            count = int(parts[0])
        elif "Non-2xx" in line:
            raise RuntimeError(f"{base}{paths[0]}: {line.strip()}")
    return rate, p99, count


async def _client_loop(base: str, paths: list[str], seconds: float, connections: int) -> Load:
    latencies: list[float] = []
    stop = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def one(k: int) -> None:
            while time.perf_counter() < stop:
                url = base + paths[(k + len(latencies)) % len(paths)]
                started = time.perf_counter()
                async with http.get(url) as resp:
                    await resp.read()
                    if resp.status != 200:
                        raise RuntimeError(f"{url}: {resp.status}")
                latencies.append(time.perf_counter() - started)

        begun = time.perf_counter()
        await asyncio.gather(*(one(k) for k in range(connections)))
        elapsed = time.perf_counter() - begun
    latencies.sort()
    count = len(latencies)
    return count / elapsed, latencies[int(count * 0.99)] * 1000, count


async def _load(base: str, paths: list[str], seconds: int, connections: int) -> Load:
    if shutil.which("wrk"):
        return await asyncio.to_thread(_wrk, base, paths, seconds, connections)
    return await _client_loop(base, paths, seconds, connections)


def _cpu_line(mediad: dict[str, float], mediad_n: int, bare: float | None, bare_n: int) -> str:
    """CPU per request: mediad's processes (serve, PostgreSQL...) against the bare app's
    (this process, where wrk is not: with the client loop here, bare's is not known)."""
    us = {k: v * 1e6 / mediad_n for k, v in mediad.items() if v * 1e6 / mediad_n >= 0.5}
    ours = sum(us.values())
    parts = " + ".join(f"{k} {v:.0f}" for k, v in sorted(us.items(), key=lambda kv: -kv[1]))
    line = f"      CPU per request: mediad {ours:.0f} us ({parts})"
    if bare is None:
        return line + ", bare app not measured (the load runs in its process)"
    base = bare * 1e6 / bare_n
    return line + f", bare aiohttp {base:.0f} us   ratio {_ratio(base, ours)}"


async def reads(seconds: int, connections: int) -> None:
    tool = "wrk -t2" if shutil.which("wrk") else "an aiohttp client loop (wrk not installed)"
    root = shared_tmp("mediad-bench-tiny-")
    try:
        for i in range(50):
            (root / f"r{i}.bin").write_bytes(os.urandom(TINY))
        async with MediaServer(root) as server:
            urls = [server.url(f"r{i}.bin") for i in range(50)]
            with environment(MEDIAD_SERVER_RATE_LIMIT_PER_MIN="0"):
                async with Serve() as serve:
                    async with aiohttp.ClientSession(serve.base) as http:
                        ids = []
                        for url in urls:
                            async with http.post(
                                "/downloads", json={"url": url, "type": "aria2"}
                            ) as r:
                                ids.append((await r.json())["jobId"])
                        deadline = time.perf_counter() + 120
                        while time.perf_counter() < deadline:
                            async with http.get(
                                "/downloads", params={"status": "completed", "limit": "200"}
                            ) as r:
                                if len((await r.json())["items"]) >= 50:
                                    break
                            await asyncio.sleep(0.1)
                        # Ten pages that share no rows' read: each starts after another
                        # job (the cursor a client scrolling from there holds).
                        cursors = []
                        for k in range(1, 11):
                            async with http.get("/downloads", params={"limit": str(k)}) as r:
                                cursors.append((await r.json())["nextCursor"])
                        # The same request every time, as a dashboard polls; then a mix
                        # (each of the 50 jobs in turn; ten page sizes, whose rows are the
                        # first of one read; ten cursors), since requests that arrive
                        # together for the same thing may share a query.
                        loads = {
                            "/downloads/{id}": [f"/downloads/{ids[0]}"],
                            "/downloads/{id} of 50": [f"/downloads/{i}" for i in ids],
                            "/downloads (50)": ["/downloads"],
                            "/downloads?limit=41..50": [
                                f"/downloads?limit={n}" for n in range(41, 51)
                            ],
                            "/downloads?cursor= (10)": [
                                f"/downloads?limit=40&cursor={c}" for c in cursors
                            ],
                            "/health": ["/health"],
                        }
                        bodies: dict[str, bytes] = {}
                        for paths in loads.values():
                            for path in paths:
                                async with http.get(path) as r:
                                    bodies[path] = await r.read()
                    assert serve.proc is not None
                    await quiet_fork_servers(serve.proc.pid)  # their start-up is no read's
                    port = free_port()
                    bare = await _bare_app(bodies, port)
                    try:
                        print(
                            f"reads at {connections} connections, {seconds} s each, load by {tool}:"
                        )
                        for name, paths in loads.items():
                            size = statistics.mean(len(bodies[p]) for p in paths)
                            before = tree_cpu(serve.proc.pid)
                            ours = await _load(serve.base, paths, seconds, connections)
                            after = tree_cpu(serve.proc.pid)
                            spent = {k: v - before.get(k, 0.0) for k, v in after.items()}
                            own = time.process_time()
                            base = await _load(
                                f"http://127.0.0.1:{port}", paths, seconds, connections
                            )
                            bare_cpu = time.process_time() - own if shutil.which("wrk") else None
                            print(f"  GET {name:23s} ({size:5.0f} B) mediad {ours[0]:8.0f} req/s"
                                  f" p99 {ours[1]:6.1f} ms   bare aiohttp {base[0]:8.0f} req/s"
                                  f" p99 {base[1]:6.1f} ms   ratio {_ratio(ours[0], base[0])}")  # fmt: skip
                            print(_cpu_line(spent, ours[2], bare_cpu, base[2]))
                    finally:
                        await bare.cleanup()
    finally:
        shutil.rmtree(root, ignore_errors=True)


# -- idle footprint --------------------------------------------------------------------


async def idle(jobs: int) -> None:
    root = shared_tmp("mediad-bench-tiny-")
    try:
        for i in range(jobs):
            (root / f"i{i}.mp4").write_bytes(os.urandom(TINY))
        async with MediaServer(root) as server:
            urls = [server.url(f"i{i}.mp4") for i in range(jobs)]
            with environment(MEDIAD_SERVER_RATE_LIMIT_PER_MIN="0"):
                async with Serve() as serve:
                    assert serve.proc is not None
                    half = jobs // 2
                    await _through_mediad(serve, urls[:half], "ytdlp")
                    await _through_mediad(serve, urls[half:], "aria2")
                    await asyncio.sleep(3)
                    main = serve.proc.pid
                    rows = [(main, "mediad serve")]
                    rows += worker_tree(main)  # the zygote and the workers
                    rows += [(p, "aria2c") for p in children(main) if "aria2c" in command_name(p)]
                    print(
                        f"idle footprint after {jobs} tiny jobs ({half} yt-dlp, {jobs - half} aria2):"
                    )
                    total_rss = total_pss = total_uss = 0.0
                    for pid, name in rows:
                        rss, pss = memory_kib(pid, "VmRSS") / 1024, pss_kib(pid) / 1024
                        uss = uss_kib(pid) / 1024
                        total_rss += rss
                        total_pss += pss
                        total_uss += uss
                        print(f"  {name:13s} pid {pid:7d}  RSS {rss:6.1f} MiB  PSS {pss:6.1f} MiB"
                              f"  USS {uss:6.1f} MiB")  # fmt: skip
                    print(f"  total ({len(rows)} processes): RSS {total_rss:.1f} MiB, PSS "
                          f"{total_pss:.1f} MiB (USS, pages only one process has: "
                          f"{total_uss:.1f} MiB)   goal PSS <= 150 MiB; MeTube 364 MiB (issue 8)"
                          f"   ratio {_ratio(total_pss, 364)}")  # fmt: skip
                    zygote = [p for p, name in rows if name == "zygote"]
                    workers = [p for p, name in rows if name == "worker"]
                    sharing = zygote_sharing(zygote[0], workers) if zygote else None
                    if sharing is None:
                        print("  the zygote's pages by sharing: not readable (needs root)")
                    else:
                        print("  the zygote's pages (anonymous and libpython's), by sharing:")
                        for what, mib in sharing.items():
                            print(f"    {mib:6.1f} MiB {what}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


# -- progress ingest -------------------------------------------------------------------


class FakeWorker:
    """A worker on /worker that answers each job:start with ``events`` progress events as
    fast as Socket.IO takes them, then ``failed`` (with queue.max_attempts 1: no retry)."""

    def __init__(
        self, base: str, token: str, worker_id: str, events: int, storage: Path | None = None
    ) -> None:
        import socketio

        self.base, self.token, self.worker_id, self.events = base, token, worker_id, events
        self.storage = storage  # the service's state folder: its data and tmp folders
        self.sio = socketio.AsyncClient(reconnection=False)
        self.sio.on("job:start", self._start, namespace="/worker")
        self.tasks: set[asyncio.Task[None]] = set()
        self.first_sent: float | None = None

    async def connect(self, deadline_s: float = 120) -> None:
        import socketio

        from mediad import probe

        auth = {"token": self.token, "workerId": self.worker_id}
        if self.storage is not None:  # mediad serve asks a worker to prove it shares them
            auth["probe"] = probe.write(self.storage / "data", self.storage / "tmp", self.worker_id)
        deadline = time.perf_counter() + deadline_s
        while True:
            try:
                await self.sio.connect(
                    self.base,
                    namespaces=["/worker"],
                    auth=auth,
                    transports=["websocket"],
                )
                return
            except socketio.exceptions.ConnectionError:
                if time.perf_counter() > deadline:
                    raise
                await asyncio.sleep(0.1)

    async def _start(self, data: dict[str, object]) -> None:
        task = asyncio.ensure_future(self._blast(str(data["jobId"]), int(data.get("attempt", 0))))  # type: ignore[call-overload]
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _blast(self, job_id: str, attempt: int) -> None:
        if self.first_sent is None:
            self.first_sent = time.perf_counter()
        for k in range(self.events):
            await self.sio.emit(
                "progress",
                {"jobId": job_id, "attempt": attempt, "stage": "downloading",
                 "progress": round(k * 100 / self.events, 2), "speed": 1000.0 + k, "eta": 1,
                 "totalBytes": 10**9},
                namespace="/worker",
            )  # fmt: skip
        await self.sio.emit(
            "failed",
            {"jobId": job_id, "attempt": attempt, "errorCode": "tool_failed", "message": "bench"},
            namespace="/worker",
        )


async def _jobs_listener(base: str, expected: int) -> tuple[Any, asyncio.Future[float]]:
    """A /jobs client following every job; the future: when the last progress arrived."""
    import socketio

    sio = socketio.AsyncClient(reconnection=False)
    done: asyncio.Future[float] = asyncio.get_running_loop().create_future()
    count = [0]

    async def progress(_: object) -> None:
        count[0] += 1
        if count[0] >= expected and not done.done():
            done.set_result(time.perf_counter())

    sio.on("progress", progress, namespace="/jobs")
    await sio.connect(base, namespaces=["/jobs"], transports=["websocket"])
    await sio.call("subscribe", {"all": True}, namespace="/jobs", timeout=10)
    sio.count = count  # type: ignore[attr-defined]
    return sio, done


async def _bare_relay(port: int) -> web.AppRunner:
    """python-socketio alone: progress on /worker goes to a room on /jobs."""
    import socketio

    sio = socketio.AsyncServer(async_mode="aiohttp", logger=False, engineio_logger=False)
    app = web.Application()
    sio.attach(app)

    @sio.on("progress", namespace="/worker")
    async def progress(_: str, data: object) -> None:
        await sio.emit("progress", data, room="all", namespace="/jobs")

    @sio.on("subscribe", namespace="/jobs")
    async def subscribe(sid: str, _: object) -> dict[str, bool]:
        await sio.enter_room(sid, "all", namespace="/jobs")
        return {"ok": True}

    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


async def _relay_run(
    base: str, workers: list[FakeWorker], post: Any, jobs: int, events: int
) -> float:
    """Events/s from the first progress sent to the last one the /jobs client got."""
    await asyncio.gather(*(w.connect() for w in workers if not w.sio.connected))
    listener, done = await _jobs_listener(base, jobs * events)
    try:
        await post(workers)
        last = await asyncio.wait_for(done, 120)
        first = min(w.first_sent for w in workers if w.first_sent is not None)
        return jobs * events / (last - first)
    finally:
        await listener.disconnect()
        for w in workers:
            await w.sio.disconnect()


RELAY_SCRIPT = """
import asyncio, sys
from tests.bench.speed import _bare_relay

async def main():
    await _bare_relay(int(sys.argv[1]))
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def _wait_port(port: int, timeout_s: float = 30) -> None:
    deadline = time.perf_counter() + timeout_s
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            if time.perf_counter() > deadline:
                raise
            await asyncio.sleep(0.05)


async def _progress_rows(base: str) -> float:
    """mediad_db_progress_rows_written from /metrics (one row a job and a batch)."""
    from prometheus_client.parser import text_string_to_metric_families

    async with aiohttp.ClientSession() as http, http.get(f"{base}/metrics") as r:
        text = await r.text()
    for family in text_string_to_metric_families(text):
        if family.name == "mediad_db_progress_rows_written":
            return sum(s.value for s in family.samples if s.name.endswith("_total"))
    raise RuntimeError("no mediad_db_progress_rows_written in /metrics")


async def ingest(jobs: int, events: int) -> None:
    token = "bench-" + os.urandom(8).hex()
    env = {"MEDIAD_SERVER_RATE_LIMIT_PER_MIN": "0", "MEDIAD_WORKERS_PROCESSES": "0",
           "MEDIAD_WORKERS_TOKEN": token, "MEDIAD_QUEUE_MAX_ATTEMPTS": "1"}  # fmt: skip
    with environment(**env):
        serve = Serve()
        workers = [
            FakeWorker(serve.base, token, f"bench-{i}", events, serve.state) for i in range(3)
        ]
        # No local workers: /health says "down" until ours are in, so connect them first.
        workers_in = asyncio.gather(*(w.connect() for w in workers))
        await serve.__aenter__()
        try:
            await workers_in

            async def post_jobs(_: object) -> None:
                async with aiohttp.ClientSession(serve.base) as http:
                    for i in range(jobs):
                        body = {"url": f"http://127.0.0.1:9/p{i}.mp4", "type": "ytdlp"}
                        async with http.post("/downloads", json=body) as r:
                            assert r.status == 201, await r.text()

            rows_before = await _progress_rows(serve.base)
            ours = await _relay_run(serve.base, workers, post_jobs, jobs, events)
            busy_s = jobs * events / ours  # the time every job was sending progress
            rows = await _progress_rows(serve.base) - rows_before
        finally:
            await serve.__aexit__()
    # The relay in its own process, as mediad serve is.
    port = free_port()
    relay = await asyncio.create_subprocess_exec(
        sys.executable, "-c", RELAY_SCRIPT, str(port), stdin=asyncio.subprocess.DEVNULL
    )
    try:
        await _wait_port(port)

        async def start_jobs(workers: list[FakeWorker]) -> None:
            for i in range(jobs):
                await workers[i % 3]._start({"jobId": f"j{i}", "attempt": 0})

        base = f"http://127.0.0.1:{port}"
        workers = [FakeWorker(base, token, f"bench-{i}", events) for i in range(3)]
        bare = await _relay_run(base, workers, start_jobs, jobs, events)
    finally:
        relay.terminate()
        await relay.wait()
    print(f"progress ingest, 3 workers x {events} events a job, {jobs} jobs, to one /jobs client:")
    print(f"  mediad {ours:8.0f} events/s forwarded   bare python-socketio relay {bare:8.0f}"
          f" events/s   ratio {_ratio(ours, bare)}   goal >= 1x")  # fmt: skip
    running = min(jobs, 3)  # queue.concurrency: three jobs send progress at any time
    print(f"  progress rows written to PostgreSQL: {rows:.0f} in {busy_s:.2f} s for {jobs} jobs"
          f" ({running} running at a time): {rows / running / busy_s:.1f} per running job"
          f" per second   goal 2-4")  # fmt: skip


NAMES = ("ytdlp", "aria2", "overhead", "reads", "idle", "ingest")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.speed")
    parser.add_argument("--jobs", type=int, default=60, help="tiny jobs through mediad")
    parser.add_argument("--hand-jobs", type=int, default=15, help="yt-dlp processes by hand")
    parser.add_argument("--seconds", type=int, default=5, help="each read load")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("what", nargs="*", help=f"some of {', '.join(NAMES)} (default: all)")
    args = parser.parse_args()
    unknown = set(args.what) - set(NAMES)
    if unknown:
        parser.error(f"no bench {', '.join(sorted(unknown))}; choose from {', '.join(NAMES)}")
    for name in args.what or NAMES:
        if name == "ytdlp":
            asyncio.run(ytdlp(args.jobs, args.hand_jobs))
        elif name == "aria2":
            asyncio.run(aria2(args.jobs * 2))
        elif name == "overhead":
            asyncio.run(overhead(args.jobs * 2, 20))
        elif name == "reads":
            asyncio.run(reads(args.seconds, args.connections))
        elif name == "idle":
            asyncio.run(idle(args.jobs))
        elif name == "ingest":
            asyncio.run(ingest(6, 3000))
        sys.stdout.flush()


if __name__ == "__main__":
    main()

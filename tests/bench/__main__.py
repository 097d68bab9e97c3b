"""Benchmarks, run by hand (`make bench` or `python -m tests.bench`): they print figures
and ratios, and assert nothing.

* footprint: peak RSS of `mediad serve` and its 3 idle workers, summed;
* bulk: time from POST to `completed` for one large file through mediad, against running
  the same tool by hand on the same file, for aria2 and for yt-dlp;
* churn: RSS of `mediad serve` after each of 5 rounds of 2,000 Socket.IO connect/close
  cycles on /jobs (tests/bench/churn.py; `python -m tests.bench.churn bare` does the same
  to a bare python-socketio server).

`mediad serve` runs as a user runs it (a subprocess, embedded PostgreSQL and Redis),
against the local media server of the tests.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp

from mediad.daemons import free_port
from tests.support import media
from tests.support.harness import eventually, shared_tmp
from tests.support.mediaserver import MediaServer
from tests.support.proctree import worker_tree


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid:
                found.append(int(entry))
    return found


def memory_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def pss_kib(pid: int) -> int:
    """Proportional set size: shared pages divided among the processes sharing them."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def uss_kib(pid: int) -> int:
    """Unique set size: the pages only this process has (what its exit would give back)."""
    total = 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith(("Private_Clean:", "Private_Dirty:")):
            total += int(line.split()[1])
    return total


def _pages(pid: int, start: int, end: int) -> list[int | None]:
    """The physical frame of each page of [start, end) in ``pid`` (None: not present, or
    hidden: the kernel shows frames to root only, as 0 to anyone else)."""
    with open(f"/proc/{pid}/pagemap", "rb") as f:
        f.seek(start // 4096 * 8)
        data = f.read((end - start) // 4096 * 8)
    frames = (e & ((1 << 55) - 1) if e >> 63 else 0 for (e,) in struct.iter_unpack("Q", data))
    return [frame or None for frame in frames]


def zygote_sharing(zygote: int, workers: list[int]) -> dict[str, float] | None:
    """MiB of the zygote's anonymous memory (and libpython's writable pages) by how the
    workers share it: still shared by all; copied by every worker (the zygote's own copy
    then serves nobody); written by the zygote after the fork (the workers share the old
    copy); or the zygote's alone. None without the rights to read page frames (root)."""
    names = {"all": "shared by the zygote and every worker",
             "copied": "copied by every worker (the zygote's copy serves nobody)",
             "zygote wrote": "written by the zygote after the fork (the workers share the old)",
             "zygote's": "the zygote's alone (made after the fork)",
             "other": "shared by some"}  # fmt: skip
    found = dict.fromkeys(names.values(), 0.0)
    try:
        for line in Path(f"/proc/{zygote}/maps").read_text().splitlines():
            fields = line.split()
            name = fields[5] if len(fields) > 5 else ""
            if (name.startswith("/") and "libpython" not in name) or name.startswith("[v"):
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            ours, theirs = _pages(zygote, start, end), [_pages(w, start, end) for w in workers]
            for i, frame in enumerate(ours):
                if frame is None:
                    continue
                others = [t[i] if i < len(t) else None for t in theirs]
                if all(o == frame for o in others):
                    kind = "all"
                elif any(o == frame for o in others):
                    kind = "other"
                elif all(o is None for o in others):
                    kind = "zygote's"
                elif None not in others and len(set(others)) == len(others):
                    kind = "copied"
                elif None not in others and len(set(others)) == 1:
                    kind = "zygote wrote"
                else:
                    kind = "other"
                found[names[kind]] += 4 / 1024
    except (OSError, ValueError):
        return None
    return found if any(found.values()) else None  # no frame shown: not root


def command_name(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:80]


class Serve:
    """`mediad serve` in a subprocess on embedded defaults."""

    def __init__(self) -> None:
        self.state = shared_tmp("mediad-bench-")
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    async def __aenter__(self) -> Serve:
        await self.restart()
        return self

    async def restart(self) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        env.update(
            MEDIAD_STORAGE_STATE_DIR=str(self.state),
            MEDIAD_NETWORK_ALLOW_HOSTS="127.0.0.1",
            MEDIAD_SERVER_PORT=str(self.port),
            MEDIAD_LOGGING_LEVEL="warning",
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mediad", "serve"], env=env, stderr=subprocess.DEVNULL
        )
        async with aiohttp.ClientSession() as http:

            async def healthy() -> bool:
                try:
                    async with http.get(f"{self.base}/health") as resp:
                        return resp.status == 200
                except aiohttp.ClientError:
                    return False

            await eventually(healthy, timeout_s=120, interval_s=0.02, what="mediad serve")

    async def __aexit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)
        shutil.rmtree(self.state, ignore_errors=True)

    async def run_job(self, url: str, job_type: str) -> float:
        """Seconds from POST to the job's ``completed`` event, followed as the page follows
        jobs: a Socket.IO client on /jobs, subscribed before the POST. (Polling the job's row
        every 10 ms, as this did before, loaded the server and PostgreSQL with 100 reads a
        second on a 2-core machine, which the tool by hand never competes with.)"""
        from tests.support.jobs_client import JobsClient

        async with aiohttp.ClientSession(self.base) as http, JobsClient(self.base) as client:
            await client.subscribe(all=True)
            started = time.perf_counter()
            async with http.post("/downloads", json={"url": url, "type": job_type}) as resp:
                job_id = (await resp.json())["jobId"]
            name, data = await client.first(job_id)
            elapsed = time.perf_counter() - started
            if name == "failed":
                raise RuntimeError(f"job failed: {data['errorCode']}: {data['message']}")
            async with http.get(f"/downloads/{job_id}") as resp:
                status = (await resp.json())["status"]
            if status != "completed":
                raise RuntimeError(f"job {job_id} is {status} after its completed event")
        shutil.rmtree(self.state / "data" / job_id, ignore_errors=True)
        return elapsed


async def footprint() -> None:
    async with Serve() as serve:
        assert serve.proc is not None
        await asyncio.sleep(3)  # let the workers settle after start-up
        main = serve.proc.pid
        tree = worker_tree(main)
        workers = [p for p, kind in tree if kind == "worker"]
        others = [p for p in children(main) if p not in dict(tree)]
        # The zygote (yt-dlp preloaded, it forks the workers and their jobs) is ours too.
        ours = [main, *(p for p, _ in tree)]
        peak = sum(memory_kib(p, "VmHWM") for p in ours) / 1024
        now = sum(memory_kib(p, "VmRSS") for p in ours) / 1024
        extra = sum(memory_kib(p, "VmRSS") for p in others) / 1024
        pss = sum(pss_kib(p) for p in ours) / 1024
        print("footprint (3 idle workers):")
        print(
            f"  mediad serve + zygote + {len(workers)} workers: peak RSS"
            f" {peak:.1f} MiB, now {now:.1f} MiB"
        )
        print(f"  the same processes' PSS (shared pages counted once): {pss:.1f} MiB")
        print(
            f"  main alone: peak {memory_kib(main, 'VmHWM') / 1024:.1f} MiB; per worker: "
            + ", ".join(f"{memory_kib(p, 'VmHWM') / 1024:.1f}" for p in workers)
            + " MiB"
        )
        print(f"  (not counted: aria2c, embedded postgres/redis top processes: {extra:.1f} MiB)")
        print(f"  MeTube's 166 MB for reference: ratio {peak / 166:.2f}")


def by_hand(argv: list[str], cwd: Path) -> float:
    shutil.rmtree(cwd, ignore_errors=True)
    cwd.mkdir(parents=True)
    started = time.perf_counter()
    subprocess.run(argv, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


@contextlib.contextmanager
def media_server_process(root: Path) -> Iterator[str]:
    """``python -m tests.support.mediaserver root`` in a process of its own; yields its base
    URL. In the bench's own loop it would share a core's worth of Python with the client
    following the job, which the tool by hand never has to."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.mediaserver", str(root)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # "serving ROOT at BASE_URL"
        if " at " not in line:
            raise RuntimeError(f"the media server did not start: {line!r}")
        yield line.rsplit(" at ", 1)[1].strip()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


async def bulk(size_mb: int, runs: int) -> None:
    root = shared_tmp("mediad-bench-media-")
    try:
        media.make_random_file(root / "big.bin", size_mb * 1024 * 1024, seed=7)
        with media_server_process(root) as base:
            async with Serve() as serve:
                await _bulk(serve, f"{base}/big.bin", root / "by-hand", size_mb, runs)
    finally:
        shutil.rmtree(root, ignore_errors=True)


async def _bulk(serve: Serve, url: str, scratch: Path, size_mb: int, runs: int) -> None:
    aria2_argv = ["aria2c", "--allow-overwrite=true", "--file-allocation=none",
                  "--follow-torrent=false", "--follow-metalink=false",
                  "--console-log-level=warn", "--summary-interval=0", url]  # fmt: skip
    ytdlp_argv = [sys.executable, "-m", "yt_dlp", "--ignore-config", "--no-cache-dir",
                  "--no-playlist", "-o", "%(title)s.%(ext)s", "--", url]  # fmt: skip
    print(f"bulk download of {size_mb} MB over loopback, best of {runs}, by hand and"
          " through mediad in turn (medians in brackets):")  # fmt: skip
    for name, argv, job_type in (("aria2", aria2_argv, "aria2"), ("yt-dlp", ytdlp_argv, "ytdlp")):
        hand: list[float] = []
        ours: list[float] = []
        for _ in range(runs):  # interleaved: a slow spell of the machine hits both
            hand.append(await asyncio.to_thread(by_hand, argv, scratch))
            ours.append(await serve.run_job(url, job_type))
        print(f"  {name:7s} by hand {min(hand):6.3f}s ({statistics.median(hand):.3f})   "
              f"through mediad {min(ours):6.3f}s ({statistics.median(ours):.3f})   "
              f"ratio {min(ours) / min(hand):.3f} "
              f"({statistics.median(ours) / statistics.median(hand):.3f})")  # fmt: skip


async def _wait(http: aiohttp.ClientSession, job_id: str, *statuses: str) -> dict:
    while True:
        async with http.get(f"/downloads/{job_id}") as resp:
            job = await resp.json()
        if job["status"] in statuses:
            return job
        await asyncio.sleep(0.005)


async def _progress(http: aiohttp.ClientSession, job_id: str, percent: float) -> bool:
    async with http.get(f"/downloads/{job_id}") as resp:
        return ((await resp.json())["progress"] or 0) >= percent


async def control(runs: int) -> None:
    """Bytes fetched again after pause + resume, and pause-to-next-job latency."""
    root = shared_tmp("mediad-bench-media-")
    size = 40 * 1024 * 1024
    try:
        media.make_random_file(root / "r.bin", size, seed=3)
        async with MediaServer(root) as server, Serve() as serve:
            async with aiohttp.ClientSession(serve.base) as http:
                print(f"pause at ~40 % and resume, {size // 2**20} MiB at 8 MB/s:")
                for job_type in ("aria2", "ytdlp"):
                    fractions = []
                    for _ in range(runs):
                        server.clear_log()
                        url = server.url("r.bin", rate=8_000_000)
                        async with http.post(
                            "/downloads", json={"url": url, "type": job_type}
                        ) as r:
                            job_id = (await r.json())["jobId"]
                        await eventually(
                            lambda j=job_id: _progress(http, j, 40), interval_s=0.02, what="40 %"
                        )
                        await http.post(f"/downloads/{job_id}/pause")
                        await asyncio.sleep(0.5)
                        await http.post(f"/downloads/{job_id}/resume")
                        await _wait(http, job_id, "completed")
                        fractions.append((server.bytes_served("r.bin") - size) / size)
                    print(f"  {job_type:6s} refetched after resume: "
                          + ", ".join(f"{f:.2%}" for f in fractions) + " of the file")  # fmt: skip
                latencies = []
                for _ in range(runs):
                    url = server.url("r.bin", rate=2_000_000)
                    ids = []
                    for _ in range(4):
                        async with http.post("/downloads", json={"url": url, "type": "aria2"}) as r:
                            ids.append((await r.json())["jobId"])
                    for job_id in ids[:3]:
                        await _wait(http, job_id, "running")
                    started = time.perf_counter()
                    await http.post(f"/downloads/{ids[0]}/pause")
                    await _wait(http, ids[3], "running")
                    latencies.append(time.perf_counter() - started)
                    for job_id in ids:
                        await http.post(f"/downloads/{job_id}/cancel")
                print(f"pause request to the freed slot running the next job (aria2): "
                      f"best {min(latencies) * 1000:.0f} ms, median "
                      f"{statistics.median(latencies) * 1000:.0f} ms")  # fmt: skip
    finally:
        shutil.rmtree(root, ignore_errors=True)


async def crash(runs: int) -> None:
    """SIGKILL `mediad serve` (embedded servers included) with 3 running and 10 queued
    jobs; restart it; time until 3 jobs run again."""
    root = shared_tmp("mediad-bench-media-")
    try:
        media.make_random_file(root / "c.bin", 8 * 1024 * 1024, seed=5)
        async with MediaServer(root) as server:
            serve = Serve()
            await serve.__aenter__()
            try:
                figures = []
                for _ in range(runs):
                    async with aiohttp.ClientSession(serve.base) as http:
                        url = server.url("c.bin", rate=1_000_000)
                        for _ in range(13):
                            await http.post("/downloads", json={"url": url, "type": "aria2"})
                        await eventually(lambda h=http: _count(h, "running", 3), what="3 running")
                    assert serve.proc is not None
                    killed = time.perf_counter()
                    serve.proc.kill()
                    serve.proc.wait()
                    restarted = time.perf_counter()
                    await serve.restart()
                    async with aiohttp.ClientSession(serve.base) as http:
                        await eventually(
                            lambda h=http: _count(h, "running", 3), interval_s=0.02, what="3 again"
                        )
                        done = time.perf_counter()
                        async with http.get("/downloads", params={"limit": "200"}) as resp:
                            for job in (await resp.json())["items"]:
                                await http.post(f"/downloads/{job['jobId']}/cancel")
                    figures.append((done - killed, done - restarted))
                print("SIGKILL of mediad serve with 3 running + 10 queued, restart at once:")
                for total, since_restart in figures:
                    print(f"  all 3 slots running again {total:.2f}s after the kill "
                          f"({since_restart:.2f}s after the restart command)")  # fmt: skip
            finally:
                await serve.__aexit__()
    finally:
        shutil.rmtree(root, ignore_errors=True)


async def _count(http: aiohttp.ClientSession, status: str, n: int) -> bool:
    async with http.get("/downloads", params={"status": status, "limit": "200"}) as resp:
        return len((await resp.json())["items"]) >= n


async def churn(rounds: int, cycles: int) -> None:
    """Socket.IO connect/close cycles on /jobs: the main process's RSS after each round."""
    from tests.bench.churn import rounds as churn_rounds

    async with Serve() as serve:
        assert serve.proc is not None
        await asyncio.sleep(3)  # let the workers settle after start-up
        print(f"Socket.IO churn, {rounds} x {cycles} connect/close cycles on /jobs:")
        await churn_rounds(serve.base, serve.proc.pid, rounds, cycles, "mediad serve")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench")
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    # A 200 MB download on 2 cores varies by a third from run to run: the median of 7.
    parser.add_argument("--bulk-runs", type=int, default=7)
    parser.add_argument("--churn-rounds", type=int, default=5)
    parser.add_argument("--churn-cycles", type=int, default=2000)
    parser.add_argument(
        "what", nargs="*", default=["footprint", "bulk", "control", "crash", "churn"]
    )
    args = parser.parse_args()
    if "footprint" in args.what:
        asyncio.run(footprint())
    if "bulk" in args.what:
        asyncio.run(bulk(args.size_mb, args.bulk_runs))
    if "control" in args.what:
        asyncio.run(control(args.runs))
    if "crash" in args.what:
        asyncio.run(crash(args.runs))
    if "churn" in args.what:
        asyncio.run(churn(args.churn_rounds, args.churn_cycles))


if __name__ == "__main__":
    main()

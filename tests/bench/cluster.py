"""Cluster figures, printed and never asserted (`python -m tests.bench.cluster`):

* failover: from SIGKILL of the instance running jobs to each of them running again on
  another instance (its next attempt started), with ``queue.lease_s`` printed beside it;
* event latency: a worker on instance A (a protocol-level client on A's /worker, so the
  send time is known in this process) emits progress; a /jobs client on A and one on B
  receive it. p50/p99 of both: B's figure against one instance's;
* throughput: tiny aria2 jobs per second, submitted round-robin, on one instance
  (``queue.concurrency`` 3) and on two (the limit raised to 6, three workers each).

Two `mediad serve` subprocesses (tests/support/cluster.py) on the tests' PostgreSQL
(127.0.0.1:5432 or embedded) and the machine's Redis (or an embedded one).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import redis.asyncio as aioredis

from tests.support import media
from tests.support.cluster import WORKER_TOKEN, Cluster
from tests.support.harness import Api, Databases, RedisServer, shared_tmp
from tests.support.jobs_client import JobsClient
from tests.support.mediaserver import MediaServer
from tests.support.polling import eventually
from tests.support.workers import ScriptedWorker


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _redis_url(stack: list[Any]) -> str:
    client = aioredis.Redis.from_url("redis://127.0.0.1:6379/0", socket_connect_timeout=1)
    try:
        await client.ping()
        return "redis://127.0.0.1:6379/0"
    except Exception:
        server = RedisServer()
        stack.append(server)
        return await server.start()
    finally:
        await client.aclose()


async def failover(dbs: Databases, redis_url: str, media_dir: Path, lease_s: float) -> None:
    root = shared_tmp("mediad-bench-cluster-")
    cluster = Cluster(
        root, await dbs.create(), redis_url, queue={"concurrency": 3, "lease_s": lease_s}
    )
    cluster.add("a")
    cluster.add("b")
    try:
        async with MediaServer(media_dir) as server:
            await cluster.start()
            api = cluster["a"].api()
            try:
                url = server.url("blob.bin", rate=300_000)
                ids = [(await api.submit(url, type="aria2"))["jobId"] for _ in range(3)]

                async def running() -> dict[str, Any] | None:
                    jobs = {i: await api.job(i) for i in ids}
                    ok = all(j["status"] == "running" and j["progress"] for j in jobs.values())
                    return jobs if ok else None

                jobs = await eventually(running, timeout_s=60, what="3 jobs running")
                if any("instanceId" not in j for j in jobs.values()):
                    print("failover: n/a (jobs have no instanceId: the cluster feature is missing)")
                    return
                owners: dict[str, list[str]] = {}
                for job_id, job in jobs.items():
                    owners.setdefault(job["instanceId"], []).append(job_id)
                victim_id = max(owners, key=lambda k: len(owners[k]))
                survivor = next(i for i in cluster.instances.values() if i.instance_id != victim_id)
                await api.close()
                api = survivor.api()
                killed = owners[victim_id]
                cluster[victim_id].kill()
                t0 = time.monotonic()
                back: dict[str, float] = {}

                async def again() -> bool:
                    for job_id in killed:
                        if job_id not in back:
                            job = await api.job(job_id)
                            if job["attempts"] >= 2 and job["status"] in ("running", "completed"):
                                back[job_id] = time.monotonic() - t0
                    return len(back) == len(killed)

                await eventually(again, timeout_s=120, interval_s=0.02, what="failover")
                figures = ", ".join(f"{v:.2f} s" for v in sorted(back.values()))
                print(
                    f"failover: SIGKILL of {victim_id} → its {len(killed)} jobs running again"
                    f" on {survivor.instance_id} after {figures} (queue.lease_s {lease_s:g})"
                )
            finally:
                await api.close()
    finally:
        await cluster.close()
        shutil.rmtree(root, ignore_errors=True)


async def latency(dbs: Databases, redis_url: str, events: int, hz: float) -> None:
    root = shared_tmp("mediad-bench-cluster-")
    cluster = Cluster(root, await dbs.create(), redis_url, workers={"processes": 0})
    a, b = cluster.add("a"), cluster.add("b")
    shared = SimpleNamespace(data_path=cluster.data_dir, tmp_path=cluster.tmp_dir)
    worker = ScriptedWorker(a.base, "bench-worker", token=WORKER_TOKEN, storage=shared)  # type: ignore[arg-type]
    try:
        await cluster.start()
        await worker.connect()
        api = Api(a.base)
        try:
            async with JobsClient(a.base) as on_a, JobsClient(b.base) as on_b:
                for client in (on_a, on_b):
                    await client.subscribe(all=True)
                job_id = (await api.submit("http://127.0.0.1:9/x.bin", type="aria2"))["jobId"]
                await eventually(lambda: worker.starts, what="job:start on the bench worker")
                attempt = worker.start_of(0)["attempt"]
                sent: dict[float, float] = {}
                received: dict[str, dict[float, float]] = {"a": {}, "b": {}}
                for name, client in (("a", on_a), ("b", on_b)):
                    client.sio.on("progress", _stamp(received[name]), namespace="/jobs")
                for k in range(1, events + 1):
                    value = round(k * 99 / events, 3)
                    sent[value] = time.monotonic()
                    await worker.emit(
                        "progress",
                        {"jobId": job_id, "attempt": attempt, "stage": "downloading",
                         "progress": value, "speed": 1000, "eta": 5, "totalBytes": 1 << 20},
                    )  # fmt: skip
                    await asyncio.sleep(1 / hz)
                await eventually(
                    lambda: len(received["a"]) >= events * 0.95, timeout_s=10, what="events on A"
                )
                with_b = await _settle(received["b"], events)
                for name, label in (("a", "same instance (A → A)"), ("b", "across (A → B)")):
                    lat = [(t - sent[v]) * 1000 for v, t in received[name].items() if v in sent]
                    if not lat or (name == "b" and not with_b):
                        print(f"event latency, {label}: n/a ({len(lat)} of {events} arrived)")
                        continue
                    print(
                        f"event latency, {label}: p50 {statistics.median(lat):.2f} ms,"
                        f" p99 {_pct(lat, 0.99):.2f} ms ({len(lat)} of {events} events)"
                    )
        finally:
            await api.close()
    finally:
        await worker.close()
        await cluster.close()
        shutil.rmtree(root, ignore_errors=True)


def _stamp(into: dict[float, float]) -> Any:
    async def record(data: dict[str, Any]) -> None:
        into.setdefault(float(data["progress"]), time.monotonic())

    return record


async def _settle(into: dict[float, float], events: int) -> bool:
    try:
        await eventually(lambda: len(into) >= events * 0.95, timeout_s=5, what="events on B")
        return True
    except AssertionError:
        return False


async def throughput(dbs: Databases, redis_url: str, media_dir: Path, jobs: int) -> None:
    for instances, limit in ((1, 3), (2, 6)):
        root = shared_tmp("mediad-bench-cluster-")
        cluster = Cluster(
            root, await dbs.create(), redis_url,
            queue={"concurrency": limit}, workers={"processes": 3},
        )  # fmt: skip
        names = [cluster.add(chr(ord("a") + i)).instance_id for i in range(instances)]
        apis: list[Api] = []
        try:
            async with MediaServer(media_dir) as server:
                await cluster.start()
                apis = [cluster[n].api() for n in names]
                url = server.url("tiny.bin")
                started = time.monotonic()
                ids = [
                    (await apis[k % len(apis)].submit(url, type="aria2"))["jobId"]
                    for k in range(jobs)
                ]
                for job_id in ids:
                    job = await apis[0].wait_status(job_id, "completed", "failed", timeout_s=300)
                    assert job["status"] == "completed", job
                rate = jobs / (time.monotonic() - started)
                print(
                    f"throughput: {jobs} tiny aria2 jobs on {instances} instance(s),"
                    f" queue.concurrency {limit}: {rate:.1f} jobs/s"
                )
        finally:
            for api in apis:
                await api.close()
            await cluster.close()
            shutil.rmtree(root, ignore_errors=True)


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lease", type=float, default=3.0, help="queue.lease_s")
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--hz", type=float, default=100.0, help="progress events a second")
    parser.add_argument("--jobs", type=int, default=150, help="tiny jobs for the throughput")
    args = parser.parse_args(argv)
    stack: list[Any] = []
    dbs = Databases()
    await dbs.start()
    media_dir = shared_tmp("mediad-bench-media-")
    media.make_random_file(media_dir / "blob.bin", 4 * 1024 * 1024, seed=1)
    media.make_random_file(media_dir / "tiny.bin", 1024, seed=2)
    try:
        redis_url = await _redis_url(stack)
        await latency(dbs, redis_url, args.events, args.hz)
        await failover(dbs, redis_url, media_dir, args.lease)
        await throughput(dbs, redis_url, media_dir, args.jobs)
    finally:
        for server in stack:
            await server.close()
        await dbs.stop()
        shutil.rmtree(media_dir, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())

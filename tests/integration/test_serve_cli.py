"""`mediad serve` as a user runs it: embedded PostgreSQL and Redis under the state dir,
one real download, a clean stop that leaves no process behind."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.integration.test_store import ALL_MIGRATIONS
from tests.support.harness import eventually, shared_tmp
from tests.support.mediaserver import MediaServer
from tests.support.ports import fixed_port


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid``, by parent links in /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    found: set[int] = set()
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
async def test_serve_on_embedded_defaults(media_server: MediaServer) -> None:
    state = shared_tmp("mediad-test-serve-")
    port = fixed_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        MEDIAD_STORAGE_STATE_DIR=str(state),
        MEDIAD_SERVER_PORT=str(port),
        MEDIAD_NETWORK_ALLOW_HOSTS="127.0.0.1",  # the media server is on loopback
    )
    with open(state / "serve.log", "wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mediad", "serve"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession(base) as http:

            async def healthy() -> bool:
                try:
                    async with http.get("/health") as resp:
                        return resp.status == 200
                except aiohttp.ClientError:
                    return proc.poll() is not None  # stop polling a dead server

            await eventually(healthy, timeout_s=120, interval_s=0.2, what="/health 200")
            assert proc.poll() is None, (state / "serve.log").read_text()
            assert (state / "postgres").is_dir() and (state / "redis").is_dir()
            async with http.post("/downloads", json={"url": media_server.url("video.mp4")}) as r:
                assert r.status == 201
                job_id = (await r.json())["jobId"]

            async def finished() -> str | None:
                async with http.get(f"/downloads/{job_id}") as resp:
                    status = (await resp.json())["status"]
                    return status if status in ("completed", "failed") else None

            assert await eventually(finished, timeout_s=60, what="the job to end") == "completed"
            assert (state / "data" / job_id / "video.mp4").is_file()
        tree = descendants(proc.pid)
        assert len(tree) >= 5  # postgres, redis, aria2c and three workers at least
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, (state / "serve.log").read_text()[-3000:]
        await eventually(
            lambda: not [p for p in tree if alive(p)], timeout_s=20, what="no process left"
        )
        # Logs are JSON, one object per line, and name the job they are about.
        entries = [json.loads(line) for line in (state / "serve.log").read_text().splitlines()]
        about_job = [e for e in entries if e.get("jobId") == job_id]
        assert {"ts", "level", "logger", "msg"} <= set(entries[0])
        processes = {e["process"] for e in about_job}
        assert "serve" in processes and any(p.startswith("local-") for p in processes)
        assert any(e.get("stage") == "queued" for e in about_job)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(state, ignore_errors=True)


@pytest.mark.slow
async def test_a_second_start_reuses_the_embedded_cluster() -> None:
    """The data dir survives a restart: a job row written by one run is there in the next."""
    state = shared_tmp("mediad-test-serve2-")
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(MEDIAD_STORAGE_STATE_DIR=str(state))
    try:
        every = "applied: " + ", ".join(ALL_MIGRATIONS)
        for expected in (every, "the schema is up to date"):
            out = subprocess.run(
                [sys.executable, "-m", "mediad", "migrate"],
                env=env, capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            assert out.returncode == 0, out.stderr
            assert out.stdout.strip() == expected
        assert not [p for p in Path("/proc").iterdir() if p.name.isdigit() and _runs_in(p, state)]
    finally:
        shutil.rmtree(state, ignore_errors=True)


def _runs_in(proc_dir: Path, state: Path) -> bool:
    try:
        return str(state) in (proc_dir / "cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False

"""Secrets stay where they belong: `check-config` prints none, and no process mediad
starts (PostgreSQL, Redis, aria2c, workers, the tools they run) holds one in its
environment, as /proc/PID/environ shows it, for local and for remote workers alike."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mediad.service import Service
from tests.integration.test_serve_cli import alive, descendants
from tests.support.harness import Api, Databases, RedisServer, running_service, shared_tmp
from tests.support.mediaserver import MediaServer
from tests.support.polling import eventually
from tests.support.ports import fixed_port
from tests.support.proctree import local_workers

WORKER_TOKEN = "WORKERTOKEN-s3cr3t-0001"
API_TOKEN = "APITOKEN-s3cr3t-00000002"
PROXY_PASSWORD = "PROXYPASS-s3cr3t-3"
OTHER_SECRET = "OTHERSECRET-s3cr3t-4"
URL_PASSWORD = "URLPASS-s3cr3t-5"


def environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(
        item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item
    )


def cmdline(pid: int) -> str:
    """ "" for a process that has ended since it was listed."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace")


def exe_name(pid: int) -> str:
    try:
        return os.path.basename(os.readlink(f"/proc/{pid}/exe")).removesuffix(" (deleted)")
    except OSError:
        return ""


def ppid(pid: int) -> int:
    """-1 for a process that has ended since it was listed (a probe such as ffprobe)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return -1
    return int(stat.rsplit(")", 1)[1].split()[1])


def still_there(checks: dict[int, Any]) -> dict[str, Any]:
    """Each process's check, by name and pid, for those that are still there (a probe
    such as ``ffmpeg -version`` may end between the listing and the look)."""
    found = {}
    for pid, check in checks.items():
        try:
            found[f"{exe_name(pid)} {pid}"] = check()
        except (ProcessLookupError, FileNotFoundError):
            continue
    return found


def leaks(pid: int, secrets: list[str]) -> list[str]:
    """What of mediad's (settings and secrets) process ``pid`` has in its environment."""
    env = environ(pid)
    found = [
        name
        for name in env
        if (name.startswith("MEDIAD_") and not name.startswith("MEDIAD_TWMD_"))
        or name in ("DATABASE_URL", "REDIS_URL", "WORKER_TOKEN", "TWITTER_PROXY")
        or name == "SOME_API_KEY"
    ]
    blob = "\0".join(f"{k}={v}" for k, v in env.items())
    found += [f"value {secret[:12]}…" for secret in secrets if secret in blob]
    return found


def aria2_secret(folder: Path) -> str:
    for line in (folder / "aria2.conf").read_text().splitlines():
        if line.startswith("rpc-secret="):
            return line.split("=", 1)[1]
    raise AssertionError(f"no rpc-secret in {folder}/aria2.conf")


def secret_env() -> dict[str, str]:
    """The service's environment as the systemd unit suggests: secrets given there."""
    return {
        "WORKER_TOKEN": WORKER_TOKEN,
        "MEDIAD_SERVER_API_TOKENS": API_TOKEN,
        "TWITTER_PROXY": f"http://user:{PROXY_PASSWORD}@127.0.0.1:9",
        # Not mediad's, but secrets all the same: no tool needs them.
        "SOME_API_KEY": OTHER_SECRET,
        "UPSTREAM_MIRROR": f"https://mirror:{URL_PASSWORD}@mirror.example/",
    }


# --- 1: check-config ------------------------------------------------------------------


def test_check_config_hides_every_credential_and_secret_key(tmp_path: Path) -> None:
    config = tmp_path / "mediad.yaml"
    config.write_text(
        "server:\n  cors_origins: ['https://viewer:CORSPASS-s3cr3t@app.example']\n"
        "tools:\n  twmd: /opt/twmd\n"
        "notify:\n"
        "  - {name: chat, url: 'https://chat.example/api/webhooks/123/HOOKPATH-s3cr3t',"
        " secret: SIGN-s3cr3t}\n"
        "  - {name: phone, apprise: 'tgram://BOTTOKEN-s3cr3t/12345'}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIAD_")}
    secrets = {
        "REDIS_URL": "redis://:REDISPASS-s3cr3t@redis.example:6379/0",
        "TWITTER_PROXY": "http://tw:PROXYPASS-s3cr3t@proxy.example:3128",
        "DATABASE_URL": "postgresql://mediad:DBPASS-s3cr3t@db.example/mediad"
        "?sslpassword=SSLPASS-s3cr3t&sslmode=require",
        "WORKER_TOKEN": "WORKERTOKEN-s3cr3t-00",
        "MEDIAD_SERVER_API_TOKENS": "APITOKEN-s3cr3t-0000a,APITOKEN-s3cr3t-0000b",
    }
    env.update(secrets)
    out = subprocess.run(
        [sys.executable, "-m", "mediad", "check-config", "--config", str(config)],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    printed = out.stdout + out.stderr
    assert "s3cr3t" not in printed, printed
    # What is not secret is still there to check.
    for visible in (
        "redis://:***@redis.example:6379/0",
        "http://tw:***@proxy.example:3128",
        "postgresql://mediad:***@db.example/mediad?sslpassword=***&sslmode=require",
        "https://viewer:***@app.example",
        "/opt/twmd",
        "https://chat.example/***",
    ):
        assert visible in printed, printed
    # server.api_tokens, workers.token, the webhook's secret, the Apprise URL
    assert printed.count("<set>") == 4


# --- 2 and 3: the environments of every child ------------------------------------------


class Serve:
    """`mediad serve` in a subprocess, its secrets given in its environment."""

    def __init__(self, state: Path, extra_env: dict[str, str]) -> None:
        self.state = state
        self.port = fixed_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        env.update(
            MEDIAD_STORAGE_STATE_DIR=str(state),
            MEDIAD_SERVER_PORT=str(self.port),
            MEDIAD_NETWORK_ALLOW_HOSTS="127.0.0.1",
            MEDIAD_STORAGE_MIN_FREE_BYTES="0",
            MEDIAD_SERVER_RATE_LIMIT_PER_MIN="0",
            **secret_env(),
            **extra_env,
        )
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    async def __aenter__(self) -> Serve:
        with open(self.state / "serve.log", "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mediad", "serve"], env=self.env, stderr=log
            )
        api = Api(self.base, API_TOKEN)
        try:

            async def ready() -> bool:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise AssertionError((self.state / "serve.log").read_text()[-3000:])
                with contextlib.suppress(aiohttp.ClientError):
                    status, body = await api.request("GET", "/health")
                    return status == 200 and body["checks"]["workers"]["connected"] == 3
                return False

            await eventually(ready, timeout_s=120, interval_s=0.1, what="mediad serve")
        finally:
            await api.close()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.proc is not None
        tree = descendants(self.proc.pid)
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        await eventually(lambda: not [p for p in tree if alive(p)], what="no process left")


@contextlib.contextmanager
def state_folder(prefix: str) -> Iterator[Path]:
    path = shared_tmp(prefix)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


async def stalled_jobs(api: Api, media_server: MediaServer, types: list[str]) -> list[str]:
    """Jobs whose tools stay alive (the download stalls) until they are cancelled."""
    url = media_server.url("blob.bin", stall_after=100_000)
    ids = [(await api.submit(url, type=t))["jobId"] for t in types]
    for job_id in ids:
        await eventually(lambda j=job_id: _running(api, j), timeout_s=60, what=f"{job_id} to run")
    return ids


async def _running(api: Api, job_id: str) -> bool:
    job = await api.job(job_id)
    assert job["status"] in ("queued", "running"), job
    return job["status"] == "running"


def forked_tools(workers: list[int], tree: set[int]) -> list[int]:
    """yt-dlp children, titled ``mediad: yt-dlp <jobId>``, forked for the workers: by the
    zygote (a local worker's parent) or by a remote worker's own fork server (its child,
    titled ``mediad: fork-server``)."""
    forkers = {ppid(p) for p in workers} | {
        p for p in tree if ppid(p) in workers and cmdline(p).strip() == "mediad: fork-server"
    }
    return [p for p in tree if ppid(p) in forkers and cmdline(p).startswith("mediad: yt-dlp ")]


@pytest.mark.slow
async def test_no_child_of_serve_holds_a_secret(media_server: MediaServer) -> None:
    """Embedded PostgreSQL and Redis, aria2c, three workers, a forked yt-dlp and an
    ffmpeg: not one of them has a setting or secret of mediad's in /proc/PID/environ."""
    with state_folder("mediad-test-secrets-") as state:
        async with Serve(state, {}) as serve:
            api = Api(serve.base, API_TOKEN)
            try:
                ids = await stalled_jobs(api, media_server, ["ytdlp", "ffmpeg", "aria2"])
                assert serve.proc is not None
                main = serve.proc.pid

                def tools_running() -> set[int] | None:
                    tree = descendants(main)
                    workers = local_workers(main)
                    # The ffmpeg job's tool: ffprobe first (it reads the stalled input
                    # for the duration), then ffmpeg; either is a child to check.
                    has_ffmpeg = bool({"ffmpeg", "ffprobe"} & {exe_name(p) for p in tree})
                    return tree if has_ffmpeg and forked_tools(workers, tree) else None

                tree = await eventually(tools_running, what="yt-dlp and ffmpeg")
                secrets = [
                    WORKER_TOKEN,
                    API_TOKEN,
                    PROXY_PASSWORD,
                    OTHER_SECRET,
                    URL_PASSWORD,
                    aria2_secret(state / "aria2"),
                ]
                kinds = {pid: exe_name(pid) for pid in tree}
                workers = local_workers(main)
                assert len(workers) == 3
                forked = forked_tools(workers, tree)
                seen = set(kinds.values())
                assert {"postgres", "aria2c"} <= seen and {"ffmpeg", "ffprobe"} & seen, kinds
                assert any("redis" in cmdline(p) for p in tree), kinds
                assert len(forked) == 1, [cmdline(p) for p in tree]
                problems = {f"{kinds[p]} {p}": leaks(p, secrets) for p in tree if alive(p)}
                assert not {k: v for k, v in problems.items() if v}, problems
                # The worker gets no token in its environment: it comes in the zygote's
                # request to fork it, and no descriptor of the worker holds it.
                for pid in workers:
                    assert not [fd for fd in os.listdir(f"/proc/{pid}/fd") if int(fd) > 2 and
                                "memfd:mediad" in _link(pid, fd)]  # fmt: skip
                for job_id in ids:
                    await api.request("POST", f"/downloads/{job_id}/cancel")
            finally:
                await api.close()


def _link(pid: int, fd: str) -> str:
    try:
        return os.readlink(f"/proc/{pid}/fd/{fd}")
    except OSError:
        return ""


@pytest.mark.slow
async def test_no_child_sees_the_database_or_redis_url(
    media_server: MediaServer, databases: Databases, redis_server: RedisServer
) -> None:
    """With existing servers (DATABASE_URL, REDIS_URL): aria2c, the workers and their
    tools never see either URL."""
    dsn = await databases.create()
    with state_folder("mediad-test-secrets-ext-") as state:
        extra = {"DATABASE_URL": dsn, "REDIS_URL": redis_server.url,
                 "MEDIAD_REDIS_PREFIX": f"mediad-secrets-{os.getpid()}:"}  # fmt: skip
        async with Serve(state, extra) as serve:
            api = Api(serve.base, API_TOKEN)
            try:
                ids = await stalled_jobs(api, media_server, ["ytdlp"])
                assert serve.proc is not None
                main = serve.proc.pid

                def forked() -> set[int] | None:
                    tree = descendants(main)
                    workers = local_workers(main)
                    return tree if forked_tools(workers, tree) else None

                tree = await eventually(forked, what="a forked yt-dlp")
                assert {exe_name(p) for p in tree} & {"postgres", "redis-server"} == set()
                secrets = [dsn, redis_server.url, WORKER_TOKEN, API_TOKEN, PROXY_PASSWORD]
                problems = still_there({p: lambda p=p: leaks(p, secrets) for p in tree})
                assert len(problems) >= 5  # aria2c, 3 workers, yt-dlp
                assert not {k: v for k, v in problems.items() if v}, problems
                for job_id in ids:
                    await api.request("POST", f"/downloads/{job_id}/cancel")
            finally:
                await api.close()


# --- 3: a remote worker ----------------------------------------------------------------


@pytest.fixture
async def remote_service(new_config: Any) -> AsyncIterator[Service]:
    config = await new_config(workers={"processes": 0, "token": WORKER_TOKEN})
    async with running_service(config) as service:
        yield service


@pytest.mark.slow
async def test_a_remote_worker_forks_tools_without_its_token(
    remote_service: Service, media_server: MediaServer
) -> None:
    """`mediad worker --server URL` with WORKER_TOKEN in its environment: it works, and
    neither it (after start-up) nor its aria2c nor a forked yt-dlp shows the token."""
    config = remote_service.config
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIAD_")}
    env.update(
        WORKER_TOKEN=WORKER_TOKEN,
        SOME_API_KEY=OTHER_SECRET,
        MEDIAD_STORAGE_STATE_DIR=str(config.state_path),
        MEDIAD_NETWORK_ALLOW_HOSTS="127.0.0.1",
        MEDIAD_LOGGING_LEVEL="warning",
    )
    log_path = config.state_path / "remote-worker.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mediad", "worker", "--server", remote_service.base_url],
            env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
        )  # fmt: skip
    api = Api(remote_service.base_url)
    try:
        assert remote_service.dispatcher is not None
        dispatcher = remote_service.dispatcher
        await eventually(
            lambda: dispatcher.roster.worker_count == 1, timeout_s=60, what="the worker"
        )
        ids = await stalled_jobs(api, media_server, ["ytdlp"])
        tree = await eventually(
            lambda: (t := descendants(proc.pid)) and forked_tools([proc.pid], t) and t,
            what="a forked yt-dlp",
        )
        assert "aria2c" in {exe_name(p) for p in tree}
        secrets = [WORKER_TOKEN, OTHER_SECRET, aria2_secret(config.state_path / "aria2-worker")]
        problems = still_there({p: lambda p=p: leaks(p, secrets) for p in [proc.pid, *tree]})
        assert not {k: v for k, v in problems.items() if v}, problems
        await api.request("POST", f"/downloads/{ids[0]}/cancel")
        # And it still does its work.
        job_id = (await api.submit(media_server.url("video.mp4"), type="ytdlp"))["jobId"]
        job = await api.wait_status(job_id, "completed", "failed", timeout_s=60)
        assert job["status"] == "completed", (job["errorCode"], job["errorMessage"])
    finally:
        await api.close()
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(timeout=30) == 0, log_path.read_text()[-2000:]
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

"""Chaos: a seeded random schedule of SIGKILLs over a run of small jobs of every tool.

`mediad serve` runs as a subprocess on its embedded PostgreSQL and Redis, with 4 workers
for 3 slots. Jobs of every kind — aria2, yt-dlp, ffmpeg (HLS) and twmd (the stand-in) —
are slowed by the media server so that they are caught mid-flight, while the schedule
SIGKILLs, each at least once: a worker, a tool's whole process group, one member of a
tool's group, the aria2 daemon, the embedded PostgreSQL, the embedded Redis and the whole
service (started again at once); and pauses, resumes and cancels jobs through the API.

At the end: every job that was not cancelled is ``completed`` exactly once (a database
trigger logs every status change), with the source's sha256 and one set of files;
cancelled ones have no files; never more than ``queue.concurrency`` ran at once; no
process of a killed generation is alive; ``/health`` is 200; SIGTERM stops everything.

The seed is printed (``chaos seed N``); ``MEDIAD_CHAOS_SEED=N`` replays it.
``MEDIAD_CHAOS_SEEDS=1,2,3``, ``MEDIAD_CHAOS_JOBS`` and ``MEDIAD_CHAOS_KILLS`` make the
long run (``make chaos``); ``MEDIAD_CHAOS_REPORT=FILE`` appends each run's figures to FILE
as one JSON line.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.support import media, twmd_standin
from tests.support.cli import clean_env
from tests.support.harness import shared_tmp
from tests.support.mediaserver import MediaServer
from tests.support.polling import eventually
from tests.support.ports import fixed_port
from tests.support.proctree import forked_for

DEFAULT_SEED = 20261201
SEEDS = [
    int(s)
    for s in (
        os.environ.get("MEDIAD_CHAOS_SEEDS") or os.environ.get("MEDIAD_CHAOS_SEED") or ""
    ).split(",")
    if s.strip()
] or [DEFAULT_SEED]
JOBS = int(os.environ.get("MEDIAD_CHAOS_JOBS", "21"))
KILLS = int(os.environ.get("MEDIAD_CHAOS_KILLS", "12"))
REPORT = os.environ.get("MEDIAD_CHAOS_REPORT")

CONCURRENCY = 3
WORKERS = 4
# Pacing: a 4 MiB blob takes about 2.5 s; twmd's media and the HLS segments come at the
# server-wide rate.
BLOB_RATE = 1_600_000
SERVER_RATE = 200_000
PACE = 0.6  # the share of the jobs completed by the last kill
KILL_WEIGHTS = {
    "worker": 20,
    "tool_group": 14,
    "tool_member": 8,
    "aria2": 14,
    "postgres": 6,
    "redis": 6,
    "service": 4,
}
TWEETS = {"1": ["Tw1VidClip.mp4"], "2": ["Tw2PhotoA.jpg", "Tw2PhotoB.jpg"]}


# -- processes ------------------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


@dataclass(frozen=True)
class Proc:
    """A process by pid and start time, so that a reused pid is never mistaken for it."""

    pid: int
    started: str

    @classmethod
    def of(cls, pid: int) -> Proc | None:
        fields = _stat(pid)
        return None if fields is None else cls(pid, fields[19])

    def alive(self) -> bool:
        fields = _stat(self.pid)
        return fields is not None and fields[19] == self.started and fields[0] != "Z"


def _tree(root: int) -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat(int(entry))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry))
    return children


def descendants(root: int) -> list[Proc]:
    children = _tree(root)
    found: list[Proc] = []
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), []):
            proc = Proc.of(child)
            if proc is not None and proc.alive():
                found.append(proc)
                stack.append(child)
    return found


# -- the service ------------------------------------------------------------------------


class Serve:
    """`mediad serve` on its embedded servers, killed and started again by the test."""

    def __init__(self, state: Path, env: dict[str, str]) -> None:
        self.state = state
        self.port = fixed_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = clean_env(
            MEDIAD_STORAGE_STATE_DIR=str(state),
            MEDIAD_SERVER_PORT=str(self.port),
            MEDIAD_SERVER_RATE_LIMIT_PER_MIN="0",
            MEDIAD_SERVER_SHUTDOWN_GRACE_S="5",
            MEDIAD_STORAGE_MIN_FREE_BYTES="0",
            MEDIAD_NETWORK_ALLOW_HOSTS="127.0.0.1",
            MEDIAD_QUEUE_CONCURRENCY=str(CONCURRENCY),
            MEDIAD_WORKERS_PROCESSES=str(WORKERS),
            MEDIAD_QUEUE_RETRY_BACKOFF_S="0.2",
            MEDIAD_QUEUE_WATCHDOG_S="20",
            MEDIAD_LOGGING_FORMAT="text",
            MEDIAD_LOGGING_LEVEL="info",
            **env,
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.generation = 0

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@/mediad?host={self.state}/postgres/run&port=5432"

    def start(self) -> None:
        self.generation += 1
        with open(self.state / "serve.log", "ab") as log:
            log.write(f"--- generation {self.generation}\n".encode())
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mediad", "serve"],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )

    async def ready(self, http: Http, timeout_s: float = 90) -> None:
        async def up() -> bool:
            status, body = await http.call("GET", "/health")
            return status == 200 and body["checks"]["workers"]["connected"] == WORKERS

        await eventually(up, timeout_s=timeout_s, interval_s=0.1, what="mediad serve ready")

    def processes(self) -> dict[str, list[Proc]]:
        """The live processes under the service, by role."""
        assert self.proc is not None
        roles: dict[str, list[Proc]] = {
            "worker": [], "tool": [], "aria2": [], "postgres": [], "redis": [],
        }  # fmt: skip
        workers: set[int] = set()
        tree = descendants(self.proc.pid)
        zygotes = {p.pid for p in tree if _cmdline(p.pid).strip() == "mediad: zygote"}
        for proc in tree:
            cmd = _cmdline(proc.pid)
            parent = int((_stat(proc.pid) or ["", "0"])[1])
            if parent in zygotes and cmd.startswith("mediad: worker "):  # forked by the zygote
                roles["worker"].append(proc)
                workers.add(proc.pid)
            elif parent == self.proc.pid and "aria2c" in cmd and "--enable-rpc" in cmd:
                roles["aria2"].append(proc)
            elif parent == self.proc.pid and "postgres" in cmd and " -D " in cmd:
                roles["postgres"].append(proc)
            elif parent == self.proc.pid and "redis-server" in cmd:
                roles["redis"].append(proc)
        under_workers = set()
        for w in workers:
            under_workers |= {*descendants(w), *tools_forked_for(w)}
        roles["tool"] = sorted(under_workers, key=lambda p: p.pid)
        return roles

    async def kill(self) -> list[Proc]:
        """SIGKILL the service itself; returns its generation's processes."""
        assert self.proc is not None
        tree = descendants(self.proc.pid)
        self.proc.kill()
        proc = self.proc
        await eventually(lambda: proc.poll() is not None, what="the killed service to exit")
        return tree

    async def terminate(self, timeout_s: float = 60) -> int:
        assert self.proc is not None
        proc = self.proc
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        await eventually(lambda: proc.poll() is not None, timeout_s=timeout_s, what="SIGTERM")
        return proc.returncode


class Http:
    """REST calls that tolerate the outages the test causes: (status, body), or (0, None)
    when the service cannot be reached."""

    def __init__(self, base: str) -> None:
        self.session = aiohttp.ClientSession(base, timeout=aiohttp.ClientTimeout(total=15))

    async def close(self) -> None:
        await self.session.close()

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        try:
            async with self.session.request(method, path, **kwargs) as resp:
                body = await resp.read()
                if resp.content_type == "application/json":
                    return resp.status, json.loads(body)
                return resp.status, body
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return 0, None

    async def jobs(self, statuses: str) -> list[dict[str, Any]] | None:
        """Every job in these statuses (None: the service did not answer)."""
        items: list[dict[str, Any]] = []
        cursor = ""
        while True:
            query = f"/downloads?status={statuses}&limit=200" + (
                f"&cursor={cursor}" if cursor else ""
            )
            status, body = await self.call("GET", query)
            if status != 200:
                return None
            items += body["items"]
            cursor = body.get("nextCursor") or ""
            if not cursor:
                return items


# -- the jobs -------------------------------------------------------------------------


@dataclass
class Spec:
    kind: str  # aria2, ytdlp, ffmpeg, twitter
    url: str
    fields: dict[str, Any]
    expected: dict[str, str] | None  # name → sha256; None: one file of `sha`
    sha: str | None = None


@dataclass
class Run:
    seed: int
    rng: random.Random
    serve: Serve
    http: Http
    ids: dict[str, Spec] = field(default_factory=dict)
    kills: Counter[str] = field(default_factory=Counter)
    controls: Counter[str] = field(default_factory=Counter)
    paused: set[str] = field(default_factory=set)
    cancelled: set[str] = field(default_factory=set)
    generations: list[list[Proc]] = field(default_factory=list)  # what each kill left behind
    log: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        self.log.append(f"{time.monotonic():.2f} {text}")


@pytest.fixture(scope="module")
async def chaos_media(media_dir: Path) -> AsyncIterator[MediaServer]:
    """A media server of the test's own, slow by default (twmd's media and the HLS
    segments come at its server-wide rate); blobs ask for their own rate."""
    root = Path(media_dir)
    hls = media.make_hls(root / "chaos-hls", seconds=6.0, segment_s=1.0).parent
    async with MediaServer(root, rate_bytes_per_s=SERVER_RATE) as server:
        for path in hls.iterdir():
            server.add_file(f"hls/{path.name}", path)
        for path, data in twmd_standin.media_blobs().items():
            server.add_bytes(path, data)
        yield server


def _specs(rng: random.Random, server: MediaServer, blob_sha: str, n: int) -> list[Spec]:
    blobs = twmd_standin.media_blobs()
    specs = []
    for i in range(n):
        kind = rng.choices(["aria2", "ytdlp", "ffmpeg", "twitter"], [3, 3, 2, 2])[0]
        if kind in ("aria2", "ytdlp"):
            url = server.url("blob.bin", rate=BLOB_RATE, n=i)
            expected = {"blob.bin": blob_sha} if kind == "aria2" else None
            specs.append(Spec(kind, url, {"type": kind}, expected, blob_sha))
        elif kind == "ffmpeg":
            specs.append(Spec(kind, server.url("hls/index.m3u8", n=i), {"type": "ffmpeg"}, None))
        else:
            tweet = rng.choice(sorted(TWEETS))
            expected = {
                name: hashlib.sha256(
                    blobs[f"twmd/{'video' if name.endswith('mp4') else 'media'}/{name}"]
                ).hexdigest()
                for name in TWEETS[tweet]
            }
            url = f"https://x.com/chaos{i}/status/{tweet}"
            specs.append(Spec(kind, url, {}, expected))
    return specs


def _schedule(rng: random.Random, kills: int) -> list[str]:
    """Every kind of kill at least once, the rest by weight, in random order."""
    kinds = list(KILL_WEIGHTS)
    rest = rng.choices(kinds, [KILL_WEIGHTS[k] for k in kinds], k=max(0, kills - len(kinds)))
    plan = kinds + rest
    rng.shuffle(plan)
    return plan


# -- the kills ------------------------------------------------------------------------


async def _mid_flight(run: Run) -> bool:
    """Wait until some job is well into its download; False when nothing runs any more."""
    threshold = run.rng.uniform(5, 70)

    async def check() -> str | None:
        jobs = await run.http.jobs("running,queued")
        if jobs is None:
            return None
        if not jobs:
            return "idle"
        for job in jobs:
            if job["status"] == "running" and (
                (job["progress"] or 0) >= threshold
                or (job["progress"] is None and (job["speed"] or 0) > 0)
            ):
                return "busy"
        return None

    with contextlib.suppress(AssertionError):
        return (
            await eventually(check, timeout_s=20, interval_s=0.05, what="a job mid-flight")
            == "busy"
        )
    return True  # nothing got far within the deadline (an outage): strike anyway


def _kill(proc: Proc, sig: int = signal.SIGKILL) -> bool:
    if not proc.alive():
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, sig)
        return True
    return False


def tools_forked_for(worker: int) -> list[Proc]:
    """The yt-dlp children the zygote forked for ``worker`` (and what they started)."""
    return [proc for proc in map(Proc.of, forked_for(worker)) if proc is not None]


def worker_and_tools(worker: Proc) -> list[Proc]:
    return [worker, *descendants(worker.pid), *tools_forked_for(worker.pid)]


async def kill_worker(run: Run) -> bool:
    roles = run.serve.processes()
    busy = [w for w in roles["worker"] if len(worker_and_tools(w)) > 1]
    pool = busy if busy and run.rng.random() < 0.85 else roles["worker"]
    if not pool:
        return False
    worker = run.rng.choice(pool)
    tree = worker_and_tools(worker)
    run.generations.append(tree)
    return _kill(worker)


async def kill_tool_group(run: Run) -> bool:
    tools = run.serve.processes()["tool"]
    leaders = [t for t in tools if (_stat(t.pid) or ["", "", "0"])[2] == str(t.pid)]
    if not leaders:
        return False
    leader = run.rng.choice(leaders)
    group = [t for t in tools if (_stat(t.pid) or ["", "", "0"])[2] == str(leader.pid)]
    run.generations.append(group)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(leader.pid, signal.SIGKILL)
        return True
    return False


async def kill_tool_member(run: Run) -> bool:
    tools = run.serve.processes()["tool"]
    return bool(tools) and _kill(run.rng.choice(tools))


async def kill_server(run: Run, role: str) -> bool:
    found = run.serve.processes()[role]
    return bool(found) and _kill(found[0])


async def kill_service(run: Run) -> bool:
    tree = await run.serve.kill()
    run.generations.append(tree)
    run.serve.start()  # at once
    await run.serve.ready(run.http)
    return True


KILLERS: dict[str, Callable[[Run], Awaitable[bool]]] = {
    "worker": kill_worker,
    "tool_group": kill_tool_group,
    "tool_member": kill_tool_member,
    "aria2": lambda run: kill_server(run, "aria2"),
    "postgres": lambda run: kill_server(run, "postgres"),
    "redis": lambda run: kill_server(run, "redis"),
    "service": kill_service,
}


async def control(run: Run) -> None:
    """Pause, resume or cancel a job through the API, as a user would."""
    action = run.rng.choices(["pause", "resume", "cancel"], [4, 3, 2])[0]
    if len(run.paused) >= CONCURRENCY:  # a user comes back to what they paused
        action = "resume"
    if action == "resume":
        if not run.paused:
            return
        job_id = run.rng.choice(sorted(run.paused))
    else:
        if action == "cancel" and len(run.cancelled) >= max(1, len(run.ids) // 8):
            return
        jobs = await run.http.jobs("running,queued")
        if not jobs:
            return
        job_id = run.rng.choice(sorted(j["jobId"] for j in jobs))
    status, _ = await run.http.call("POST", f"/downloads/{job_id}/{action}")
    run.note(f"{action} {job_id}: {status}")
    if status != 200:
        return
    run.controls[action] += 1
    if action == "pause":
        run.paused.add(job_id)
    elif action == "resume":
        run.paused.discard(job_id)
    else:
        run.paused.discard(job_id)
        run.cancelled.add(job_id)


# -- the run --------------------------------------------------------------------------


async def _submit(run: Run, spec: Spec) -> None:
    async def post() -> str | None:
        status, body = await run.http.call(
            "POST", "/downloads", json={"url": spec.url, **spec.fields}
        )
        assert status in (0, 201, 503), (status, body)
        return body["jobId"] if status == 201 else None

    run.ids[await eventually(post, what="a job accepted")] = spec


async def _transition_log(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            """
            CREATE TABLE IF NOT EXISTS test_transitions (
                job_id uuid, old text, new text, n bigserial);
            CREATE OR REPLACE FUNCTION test_log_transition() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.status IS DISTINCT FROM OLD.status THEN
                    INSERT INTO test_transitions (job_id, old, new)
                    VALUES (NEW.id, OLD.status, NEW.status);
                END IF;
                RETURN NEW;
            END $$;
            DROP TRIGGER IF EXISTS test_transitions ON jobs;
            CREATE TRIGGER test_transitions AFTER UPDATE ON jobs
                FOR EACH ROW EXECUTE FUNCTION test_log_transition();
            """
        )
    finally:
        await conn.close()


async def _transitions(dsn: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(
            "SELECT job_id::text AS id, old, new FROM test_transitions ORDER BY n"
        )
    finally:
        await conn.close()


def _sha(path: Path) -> str:
    return media.sha256_file(path)


def _files(state: Path, job_id: str) -> dict[str, str]:
    folder = state / "data" / job_id
    if not folder.exists():
        return {}
    return {p.name: (_sha(p) if p.is_file() else "<dir>") for p in folder.iterdir()}


@pytest.mark.slow
@pytest.mark.timeout(300 + JOBS * 10)
@pytest.mark.parametrize("seed", SEEDS)
async def test_chaos(seed: int, chaos_media: MediaServer, media_dir: Path) -> None:
    print(f"\nchaos seed {seed} (replay: MEDIAD_CHAOS_SEED={seed}): {JOBS} jobs, {KILLS} kills")
    rng = random.Random(seed)
    began = time.monotonic()
    state = shared_tmp(f"mediad-chaos-{seed}-")
    wrapper = twmd_standin.write_wrapper(state)
    serve = Serve(
        state,
        {"TWMD_PATH": str(wrapper), twmd_standin.MEDIA_URL_ENV: chaos_media.base_url},
    )
    http = Http(serve.base)
    run = Run(seed, rng, serve, http)
    ok = False
    try:
        serve.start()
        await serve.ready(http)
        await _transition_log(serve.dsn)
        blob_sha = _sha(Path(media_dir) / "blob.bin")

        # The reference for HLS jobs: the same stream copied once, in calm conditions.
        reference = Spec("ffmpeg", chaos_media.url("hls/index.m3u8"), {"type": "ffmpeg"}, None)
        await _submit(run, reference)
        (ref_id,) = run.ids
        await eventually(lambda: _done(http, ref_id), timeout_s=60, what="the reference HLS job")
        (ref_sha,) = _files(state, ref_id).values()
        reference.sha = ref_sha

        specs = _specs(rng, chaos_media, blob_sha, JOBS)
        for spec in specs:
            if spec.kind == "ffmpeg":
                spec.sha = ref_sha
        plan = _schedule(rng, KILLS)
        # The kills are spread over the run: before kill n, about n * PACE * JOBS / KILLS
        # jobs have completed, and a backlog of jobs waits (submitted as the run goes on).
        per_kill = PACE * len(specs) / max(1, len(plan))
        submitted = 0

        async def paced(step: int) -> bool:
            nonlocal submitted
            done = await http.jobs("completed")
            if done is None:
                return False
            finished = len(done) - 1 + len(run.cancelled)  # the reference job is done too
            backlog = submitted - finished - len(run.paused)  # paused jobs wait for a resume
            while submitted < len(specs) and backlog < 2 * CONCURRENCY + 1:
                await _submit(run, specs[submitted])
                submitted += 1
                backlog += 1
            return finished >= min(int(step * per_kill), submitted - CONCURRENCY - len(run.paused))

        for step, kind in enumerate(plan):
            with contextlib.suppress(AssertionError):  # a stuck run fails at the end instead
                await eventually(
                    lambda step=step: paced(step), timeout_s=60, interval_s=0.1, what="pace"
                )
            if not await _mid_flight(run):
                run.note("nothing running")
            done = await KILLERS[kind](run)
            run.note(f"kill {kind}: {'done' if done else 'nothing to kill'}")
            if done:
                run.kills[kind] += 1
            if rng.random() < 0.4:
                await control(run)
        while submitted < len(specs):
            await _submit(run, specs[submitted])
            submitted += 1

        # Let everything finish: paused jobs are resumed.
        async def settled() -> bool:
            for job_id in sorted(run.paused):
                status, body = await http.call("POST", f"/downloads/{job_id}/resume")
                if status == 200 or (status == 409 and body["error"]["status"] != "paused"):
                    run.paused.discard(job_id)
            left = await http.jobs("running,queued,paused")
            return left == [] and not run.paused

        await eventually(settled, timeout_s=120 + JOBS * 3, interval_s=0.2, what="every job to end")
        figures = await _verify(run)
        status, health = await http.call("GET", "/health")
        assert status == 200, health
        # Every process of every killed generation is gone.
        for tree in run.generations:
            await eventually(
                lambda tree=tree: not [p for p in tree if p.alive()], what="a killed generation"
            )
        last = descendants(serve.proc.pid)  # type: ignore[union-attr]
        assert await serve.terminate() == 0
        await eventually(lambda: not [p for p in last if p.alive()], what="the last generation")
        figures["seconds"] = round(time.monotonic() - began, 1)
        print("chaos figures:", json.dumps(figures, sort_keys=True))
        if REPORT:
            with open(REPORT, "a") as f:
                f.write(json.dumps(figures, sort_keys=True) + "\n")
        assert figures["lost"] == [] and figures["duplicates"] == [], figures
        ok = True
    finally:
        await http.close()
        if serve.proc is not None and serve.proc.poll() is None:
            serve.proc.kill()
            with contextlib.suppress(Exception):
                await eventually(lambda: serve.proc.poll() is not None, what="the service")  # type: ignore[union-attr]
        if not ok:
            print("\n".join(run.log[-60:]))
            print(f"chaos seed {seed} failed; state kept in {state} (serve.log)")
        else:
            shutil.rmtree(state, ignore_errors=True)


async def _done(http: Http, job_id: str) -> bool:
    status, job = await http.call("GET", f"/downloads/{job_id}")
    if status != 200:
        return False
    assert job["status"] not in ("failed", "cancelled"), job
    return job["status"] == "completed"


async def _verify(run: Run) -> dict[str, Any]:
    rows = await _transitions(run.serve.dsn)
    running: set[str] = set()
    peak = 0
    completions: Counter[str] = Counter()
    failures: dict[str, int] = Counter()
    for row in rows:
        if row["new"] == "running":
            running.add(row["id"])
        elif row["old"] == "running":
            running.discard(row["id"])
        peak = max(peak, len(running))
        if row["new"] == "completed":
            completions[row["id"]] += 1
        if row["new"] == "failed":
            failures[row["id"]] += 1
    lost, duplicates, wrong = [], [], []
    attempts: Counter[int] = Counter()
    for job_id, spec in run.ids.items():
        status, job = await run.http.call("GET", f"/downloads/{job_id}")
        assert status == 200, (status, job)
        files = _files(run.serve.state, job_id)
        if job_id in run.cancelled:
            assert job["status"] == "cancelled", job
            assert files == {}, (job_id, files)
            assert not (run.serve.state / "tmp" / job_id).exists(), job_id
            continue
        attempts[job["attempts"]] += 1
        if job["status"] != "completed":
            lost.append({"jobId": job_id, "kind": spec.kind, "status": job["status"],
                         "errorCode": job["errorCode"], "errorMessage": job["errorMessage"],
                         "attempts": job["attempts"]})  # fmt: skip
            continue
        if completions[job_id] != 1 or failures[job_id]:
            duplicates.append({"jobId": job_id, "completed": completions[job_id],
                               "failed": failures[job_id]})  # fmt: skip
        if spec.expected is not None:
            good = files == spec.expected
        else:
            good = list(files.values()) == [spec.sha] and list(files) == [job["filename"]]
        if not good:
            wrong.append({"jobId": job_id, "kind": spec.kind, "files": files})
    assert peak <= CONCURRENCY, f"{peak} jobs ran at once"
    assert wrong == [], wrong
    return {
        "seed": run.seed,
        "jobs": len(run.ids),
        "kinds": dict(Counter(s.kind for s in run.ids.values())),
        "kills": dict(run.kills),
        "controls": dict(run.controls),
        "cancelled": len(run.cancelled),
        "attempts": {str(k): v for k, v in sorted(attempts.items())},
        "lost": lost,
        "duplicates": duplicates,
        "peak_running": peak,
    }

"""The single binary (`make binary`), run as a user would on a machine without Python:
`env -i` with PATH=/usr/bin:/bin and HOME, the embedded PostgreSQL and Redis under a temp
state dir, the system's aria2c and ffmpeg. It completes an aria2, a yt-dlp and an ffmpeg
(HLS) job, serves the page, tells a stand-in for systemd READY/STATUS/WATCHDOG/STOPPING,
gives external programs an environment without the bootloader's library path, reads
nothing from the checkout, and leaves neither a process nor its onefile temp folder
behind after SIGTERM, after a SIGKILL of the binary, or (by the next start) after a
SIGKILL of everything.

The service runs with the kernel's memory-deny-write-execute (PR_SET_MDWE, Linux 6.3+,
inherited by every child) when the kernel has it: the systemd units set
``MemoryDenyWriteExecute=yes``, and this shows mediad, yt-dlp, aria2c, ffmpeg,
PostgreSQL and Redis work under it.

The binary is built once per session (about a minute or two on 2 cores), in the
background from the moment collection shows these tests will run
(tests/support/binary_build.py), and reused while it is newer than its inputs. Without PyInstaller these tests are skipped, unless
MEDIAD_REQUIRE_BINARY=1 (.ci/run sets it): then they fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import hashlib
import importlib.util
import os
import pwd
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from tests.integration.test_serve_cli import alive, descendants
from tests.support import binary_build, media
from tests.support.harness import Api, shared_tmp
from tests.support.mediaserver import MediaServer
from tests.support.polling import eventually
from tests.support.ports import fixed_port

ROOT = Path(__file__).resolve().parents[2]
BINARY = ROOT / "dist" / "mediad"
SPEC = ROOT / "packaging" / "mediad.spec"
PAGE = ROOT / "mediad" / "static" / "index.html"
REQUIRED = os.environ.get("MEDIAD_REQUIRE_BINARY") == "1"
BUILD_TIMEOUT_S = 1200
START_TIMEOUT_S = 120
JOB_TIMEOUT_S = 120
WATCHDOG_USEC = 400_000  # a ping every 0.2 s
PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1
# The first test also waits for the build (about a minute here, more on a busy machine).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(BUILD_TIMEOUT_S + 300)]


# --- building ------------------------------------------------------------------------


def need_pyinstaller() -> None:
    """Skip without PyInstaller, locally only: with MEDIAD_REQUIRE_BINARY=1 (CI) fail."""
    if importlib.util.find_spec("PyInstaller") is None:
        message = (
            "PyInstaller is not installed, so the single binary cannot be built: "
            "`pip install pyinstaller` (or `make setup-test`, whose test extra has it)"
        )
        if REQUIRED:
            pytest.fail(f"MEDIAD_REQUIRE_BINARY=1, but {message}")
        pytest.skip(message)


@pytest.fixture(scope="session")
def binary() -> Path:
    need_pyinstaller()
    assert PAGE.is_file(), "the web page is not built: run `make page` first"
    code, output = binary_build.wait()
    assert code == 0, output
    assert binary_build.is_fresh(BINARY)
    return BINARY


@pytest.fixture(scope="module")
def install(binary: Path) -> Iterator[Path]:
    """The binary copied away from the checkout, as on a server (/usr/local/bin)."""
    root = shared_tmp("mediad-test-binary-")
    (root / "bin").mkdir()
    installed = root / "bin" / "mediad"
    shutil.copy2(binary, installed)
    yield installed
    shutil.rmtree(root, ignore_errors=True)


def test_the_build_refuses_without_the_page(tmp_path: Path) -> None:
    """No page, no binary: the spec stops before any analysis."""
    need_pyinstaller()
    (tmp_path / "packaging").mkdir()
    shutil.copy2(SPEC, tmp_path / "packaging" / "mediad.spec")
    shutil.copytree(ROOT / "schema", tmp_path / "schema")
    (tmp_path / "mediad").mkdir()  # a checkout whose page was never built
    out = subprocess.run(
        [sys.executable, "-m", "PyInstaller", "--noconfirm", "--distpath", str(tmp_path / "dist"),
         "--workpath", str(tmp_path / "build"), str(tmp_path / "packaging" / "mediad.spec")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode != 0
    assert "the web page is not built" in out.stderr and "make page" in out.stderr, out.stderr
    assert not (tmp_path / "dist" / "mediad").exists()


def minimal_env(home: Path, **extra: str) -> dict[str, str]:
    """What `env -i PATH=/usr/bin:/bin HOME=…` leaves, plus the settings given."""
    return {"PATH": "/usr/bin:/bin", "HOME": str(home), **extra}


def test_version_and_check_in_a_minimal_environment(install: Path, tmp_path: Path) -> None:
    env = minimal_env(tmp_path, TMPDIR=str(tmp_path))
    out = subprocess.run(
        [str(install), "--version"], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("mediad ") and lines[1].startswith("yt-dlp 20"), lines
    assert lines[2].startswith("Python 3.") and "single binary" in lines[2], lines
    state = tmp_path / "state"
    check = subprocess.run(
        [str(install), "serve", "--check"],
        env={**env, "MEDIAD_STORAGE_STATE_DIR": str(state)},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    for name in ("ffmpeg", "ffprobe", "aria2c", "postgresql", "redis-server", "yt-dlp"):
        assert any(line.split()[:2] == [name, "ok"] for line in check.stdout.splitlines()), (
            check.stdout
        )
    missing = subprocess.run(
        [str(install), "serve", "--check"],
        env={**env, "MEDIAD_STORAGE_STATE_DIR": str(state), "MEDIAD_TOOLS_ARIA2C": "/nope"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert missing.returncode == 1
    assert "mediad: missing: aria2c" in missing.stdout
    assert not state.exists()  # a check starts nothing
    assert not list(tmp_path.glob("_MEI*"))  # the bootloader cleaned up after each


# --- a running binary ----------------------------------------------------------------


class Systemd:
    """A stand-in for systemd's notify socket: an abstract AF_UNIX datagram socket, read
    all the time as systemd reads it. The kernel queues only ``max_dgram_qlen`` (10)
    datagrams for a socket; a sender that finds the queue full loses its message (mediad
    sends without blocking, and says once that it could not), so with a ping every 0.2 s
    a socket read only when the test looks would drop the STATUS lines sent meanwhile. A
    thread drains it into ``messages`` as datagrams arrive."""

    def __init__(self) -> None:
        name = f"mediad-test-{uuid.uuid4().hex}"
        self.address = "@" + name
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + name)
        self.sock.setblocking(False)
        self.messages: list[str] = []
        self._lock = threading.Lock()
        self._closed = False
        self._reader = threading.Thread(target=self._read, name="systemd stand-in", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while not self._closed:
            with contextlib.suppress(OSError, ValueError):
                readable, _, _ = select.select([self.sock], [], [], 0.2)
                if readable:
                    self._take()

    def _drain(self) -> None:
        while True:
            try:
                self.messages.append(self.sock.recv(65536).decode())
            except BlockingIOError:
                return

    def _take(self) -> None:
        """Everything queued until now into ``messages`` (the thread may be at it too)."""
        with self._lock:
            self._drain()

    def reset(self) -> None:
        with self._lock:
            self._drain()
            self.messages.clear()

    async def wait_for(
        self, check: Callable[[str], bool], what: str, timeout_s: float, after: int = 0
    ) -> int:
        """The index of the first message from ``after`` on that ``check`` accepts."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        seen = after
        while True:
            self._take()
            for index in range(seen, len(self.messages)):
                if check(self.messages[index]):
                    return index
            seen = max(seen, len(self.messages))
            left = deadline - loop.time()
            if left <= 0:
                told = [m for m in self.messages if m != "WATCHDOG=1"]  # the pings drown it
                raise AssertionError(f"systemd was never told {what}; besides pings: {told[-20:]}")
            await asyncio.sleep(min(left, 0.05))

    async def told_within(self, seconds: float) -> list[str]:
        """What arrives in the next ``seconds``, everything sent before now set aside."""
        self._take()
        before = len(self.messages)
        with contextlib.suppress(AssertionError):  # nothing came: what is hoped for
            await eventually(lambda: len(self.messages) > before, timeout_s=seconds)
        self._take()
        return self.messages[before:]

    def fields(self) -> list[dict[str, str]]:
        self._take()
        return [dict(line.split("=", 1) for line in m.splitlines()) for m in self.messages]

    def close(self) -> None:
        self._closed = True
        self._reader.join()
        self.sock.close()


@dataclass
class Running:
    """One `mediad serve` of the binary: the bootloader and mediad, its child."""

    proc: subprocess.Popen[bytes]
    base: str
    state: Path
    tmpdir: Path
    systemd: Systemd
    log_path: Path
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def main_pid(self) -> int:
        """mediad itself: the bootloader's only child."""
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        (pid,) = children.split()
        return int(pid)

    def bundles(self) -> list[Path]:
        return sorted(self.tmpdir.glob("_MEI*"))

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    async def ready(self) -> dict[str, str]:
        index = await self.systemd.wait_for(
            lambda m: "READY=1" in m.splitlines(), "READY=1", START_TIMEOUT_S
        )
        assert self.proc.poll() is None, self.log_tail()
        return dict(line.split("=", 1) for line in self.systemd.messages[index].splitlines())


def start(
    install: Path, state: Path, systemd: Systemd, user: str | None = None, **extra: str
) -> Running:
    """Start the binary's `mediad serve` (as ``user``, when given, from root)."""
    systemd.reset()  # what an earlier run said is not this one's
    port = fixed_port()
    tmpdir = state / "tmpdir"  # the bootloader unpacks here ($TMPDIR): ours alone to watch
    tmpdir.mkdir(parents=True, exist_ok=True)
    home = state / "home"
    home.mkdir(exist_ok=True)
    if user is not None:
        for folder in (tmpdir, home):
            os.chown(folder, pwd.getpwnam(user).pw_uid, pwd.getpwnam(user).pw_gid)
    env = minimal_env(
        home,
        TMPDIR=str(tmpdir),
        MEDIAD_STORAGE_STATE_DIR=str(state / "mediad"),
        MEDIAD_SERVER_PORT=str(port),
        MEDIAD_NETWORK_ALLOW_HOSTS="127.0.0.1",  # the media server is on loopback
        NOTIFY_SOCKET=systemd.address,
        WATCHDOG_USEC=str(WATCHDOG_USEC),
        **extra,
    )
    log_path = state / f"serve-{port}.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(
            [str(install), "serve"],
            env=env, cwd=home, stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file,
            preexec_fn=lambda: deny_write_execute(user),
        )  # fmt: skip
    return Running(proc, f"http://127.0.0.1:{port}", state, tmpdir, systemd, log_path, extra)


def deny_write_execute(user: str | None = None) -> None:
    """What MemoryDenyWriteExecute=yes does, where the kernel offers it (else nothing);
    and User=, when ``user`` is given."""
    ctypes.CDLL(None).prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0)
    if user is not None:
        entry = pwd.getpwnam(user)
        os.setgroups([])
        os.setgid(entry.pw_gid)
        os.setuid(entry.pw_uid)


async def gone(pids: set[int], what: str) -> None:
    await eventually(lambda: not [p for p in pids if alive(p)], timeout_s=30, what=what)


def kill_all(run: Running) -> None:
    if run.proc.poll() is None:
        tree = descendants(run.proc.pid)
        for pid in [run.proc.pid, *tree]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        run.proc.wait()


@pytest.fixture(scope="module")
def state() -> Iterator[Path]:
    """One state dir for the module: the cluster made by the first start is reused."""
    path = shared_tmp("mediad-test-binary-state-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def systemd() -> Iterator[Systemd]:
    fake = Systemd()
    yield fake
    fake.close()


@pytest.fixture(scope="module")
def hls(media_server: MediaServer) -> Iterator[str]:
    root = shared_tmp("mediad-test-binary-hls-")
    playlist = media.make_hls(root / "vod", seconds=3.0, segment_s=1.0)
    for path in playlist.parent.iterdir():
        media_server.add_file(f"binhls/{path.name}", path)
    yield media_server.url("binhls/index.m3u8")
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
async def api_of() -> AsyncIterator[Callable[[Running], Api]]:
    clients: list[Api] = []

    def make(run: Running) -> Api:
        clients.append(Api(run.base))
        return clients[-1]

    yield make
    for client in clients:
        await client.close()


def environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if item)


def _ppid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def exe(pid: int) -> str:
    return os.path.basename(os.readlink(f"/proc/{pid}/exe")).removesuffix(" (deleted)")


async def test_jobs_page_and_systemd_through_the_binary(
    install: Path,
    state: Path,
    systemd: Systemd,
    media_server: MediaServer,
    media_dir: Path,
    hls: str,
    api_of: Callable[[Running], Api],
) -> None:
    run = start(install, state, systemd)
    try:
        ready = await run.ready()
        # READY came once it serves: migrated, listening, every worker connected.
        async with aiohttp.ClientSession(run.base) as http:
            async with http.get("/health") as resp:
                health = await resp.json()
                assert resp.status == 200, health
            assert health["checks"]["workers"]["connected"] == 3
            async with http.get("/", headers={"Accept": "text/html"}) as resp:
                assert resp.status == 200
                assert await resp.read() == PAGE.read_bytes()  # the built page, from inside
        assert ready["STATUS"] == "0 running, 0 queued, 3/3 workers"
        first = systemd.fields()
        assert first[0] == {"STATUS": "starting"}, first[:3]

        # The watchdog pings while the loop runs…
        pings = sum(1 for f in systemd.fields() if "WATCHDOG" in f)
        await eventually(
            lambda: sum(1 for f in systemd.fields() if "WATCHDOG" in f) >= pings + 3,
            timeout_s=30, what="three more pings",
        )  # fmt: skip
        # …and none while mediad is stopped (a hung loop): drained first, then watched
        # for five intervals.
        main = run.main_pid
        os.kill(main, signal.SIGSTOP)
        try:
            await eventually(
                lambda: Path(f"/proc/{main}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T",
                what="mediad stopped",
            )
            late = await systemd.told_within(5 * WATCHDOG_USEC / 2e6)
            assert late == [], late
        finally:
            os.kill(main, signal.SIGCONT)
        await systemd.wait_for(lambda m: m == "WATCHDOG=1", "a ping after SIGCONT", 10)

        api = api_of(run)
        # aria2 (slowed so that STATUS has time to show it running), yt-dlp, ffmpeg (HLS).
        blob = await api.submit(media_server.url("blob.bin", rate=1_000_000), type="aria2")
        running = await systemd.wait_for(
            lambda m: m.startswith("STATUS=1 running"), "a job running", JOB_TIMEOUT_S
        )
        video = await api.submit(media_server.url("video.mp4"), type="ytdlp")
        stream = await api.submit(hls, type="ffmpeg")
        done = {}
        for job in (blob, video, stream):
            done[job["type"]] = await api.wait_status(
                job["jobId"], "completed", "failed", timeout_s=JOB_TIMEOUT_S
            )
        assert {t: j["status"] for t, j in done.items()} == {
            "aria2": "completed", "ytdlp": "completed", "ffmpeg": "completed",
        }, {t: (j["errorCode"], j["errorMessage"]) for t, j in done.items()}  # fmt: skip
        data = state / "mediad" / "data"
        blob_file = data / blob["jobId"] / "blob.bin"
        assert _sha256(blob_file) == _sha256(media_dir / "blob.bin")
        video_file = data / video["jobId"] / done["ytdlp"]["filename"]
        assert _sha256(video_file) == _sha256(media_dir / "video.mp4")
        recording = data / stream["jobId"] / done["ffmpeg"]["filename"]
        assert media.probe_duration(recording) > 2.0
        status, body = await api.request("GET", f"/files/{blob['jobId']}/download")
        assert status == 200 and hashlib.sha256(body).hexdigest() == _sha256(blob_file)
        await systemd.wait_for(
            lambda m: m == "STATUS=0 running, 0 queued, 3/3 workers", "the jobs done", 30, running
        )

        # External programs run with the environment a normal install gives them; the
        # workers are the binary again; nothing knows about systemd's socket but mediad.
        tree = descendants(run.proc.pid)
        programs = {pid: exe(pid) for pid in tree if alive(pid)}
        # (redis-server is often a link to redis-check-rdb)
        assert {"postgres", "aria2c", "mediad"} <= set(programs.values())
        assert any(name.startswith("redis-") for name in programs.values())
        for pid, name in programs.items():
            if pid == main:  # its /proc environ is what it was started with
                continue
            env = environ(pid)
            assert "NOTIFY_SOCKET" not in env and "WATCHDOG_USEC" not in env, (name, env)
            if name != "mediad":
                assert not [k for k in env if k.startswith(("LD_LIBRARY", "_PYI_"))], (name, env)
                if name == "aria2c":  # postgres and redis write their titles over theirs
                    assert env["PATH"] == "/usr/bin:/bin", (name, env)
        # The workers are forked by the zygote, the binary started again; the yt-dlp
        # children it forks for them are the binary too, below it.
        zygotes = [p for p, n in programs.items() if n == "mediad" and _ppid(p) == main]
        assert len(zygotes) == 1, programs
        workers = [p for p, n in programs.items() if n == "mediad" and _ppid(p) in zygotes
                   and Path(f"/proc/{p}/cmdline").read_bytes().startswith(b"mediad: worker")]  # fmt: skip
        assert len(workers) == 3
        # They run from the service's unpacked bundle, not one of their own (their
        # /proc/PID/environ holds their titles now, so the bundle shows in their maps).
        (bundle,) = run.bundles()
        for pid in [*zygotes, *workers]:
            assert f"{bundle}/" in Path(f"/proc/{pid}/maps").read_text(), pid
        # Nothing from the checkout: no file mapped or open from it.
        for pid in [main, *zygotes, *workers]:
            assert str(ROOT) not in Path(f"/proc/{pid}/maps").read_text()
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    assert not os.readlink(f"/proc/{pid}/fd/{fd}").startswith(str(ROOT) + "/")

        # SIGTERM: STOPPING=1, exit 0, no process and no temp folder left.
        assert len(run.bundles()) == 1
        run.proc.send_signal(signal.SIGTERM)
        assert run.proc.wait(timeout=60) == 0, run.log_tail()
        await systemd.wait_for(lambda m: "STOPPING=1" in m.splitlines(), "STOPPING=1", 5)
        await gone(tree, "no process left after SIGTERM")
        assert run.bundles() == []
    finally:
        kill_all(run)


async def test_no_temp_folder_is_left_after_sigkill(
    install: Path, state: Path, systemd: Systemd
) -> None:
    # A SIGKILL of the binary (the bootloader, which would have removed the folder):
    # mediad hears of it (a parent-death signal), stops and removes the folder itself.
    run = start(install, state, systemd)
    try:
        await run.ready()
        tree = descendants(run.proc.pid)
        bundle = run.bundles()
        assert len(bundle) == 1
        run.proc.kill()
        run.proc.wait()
        await gone(tree, "no process left after a SIGKILL of the binary")
        assert not bundle[0].exists()
    finally:
        kill_all(run)

    # A SIGKILL of everything at once: nothing can clean up, so the next start does.
    run = start(install, state, systemd)
    try:
        await run.ready()
        left = run.bundles()
        assert len(left) == 1
        tree = descendants(run.proc.pid)
        kill_all(run)
        await gone(tree, "no process left after a SIGKILL of everything")
        assert [p for p in left if p.exists()] == left  # left behind, for now
    finally:
        kill_all(run)
    run = start(install, state, systemd)
    try:
        await run.ready()
        assert not [p for p in left if p.exists()], "the next start removes the old folder"
        assert len(run.bundles()) == 1
        tree = descendants(run.proc.pid)
        run.proc.send_signal(signal.SIGTERM)
        assert run.proc.wait(timeout=60) == 0, run.log_tail()
        await gone(tree, "no process left")
        assert run.bundles() == []
    finally:
        kill_all(run)


def _sha256(path: Path) -> str:
    return media.sha256_file(path)


@pytest.mark.skipif(os.geteuid() != 0, reason="starts the binary as another user: needs root")
async def test_an_unprivileged_user_runs_it_all(install: Path, systemd: Systemd) -> None:
    """As the units run it (User=mediad): the embedded PostgreSQL and Redis, aria2c and
    the workers all run as that same user, with a state dir of its own."""
    user = pwd.getpwnam("nobody")
    state = shared_tmp("mediad-test-binary-user-")
    os.chown(state, user.pw_uid, user.pw_gid)
    run = start(install, state, systemd, user="nobody")
    try:
        await run.ready()
        assert len(run.bundles()) == 1
        tree = descendants(run.proc.pid)
        programs = {pid: exe(pid) for pid in tree if alive(pid)}
        assert {"postgres", "aria2c", "mediad"} <= set(programs.values())
        owners = {os.stat(f"/proc/{pid}").st_uid for pid in [run.proc.pid, *programs]}
        assert owners == {user.pw_uid}, programs
        async with aiohttp.ClientSession(run.base) as http:
            async with http.get("/health") as resp:
                assert resp.status == 200, await resp.text()
        run.proc.send_signal(signal.SIGTERM)
        assert run.proc.wait(timeout=60) == 0, run.log_tail()
        await gone(tree, "no process left")
        assert run.bundles() == []
    finally:
        kill_all(run)
        shutil.rmtree(state, ignore_errors=True)

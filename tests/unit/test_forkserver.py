"""The fork server: yt-dlp's children are forked by a process with one thread, each job
a fresh child in its own process group, with the job's cwd, environment, output pipe and
process title, waited for through the server and dying with it."""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import socket
import subprocess
import sys
import textwrap
import warnings
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mediad.worker import procs
from mediad.worker.forkserver import ForkServer, ForkServerLost, _Server
from tests.support.polling import eventually

HERE = "tests.unit.test_forkserver"
ROOT = Path(__file__).resolve().parents[2]

# -- entry points the children run (by name: the server imports this module) ---------------

_job_state: list[str] = []


def report(argv: list[str]) -> int:
    """What a child sees of itself, as one JSON line."""
    _job_state.append(argv[0] if argv else "")  # a fresh child: only this job's
    ppid = os.getppid()
    print(json.dumps({
        "argv": argv,
        "state": _job_state,
        "pid": os.getpid(),
        "pgid": os.getpgid(0),
        "sid": os.getsid(0),
        "ppid": ppid,
        "parent_threads": len(os.listdir(f"/proc/{ppid}/task")),
        "cwd": os.getcwd(),
        "env": dict(os.environ),
        "cmdline": Path("/proc/self/cmdline").read_bytes().rstrip(b"\0").decode(),
        "fds": sorted(int(fd) for fd in os.listdir("/proc/self/fd")),
        "stdin": os.readlink("/proc/self/fd/0"),
    }), flush=True)  # fmt: skip
    return 0


def exit_with(argv: list[str]) -> object:
    print("exiting with", argv[0], flush=True)
    if argv[0] == "message":
        sys.exit("a message, not a number")
    if argv[0] == "raise":
        raise RuntimeError("boom")
    return int(argv[0])


def sleep_forever(argv: list[str]) -> int:
    if argv:
        Path(argv[0]).write_text(str(os.getpid()))
    print("sleeping", flush=True)
    signal.pause()
    return 0


def warmed(argv: list[str]) -> int:
    """Whether this child's server completed its warm-up job, and the server's name."""
    from mediad.worker import run_ytdlp

    server_comm = Path(f"/proc/{os.getppid()}/comm").read_text().strip()
    print(json.dumps({"warmedUp": run_ytdlp.warmed_up, "server": server_comm}))
    return 0


_prepared: list[list[str]] = []  # what the server's prepare hook saw, inherited by a child


def prepared(argv: list[str]) -> int:
    print(json.dumps(_prepared), flush=True)
    return 0


def _prepare(argv: list[str]) -> None:
    if argv == ["fail"]:
        raise RuntimeError("a preparation that fails")
    _prepared.append(argv)


prepared.prepare = _prepare  # type: ignore[attr-defined]


def asks_for_its_own(argv: list[str]) -> int:
    """A child with a channel of its own (``spawn(..., channel=True)``): it asks the server
    for a grandchild on it, ``argv[0]`` its entry, ``argv[1]`` its argument; "wait" in
    ``argv[2]``: prints what it printed and returns its exit code, else returns at once
    (leaving it running)."""

    async def ask() -> int:
        forks = ForkServer.inherited()
        forks.watch()
        grandchild = await forks.fork(f"{HERE}:{argv[0]}", [argv[1]], Path.cwd(), None, "gc")
        print(json.dumps({"grandchild": grandchild.pid, "me": os.getpid()}), flush=True)
        if argv[2] != "wait":
            async for _ in grandchild.lines():
                break  # it has started: leave it running
            return 0
        async for line in grandchild.lines():
            print(line, flush=True)
        code = await grandchild.wait()
        await forks.stop()
        return code

    return asyncio.run(ask())


def busy(argv: list[str]) -> int:
    print("busy", flush=True)
    while True:
        pass


def alive(pid: int) -> bool:
    """Running, not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
async def forks() -> AsyncIterator[ForkServer]:
    # This test process may have threads (the suite's loop): here that only concerns the
    # test. The real order (the server first) is test_forked_by_one_thread_* below.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        server = ForkServer.start(preload=False)
    try:
        yield server
    finally:
        await server.stop()


async def _run(
    forks: ForkServer, entry: str, argv: list[str], cwd: Path, **kw: object
) -> tuple[procs.ToolProcess, list[str], int]:
    env = kw.get("env")
    title = str(kw.get("title", "mediad: test"))
    proc = await forks.fork(f"{HERE}:{entry}", argv, cwd, env, title)  # type: ignore[arg-type]
    lines = [line async for line in proc.lines()]
    return proc, lines, await proc.wait()


async def test_a_child_has_the_jobs_cwd_environment_title_and_its_own_group(
    forks: ForkServer, tmp_path: Path
) -> None:
    env = {"PATH": os.environ["PATH"], "HTTP_PROXY": "http://127.0.0.1:1"}
    proc, lines, code = await _run(
        forks, "report", ["one"], tmp_path, env=env, title="mediad: yt-dlp job-1"
    )
    assert code == 0, lines
    seen = json.loads(lines[-1])
    assert seen["argv"] == ["one"]
    assert seen["pid"] == proc.pid == seen["pgid"] == seen["sid"]  # its own session and group
    assert seen["ppid"] == forks.pid != os.getpid()  # forked by the server, not by us
    assert seen["cwd"] == str(tmp_path)
    assert seen["env"] == env  # exactly the job's environment
    assert seen["cmdline"] == "mediad: yt-dlp job-1"
    assert seen["fds"][:3] == [0, 1, 2] and len(seen["fds"]) <= 4  # (+ listdir's own)
    assert seen["stdin"] == "/dev/null"
    assert proc.server_threads == 1 and seen["parent_threads"] == 1  # type: ignore[attr-defined]


async def test_a_preloading_server_has_done_a_warm_up_job_before_the_first_fork(
    tmp_path: Path,
) -> None:
    """The first child is forked after the warm-up job (run_ytdlp.warm_job) completed in
    the server, which kept its own name (test_ytdlp_preload: what that job prepares)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        server = ForkServer.start(preload=True)
    try:
        _, lines, code = await _run(server, "warmed", [], tmp_path)
    finally:
        await server.stop()
    assert code == 0, lines
    seen = json.loads(lines[-1])
    assert seen["warmedUp"] is True
    assert seen["server"] == "mediad: fork-se"  # the title's first 15 bytes, not "yt-dlp"


async def test_every_job_is_a_fresh_child(forks: ForkServer, tmp_path: Path) -> None:
    states = []
    for name in ("first", "second", "third"):
        _, lines, code = await _run(forks, "report", [name], tmp_path)
        assert code == 0
        states.append(json.loads(lines[-1])["state"])
    assert states == [["first"], ["second"], ["third"]]  # nothing left from the job before


async def test_an_entrys_prepare_runs_in_the_server_before_each_fork(
    forks: ForkServer, tmp_path: Path
) -> None:
    """``entry.prepare(argv)`` runs in the server (what it leaves builds up there, and each
    child inherits it) before the child is forked; one that fails forks the child anyway."""
    _, lines, code = await _run(forks, "prepared", ["a"], tmp_path)
    assert (code, json.loads(lines[-1])) == (0, [["a"]])
    _, lines, code = await _run(forks, "prepared", ["b"], tmp_path)
    assert (code, json.loads(lines[-1])) == (0, [["a"], ["b"]])  # kept by the server
    _, lines, code = await _run(forks, "prepared", ["fail"], tmp_path)
    assert (code, json.loads(lines[-1])) == (0, [["a"], ["b"]])
    assert _prepared == []  # never run in this process


@pytest.mark.parametrize(
    ("argv", "code", "last"),
    [(["0"], 0, "exiting with 0"), (["3"], 3, "exiting with 3"),
     (["message"], 1, "a message, not a number"), (["raise"], 1, "RuntimeError: boom")],
)  # fmt: skip
async def test_exit_codes_and_output_come_back(
    forks: ForkServer, tmp_path: Path, argv: list[str], code: int, last: str
) -> None:
    _, lines, got = await _run(forks, "exit_with", argv, tmp_path)
    assert got == code
    assert lines[0] == f"exiting with {argv[0]}" and lines[-1] == last


async def test_the_worker_signals_the_group_and_reads_its_cpu(
    forks: ForkServer, tmp_path: Path
) -> None:
    proc = await forks.fork(f"{HERE}:busy", [], tmp_path, None, "mediad: test")
    async for line in proc.lines():
        assert line == "busy"
        break
    before = proc.cpu_ticks()
    await eventually(lambda: proc.cpu_ticks() > before, what="CPU used by the busy child")
    assert await proc.stop(signal.SIGTERM, 5) == -signal.SIGTERM
    assert proc.returncode == -signal.SIGTERM and not alive(proc.pid)


async def test_a_fork_given_up_on_leaves_no_child(forks: ForkServer, tmp_path: Path) -> None:
    task = asyncio.create_task(forks.fork(f"{HERE}:sleep_forever", [], tmp_path, None, "t"))
    await asyncio.sleep(0)  # the request is sent; the answer is not read yet
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The answer comes, nobody wants the child: it is killed, then reaped by the server.
    await eventually(lambda: forks.unreaped == 0, what="the unwanted child reaped")
    _, _, code = await _run(forks, "exit_with", ["0"], tmp_path)
    assert code == 0  # the server carries on


async def test_a_lost_server_kills_its_children_and_says_so(
    forks: ForkServer, tmp_path: Path
) -> None:
    lost: list[bool] = []
    forks.on_lost = lambda: lost.append(True)
    proc = await forks.fork(f"{HERE}:sleep_forever", [], tmp_path, None, "t")
    async for _ in proc.lines():
        break
    os.kill(forks.pid, signal.SIGKILL)
    assert await proc.wait() == -signal.SIGKILL
    await eventually(lambda: not alive(proc.pid), what="the child to die with the server")
    assert lost == [True]
    with pytest.raises(ForkServerLost):
        await forks.fork(f"{HERE}:report", [], tmp_path, None, "t")


async def _spawn_with_channel(
    forks: ForkServer, argv: list[str], cwd: Path
) -> tuple[int, list[str], int]:
    read_fd, write_fd = os.pipe()
    try:
        child = await forks.spawn(
            f"{HERE}:asks_for_its_own", argv, cwd, None, "t", write_fd, channel=True
        )
    finally:
        os.close(write_fd)
    reader = await procs.reader_for(read_fd)
    lines = [line.decode().rstrip("\n") async for line in reader]
    return child.pid, lines, await child.exited


async def test_a_child_with_a_channel_asks_the_server_for_children_of_its_own(
    forks: ForkServer, tmp_path: Path
) -> None:
    """The zygote's shape: a child (a worker) asks the server that forked it for children
    (its jobs) on a channel of its own; the server forks them, as its own children, and
    reports their exits on that channel."""
    pid, lines, code = await _spawn_with_channel(forks, ["exit_with", "3", "wait"], tmp_path)
    assert code == 3, lines
    asked = json.loads(lines[0])
    assert asked["me"] == pid and lines[1:] == ["exiting with 3"]
    pid, lines, code = await _spawn_with_channel(forks, ["report", "x", "wait"], tmp_path)
    seen = json.loads(lines[1])
    assert code == 0 and seen["ppid"] == forks.pid != pid  # the server's, not the asker's
    assert seen["fds"][:3] == [0, 1, 2] and len(seen["fds"]) <= 4  # no channel of anyone's


async def test_a_childs_channel_that_ends_takes_its_children_with_it(
    forks: ForkServer, tmp_path: Path
) -> None:
    pid, lines, code = await _spawn_with_channel(
        forks, ["sleep_forever", str(tmp_path / "gc.pid"), "go"], tmp_path
    )
    grandchild = json.loads(lines[0])["grandchild"]
    assert code == 0 and not alive(pid)
    await eventually(lambda: not alive(grandchild), what="the grandchild killed")
    _, lines, code = await _run(forks, "exit_with", ["0"], tmp_path)
    assert code == 0 and forks.unreaped == 0  # the server carries on


def test_a_descriptor_taken_away_earlier_in_the_same_poll_is_skipped() -> None:
    """A worker dies: its pidfd and its channel's end (and its job's pidfd) can come in one
    round of poll. Once the channel is dropped (its job killed and reaped), the job's
    pidfd and the channel, still in that round's list, are skipped: the server goes on."""
    main, _peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    server = _Server(main)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    server._add_channel(ours)
    channel = ours.fileno()
    job = subprocess.Popen(["sleep", "60"], start_new_session=True)
    pidfd = os.pidfd_open(job.pid)
    server.children[pidfd] = (job.pid, channel)
    server.poller.register(pidfd, select.POLLIN)
    theirs.close()
    ready = [pidfd, channel]  # as one poll round may list them, the channel last or first
    server._drop(channel)
    job.returncode = -signal.SIGKILL  # (reaped by the server, not by Popen)
    assert not alive(job.pid) and server.children == {}
    assert all(server._handle(fd) for fd in ready)
    assert list(server.channels) == [main.fileno()]
    main.close()
    _peer.close()


async def test_stop_kills_what_still_runs(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        forks = ForkServer.start(preload=False)
    proc = await forks.fork(f"{HERE}:sleep_forever", [], tmp_path, None, "t")
    async for _ in proc.lines():
        break
    assert await forks.stop() == 0
    assert await proc.wait() == -signal.SIGKILL
    await eventually(lambda: not alive(proc.pid) and not alive(forks.pid), what="all gone")


# -- in a fresh interpreter: the real order of start-up ------------------------------------

WORKER = textwrap.dedent(
    f"""
    import asyncio, json, os, socket, sys, threading, time
    from pathlib import Path
    from mediad.worker.forkserver import ForkServer, thread_count
    import {HERE} as entries

    forks = ForkServer.start(preload=False)  # first, as client.main does
    hold = threading.Event()
    threading.Thread(target=hold.wait, daemon=True).start()

    async def main():
        # What a worker's loop does: executor threads, a resolver thread.
        await asyncio.to_thread(time.sleep, 0)
        await asyncio.get_running_loop().getaddrinfo("localhost", 80)
        ours = thread_count()
        seen = []
        for i in range(3):
            proc = await forks.fork("{HERE}:report", [str(i)], Path(sys.argv[1]), None, "t")
            lines = [line async for line in proc.lines()]
            assert await proc.wait() == 0, lines
            seen.append((proc.server_threads, json.loads(lines[-1])))
        if sys.argv[2] == "kill-me":
            proc = await forks.fork("{HERE}:sleep_forever", [], Path(sys.argv[1]), None, "t")
            async for _ in proc.lines():
                break
            print(json.dumps({{"server": forks.pid, "child": proc.pid}}), flush=True)
            await asyncio.sleep(60)
        await forks.stop()
        print(json.dumps({{"ours": ours, "pid": os.getpid(), "server": forks.pid,
                           "seen": seen}}))

    asyncio.run(main())
    """
)


def test_forked_by_one_thread_while_the_worker_has_several(tmp_path: Path) -> None:
    """The proof of the design: however many threads the worker has, the process that
    forks has one at each fork (and Python's fork warning is an error here)."""
    out = subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning", "-c", WORKER, str(tmp_path), ""],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert "DeprecationWarning" not in out.stderr and "fork()" not in out.stderr, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["ours"] >= 3  # the worker: main, the waiting thread, executor threads
    for server_threads, seen in result["seen"]:
        assert server_threads == 1  # the server's own count as it forked
        assert seen["ppid"] == result["server"] != result["pid"]
        assert seen["parent_threads"] == 1


async def test_a_dead_worker_takes_the_server_and_its_children_with_it(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WORKER, str(tmp_path), "kill-me",
        stdout=asyncio.subprocess.PIPE, cwd=ROOT,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        pids = json.loads(await asyncio.wait_for(proc.stdout.readline(), 60))
        assert alive(pids["server"]) and alive(pids["child"])
        proc.kill()
        await proc.wait()
        await eventually(
            lambda: not alive(pids["server"]) and not alive(pids["child"]),
            what="the fork server and its child to die with the worker",
        )
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

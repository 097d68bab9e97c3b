"""Tool processes: the CPU measure behind active heartbeats, process groups, lines."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import warnings
from pathlib import Path

from mediad.worker import procs
from mediad.worker.forkserver import ForkServer
from tests.support.polling import eventually

BUSY = "import time\nend = time.time() + 30\nwhile time.time() < end: pass"
IDLE = "import time\ntime.sleep(30)"


async def _ticks_over(proc: procs.ToolProcess, seconds: float) -> int:
    before = proc.cpu_ticks()
    await asyncio.sleep(seconds)
    return proc.cpu_ticks() - before


async def test_a_busy_tool_uses_cpu_and_an_idle_one_does_not(tmp_path: Path) -> None:
    busy = await procs.spawn([sys.executable, "-c", BUSY], cwd=tmp_path)
    idle = await procs.spawn([sys.executable, "-c", IDLE], cwd=tmp_path)
    try:
        await asyncio.sleep(0.3)  # past interpreter start-up
        assert await _ticks_over(busy, 0.5) > 0
        assert await _ticks_over(idle, 0.5) == 0
    finally:
        await busy.stop(signal.SIGKILL, 0)
        await idle.stop(signal.SIGKILL, 0)


async def test_cpu_of_children_in_the_group_counts(tmp_path: Path) -> None:
    # The leader sleeps; its child (same process group, like yt-dlp's ffmpeg) works.
    script = f"import subprocess, sys, time\nsubprocess.Popen([sys.executable, '-c', {BUSY!r}])\ntime.sleep(30)"
    proc = await procs.spawn([sys.executable, "-c", script], cwd=tmp_path)
    try:
        await asyncio.sleep(0.5)
        assert await _ticks_over(proc, 0.5) > 0
    finally:
        await proc.stop(signal.SIGTERM, 1)
    # stop() leaves nothing alive in the group (the orphan is killed with it).
    await eventually(lambda: procs.group_cpu_ticks(proc.pid) == 0, timeout_s=5, what="empty group")


async def test_lines_split_on_newlines_and_carriage_returns(tmp_path: Path) -> None:
    script = (
        "import sys\nsys.stdout.write('a\\rb\\r\\nc\\n\\n'); sys.stdout.flush()\n"
        "sys.stderr.write('e\\n'); sys.stderr.flush()\nsys.stdout.write('d')"
    )
    proc = await procs.spawn([sys.executable, "-c", script], cwd=tmp_path)
    lines = [line async for line in proc.lines()]
    assert await proc.wait() == 0
    assert sorted(lines) == ["a", "b", "c", "d", "e"]


def _child_entry(argv: list[str]) -> int:
    # Alive until the test has looked at its process group: its parent, the fork server,
    # reaps it as soon as it ends, and then its pid names nothing.
    go, *words = argv
    deadline = time.monotonic() + 30
    while not Path(go).exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    print("child says", *words)
    return 3


async def test_the_fork_server_runs_a_python_entry_point_in_its_own_group(tmp_path: Path) -> None:
    with warnings.catch_warnings():  # this test process may have threads; the server has one
        warnings.simplefilter("ignore", DeprecationWarning)
        forks = ForkServer.start(preload=False)
    try:
        entry = f"{__name__}:_child_entry"
        go = tmp_path / "go"
        proc = await forks.fork(entry, [str(go), "x", "y"], tmp_path, None, "mediad: test")
        assert os.getpgid(proc.pid) == proc.pid
        go.touch()
        lines = [line async for line in proc.lines()]
        assert await proc.wait() == 3
        assert lines == ["child says x y"]
    finally:
        await forks.stop()


async def test_spawn_runs_with_the_environment_it_is_given(tmp_path: Path) -> None:
    script = "import os; print(sorted(k for k in os.environ if k.startswith('T_')))"
    env = {"PATH": os.environ["PATH"], "T_ONE": "1"}
    proc = await procs.spawn([sys.executable, "-c", script], cwd=tmp_path, env=env)
    lines = [line async for line in proc.lines()]
    assert await proc.wait() == 0
    assert lines == ["['T_ONE']"]

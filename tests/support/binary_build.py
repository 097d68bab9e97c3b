"""The single binary's build for tests/integration/test_binary.py, started in the
background as soon as collection shows those tests will run, so that the minute or two
PyInstaller takes overlaps the rest of the suite instead of adding to it.

The build is reused while ``dist/mediad`` is newer than every input (mediad/, schema/,
packaging/, pyproject.toml); ``wait()`` returns once a build that was started has ended.
Several test processes (pytest-xdist) build once: the build holds ``build/.binary.lock``
(the PyInstaller process inherits the lock), and the others wait for it to be released.
Which worker runs the binary's tests is not known when the build starts, so the worker
that started it lets it finish at the end of its session (another may be waiting for
it), and a worker that finds no fresh binary once the lock is free builds it itself.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from tests.support import parallel

ROOT = Path(__file__).resolve().parents[2]
BINARY = ROOT / "dist" / "mediad"
SPEC = ROOT / "packaging" / "mediad.spec"
PAGE = ROOT / "mediad" / "static" / "index.html"
BUILD_TIMEOUT_S = 1200
LOCK = ROOT / "build" / ".binary.lock"

_build: tuple[subprocess.Popen[bytes], float, IO[bytes]] | None = None


def _inputs() -> Iterator[Path]:
    for folder in (ROOT / "mediad", ROOT / "schema", ROOT / "packaging"):
        for path in folder.rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                yield path
    yield ROOT / "pyproject.toml"


def is_fresh(binary: Path = BINARY) -> bool:
    """Built after every change to its inputs (the page included)."""
    if not binary.is_file():
        return False
    return binary.stat().st_mtime > max(p.stat().st_mtime for p in _inputs())


def can_build() -> bool:
    return importlib.util.find_spec("PyInstaller") is not None and PAGE.is_file()


def start() -> None:
    """Start building unless a fresh binary is there or a build is under way."""
    global _build
    if _build is not None or is_fresh() or not can_build():
        return
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # another test process builds it
        if is_fresh():
            return
        log = tempfile.TemporaryFile()
        proc = subprocess.Popen(
            [sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN",
             "--distpath", str(ROOT / "dist"), "--workpath", str(ROOT / "build" / "pyinstaller"),
             str(SPEC)],
            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            pass_fds=(lock.fileno(),),  # the lock is held while PyInstaller runs
        )  # fmt: skip
    _build = (proc, time.monotonic(), log)


def _wait_for_another() -> bool:
    """Another test process's build: wait until it lets go of the lock. False when it
    did not in time."""
    deadline = time.monotonic() + BUILD_TIMEOUT_S
    with open(LOCK, "w") as lock:
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.5)


def wait() -> tuple[int, str]:
    """The build's exit code and the end of its output (0, "" when none was needed)."""
    start()
    while _build is None:
        if is_fresh():
            return 0, ""
        if not can_build():
            return 1, "cannot build: PyInstaller is missing or the page is not built"
        if not _wait_for_another():
            return 1, "another test process's build did not end in time"
        # No fresh binary after another process's build (it failed or was stopped):
        # build here, so that its output is shown.
        start()
    proc, started, log = _build
    try:
        code = proc.wait(timeout=max(1.0, BUILD_TIMEOUT_S - (time.monotonic() - started)))
    except subprocess.TimeoutExpired:
        proc.kill()
        code = proc.wait()
    log.seek(0)
    output = log.read().decode(errors="replace")[-6000:]
    if code == 0:
        print(f"built {BINARY} in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return code, output


def stop(*, interrupted: bool) -> None:
    """At the end of the session, a build still running: another xdist worker may be
    waiting for it, so it is waited for — unless the run was interrupted, or this is
    the only test process (then its tests were never reached): then it is stopped."""
    if _build is None or _build[0].poll() is not None:
        return
    proc, started, _ = _build
    if not interrupted and parallel.worker_count() > 1:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(1.0, BUILD_TIMEOUT_S - (time.monotonic() - started)))
            return
    proc.kill()
    proc.wait()

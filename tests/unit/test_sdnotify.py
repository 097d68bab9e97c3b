"""The systemd notify protocol against a real AF_UNIX datagram socket standing in for
systemd: the messages, abstract names, the watchdog's pings (and none while the event
loop is blocked), READY only once every worker is connected, STATUS on each change.
The whole service saying READY, STATUS and STOPPING is tests/integration/test_binary.py."""

from __future__ import annotations

import asyncio
import os
import select
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from mediad import frozen, sdnotify
from mediad.sdnotify import Notifier
from tests.support.polling import eventually

# Far longer than any wait here needs; a test fails at it only when a message never comes.
DEADLINE_S = 10.0


class FakeSystemd:
    """A bound datagram socket, as systemd's notify socket is."""

    def __init__(self, address: str, bind_to: str) -> None:
        self.address = address  # what NOTIFY_SOCKET says
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(bind_to)
        self.sock.setblocking(False)

    async def receive(self) -> str:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(DEADLINE_S):
            return (await loop.sock_recv(self.sock, 4096)).decode()

    def pending(self) -> list[str]:
        """What has arrived so far, without waiting."""
        messages = []
        while True:
            try:
                messages.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                return messages

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[FakeSystemd]:
    path = tmp_path / "notify"
    fake = FakeSystemd(str(path), str(path))
    yield fake
    fake.close()


@pytest.fixture
def abstract_systemd() -> Iterator[FakeSystemd]:
    name = f"mediad-test-notify-{uuid.uuid4().hex}"
    fake = FakeSystemd("@" + name, "\0" + name)
    yield fake
    fake.close()


def test_without_notify_socket_nothing_is_sent() -> None:
    notifier = Notifier.from_environment({})
    assert not notifier.enabled
    assert notifier.notify("READY=1") is False
    assert notifier.watchdog_interval_s is None


def test_a_relative_notify_socket_is_ignored() -> None:
    assert not Notifier.from_environment({"NOTIFY_SOCKET": "notify"}).enabled


def test_the_variables_leave_the_environment(systemd: FakeSystemd) -> None:
    env = {"NOTIFY_SOCKET": systemd.address, "WATCHDOG_USEC": "2000000", "PATH": "/bin"}
    notifier = Notifier.from_environment(env)
    assert env == {"PATH": "/bin"}  # no child inherits them
    assert notifier.enabled and notifier.watchdog_interval_s == 1.0


async def test_messages_arrive_as_one_datagram_of_lines(systemd: FakeSystemd) -> None:
    notifier = Notifier.from_environment({"NOTIFY_SOCKET": systemd.address})
    assert notifier.notify("READY=1", STATUS="3 running,\n12 queued")
    assert await systemd.receive() == "READY=1\nSTATUS=3 running, 12 queued"
    notifier.notify("STOPPING=1")
    assert await systemd.receive() == "STOPPING=1"
    notifier.close()


async def test_abstract_socket_names(abstract_systemd: FakeSystemd) -> None:
    notifier = Notifier.from_environment({"NOTIFY_SOCKET": abstract_systemd.address})
    assert notifier.notify(STATUS="starting")
    assert await abstract_systemd.receive() == "STATUS=starting"
    notifier.close()


def test_a_missing_socket_is_not_an_error(tmp_path: Path) -> None:
    notifier = Notifier(str(tmp_path / "gone"))
    assert notifier.notify("READY=1") is False  # logged once, never raised
    assert notifier.notify("READY=1") is False
    notifier.close()


@pytest.mark.parametrize(
    ("pid", "expected"),
    [(None, 0.5), ("self", 0.5), ("parent", 0.5), ("other", None), ("x", None)],
)
def test_watchdog_pid_says_whom_the_watchdog_is_for(
    systemd: FakeSystemd, pid: str | None, expected: float | None
) -> None:
    # The parent counts: in the onefile binary systemd's main process is the bootloader.
    # "other": neither this process nor its parent (which is PID 1 when run detached).
    other = next(p for p in (1, 2, 3) if p not in (os.getpid(), os.getppid()))
    pids = {"self": str(os.getpid()), "parent": str(os.getppid()), "other": str(other), "x": "x"}
    env = {"NOTIFY_SOCKET": systemd.address, "WATCHDOG_USEC": "1000000"}
    if pid is not None:
        env["WATCHDOG_PID"] = pids[pid]
    assert Notifier.from_environment(env).watchdog_interval_s == expected


async def test_watchdog_pings_while_the_loop_runs_and_none_while_it_is_blocked(
    systemd: FakeSystemd,
) -> None:
    notifier = Notifier.from_environment(
        {"NOTIFY_SOCKET": systemd.address, "WATCHDOG_USEC": "40000"}  # a ping every 20 ms
    )
    pinging = asyncio.ensure_future(notifier.watchdog())
    try:
        for _ in range(3):
            assert await systemd.receive() == "WATCHDOG=1"
        # Now block the loop: this coroutine waits synchronously, for ten intervals,
        # for a datagram. Whatever was sent before is drained first; while the loop is
        # blocked the watchdog cannot run, so nothing may come.
        systemd.pending()
        readable, _, _ = select.select([systemd.sock], [], [], 10 * 0.02)
        assert readable == [], systemd.pending()
        # The loop runs again: so do the pings.
        assert await systemd.receive() == "WATCHDOG=1"
    finally:
        pinging.cancel()
        notifier.close()


class CountingWorkers(dict[str, Any]):
    """The dispatcher's worker table, counting how often its size is asked."""

    asked = 0


class FakeDispatcher:
    """What sdnotify reads of the dispatcher: its counts of workers and running jobs."""

    def __init__(self) -> None:
        self.workers = CountingWorkers()
        self.running: dict[str, Any] = {}

    def status_counts(self) -> dict[str, int]:
        self.workers.asked += 1
        return {"connected": len(self.workers), "busy": 0, "running": len(self.running)}


def fake_service(queued: int = 12) -> Any:
    depth = {"n": queued}

    async def queue_depth() -> int:
        return depth["n"]

    return SimpleNamespace(
        config=SimpleNamespace(worker_processes=3),
        dispatcher=FakeDispatcher(),
        queue=SimpleNamespace(depth=queue_depth),
        depth=depth,
    )


async def test_ready_only_once_every_worker_is_connected_then_status_changes(
    systemd: FakeSystemd,
) -> None:
    service = fake_service()
    notifier = Notifier.from_environment({"NOTIFY_SOCKET": systemd.address})
    announcing = asyncio.ensure_future(sdnotify.announce(service, notifier, poll_s=0.01))
    try:
        workers = service.dispatcher.workers
        workers["a"] = workers["b"] = object()
        # It has looked three times, and seen 2 of 3 workers.
        await eventually(lambda: workers.asked >= 3, timeout_s=DEADLINE_S, what="3 looks")
        assert systemd.pending() == []
        workers["c"] = object()
        assert await systemd.receive() == "READY=1\nSTATUS=0 running, 12 queued, 3/3 workers"
        service.dispatcher.running.update(j1=1, j2=2, j3=3)
        service.depth["n"] = 9
        assert await systemd.receive() == "STATUS=3 running, 9 queued, 3/3 workers"
        service.dispatcher.running.clear()
        assert await systemd.receive() == "STATUS=0 running, 9 queued, 3/3 workers"
    finally:
        announcing.cancel()
        notifier.close()


async def test_status_says_when_redis_is_down() -> None:
    service = fake_service()

    async def down() -> int:
        raise ConnectionError("redis is down")

    service.queue.depth = down
    assert await sdnotify.status_line(service) == "0 running, queue unavailable, 0/3 workers"


# --- the single binary's environment (mediad/frozen.py) ------------------------------


def test_tools_get_the_environment_without_the_bootloaders_library_path() -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "LD_LIBRARY_PATH": "/tmp/_MEIabc:/opt/lib",
        "LD_LIBRARY_PATH_ORIG": "/opt/lib",
        "_PYI_APPLICATION_HOME_DIR": "/tmp/_MEIabc",
        "_PYI_ARCHIVE_FILE": "/usr/local/bin/mediad",
        "_PYI_PARENT_PROCESS_LEVEL": "1",
    }
    assert frozen.system_environment(env, frozen=True) == {
        "PATH": "/usr/bin:/bin",
        "LD_LIBRARY_PATH": "/opt/lib",  # as the user had it
    }
    del env["LD_LIBRARY_PATH_ORIG"]  # the user had none: none for the tools either
    assert frozen.system_environment(env, frozen=True) == {"PATH": "/usr/bin:/bin"}
    # A worker (the binary again) keeps them, to reuse the unpacked bundle.
    assert set(frozen.runtime_variables(env, frozen=True)) == set(env) - {"PATH"}
    # Outside the binary nothing changes.
    assert frozen.system_environment(env, frozen=False) == env
    assert frozen.runtime_variables(env, frozen=False) == {}

"""The managed-server base (mediad/daemons/base.py) with a stand-in server: a Python
child that writes its environment and a "ready" file, so no real server is needed."""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path

import pytest

from mediad.daemons.aria2 import Aria2Daemon
from mediad.daemons.base import ManagedServer
from mediad.errors import ServiceError
from tests.support.polling import eventually

SERVER = """
import json, os, sys, time
from pathlib import Path
print("stand-in starting", flush=True)
if sys.argv[1] == "fail":
    print("cannot bind: address in use", flush=True)
    sys.exit(3)
if sys.argv[1] == "stubborn":  # before it says ready: a stop may come at once
    import signal
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
Path("env.json").write_text(json.dumps(dict(os.environ)))
Path("ready").write_text(str(os.getsid(0)))
time.sleep(60)
"""


class NotYet(Exception):
    pass


class StandIn(ManagedServer):
    name = "standin"
    stop_timeout_s = 5.0

    def __init__(self, root: Path, mode: str = "ok") -> None:
        super().__init__(root)
        self.mode = mode

    async def start(self, timeout_s: float = 20) -> None:
        self._make_root()

        async def probe(timeout_s: float) -> None:
            if not (self.root / "ready").exists():
                raise NotYet

        argv = [sys.executable, "-c", SERVER, self.mode]
        await self._launch(argv, probe, (NotYet,), time.monotonic() + timeout_s)


async def test_a_server_runs_in_its_own_session_with_no_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDIAD_WORKERS_TOKEN", "secret")
    monkeypatch.setenv("PGDATA", "/elsewhere")
    server = StandIn(tmp_path / "s")
    await server.start()
    try:
        assert server.pid is not None
        assert (server.root / "ready").read_text() == str(server.pid)  # its own session
        env = json.loads((server.root / "env.json").read_text())
        assert "MEDIAD_WORKERS_TOKEN" not in env and "PGDATA" not in env
        log = (server.root / "standin.log").read_text()
        assert "--- mediad: starting " in log and "stand-in starting" in log
    finally:
        await server.stop()
    assert server.pid is None
    assert await server.wait() == -signal.SIGTERM
    await server.stop()  # twice is fine


async def test_a_server_that_exits_while_starting_fails_with_its_log(tmp_path: Path) -> None:
    server = StandIn(tmp_path / "s", mode="fail")
    with pytest.raises(ServiceError) as caught:
        await server.start()
    message = str(caught.value)
    assert message.startswith("standin exited with code 3 while starting")
    assert "cannot bind: address in use" in message
    assert server.pid is None


async def test_a_server_that_never_gets_ready_is_killed(tmp_path: Path) -> None:
    class Never(StandIn):
        async def start(self, timeout_s: float = 20) -> None:
            self._make_root()

            async def probe(timeout_s: float) -> None:
                raise NotYet

            argv = [sys.executable, "-c", SERVER, "ok"]
            await self._launch(argv, probe, (NotYet,), time.monotonic() + 1.5)

    server = Never(tmp_path / "s")
    with pytest.raises(ServiceError, match="did not accept connections in time"):
        await server.start()
    assert server.pid is None  # stopped, not left behind


async def test_a_server_that_ignores_its_stop_signal_is_killed(tmp_path: Path) -> None:
    server = StandIn(tmp_path / "s", mode="stubborn")
    await server.start()
    await server.stop(timeout_s=0.5)
    assert await server.wait() == -signal.SIGKILL


async def test_wait_before_start_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ServiceError, match="was not started"):
        await StandIn(tmp_path).wait()


async def test_the_base_start_is_for_subclasses(tmp_path: Path) -> None:
    with pytest.raises(NotImplementedError):
        await ManagedServer(tmp_path).start()


def test_aria2c_gets_no_secret_and_no_way_around_the_guard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDIAD_WORKERS_TOKEN", "secret")
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("HTTPS_PROXY", "http://elsewhere:3128")
    monkeypatch.setenv("PGHOST", "kept")  # not a PostgreSQL program
    env = Aria2Daemon(tmp_path)._environment()
    assert not [k for k in env if k.startswith("MEDIAD_") or k.lower().endswith("_proxy")]
    assert env["PGHOST"] == "kept"


async def test_the_stand_in_is_gone_after_stop(tmp_path: Path) -> None:
    server = StandIn(tmp_path / "s")
    await server.start()
    pid = server.pid
    assert pid is not None
    await server.stop()
    await eventually(lambda: not Path(f"/proc/{pid}").exists(), what="the stand-in to go")

"""run_aria2's reading of a failed RPC call (the daemon's absence is mediad's fault), and
how often it asks the daemon for a download's status."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mediad.aria2_rpc import Aria2Error, Aria2Rpc, Aria2Unavailable
from mediad.worker import run_aria2
from mediad.worker.progress import Progress
from mediad.worker.run_aria2 import END_SLACK_S, FIRST_POLL_S, POLL_S, next_poll_s, rpc_failure
from tests.support.ports import fixed_port


def test_a_daemon_that_does_not_answer_interrupts_the_attempt() -> None:
    exc = Aria2Unavailable(
        "aria2 RPC aria2.addUri failed: Cannot connect to host 127.0.0.1:41234 ssl:default"
        " [Connect call failed ('127.0.0.1', 41234)]"
    )
    code, message = rpc_failure(exc)
    assert code == "interrupted"
    assert "aria2 daemon is unavailable" in message and "Connect call failed" in message


def test_a_restarted_daemon_that_forgot_the_download_interrupts_the_attempt() -> None:
    exc = Aria2Error("aria2 RPC aria2.tellStatus: GID 2089b05ecca3d829 is not found")
    assert rpc_failure(exc)[0] == "interrupted"


def test_aria2_refusing_the_uri_is_the_jobs_failure() -> None:
    exc = Aria2Error("aria2 RPC aria2.addUri: No URI to download.")
    assert rpc_failure(exc) == ("tool_failed", "aria2 RPC aria2.addUri: No URI to download.")


async def test_a_closed_port_is_unavailable_not_an_answer() -> None:
    rpc = Aria2Rpc(f"http://127.0.0.1:{fixed_port()}/jsonrpc", "secret")
    try:
        with pytest.raises(Aria2Unavailable):
            await rpc.call("aria2.addUri", ["http://example.com/a.bin"], {}, timeout_s=3)
    finally:
        await rpc.close()


def test_polls_ramp_up_to_the_poll_interval() -> None:
    assert [next_poll_s(None, n) for n in range(6)] == pytest.approx(
        [0.005, 0.01, 0.02, 0.04, POLL_S, POLL_S]
    )
    unknown = Progress("downloading", None, speed=None, total_bytes=None, downloaded_bytes=5)
    assert next_poll_s(unknown, 9) == POLL_S


def test_a_poll_is_timed_for_the_end_of_the_download() -> None:
    mb = 1_000_000
    near = Progress("downloading", 95.0, speed=400 * mb, total_bytes=200 * mb,
                    downloaded_bytes=190 * mb)  # fmt: skip
    assert next_poll_s(near, 9) == pytest.approx(10 / 400 + END_SLACK_S)  # 27 ms, not 50
    done = Progress("downloading", 99.9, speed=400 * mb, total_bytes=mb, downloaded_bytes=mb)
    assert next_poll_s(done, 9) == FIRST_POLL_S  # never a busy loop
    far = Progress("downloading", 1.0, speed=mb, total_bytes=200 * mb, downloaded_bytes=2 * mb)
    assert next_poll_s(far, 9) == POLL_S
    assert next_poll_s(near, 0) == FIRST_POLL_S  # the ramp's first steps stay


class CountingDaemon:
    """An aria2 daemon reduced to tellStatus: "active" for ``polls`` answers, then done."""

    def __init__(self, polls: int, path: Path) -> None:
        self.left = polls
        self.path = path
        self.calls = 0

    async def call(self, method: str, *params: Any, timeout_s: float = 10) -> Any:
        assert method == "aria2.tellStatus"
        self.calls += 1
        self.left -= 1
        status = "active" if self.left > 0 else "complete"
        return {"status": status, "totalLength": "100", "completedLength": "50",
                "downloadSpeed": "0", "files": [{"path": str(self.path)}]}  # fmt: skip


class Reports:
    def __init__(self) -> None:
        self.seen: list[Progress] = []

    def report(self, progress: Progress) -> None:
        self.seen.append(progress)


async def test_a_download_polled_more_than_a_thousand_times_still_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At a poll every 50 ms that is a download of more than 51 s; 2**1024 (the ramp's
    exponent, uncapped) is too large for a float and ended such jobs with OverflowError."""
    monkeypatch.setattr(run_aria2, "POLL_S", 0.0)  # the same polls, without the wait
    monkeypatch.setattr(run_aria2, "FIRST_POLL_S", 0.0)
    (tmp_path / "f.bin").write_bytes(b"x")
    daemon = CountingDaemon(1500, tmp_path / "f.bin")
    reports = Reports()
    found = await run_aria2._follow(reports, daemon, "gid")  # type: ignore[arg-type]
    assert found == [tmp_path / "f.bin"]
    assert daemon.calls == 1500 and len(reports.seen) == 1500

"""run_aria2's reading of a failed RPC call: the daemon's absence is mediad's fault."""

from __future__ import annotations

import pytest

from mediad.aria2_rpc import Aria2Error, Aria2Rpc, Aria2Unavailable
from mediad.worker.run_aria2 import rpc_failure
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

"""mediad.sockets: the packet checks and the JSON reader (no server)."""

from __future__ import annotations

import math
import time

import pytest

from mediad.sockets import BadPacket, CheckedPacket, Json, engineio_problem, nesting_depth


def test_json_reads_what_a_workers_stdlib_writes() -> None:
    value = Json.loads('[NaN, Infinity, "\\ud800", 123456789012345678901234567890]')
    assert math.isnan(value[0]) and value[1] == math.inf
    assert value[2:] == ["\ud800", 123456789012345678901234567890]


@pytest.mark.parametrize(
    "text",
    [
        "[" * 1050 + "]" * 1050,  # orjson's depth limit, and no stdlib recursion after it
        "[NaN," + "[" * 100 + "]" * 100 + "]",  # the fallback's own depth limit
        "[" + "9" * 4301 + "]",
        "[NaN, 1" + "0" * 1500 + "]",
        '["subscribe",',
    ],
)
def test_json_refuses_with_a_value_error_only(text: str) -> None:
    with pytest.raises(ValueError):
        Json.loads(text)


def test_nesting_depth_is_linear_and_skips_strings() -> None:
    assert nesting_depth('[{"a": "[[[["}, [1]]') == 2
    assert nesting_depth('"\\"[["') == 0
    started = time.perf_counter()
    assert nesting_depth("[" * 30_000 + "]" * 30_000) == 30_000
    assert nesting_depth('["' + "\\\\x" * 20_000 + '"]') == 1
    assert time.perf_counter() - started < 1


@pytest.mark.parametrize(
    "encoded",
    [
        '2/jobs,["subscribe",',
        '2/jobs,{"a":1}',
        "2/jobs,5",
        "2/jobs,[5]",
        "7/jobs,[]",
        "4/jobs,{}",
        "3/jobs,[]",  # an ack without an id
        '599-/jobs,["x",{"_placeholder":true,"num":0}]',
        '21-/jobs,["x"]',  # attachments on a text event
        "0/jobs,[1]",
        "2/" + "n" * 200 + ',["x"]',
    ],
)
def test_checked_packet_refuses(encoded: str) -> None:
    with pytest.raises(BadPacket):
        CheckedPacket(encoded_packet=encoded)


@pytest.mark.parametrize(
    "encoded",
    [
        '2/jobs,["subscribe",{"jobId":"x"}]',
        '2/jobs,1["subscribe",{}]',
        "3/jobs,1[]",
        "0/jobs,",
        '0/jobs,{"token":"t"}',
        "1/jobs,",
        '51-/worker,["completed",{"_placeholder":true,"num":0}]',
    ],
)
def test_checked_packet_accepts(encoded: str) -> None:
    CheckedPacket(encoded_packet=encoded)


def test_engineio_problem() -> None:
    assert engineio_problem("40/jobs,") is None
    assert engineio_problem("2\x1e3\x1e42/jobs,[]") is None
    assert engineio_problem(b"\x00\x01") is None  # an attachment, maybe
    assert engineio_problem("9zz")
    assert engineio_problem("4\x1e\x1e4")  # an empty packet in a payload
    assert engineio_problem("")

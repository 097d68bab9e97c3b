"""Log records: malformed HTTP requests cost one warning line, not a traceback."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from aiohttp.test_utils import TestServer

from mediad.logs import JsonFormatter, MalformedRequests
from tests.support.polling import eventually


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def bad_request(port: int, raw: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    answer = await reader.read(4096)
    writer.close()
    await writer.wait_closed()
    return answer


async def test_a_malformed_request_is_one_warning_line() -> None:
    logger = logging.getLogger("aiohttp.server")
    caught, only = Records(), MalformedRequests()
    logger.addHandler(caught)
    logger.addFilter(only)
    try:
        async with TestServer(web.Application(), host="127.0.0.1") as server:
            for raw in (
                b"GET / HTTP/1.1\r\nHost: x\r\nX-Probe: \x00\r\n\r\n",
                b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
            ):
                assert (await bad_request(server.port, raw)).split(b" ")[1] == b"400"
            await eventually(lambda: len(caught.records) >= 2, what="two log records")
    finally:
        logger.removeHandler(caught)
        logger.removeFilter(only)
    for record in caught.records:
        assert record.levelno == logging.WARNING and record.exc_info is None
        line = JsonFormatter("serve").format(record)
        assert "refused a malformed request" in line and "Traceback" not in line
        assert len(line) < 600


def test_other_errors_keep_their_traceback() -> None:
    try:
        raise RuntimeError("a bug")
    except RuntimeError:
        record = logging.LogRecord("aiohttp.server", logging.ERROR, __file__, 1, "boom", (), None)
        import sys

        record.exc_info = sys.exc_info()
    assert MalformedRequests().filter(record)
    assert record.levelno == logging.ERROR and record.exc_info is not None

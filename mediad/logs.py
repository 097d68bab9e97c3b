"""Logging: one JSON object per line (or plain text), with ``jobId``, ``stage`` and
``workerId`` when a record carries them in ``extra``. Configured only by the CLI."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime

import orjson

FIELDS = ("jobId", "stage", "workerId")


class JsonFormatter(logging.Formatter):
    def __init__(self, process_name: str) -> None:
        super().__init__()
        self.process_name = process_name

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "process": self.process_name,
            "msg": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    def __init__(self, process_name: str) -> None:
        super().__init__(f"%(asctime)s %(levelname)s {process_name} %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        tags = [f"{n}={getattr(record, n)}" for n in FIELDS if getattr(record, n, None)]
        return f"{text} [{' '.join(tags)}]" if tags else text


class MalformedRequests(logging.Filter):
    """aiohttp logs every request its parser refuses (a NUL in a header, a line too long)
    at ERROR with a traceback: a few bytes from anyone would cost kilobytes of log each.
    Such a record becomes one warning line that says what was wrong; the client already
    got its 400."""

    MAX_REASON = 200

    def filter(self, record: logging.LogRecord) -> bool:
        from aiohttp.http_exceptions import HttpProcessingError

        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            reason = " ".join(str(exc.message or type(exc).__name__).split())[: self.MAX_REASON]
            record.msg = f"{record.getMessage()}: refused a malformed request ({reason})"
            record.args = ()
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def configure(level: str = "info", fmt: str = "json", process_name: str = "serve") -> None:
    handler = logging.StreamHandler(sys.stderr)
    formatter = JsonFormatter(process_name) if fmt == "json" else TextFormatter(process_name)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Libraries that narrate every packet stay quiet unless asked.
    for noisy in ("aiohttp.access", "socketio", "engineio", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    server = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, MalformedRequests) for f in server.filters):
        server.addFilter(MalformedRequests())

"""aria2's status answers and console lines as :class:`Progress`, and its error codes as
mediad's.

``parse_status`` reads one ``aria2.tellStatus`` answer (ask for :data:`STATUS_KEYS`);
``parse_console_line`` reads the one-line readout ``aria2c`` prints about once a second
when its stdout is not a terminal.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from mediad.worker.progress import RUNNING_MAX, Progress, as_count_str, parse_size, percent

STATUS_KEYS: list[str] = [
    "gid",
    "status",
    "totalLength",
    "completedLength",
    "downloadSpeed",
    "errorCode",
    "errorMessage",
    "files",
]

# aria2's exit status / errorCode (aria2c(1), "EXIT STATUS") -> (errorCode, readable text).
# Code 1 ("unknown error") is what aria2 1.36 gives a refused connection, so its message
# decides; see _from_message.
ERROR_CODES: dict[str, tuple[str, str]] = {
    "1": ("tool_failed", "Unknown error"),
    "2": ("network", "Timed out"),
    "3": ("not_found", "Resource not found"),
    "4": ("not_found", "Resource not found too many times"),
    "5": ("network", "Download too slow"),
    "6": ("network", "Network problem"),
    "7": ("interrupted", "Download unfinished"),
    "8": ("http_error", "Server cannot resume the download"),
    "9": ("disk_full", "Not enough disk space"),
    "10": ("tool_failed", "Piece length differs from the .aria2 control file"),
    "11": ("tool_failed", "The same file is being downloaded"),
    "12": ("tool_failed", "The same torrent is being downloaded"),
    "13": ("tool_failed", "The file already exists"),
    "14": ("tool_failed", "Renaming the file failed"),
    "15": ("tool_failed", "Could not open the existing file"),
    "16": ("tool_failed", "Could not create the file"),
    "17": ("tool_failed", "File I/O error"),
    "18": ("tool_failed", "Could not create the directory"),
    "19": ("network", "Name resolution failed"),
    "20": ("unsupported_url", "Could not parse the Metalink document"),
    "21": ("http_error", "FTP command failed"),
    "22": ("http_error", "Bad or unexpected HTTP response"),
    "23": ("http_error", "Too many redirects"),
    "24": ("http_error", "HTTP authorization failed"),
    "25": ("unsupported_url", "Could not parse the bencoded file"),
    "26": ("unsupported_url", "The .torrent file is corrupted or incomplete"),
    "27": ("unsupported_url", "Bad magnet URI"),
    "28": ("tool_failed", "aria2 rejected an option"),
    "29": ("http_error", "Server overloaded or in maintenance"),
    "30": ("tool_failed", "aria2 could not parse the JSON-RPC request"),
    "31": ("interrupted", "Download removed"),  # "reserved", in practice a removal
    "32": ("tool_failed", "Checksum validation failed"),
}

_MESSAGE_CODES: list[tuple[str, re.Pattern[str]]] = [
    ("disk_full", re.compile(r"No space left|errNum=28\b|Disk quota", re.I)),
    ("not_found", re.compile(r"status=(404|410)\b|Resource not found", re.I)),
    ("network", re.compile(
        r"Connection refused|Failed to establish connection|Name resolution|timed? ?out"
        r"|Network is unreachable|No route to host|Connection reset|SSL/TLS", re.I)),
]  # fmt: skip
_CUID_RE = re.compile(r"^CUID#\d+ - ")

# [#2f09f0 4227072B/20000000B(21%) CN:1 DL:2106000B ETA:7s]
_READOUT_RE = re.compile(r"\[#(?P<gid>[0-9a-fA-F]+) (?P<body>[^\]]*)\]")
_AMOUNT_RE = re.compile(r"(?P<done>\S+?B)/(?P<total>\S+?B)(?:\((?P<pct>\d+)%\))?")
_CONSOLE_ERROR_RE = re.compile(r"\berrorCode=(?P<code>\d+) (?P<msg>.*\S)")
_ETA_RE = re.compile(r"(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?")


@dataclass(frozen=True, slots=True)
class Aria2Status:
    """One download as ``aria2.tellStatus`` describes it.

    ``error_code`` and ``error_message`` are aria2's own (``"3"``, ``"Resource not
    found"``), set for ``error`` and ``removed``; :func:`classify_error` turns them into
    mediad's. ``files`` lists the paths aria2 has assigned (none before it knows them).
    """

    status: str
    progress: Progress | None
    error_code: str | None
    error_message: str | None
    files: list[str] = field(default_factory=list)


def parse_status(raw: dict[str, Any]) -> Aria2Status:
    """Read a ``tellStatus`` answer, whose values are all strings. Never raises."""
    if not isinstance(raw, dict):
        raw = {}
    given = raw.get("status")
    status = given if isinstance(given, str) else ""
    failed = status in ("error", "removed")
    code = _text(raw.get("errorCode"))
    return Aria2Status(
        status=status,
        progress=_status_progress(raw, status),
        error_code=code if failed and code != "0" else None,
        error_message=_text(raw.get("errorMessage")) if failed else None,
        files=_file_paths(raw.get("files")),
    )


def _status_progress(raw: dict[str, Any], status: str) -> Progress:
    total = as_count_str(raw.get("totalLength")) or None  # "0": not known yet
    done = as_count_str(raw.get("completedLength"))
    # After a pause aria2 keeps reporting the last speed: only an active download moves.
    speed = as_count_str(raw.get("downloadSpeed")) if status == "active" else 0
    cap = 100.0 if status == "complete" else RUNNING_MAX
    pct = percent(done, total, cap=cap) if total and done is not None else None
    if status == "complete" and pct is None:
        pct = 100.0  # an empty or never-announced length: complete is complete
    return Progress(
        stage="downloading",
        progress=None if pct is None else round(pct, 2),
        speed=speed,
        eta=_eta(total, done, speed),
        total_bytes=total,
        downloaded_bytes=done,
    )


def _eta(total: int | None, done: int | None, speed: int | None) -> int | None:
    if total is None or done is None or not speed:
        return None
    return math.ceil(max(0, total - done) / speed)


def _file_paths(files: object) -> list[str]:
    if not isinstance(files, list):
        return []
    paths = []
    for f in files:
        if isinstance(f, dict) and f.get("selected", "true") != "false":
            path = f.get("path")
            if isinstance(path, str) and path:  # "" until aria2 knows the name
                paths.append(path)
    return paths


def _text(value: object) -> str | None:
    return (value.strip() or None) if isinstance(value, str) else None


def classify_error(aria2_code: str | None, message: str | None) -> tuple[str, str]:
    """(errorCode, message) for an aria2 failure, from its exit status or ``errorCode``
    and ``errorMessage``."""
    detail = _CUID_RE.sub("", (message or "").strip())
    code = str(aria2_code).strip() if aria2_code is not None else ""
    ours, text = ERROR_CODES.get(code, ("tool_failed", ""))
    if ours in ("tool_failed", "http_error"):
        # A generic code can hide a precise cause: a refused connection is "1", and a
        # 404 after a redirect can come back as "22".
        ours = _from_message(detail) or ours
    if code == "1" or not text:  # "unknown error": aria2's message is all there is
        return ours, detail or (f"aria2 failed with error code {code}" if code else "aria2 failed")
    if not detail or detail.lower() == text.lower():
        return ours, text
    return ours, f"{text}: {detail}"


def _from_message(detail: str) -> str | None:
    for ours, pattern in _MESSAGE_CODES:
        if pattern.search(detail):
            return ours
    return None


def parse_console_line(line: str) -> Progress | None:
    """The progress in a console readout such as ``[#2f09f0 4227072B/20000000B(21%) CN:1
    DL:2106000B ETA:7s]`` (raw bytes or ``3.0MiB``-style sizes); None for other lines."""
    m = _READOUT_RE.search(line)
    if m is None:
        return None
    tokens = m["body"].split()
    amount = _AMOUNT_RE.fullmatch(tokens[0]) if tokens else None
    if amount is None:
        return None  # e.g. a seeding torrent: "SEED(1.2)"
    fields = {key: value for key, _, value in (t.partition(":") for t in tokens[1:])}
    done, total = parse_size(amount["done"]), parse_size(amount["total"]) or None
    return Progress(
        stage="downloading",
        progress=_console_percent(amount, done, total),
        speed=parse_size(fields.get("DL", "")),
        # aria2 leaves ETA out when it rounds to 0, and when there is no total to go by.
        eta=_console_eta(fields["ETA"]) if "ETA" in fields else (0 if total else None),
        total_bytes=total,
        downloaded_bytes=done,
    )


def _console_percent(amount: re.Match[str], done: int | None, total: int | None) -> float | None:
    if amount["pct"] is None or not total:
        return None  # aria2 prints no percentage while the total is unknown
    exact = amount["done"][-2:-1].isdigit() and amount["total"][-2:-1].isdigit()
    if exact and done is not None:
        return round(percent(done, total, cap=RUNNING_MAX) or 0.0, 2)
    # Human-readable sizes are rounded to one decimal: aria2's own percentage is better.
    return min(float(amount["pct"]), RUNNING_MAX)


def _console_eta(text: str) -> int | None:
    """Seconds from ``1h2m3s``, ``4m51s`` or ``7s``."""
    m = _ETA_RE.fullmatch(text)
    if not text or m is None:
        return None
    return int(m["h"] or 0) * 3600 + int(m["m"] or 0) * 60 + int(m["s"] or 0)


def parse_console_error(line: str) -> tuple[str, str] | None:
    """(aria2 code, message) from a console error line such as ``  -> [HttpSkipResponse
    Command.cc:218] errorCode=3 Resource not found``, for :func:`classify_error`.

    A failure prints several such lines; the first one with a message (not ``URI=...``)
    names the cause best, e.g. "No space left on device" before "Write disk cache flush
    failure".
    """
    m = _CONSOLE_ERROR_RE.search(line)
    if m is None or m["msg"].startswith("URI="):
        return None
    return m["code"], _CUID_RE.sub("", m["msg"].strip())

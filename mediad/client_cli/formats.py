"""How the client commands write numbers and jobs for people: sizes, speeds, ETAs, the
table of ``ls`` and the details of ``show``."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any


def human_bytes(size: Any) -> str:
    if not isinstance(size, int | float):
        return "?"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def human_speed(speed: Any) -> str:
    return f"{human_bytes(speed)}/s" if isinstance(speed, int | float) else ""


def human_eta(eta: Any) -> str:
    if not isinstance(eta, int | float):
        return "-"
    seconds = int(eta)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02}:{seconds:02}" if hours else f"{minutes}:{seconds:02}"


def progress_line(stage: str, progress: Any, speed: Any, eta: Any) -> str:
    """``downloading    42%    1.9 MiB/s  ETA 0:03`` (``?`` for an unknown percent)."""
    percent = f"{progress:.0f}%" if isinstance(progress, int | float) else "?"
    line = f"{stage:<14} {percent:>4}  {human_speed(speed):>11}"
    if isinstance(eta, int | float):
        line += f"  ETA {human_eta(eta)}"
    return line.rstrip()


def job_table(jobs: Sequence[Mapping[str, Any]]) -> str:
    """Aligned columns with a header; the last (file name or URL) is never cut."""
    rows = [("ID", "STATUS", "TYPE", "PROGRESS", "SIZE", "CREATED", "NAME")]
    for job in jobs:
        progress = job.get("progress")
        rows.append(
            (
                str(job.get("jobId")),
                str(job.get("status")),
                str(job.get("type")),
                f"{progress:.0f}%" if isinstance(progress, int | float) else "-",
                human_bytes(job.get("size") or job.get("totalBytes"))
                if (job.get("size") or job.get("totalBytes"))
                else "-",
                str(job.get("createdAt") or "")[:19].replace("T", " "),
                str(job.get("filename") or job.get("url")),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1]
             for row in rows]  # fmt: skip
    if not jobs:
        lines.append("(no jobs)")
    return "\n".join(lines) + "\n"


def job_details(job: Mapping[str, Any], files: Mapping[str, Any] | None = None) -> str:
    """``show``: one ``name value`` line per field the job has, then its files."""
    progress = job.get("progress")
    fields = [
        ("job", job.get("jobId")),
        ("url", job.get("url")),
        ("type", job.get("type")),
        ("status", job.get("status")),
        ("stage", job.get("stage")),
        ("progress", f"{progress:.1f}%" if isinstance(progress, int | float) else None),
        ("speed", human_speed(job.get("speed")) or None),
        ("eta", human_eta(job.get("eta")) if job.get("eta") is not None else None),
        ("file", job.get("filename")),
        ("size", human_bytes(job.get("size")) if job.get("size") is not None else None),
        ("path", job.get("outputPath")),
        (
            "error",
            f"{job.get('errorCode')}: {job.get('errorMessage')}" if job.get("errorCode") else None,
        ),
        ("attempts", job.get("attempts")),
        ("options", json.dumps(job.get("options")) if job.get("options") else None),
        ("created", job.get("createdAt")),
        ("started", job.get("startedAt")),
        ("finished", job.get("finishedAt")),
    ]
    lines = [f"{name:<9} {value}" for name, value in fields if value not in (None, "")]
    if files and files.get("files"):
        lines.append("files:")
        lines += [f"  {f.get('name')}  {human_bytes(f.get('size'))}" for f in files["files"]]
    return "\n".join(lines) + "\n"

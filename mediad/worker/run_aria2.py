"""aria2 jobs, through the supervisor's RPC daemon: add the URI, poll its status, and
remove it from the daemon however the job ends."""

from __future__ import annotations

import asyncio
import contextlib
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

from mediad.aria2_rpc import Aria2Error, Aria2Rpc, Aria2Unavailable
from mediad.worker.aria2_progress import STATUS_KEYS, classify_error, parse_status
from mediad.worker.jobs import MAX_NAME_BYTES, JobContext, JobFailed, clean_name
from mediad.worker.progress import Progress

POLL_S = 0.05  # loopback RPC is cheap; completion is seen within 50 ms
# The first polls come sooner (5, 10, 20, 40 ms, then POLL_S): a small file is done
# in a few milliseconds, and waiting a whole POLL_S for it was most of a tiny job.
FIRST_POLL_S = 0.005
# And a poll is timed for when the download should end at its speed (and this much
# later), never sooner than FIRST_POLL_S: a 200 MB file at 450 MB/s was otherwise seen
# complete 25 ms late on average (half a POLL_S), 5 % of its time.
END_SLACK_S = 0.002
# How many failed status polls in a row mean the daemon is gone.
MAX_RPC_FAILURES = 100


async def run(ctx: JobContext) -> list[Path]:
    rpc = ctx.toolkit.aria2
    if rpc is None:
        raise JobFailed("tool_missing", "this worker has no aria2 daemon")
    await _stop_leftovers(rpc, ctx.work_dir)
    options = {
        "dir": str(ctx.work_dir),
        "continue": "true",
        "connect-timeout": "15",
        "timeout": "30",
        "max-tries": "3",
        "retry-wait": "1",
    }
    if ctx.proxy_url:  # the egress guard: every connection is checked there
        options["all-proxy"] = ctx.proxy_url
    if ctx.settings.rate_limit is not None:  # tools.rate_limit, tools.total_rate_limit
        options["max-download-limit"] = str(ctx.settings.rate_limit)
    name = url_file_name(ctx.url)
    if name is not None:
        options["out"] = name
    try:
        return await _download(ctx, rpc, options)
    except NameTooLong as exc:
        if "out" in options:
            raise
        # The server proposed a name (Content-Disposition) longer than a file name may
        # be: the same download again, under that name cut to fit.
        return await _download(ctx, rpc, {**options, "out": clean_name(exc.name)})


class NameTooLong(JobFailed):
    """aria2 could not create the file: the name it was given is too long."""

    def __init__(self, name: str) -> None:
        super().__init__("tool_failed", f"the file name is longer than {NAME_MAX} bytes: {name}")
        self.name = name


async def _download(ctx: JobContext, rpc: Aria2Rpc, options: dict[str, str]) -> list[Path]:
    try:
        gid = await rpc.call("aria2.addUri", [ctx.url], options)
    except Aria2Error as exc:
        raise JobFailed(*rpc_failure(exc)) from exc
    try:
        return await _follow(ctx, rpc, gid)
    finally:
        await _forget(rpc, gid)


NAME_MAX = 255  # bytes in one path component, on Linux's file systems
CANNOT_CREATE = "16"  # aria2's "could not create the file"


def too_long_name(error_code: str | None, paths: list[str]) -> str | None:
    """The name aria2 could not create because it is too long (its status keeps the path
    it tried), or None when that is not why the download failed."""
    if error_code != CANNOT_CREATE:
        return None
    for path in paths:
        name = path.rpartition("/")[2]
        if len(name.encode()) > NAME_MAX:
            return name
    return None


def rpc_failure(exc: Aria2Error) -> tuple[str, str]:
    """(errorCode, message) for an RPC call to the daemon that failed. A daemon that does
    not answer (killed, being restarted) or has forgotten the download (restarted: the
    GID is gone) is mediad's fault: ``interrupted``, retried without using up the job's
    attempts. Only an answer about the job itself (aria2 refusing the URI) is the job's."""
    if isinstance(exc, Aria2Unavailable):
        return "interrupted", f"the aria2 daemon is unavailable: {exc}"
    if _GID_GONE.search(str(exc)):
        return "interrupted", f"the aria2 daemon restarted and lost the download: {exc}"
    return "tool_failed", str(exc)


_GID_GONE = re.compile(r"GID [0-9a-f]+ is not found", re.IGNORECASE)


def url_file_name(url: str) -> str | None:
    """The name to give aria2 when the one it would take from the URL (its last path
    segment, decoded) is longer than a file name may be; None: aria2's own is fine."""
    segment = unquote(urlsplit(url).path.rpartition("/")[2])
    if len(segment.encode()) <= MAX_NAME_BYTES:
        return None
    return clean_name(segment)


async def _follow(ctx: JobContext, rpc: Aria2Rpc, gid: str) -> list[Path]:
    failures = polls = 0
    while True:
        try:
            raw = await rpc.call("aria2.tellStatus", gid, STATUS_KEYS)
            failures = 0
        except Aria2Error as exc:
            code, message = rpc_failure(exc)
            if not isinstance(exc, Aria2Unavailable):  # an answer: the daemon is up
                raise JobFailed(code, message) from exc
            failures += 1
            if failures >= MAX_RPC_FAILURES:  # the daemon died: the supervisor restarts it
                raise JobFailed("interrupted", f"lost contact with aria2: {exc}") from exc
            await asyncio.sleep(POLL_S)
            continue
        status = parse_status(raw)
        if status.progress is not None:
            ctx.report(status.progress)
        if status.status == "complete":
            files = [Path(p) for p in status.files if p]
            found = [f for f in files if f.is_file()]
            if not found:
                raise JobFailed("tool_failed", "aria2 finished but the file is missing")
            return found
        if status.status in ("error", "removed"):
            too_long = too_long_name(status.error_code, list(status.files))
            if too_long is not None:
                raise NameTooLong(too_long)
            raise JobFailed(*classify_error(status.error_code, status.error_message))
        await asyncio.sleep(next_poll_s(status.progress, polls))
        polls += 1


def next_poll_s(progress: Progress | None, polls: int) -> float:
    """Seconds until the status poll after poll number ``polls`` (0 the first): the ramp
    up to POLL_S, or sooner if the download should be over by then at its current speed."""
    # (The exponent capped: 2**1024 is too large for a float, ~51 s into a download.)
    wait = min(POLL_S, FIRST_POLL_S * float(1 << min(polls, 16)))
    if progress is None or not progress.speed or progress.total_bytes is None:
        return wait
    left = max(0, progress.total_bytes - (progress.downloaded_bytes or 0))
    return min(wait, max(FIRST_POLL_S, left / progress.speed + END_SLACK_S))


async def _stop_leftovers(rpc: Aria2Rpc, work_dir: Path) -> None:
    """A previous attempt whose worker died may still be downloading into this folder
    inside the daemon: stop it first, or two downloads would write the same file."""
    try:
        active = await rpc.call("aria2.tellActive", ["gid", "dir"])
        waiting = await rpc.call("aria2.tellWaiting", 0, 1000, ["gid", "dir"])
    except Aria2Error:
        return  # the addUri that follows reports a daemon that is down
    for item in [*active, *waiting]:
        if item.get("dir") == str(work_dir):
            await _forget(rpc, item["gid"])


async def _forget(rpc: Aria2Rpc, gid: str) -> None:
    """Stop the download if it still runs (keeping its bytes) and drop its result."""
    with contextlib.suppress(Aria2Error):
        status = await rpc.call("aria2.tellStatus", gid, ["status"])
        if status.get("status") in ("active", "waiting", "paused"):
            await rpc.call("aria2.forceRemove", gid)
            for _ in range(50):  # forceRemove is asynchronous: wait until it took effect
                status = await rpc.call("aria2.tellStatus", gid, ["status"])
                if status.get("status") == "removed":
                    break
                await asyncio.sleep(0.05)
    with contextlib.suppress(Aria2Error):
        await rpc.call("aria2.removeDownloadResult", gid)

"""Twitter/X jobs through twmd (twitter-media-downloader; docs/tools.md, "twmd").

A tweet URL runs ``twmd -B -t ID -o OUT``; a profile URL runs ``twmd -B -u NAME -a|-i|-v
[-r] [-n N] -o OUT``; with cookies configured, ``-L`` (they are copied into twmd's
working directory as ``twmd_cookies.json``, mode 0600); and ``-p URL``: the worker's
egress guard, or ``twitter.proxy`` when the operator set one (see :func:`pick_proxy`).
twmd runs with stdin closed, in a fresh working directory inside ``tmp/{jobId}``, in its
own process group and without the worker's secrets in its environment.

Time limits: twmd is killed (the whole group) and the job fails with ``timeout`` when it
prints nothing and writes no byte for ``MEDIAD_TWMD_IDLE_S`` seconds (default 300), or
runs longer than ``MEDIAD_TWMD_TIMEOUT_S`` seconds (default 14400, four hours). Both
are read from the worker's environment at the start of each job. A login prompt (bad or
expired cookies make twmd ask again forever) fails the job with ``auth_failed`` at once.

Progress: twmd announces no total, neither of files nor of bytes, and prints a line only
once a file is done, so no percentage can be justified: ``progress`` stays null (unknown)
until the job completes. What is known is reported: the bytes written so far (files in
flight included, measured on disk about once a second), which also keep the watchdog
quiet during a long video, and the speed computed from them. ``Downloaded`` lines are
counted for the log.

twmd writes straight to the final names, so a killed or failed run leaves truncated
files behind. Hence: the output directory is emptied at the start of every attempt (a
Twitter/X job restarts from zero; ``-U`` is never used), and a job publishes only files
that twmd reported with ``Downloaded NAME``, that exist and are not empty, and only when
twmd exited 0. On failure or cancellation the run's files are removed.
"""

from __future__ import annotations

import asyncio
import codecs
import errno
import logging
import math
import os
import re
import shutil
import signal
import stat
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mediad import cookies
from mediad.detect import twitter_target
from mediad.errors import BadRequest
from mediad.worker import procs
from mediad.worker.jobs import JobContext, JobFailed, remove_tree
from mediad.worker.progress import Progress
from mediad.worker.settings import WorkerSettings
from mediad.worker.twmd_output import TwmdOutput, auth_failure, classify, is_prompt

log = logging.getLogger(__name__)

IDLE_ENV = "MEDIAD_TWMD_IDLE_S"
TIMEOUT_ENV = "MEDIAD_TWMD_TIMEOUT_S"
IDLE_S = 300.0
TIMEOUT_S = 4 * 3600.0
# How often the runner checks the limits and the prompt, and measures the files on disk.
TICK_S = 0.25
SCAN_S = 1.0
# twmd has no signal handling: SIGTERM ends it at once; SIGKILL follows for stragglers.
STOP_GRACE_S = 2.0
# After twmd closed its output it should be gone; a process that lingers is killed.
EXIT_WAIT_S = 10.0
CHUNK_BYTES = 64 * 1024
MAX_LINE_CHARS = 64 * 1024

COOKIES_NAME = "twmd_cookies.json"
CWD_NAME = "twmd-cwd"
OUT_NAME = "twmd-out"
MEDIA_FLAGS = {"images": "-i", "videos": "-v", "all": "-a"}
MAX_TWEETS = 3000  # as mediad.inputs allows; twmd's own default
RETWEET_PREFIX = "RE-"
# What twitter_target may hand over; anything else never reaches twmd's command line.
_TWEET_ID = re.compile(r"[0-9]{1,25}")
_USER_NAME = re.compile(r"[A-Za-z0-9_]{1,50}")
_NEWLINES = re.compile(r"\r\n|\r|\n")


# Secrets of the service and the worker that a third-party tool has no use for.
@dataclass(frozen=True)
class Limits:
    idle_s: float = IDLE_S
    total_s: float = TIMEOUT_S


async def run(ctx: JobContext) -> list[Path]:
    mode, name = target_of(ctx.url)
    twmd = find_twmd(ctx.settings)
    limits = limits_from_env(os.environ)
    # Absolute: twmd runs in `cwd`, and resolves a relative -o from there.
    cwd, out_dir = (ctx.work_dir / CWD_NAME).absolute(), (ctx.work_dir / OUT_NAME).absolute()
    extra = {"jobId": ctx.job_id, "stage": "downloading"}
    try:
        for path in (cwd, out_dir):  # every attempt starts from nothing
            remove_tree(path)
            path.mkdir(parents=True)
        login = install_cookies(ctx.settings.twitter_cookies, cwd, ctx.cookie_copy())
        proxy = pick_proxy(ctx.settings.twitter_proxy, ctx.proxy_url)
        args = build_args((mode, name), ctx.options, out_dir, login=login, proxy=proxy)
        out, code = await _run_twmd(ctx, [twmd, *args], cwd, out_dir, limits)
        files, missing = collect(out_dir, out.downloaded) if code == 0 else ([], [])
        failure = classify(out, code, len(files), mode=mode)
        if failure is not None:
            raise JobFailed(failure.error_code, failure.message)
        if missing:
            log.warning(
                "twmd reported %d file(s) it did not write completely, left out: %s",
                len(missing), ", ".join(missing[:20]), extra=extra,
            )  # fmt: skip
        if out.errors:
            log.warning("%d media download(s) failed in twmd", out.errors, extra=extra)
        log.info("twmd downloaded %d file(s)", len(files), extra=extra)
        return files
    except BaseException:
        remove_tree(out_dir)  # truncated files must never be published, nor kept
        raise
    finally:
        remove_tree(cwd)  # the copy of the cookies goes with it


# -- target, arguments, tool, environment (no process) -----------------------------------


def target_of(url: str) -> tuple[str, str]:
    """("tweet", ID) or ("user", NAME), or JobFailed("unsupported_url")."""
    target = twitter_target(url)
    if target is not None:
        mode, value = target
        pattern = _TWEET_ID if mode == "tweet" else _USER_NAME
        if pattern.fullmatch(value):
            return mode, value
    raise JobFailed(
        "unsupported_url",
        "not a Twitter/X tweet or profile URL (expected https://x.com/USER/status/ID"
        " or https://x.com/USER)",
    )


def build_args(
    target: tuple[str, str],
    options: Mapping[str, Any],
    out_dir: Path,
    *,
    login: bool = False,
    proxy: str | None = None,
) -> list[str]:
    """twmd's arguments for one job (the executable not included).

    Every flag stands alone: twmd's parser does not combine short flags (``-ai`` is
    unknown) and silently stops at an unknown one. A tweet downloads everything it has,
    so the profile options apply to profiles only.
    """
    mode, value = target
    args = ["-B"]  # no banner; "--no-banner" would *clear* the flag ("no-" negates it)
    if mode == "tweet":
        args += option("-t", "--tweet", value)
    elif mode == "user":
        args += option("-u", "--user", value)
        media_type = options.get("mediaType") or "all"
        max_tweets = options.get("maxTweets")
        # The service validated these; a worker still refuses what twmd would misread.
        if media_type not in MEDIA_FLAGS or not (
            max_tweets is None or (type(max_tweets) is int and 1 <= max_tweets <= MAX_TWEETS)
        ):
            raise JobFailed("invalid_options", "mediaType or maxTweets is not valid")
        args.append(MEDIA_FLAGS[media_type])
        if options.get("includeRetweets"):
            args.append("-r")
        if max_tweets is not None:
            args += option("-n", "--nbr", str(max_tweets))
    else:
        raise ValueError(f"unknown twmd target {mode!r}")
    args += option("-o", "--output", str(out_dir))
    if login:
        args.append("-L")
    if proxy:
        args += option("-p", "--proxy", proxy)
    return args


def option(short: str, long: str, value: str) -> list[str]:
    """A flag and its value. twmd takes the next word as the value only when it does not
    start with "-" (else the flag lacks its value and parsing stops there), so such a
    value goes inside the flag: ``--long=value``. Everything else stays a separate word,
    which twmd takes verbatim (inside ``--long=``, a value in brackets loses them). An
    empty value has no safe form (``--long=`` makes twmd's parser panic)."""
    if not value:
        raise ValueError(f"{long} needs a value")
    if value.startswith("-"):
        return [f"{long}={value}"]
    return [short, value]


def pick_proxy(configured: str | None, guard: str | None) -> str | None:
    """The one proxy twmd can take (``-p``): the worker's egress guard, unless the
    operator set ``twitter.proxy`` (TWITTER_PROXY), which the guard cannot be chained
    to. Without the guard, twmd's destinations are still not the user's choice: the job
    gives a tweet id or a user name, and the media URLs come from Twitter/X's API."""
    return configured or guard


def find_twmd(settings: WorkerSettings) -> str:
    if not settings.twmd:
        raise JobFailed(
            "tool_missing",
            "twmd is not configured on this worker: set TWMD_PATH or tools.twmd to the"
            " twmd executable",
        )
    found = shutil.which(settings.twmd)
    if found is None:
        raise JobFailed(
            "tool_missing",
            f"twmd not found or not executable at {settings.twmd} (TWMD_PATH / tools.twmd)",
        )
    return found


def limits_from_env(env: Mapping[str, str]) -> Limits:
    return Limits(
        idle_s=_seconds(env, IDLE_ENV, IDLE_S), total_s=_seconds(env, TIMEOUT_ENV, TIMEOUT_S)
    )


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        log.warning("%s=%r is not a positive number of seconds; using %g", name, raw, default)
        return default
    return value


def install_cookies(source: str | None, cwd: Path, named: Path | None = None) -> bool:
    """Copy the cookies where twmd looks for them (its working directory), readable by
    this user only: a named cookie file of the job's (a Netscape cookies.txt, turned into
    twmd's JSON), else the configured ``twitter.cookies_path``. Returns whether there
    are cookies (and so ``-L``)."""
    if named is not None:
        try:
            data = cookies.twmd_json(named.read_text("utf-8"))
        except (OSError, UnicodeDecodeError, BadRequest) as exc:
            raise JobFailed("auth_failed", f"cannot read the job's cookie file: {exc}") from None
        _write_private(cwd / COOKIES_NAME, data)
        return True
    if not source:
        return False
    try:
        data = Path(source).read_bytes()
    except OSError as exc:
        raise JobFailed(
            "auth_failed",
            f"cannot read the Twitter/X cookies file {source} (twitter.cookies_path):"
            f" {exc.strerror or exc}",
        ) from None
    _write_private(cwd / COOKIES_NAME, data)
    return True


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(f.fileno(), 0o600)  # whatever the umask
        f.write(data)


# -- files on disk -----------------------------------------------------------------------


def collect(out_dir: Path, reported: Iterable[str]) -> tuple[list[Path], list[str]]:
    """(files to publish, reported names left out).

    A file counts when twmd reported its name with ``Downloaded NAME`` (a retweet's file
    is written as ``RE-NAME`` but reported as ``NAME``) and it is a regular, non-empty
    file. Names reported without such a file (twmd says "Downloaded" even when the copy
    failed) come back in the second list.
    """
    names = set(reported)
    kept: list[Path] = []
    used: set[str] = set()
    for path, size in _regular_files(out_dir):
        key = path.name
        if key not in names and key.startswith(RETWEET_PREFIX):
            key = key[len(RETWEET_PREFIX) :]
        if key in names and size > 0:
            kept.append(path)
            used.add(key)
    return kept, sorted(names - used)


def dir_bytes(path: Path) -> int:
    return sum(size for _, size in _regular_files(path))


def _regular_files(root: Path) -> list[tuple[Path, int]]:
    found = []
    for folder, _, names in os.walk(root):  # symlinks to folders are not followed
        for name in names:
            path = Path(folder) / name
            try:
                st = path.lstat()
            except OSError:
                continue  # gone meanwhile
            if stat.S_ISREG(st.st_mode):
                found.append((path, st.st_size))
    return sorted(found)


# -- running twmd ------------------------------------------------------------------------


async def _run_twmd(
    ctx: JobContext, argv: list[str], cwd: Path, out_dir: Path, limits: Limits
) -> tuple[TwmdOutput, int]:
    """Run twmd to its end (or to a limit, a prompt or a cancel: then the whole process
    group is killed), reporting progress. Returns its output and exit code."""
    try:
        # The environment every tool gets (the worker's toolkit): no secrets, the guard.
        proc = await ctx.spawn(argv, cwd=cwd)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise
        raise JobFailed(
            "tool_missing", f"cannot run twmd at {argv[0]}: {exc.strerror or exc}"
        ) from None
    out = TwmdOutput()
    reader = asyncio.create_task(_feed(proc, out), name=f"twmd-output-{ctx.job_id}")
    try:
        await _follow(ctx, reader, out, out_dir, limits)
        reader.result()
        try:
            code = await asyncio.wait_for(proc.wait(), EXIT_WAIT_S)
        except TimeoutError:
            raise JobFailed("timeout", "twmd closed its output but did not exit") from None
    finally:
        reader.cancel()
        if proc.returncode is None:
            await proc.stop(signal.SIGTERM, STOP_GRACE_S)
    return out, code


async def _follow(
    ctx: JobContext, reader: asyncio.Task[None], out: TwmdOutput, out_dir: Path, limits: Limits
) -> None:
    """Watch a running twmd until its output ends: progress, the limits, prompts."""
    loop = asyncio.get_running_loop()
    started = last_active = next_scan = loop.time()
    meter = _DiskMeter(out_dir)
    lines_seen = 0
    sent: tuple[int, int, int | None] | None = None
    while not reader.done():
        await asyncio.wait({reader}, timeout=TICK_S)
        now = loop.time()
        if out.prompt is not None:
            failure = auth_failure()
            raise JobFailed(failure.error_code, failure.message)
        if out.lines != lines_seen:
            lines_seen, last_active = out.lines, now
        if now >= next_scan or reader.done():
            next_scan = now + SCAN_S
            if await meter.measure(now):
                last_active = now  # a long video prints nothing until it is done
            if sent != (reading := (meter.size, len(out.downloaded), meter.speed)):
                sent = reading
                ctx.report(
                    Progress(
                        stage="downloading",
                        progress=None,
                        speed=meter.speed,
                        downloaded_bytes=meter.size,
                    )
                )
        if reader.done():
            break
        if now - last_active > limits.idle_s:
            raise JobFailed(
                "timeout",
                f"twmd printed nothing and wrote nothing for {limits.idle_s:g} s ({IDLE_ENV})",
            )
        if now - started > limits.total_s:
            raise JobFailed(
                "timeout", f"twmd did not finish within {limits.total_s:g} s ({TIMEOUT_ENV})"
            )


class _DiskMeter:
    """The bytes under twmd's output folder, files in flight included, and how fast they
    grow: what twmd itself never says."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.size = 0
        self.speed: int | None = None
        self._measured_at: float | None = None

    async def measure(self, now: float) -> bool:
        """Measure again; returns whether the size changed."""
        size = await asyncio.to_thread(dir_bytes, self.root)
        if self._measured_at is not None and now > self._measured_at:
            self.speed = max(0, round((size - self.size) / (now - self._measured_at)))
        changed = size != self.size
        self.size, self._measured_at = size, now
        return changed


async def _feed(proc: procs.ToolProcess, out: TwmdOutput) -> None:
    # ToolProcess.lines() waits for a newline, and twmd prints its prompts without one.
    async for line in output_lines(proc.output):
        out.feed(line)


async def output_lines(reader: asyncio.StreamReader) -> AsyncIterator[str]:
    """Lines of output (``\\n``, ``\\r\\n`` or ``\\r`` ended, blank ones skipped), plus an
    unterminated tail as soon as it reads as a login prompt. A line longer than
    ``MAX_LINE_CHARS`` is nothing twmd prints: it is dropped whole."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    pending, skipping = "", False
    while chunk := await reader.read(CHUNK_BYTES):
        pending += decoder.decode(chunk)
        *complete, pending = _NEWLINES.split(pending)
        for line in complete:
            if skipping:  # the end of the over-long line
                skipping = False
            elif line.strip() and len(line) <= MAX_LINE_CHARS:
                yield line
        if skipping:
            pending = ""
        elif is_prompt(pending):
            yield pending
            pending = ""
        elif len(pending) > MAX_LINE_CHARS:
            pending, skipping = "", True
    pending += decoder.decode(b"", final=True)
    if pending.strip() and not skipping:
        yield pending

"""yt-dlp jobs. By default the worker's fork server (``forkserver.py``) imports yt_dlp
once (``preload``) and forks a child per job that runs yt-dlp's own command-line entry
point (``ENTRY``); ``tools.ytdlp`` runs an executable instead."""

from __future__ import annotations

import array
import contextlib
import gc
import logging
import os
import re
import signal
from collections.abc import Iterator, MutableMapping, Sequence
from pathlib import Path
from typing import Any

from mediad.parent_death import die_with_parent
from mediad.worker.forkserver import ForkServerLost
from mediad.worker.jobs import JobContext, JobFailed
from mediad.worker.procs import ToolProcess
from mediad.worker.ytdlp_progress import PROGRESS_ARGS, FileDone, YtdlpParser, classify_error

log = logging.getLogger(__name__)

# Every name yt-dlp writes must fit the file system's 255 bytes per component, whatever the
# extractor proposes (the generic one builds ids from the URL). The fields are cut in
# bytes; yt-dlp sanitises after cutting, turning each of "*:<>?|/\\ and the quote into a
# 3-byte full-width look-alike, so those are replaced first (LOOKALIKE_ARGS) and the cut
# stays a bound: at most 120 + 60 bytes and the extension (one yt-dlp allows), which
# leaves room for ".f251.webm.part", ".part-Frag123.part" or ".pt-BR.vtt".
OUTPUT_TEMPLATE = "%(title).120B [%(id).60B].%(ext)s"
_LOOKALIKES = {'"': "\uff02", "*": "\uff0a", ":": "\uff1a", "<": "\uff1c", ">": "\uff1e",
               "?": "\uff1f", "|": "\uff5c", "/": "\u29f8", "\\": "\u29f9"}  # fmt: skip
LOOKALIKE_ARGS = [
    arg
    for char, lookalike in _LOOKALIKES.items()
    for arg in ("--replace-in-metadata", "title,id", re.escape(char), lookalike)
]
FORMAT_PRESETS = {
    "best": "bv*+ba/b",
    "1080p": "bv*[height<=1080]+ba/b[height<=1080]/b",
    "720p": "bv*[height<=720]+ba/b[height<=720]/b",
    "480p": "bv*[height<=480]+ba/b[height<=480]/b",
    "audio": "ba/b",
}

# What each forked child runs: ``main``, yt-dlp's command line (imported by ``preload``).
ENTRY = "mediad.worker.run_ytdlp:main"
_entry: Any = None


# A URL no site extractor takes: checking it against every extractor compiles them all.
_WARM_URL = "http://127.0.0.1/mediad-warm-up.mp4"
# What a plain HTTP response's dates look like (the generic extractor parses Last-Modified).
_WARM_DATE = "Tue, 01 Dec 2026 21:04:06 GMT"


def preload(ffmpeg: str | None = None) -> None:
    """Import yt-dlp and do its per-process start-up once, here, so that each forked job
    starts with it done: compile every extractor's URL patterns (yt-dlp caches them on
    the class, ``_VALID_URL_RE``), import the generic extractor, fill the date parser's
    pattern cache and probe ``ffmpeg``/``ffprobe`` (yt-dlp caches the versions by path,
    ``FFmpegPostProcessor._version_cache``; ``ffmpeg`` is the ``--ffmpeg-location`` every
    job is given). All of it is derived from yt-dlp's code and the tools on disk, never
    from a job: each job still runs in a fresh child with its own options."""
    global _entry
    if _entry is not None:
        return
    import yt_dlp

    _entry = yt_dlp.main
    try:
        _warm_up(ffmpeg)
    except Exception:  # a cache left cold only costs time in each child
        log.warning("yt-dlp warm-up failed; each job does it again", exc_info=True)
    # Objects made so far are never collected: a child's garbage collector then leaves
    # their pages alone, so they stay shared with the worker instead of being copied.
    gc.freeze()


def _warm_up(ffmpeg: str | None) -> None:
    from yt_dlp.extractor import GenericIE, gen_extractor_classes
    from yt_dlp.postprocessor.ffmpeg import FFmpegPostProcessor
    from yt_dlp.utils import unified_strdate, unified_timestamp

    for ie in gen_extractor_classes():
        with contextlib.suppress(Exception):
            ie.suitable(_WARM_URL)
    getattr(GenericIE, "real_class", None)  # with lazy extractors: import the real one
    _remember_extractor_selection()
    _prebuild_default_extractors()
    _use_picked_extractor()
    _skip_empty_prints()
    unified_timestamp(_WARM_DATE)
    unified_strdate(_WARM_DATE)
    token = FFmpegPostProcessor._ffmpeg_location.set(ffmpeg)
    try:
        probe = FFmpegPostProcessor()
        _ = probe._version, probe._probe_version
    finally:
        FFmpegPostProcessor._ffmpeg_location.reset(token)
    try:
        warm_job(ffmpeg)
    except Exception:  # as above: each child does the work instead
        log.warning("the yt-dlp warm-up job failed; each job does it again", exc_info=True)
    _build_ahead()  # after the warm-up job, which would take what is built ahead


def _remember_extractor_selection() -> None:
    """Each ``YoutubeDL`` picks its extractors from the ~1,900 names with
    ``orderedSet_from_options``, quadratic in the names (~60 ms a job here). The function
    is pure: remember its answers for the same arguments in YoutubeDL's module, and work
    out the one every job asks for (``allowed_extractors`` left at ``default``) now."""
    import sys

    from yt_dlp.extractor import gen_extractor_classes
    from yt_dlp.extractor.common import UnsupportedURLIE

    module = sys.modules["yt_dlp.YoutubeDL"]
    original = module.orderedSet_from_options
    if getattr(original, "__wrapped__", None) is not None:
        return
    answers: dict[Any, list[Any]] = {}

    def remembered(
        options: Any, alias_dict: Any, *, use_regex: bool = False, start: Any = None
    ) -> list[Any]:
        try:
            key = (
                tuple(options),
                tuple((k, tuple(v)) for k, v in alias_dict.items()),
                use_regex,
                tuple(start or ()),
            )
            hash(key)
        except TypeError:
            return list(original(options, alias_dict, use_regex=use_regex, start=start))
        if key not in answers:
            if len(answers) >= 16:
                answers.clear()
            answers[key] = original(options, alias_dict, use_regex=use_regex, start=start)
        return list(answers[key])

    remembered.__wrapped__ = original  # type: ignore[attr-defined]  # marks the original for the tests
    module.orderedSet_from_options = remembered  # type: ignore[attr-defined]  # yt-dlp internal, replaced on purpose
    # What YoutubeDL.add_default_info_extractors asks.
    all_ies: dict[str, Any] = {ie.IE_NAME.lower(): ie for ie in gen_extractor_classes()}
    all_ies["end"] = UnsupportedURLIE()
    names = {"all": list(all_ies), "default": [n for n, ie in all_ies.items() if ie._ENABLED]}
    remembered(["default"], names, use_regex=True)


class WarmUpTimeout(BaseException):
    """The warm-up job took too long (a BaseException: yt-dlp retries on Exceptions)."""


WARM_UP_TIMEOUT_S = 15
warmed_up = False  # the warm-up job completed in this process (or the one it was forked from)


def warm_job(ffmpeg: str | None) -> bool:
    """Run one whole job here, in the fork server, before any real one: yt-dlp's command
    line with mediad's own arguments downloads 1 KiB from a loopback responder forked for
    it (also its proxy, as the egress guard is a job's). What this leaves behind is what
    every job needs and would otherwise make again in its own child: the modules a
    download imports (the HTTP downloader, requests, urllib3), the ~60 regular expressions
    a job compiles (the option templates, the format selector, the generic extractor)
    in ``re``'s cache. Nothing in it comes from a job: the URL, the folder and the
    options are mediad's, the folder is removed, and yt-dlp's process-wide values that
    its command line sets (``IN_CLI``, the plugin folders, the ffmpeg location, the
    process name) are put back. False (logged) if it did not complete: jobs then do that
    work themselves."""
    import contextvars
    import tempfile

    from yt_dlp import globals as yt_globals

    server = _warm_responder()
    port = server.server_address[1]
    pid = os.fork()
    if pid == 0:  # the responder: a few requests, then gone (also with its parent)
        try:
            die_with_parent(signal.SIGKILL)
            for _ in range(8):
                server.handle_request()
        finally:
            os._exit(0)
    server.server_close()
    saved = (yt_globals.IN_CLI.value, yt_globals.plugin_dirs.value)
    comm = Path("/proc/self/comm").read_text().rstrip("\n")

    def expired(*_: object) -> None:
        raise WarmUpTimeout

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, WARM_UP_TIMEOUT_S)
    code: object = None
    try:
        with tempfile.TemporaryDirectory(prefix="mediad-warm-up-") as folder:
            url = f"http://127.0.0.1:{port}/mediad-warm-up.mp4"
            proxy = f"http://127.0.0.1:{port}"
            args = build_args(url, {}, Path(folder), ffmpeg, proxy=proxy)
            pick_extractor(args)  # as the fork server does before each job
            with _output_discarded():
                code = contextvars.copy_context().run(_exit_code, args)
    except WarmUpTimeout:
        code = "timed out"
    finally:
        global _picked
        _picked = None
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        yt_globals.IN_CLI.value, yt_globals.plugin_dirs.value = saved
        _set_comm(comm)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    if code != 0:
        log.warning("the yt-dlp warm-up job did not complete (%s); each job does it again", code)
    global warmed_up
    warmed_up = warmed_up or code == 0
    return code == 0


def _exit_code(args: list[str]) -> object:
    try:
        _entry(args)
    except SystemExit as exc:
        return exc.code or 0
    return 0


@contextlib.contextmanager
def _output_discarded() -> Iterator[None]:
    """Descriptors 1 and 2 (what a tool yt-dlp starts writes to) and ``sys.stdout`` and
    ``sys.stderr`` (what yt-dlp writes to: whatever they were in this server, perhaps not
    even on those descriptors) to /dev/null."""
    import io
    import sys

    streams = sys.stdout, sys.stderr
    for stream in streams:
        with contextlib.suppress(Exception):
            stream.flush()
    saved = os.dup(1), os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        os.dup2(null, 2)
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), line_buffering=True)
        sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), line_buffering=True)
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        sys.stdout, sys.stderr = streams
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (null, *saved):
            os.close(fd)


def _set_comm(name: str) -> None:
    with contextlib.suppress(OSError):
        Path("/proc/self/comm").write_text(name)


def _warm_responder() -> Any:
    """A loopback HTTP server answering every GET with 1 KiB of "video/mp4"."""
    from http.server import BaseHTTPRequestHandler, HTTPServer

    body = bytes(1024)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Last-Modified", _WARM_DATE)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    server.timeout = WARM_UP_TIMEOUT_S
    return server


def _prebuild_default_extractors() -> None:
    """Each ``YoutubeDL`` fills its extractor table (``_ies``: ~1,900 classes by key, in
    order) through a dict of every class by name, the selection and a call per class:
    ~8 ms of a ~40 ms job in a child. For the default selection the table is always the
    same: work it out here once with yt-dlp's own method and give each ``YoutubeDL`` a
    ``DefaultExtractors`` reading through it (an extractor instance in it, if a yt-dlp
    ever puts one there, made afresh for each at its place). Anything else
    (``allowed_extractors``, plugins, another registry) takes the original."""
    from yt_dlp import YoutubeDL
    from yt_dlp import globals as yt_globals

    original = YoutubeDL.add_default_info_extractors
    if getattr(original, "__wrapped__", None) is not None:
        return
    global _default_table
    registry = yt_globals.extractors.value
    size = len(registry)
    probe = YoutubeDL.__new__(YoutubeDL)
    probe.params, probe._ies, probe._ies_instances = {}, {}, {}
    probe.write_debug = lambda *_: None  # a bare probe: nothing to print
    original(probe)
    # Every key in order, an instance's place holding its class; then the instances to make.
    table = {key: ie if isinstance(ie, type) else type(ie) for key, ie in probe._ies.items()}
    instances = [type(ie) for ie in probe._ies.values() if not isinstance(ie, type)]
    count = len(probe._ies)

    def add_default_info_extractors(self: Any) -> None:
        if (
            self.params.get("allowed_extractors", ["default"]) != ["default"]
            or yt_globals.extractors.value is not registry
            or len(registry) != size
            or yt_globals.plugin_ies.value
            or self._ies
        ):
            original(self)
            return
        self._ies = DefaultExtractors(table)
        for instance_class in instances:
            self.add_info_extractor(instance_class())
        self.write_debug(f"Loaded {count} extractors")

    _default_table = table
    _build_pick_steps(table)

    add_default_info_extractors.__wrapped__ = original  # type: ignore[attr-defined]  # marks the original for the tests
    YoutubeDL.add_default_info_extractors = (
        add_default_info_extractors  # yt-dlp internal, replaced on purpose
    )


_default_table: dict[str, Any] | None = None  # the default extractors by key, in order


class DefaultExtractors(MutableMapping[str, Any]):
    """A ``YoutubeDL``'s extractor table (``_ies``) for the default selection, reading
    through the one table built ahead. A dict of its own would hold a reference to each
    of ~1,900 classes: in a forked child that writes to every class's page (~930 pages
    copied, ~4 ms a job). Until something needs the whole table (yt-dlp looking for an
    extractor without a key, the generic extractor's search of a web page, a listing),
    reads go to what this one set (the instances yt-dlp makes) and then to the shared
    table; after that it is a dict of both, in the order a dict would have, and writes
    go there. ``changed`` says whether any write did more than put an extractor's own
    instance or class at its key."""

    __slots__ = ("_own", "_shared", "_whole", "changed")

    def __init__(self, shared: dict[str, Any]) -> None:
        self._shared = shared
        self._own: dict[str, Any] = {}
        self._whole: dict[str, Any] | None = None
        self.changed = False

    def whole(self) -> dict[str, Any]:
        if self._whole is None:
            self._whole = {**self._shared, **self._own}
        return self._whole

    def __getitem__(self, key: str) -> Any:
        if self._whole is not None:
            return self._whole[key]
        if key in self._own:
            return self._own[key]
        return self._shared[key]

    def __contains__(self, key: object) -> bool:
        if self._whole is not None:
            return key in self._whole
        return key in self._own or key in self._shared

    def __setitem__(self, key: str, value: Any) -> None:
        # yt-dlp puts an extractor (its class or an instance) at its own key, ie_key().
        shared = self._shared.get(key)
        same = value is shared or (not isinstance(value, type) and value.ie_key() == key)
        if shared is None or not same:
            self.changed = True
        if self._whole is not None:
            self._whole[key] = value
        else:
            self._own[key] = value

    def __delitem__(self, key: str) -> None:
        self.changed = True
        del self.whole()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.whole())

    def __len__(self) -> int:
        return len(self.whole())

    def keys(self) -> Any:
        return self.whole().keys()

    def values(self) -> Any:
        return self.whole().values()

    def items(self) -> Any:
        return self.whole().items()

    def __repr__(self) -> str:
        return f"DefaultExtractors({len(self)} extractors)"


# The extractor the fork server found for the URL of the job it is about to fork.
_picked: tuple[str, str] | None = None


# What pick_extractor goes through, in the default table's order: each extractor's URL
# patterns (or, for one with its own ``suitable``, its class) and the extractor's place.
_pick_steps: list[Any] = []
_pick_places = array.array("H")
_pick_keys: list[str] = []


def _build_pick_steps(table: dict[str, Any]) -> None:
    """Work out, before forking, what ``pick_extractor`` reads: one list with every
    extractor's compiled URL patterns, one array of their extractors' places. Reading an
    object writes its reference count, so after a fork every page read is copied: going
    through ~1,900 classes, their dicts and tuples copied ~2,300 pages (9 MiB) into each
    fork server; the patterns alone are ~520 pages. An extractor is suitable when one of
    its patterns matches, which is all yt-dlp's own ``suitable`` does (``InfoExtractor``'s
    and the lazy extractors' are the same code) unless a class has its own: such a class
    is asked itself, as is one whose patterns were not compiled."""
    from yt_dlp.extractor.common import InfoExtractor

    plain = [InfoExtractor.__dict__["suitable"].__func__]
    matcher = [InfoExtractor.__dict__["_match_valid_url"].__func__]
    try:
        from yt_dlp.extractor.lazy_extractors import LazyLoadExtractor
    except ImportError:  # yt-dlp without lazy extractors
        pass
    else:
        plain.append(LazyLoadExtractor.__dict__["suitable"].__func__)
        matcher.append(LazyLoadExtractor.__dict__["_match_valid_url"].__func__)
    steps: list[Any] = []
    places = array.array("H")
    for place, ie in enumerate(table.values()):
        patterns = ie.__dict__.get("_VALID_URL_RE") if isinstance(ie, type) else None
        default = (
            getattr(ie.suitable, "__func__", None) in plain
            and getattr(ie._match_valid_url, "__func__", None) in matcher
        )
        if not default or (patterns is None and ie._VALID_URL is not False):
            steps.append(ie)  # asked as yt-dlp asks it
            places.append(place)
        elif patterns is not None:  # (no patterns: _VALID_URL is False, never suitable)
            steps.extend(patterns)
            places.extend([place] * len(patterns))
    _pick_steps[:] = steps
    _pick_places[:] = places
    _pick_keys[:] = list(table)


def pick_extractor(argv: Sequence[str]) -> None:
    """Run by the fork server before it forks each job's child (``main.prepare``): find
    the extractor yt-dlp would pick for the job's URL (the last argument, after "--"),
    the first of the default table that is ``suitable`` (``_build_pick_steps``). Done in
    a child, asking ~1,900 classes writes to each one's page (~900 more pages copied,
    ~6 ms a job); done here, the pages it reads are the server's own after the first job.
    The child is given the answer (``_use_picked_extractor``) only for that URL and only
    while its table is the default one; anything else, an error here included, leaves
    yt-dlp to look as it always does."""
    global _picked, _pick_armed
    _picked = None
    if not _pick_keys or len(argv) < 2 or argv[-2] != "--":
        return
    url = argv[-1]
    pattern = re.Pattern
    # A URL can make a pattern backtrack for ages: in a child the watchdog ends that, here
    # it would stall every later job. So the pick has PICK_TIMEOUT_S (unless an alarm is
    # set already: the warm-up job's, which bounds it), then leaves it to the child.
    bounded = signal.getitimer(signal.ITIMER_REAL)[0] == 0
    if bounded:
        previous = signal.signal(signal.SIGALRM, _pick_expired)
        _pick_armed = True
        signal.setitimer(signal.ITIMER_REAL, PICK_TIMEOUT_S)
    try:
        for step, place in zip(_pick_steps, _pick_places, strict=True):
            if step.match(url) if type(step) is pattern else step.suitable(url):
                _picked = (url, _pick_keys[place])
                return
    except (Exception, _PickTimeout):  # the child looks for itself (and meets the same)
        _picked = None
    finally:
        if bounded:
            _pick_armed = False
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


PICK_TIMEOUT_S = 0.5
_pick_armed = False


class _PickTimeout(BaseException):
    """The pick took too long (a BaseException: an extractor's code may catch Exception)."""


def _pick_expired(*_: object) -> None:
    if _pick_armed:  # (not once the pick has ended, whatever the timer still delivers)
        raise _PickTimeout


def main(argv: list[str]) -> object:
    """A job's child: yt-dlp's command line."""
    entry = _entry
    if entry is None:  # no preload: this child imports yt-dlp itself
        import yt_dlp

        entry = yt_dlp.main
    return entry(argv)


main.prepare = pick_extractor  # type: ignore[attr-defined]  # the fork server's hook


def _use_picked_extractor() -> None:
    """A ``YoutubeDL`` asked for the picked URL without an extractor takes the picked one:
    ``extract_info`` with ``ie_key`` checks that one extractor's ``suitable`` and goes on
    exactly as its search would have on finding it first."""
    from yt_dlp import YoutubeDL

    original = YoutubeDL.extract_info
    if getattr(original, "__wrapped__", None) is not None:
        return

    def extract_info(
        self: Any,
        url: str,
        download: bool = True,
        ie_key: str | None = None,
        extra_info: Any = None,
        process: bool = True,
        force_generic_extractor: bool = False,
    ) -> Any:
        picked = _picked
        ies = self._ies
        if (
            picked is not None
            and ie_key is None
            and not force_generic_extractor
            and picked[0] == url
            and isinstance(ies, DefaultExtractors)
            and not ies.changed
        ):
            ie_key = picked[1]
        return original(self, url, download, ie_key, extra_info, process, force_generic_extractor)

    extract_info.__wrapped__ = original  # type: ignore[attr-defined]  # marks the original for the tests
    YoutubeDL.extract_info = extract_info  # yt-dlp internal, replaced on purpose


def _skip_empty_prints() -> None:
    """yt-dlp renders a job's file name and four tables at each of its stages
    (``run_all_pps`` → ``_forceprint``) only to print the templates of that stage: skip
    that when the stage has none (only ``after_move`` has one of ours). The ``video``
    stage, whose result is used, is left as it is."""
    from yt_dlp import YoutubeDL

    original = YoutubeDL._forceprint
    if getattr(original, "__wrapped__", None) is not None:
        return

    def forceprint(self: Any, key: str, info_dict: Any) -> Any:
        if (
            key != "video"
            and not self.params["forceprint"].get(key)
            and not self.params["print_to_file"].get(key)
        ):
            return None
        return original(self, key, info_dict)

    forceprint.__wrapped__ = original  # type: ignore[attr-defined]  # marks the original for the tests
    YoutubeDL._forceprint = forceprint  # yt-dlp internal, replaced on purpose


def build_args(
    url: str,
    options: dict[str, Any],
    work_dir: Path,
    ffmpeg: str | None,
    max_bytes: int | None = None,
    proxy: str | None = None,
    *,
    rate_limit: int | None = None,
    cookies: Path | None = None,
) -> list[str]:
    """yt-dlp's argument list for one job: never a user-chosen template, config or command."""
    args = [
        "--ignore-config",
        "--no-plugin-dirs",
        "--no-cache-dir",
        "--no-mtime",
        "--socket-timeout", "30",
        "--retries", "3",
        *PROGRESS_ARGS,
        "-P", str(work_dir),
        "-o", OUTPUT_TEMPLATE,
        *LOOKALIKE_ARGS,
    ]  # fmt: skip
    if ffmpeg:
        args += ["--ffmpeg-location", ffmpeg]
    if max_bytes is not None:
        args += ["--max-filesize", str(max_bytes)]
    if proxy:
        args += ["--proxy", proxy]  # the egress guard: every connection is checked there
    if rate_limit is not None:
        args += ["-r", str(rate_limit)]
    if cookies is not None:
        args += ["--cookies", str(cookies)]  # the job's own copy: yt-dlp rewrites it
    fmt = options.get("format")
    if options.get("audioOnly"):
        args += ["-f", FORMAT_PRESETS.get(fmt or "audio", fmt or "ba/b"), "-x"]
        args += ["--audio-format", options.get("audioFormat", "mp3")]
    elif fmt:
        args += ["-f", FORMAT_PRESETS.get(fmt, fmt)]
    if options.get("playlist"):
        args.append("--yes-playlist")
        if options.get("maxItems"):
            args += ["--playlist-items", f"1:{options['maxItems']}"]
    else:
        args.append("--no-playlist")
    if options.get("subtitles"):
        args += ["--write-subs", "--sub-langs", ",".join(options["subtitles"])]
    args += ["--", url]
    return args


async def run(ctx: JobContext) -> list[Path]:
    args = build_args(
        ctx.url,
        ctx.options,
        ctx.work_dir,
        ctx.settings.ffmpeg,
        ctx.settings.max_job_bytes,
        ctx.proxy_url,
        rate_limit=ctx.settings.rate_limit,
        cookies=ctx.cookie_copy(),
    )
    proc = await start(ctx, args)
    parser = YtdlpParser()
    files: list[Path] = []
    too_large = False
    try:
        async for line in proc.lines():
            # "[download] File is larger than max-filesize (N bytes > M bytes). Aborting."
            too_large = too_large or "larger than max-filesize" in line
            event = parser.feed(line)
            if isinstance(event, FileDone):
                files.append(Path(event.path))
            elif event is not None:
                ctx.report(event)
        code = await proc.wait()
    finally:
        if proc.returncode is None:  # cancelled: SIGINT keeps .part files for a resume
            await proc.stop()
    if code != 0:
        raise JobFailed(*classify_error(parser.errors, code))
    files = [f if f.is_absolute() else ctx.work_dir / f for f in files]
    found = [f for f in files if f.is_file()]
    if not found and too_large:
        raise JobFailed(
            "too_large",
            f"the file is larger than storage.max_job_bytes ({ctx.settings.max_job_bytes} bytes)",
        )
    if not found:
        raise JobFailed("tool_failed", "yt-dlp finished but reported no file")
    return found + subtitles_of(found)


def title_of(job_id: str) -> str:
    """The process title of a job's yt-dlp (what ``ps`` shows)."""
    return f"mediad: yt-dlp {job_id}"


async def start(ctx: JobContext, args: list[str]) -> ToolProcess:
    """yt-dlp for one job: the configured executable, or a child of the fork server."""
    if ctx.settings.ytdlp:
        return await ctx.spawn([ctx.settings.ytdlp, *args], cwd=ctx.work_dir)
    forks = ctx.toolkit.forks
    if forks is None:
        raise JobFailed("internal_error", "this worker has no fork server for yt-dlp")
    try:
        proc = await forks.fork(ENTRY, args, ctx.work_dir, ctx.toolkit.env, title_of(ctx.job_id))
    except ForkServerLost as exc:  # mediad's fault, not the job's: it is retried
        raise JobFailed("interrupted", str(exc)) from None
    return ctx.attach(proc)


# What a child took of what was built ahead: kept until it exits, never freed. Freeing
# them (the parser's ~330 options, the CA bundle's certificates) would write to every
# page they are on, each still shared with the server and so copied (~350 pages a job).
_taken: list[Any] = []


def _build_ahead() -> None:
    """Build, before forking, two things each job builds once for itself: the option
    parser (~330 options) and the default TLS context (loading the CA bundle is ~30 ms).
    Each process takes the prepared one once and builds its own after that, so a child
    gets a pristine copy of the worker's and nothing passes from one job to another; the
    TLS context is only given for exactly the default settings (certificates checked,
    no client certificate, no legacy renegotiation, the same SSLKEYLOGFILE)."""
    import os
    import sys

    options = sys.modules["yt_dlp.options"]
    create_parser = options.create_parser
    if getattr(create_parser, "__wrapped__", None) is None:
        parsers = [create_parser()]

        def prepared_parser() -> Any:
            if not parsers:
                return create_parser()
            _taken.append(parsers[-1])
            return parsers.pop()

        prepared_parser.__wrapped__ = create_parser  # type: ignore[attr-defined]  # marks the original for the tests
        options.create_parser = prepared_parser  # type: ignore[attr-defined]  # yt-dlp internal, replaced on purpose

    common = sys.modules["yt_dlp.networking.common"]
    make_ssl_context = common.make_ssl_context
    if getattr(make_ssl_context, "__wrapped__", None) is None:
        default = {"verify": True, "legacy_support": False, "use_certifi": True}
        keylog = os.environ.get("SSLKEYLOGFILE")
        contexts = [make_ssl_context(**default)]

        def prepared_context(*args: Any, **kwargs: Any) -> Any:
            if contexts and not args and kwargs == default:
                if os.environ.get("SSLKEYLOGFILE") == keylog:
                    _taken.append(contexts[-1])
                    return contexts.pop()
            return make_ssl_context(*args, **kwargs)

        prepared_context.__wrapped__ = make_ssl_context  # type: ignore[attr-defined]  # marks the original for the tests
        common.make_ssl_context = prepared_context  # type: ignore[attr-defined]  # yt-dlp internal, replaced on purpose


SUBTITLE_EXTENSIONS = frozenset({".vtt", ".srt", ".ass", ".ssa", ".lrc", ".ttml", ".json3"})


def subtitles_of(files: list[Path]) -> list[Path]:
    """Subtitle files yt-dlp wrote beside the media ("NAME.en.vtt" for "NAME.mp4"): the
    after_move print names only the media files."""
    found = []
    for media_file in files:
        prefix = media_file.stem + "."
        for sibling in sorted(media_file.parent.iterdir()):
            if (
                sibling.name.startswith(prefix)
                and sibling.suffix in SUBTITLE_EXTENSIONS
                and sibling.is_file()
                and sibling not in files
            ):
                found.append(sibling)
    return found

#!/usr/bin/env python3
"""A stand-in for twmd 1.14 (twitter-media-downloader), which cannot reach Twitter/X
from here. It parses twmd's command line the way twmd's option parser does, prints the
lines the real twmd prints (docs/tools.md, "twmd": that list is the contract), and really
downloads media over HTTP, from the test media server, into twmd's layout:
``OUT/NAME`` for a tweet, ``OUT/USER/img/NAME`` and ``OUT/USER/video/NAME`` for a
profile (retweets as ``RE-NAME``, still reported as ``Downloaded NAME``). Downloads run
in parallel threads, so their lines come in no fixed order, as twmd's goroutines do.

Run it as ``python twmd_standin.py ARGS`` (tests write a small shell wrapper). Only the
standard library; importable too, for :data:`TWEETS`, :data:`USERS`,
:func:`media_blobs` and :func:`parse_args`.

Scenarios, chosen by the tweet id (``-t``) or the user name (``-u``):

==============  =========================================================================
tweet 1         one video
tweet 2         two images
tweet 3         a tweet without media: prints nothing, exit 0
tweet 6         two images; the copy of one fails: "Downloaded" for both, one file
tweet 404       ``Error retrieve tweet``, exit 0
tweet 405       ``tweet with ID 405 not found``, exit 1 (as any id not listed here)
tweet 500       the image's URL answers 500: ``error``, nothing written, exit 0
tweet 169       an image on 169.254.169.254 (cloud metadata): the worker's egress guard
                must refuse it (403: ``error``)
tweet 777       hangs, printing nothing (for time limits and cancellation)
tweet 888       writes half of its video, prints ``Downloaded NAME``, then a Go panic
                on stderr, exit 2
user alice      six tweets, newest first: two images; a video; a retweet with an
                image; text only; an image and a video; a retweet with a video.
                ``-i``/``-v``/``-a`` choose the kinds, ``-r`` adds the retweets (as
                ``RE-NAME``), ``-R`` keeps only them, ``-n N`` scans the first N tweets
user ratelimited  downloads its one image, then ``response status 429 Too Many
                Requests: BODY`` and exit 1 at once
user ghost      ``user not found``, exit 1 (as any user not listed here)
user banned     ``user is suspended``, exit 1
user hidden     ``either @hidden does not exist or is private``, exit 1
user panic      a Go panic on stderr, exit 2
user endless    prints ``error`` five times a second, forever (a total time limit)
==============  =========================================================================

Login: with ``-L`` (or ``-C``), the cookies are read from ``twmd_cookies.json`` in the
current directory. Usable cookies are a JSON array holding an ``auth_token`` cookie
whose ``Value`` is not ``"bad"``: then nothing is printed. Otherwise twmd 1.12's login
prompt repeats forever, as with stdin closed: ``username: password: `` (written piece by
piece, the newline last), then ``Bad user/pass`` after a failed login attempt.

Also like twmd: ``-V`` prints ``version: 1.14.0`` and exits 1; ``-h`` prints the help and
exits 0; the banner goes to stderr unless ``-B`` (``--no-banner`` *clears* the flag:
the parser reads "no-" as a negation); an unknown flag or a flag missing its value stops
the parsing silently (what came before stays set); short flags do not combine; a value
starting with "-" must be written ``--opt=value``; a lone ``-`` or ``--opt=`` makes the
Go parser panic (exit 2). ``-U``, ``-z``, ``-s`` and ``-p`` work; ``-M``, ``-f``, ``-d``
are accepted and ignored.

Environment: ``TWMD_STANDIN_MEDIA_URL`` is the media server's base URL (the media are
served under ``twmd/``, see :func:`media_blobs`); with ``TWMD_STANDIN_STATE_DIR`` set,
each run writes ``{pid}.json`` there first: argv, cwd, the cookies file's mode and
whether they are usable, and the files already under the output directory.
"""

from __future__ import annotations

import json
import os
import random
import re
import shlex
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

VERSION = "1.14.0"
MEDIA_URL_ENV = "TWMD_STANDIN_MEDIA_URL"
STATE_DIR_ENV = "TWMD_STANDIN_STATE_DIR"
COOKIES_FILE = "twmd_cookies.json"
HTTP_TIMEOUT_S = 5
RATE_LIMIT_BODY = '{"errors":[{"code":88,"message":"Rate limit exceeded."}]}'
BANNER = (
    "▄▄▄▄▄▄▄▄▌ ▐ ▄▌• ▌ ▄ ·. ·▄▄▄▄  \n"
    "•██  ██· █▌▐█·██ ▐███▪██▪ ██ \n"
    " ▐█.▪██▪▐█▐▐▌▐█ ▌▐▌▐█·▐█· ▐█▌\n"
    " ▐█▌·▐█▌██▐█▌██ ██▌▐█▌██. ██ \n"
    " ▀▀▀  ▀▀▀▀ ▀▪▀▀  █▪▀▀▀▀▀▀▀▀• \n\n"
)


# -- the scenarios ---------------------------------------------------------------------


@dataclass(frozen=True)
class Media:
    name: str  # the file name twmd takes from the URL
    kind: str  # "img" or "video"
    size: int
    query: str = ""  # for the media server, e.g. "status=500"
    copy_fails: bool = False  # twmd's os.Create failed: "Downloaded" all the same
    origin: str = ""  # another host than the media server's, e.g. "http://169.254.169.254"

    @property
    def path(self) -> str:
        """Where the test media server serves it."""
        return f"twmd/{'media' if self.kind == 'img' else 'video'}/{self.name}"


@dataclass(frozen=True)
class Tweet:
    id: str
    media: tuple[Media, ...] = ()
    retweet: bool = False


def _img(name: str, size: int, **kw: object) -> Media:
    return Media(name, "img", size, **kw)  # type: ignore[arg-type]


def _video(name: str, size: int) -> Media:
    return Media(name, "video", size)


TWEETS: dict[str, Tweet] = {
    "1": Tweet("1", (_video("Tw1VidClip.mp4", 400_000),)),
    "2": Tweet("2", (_img("Tw2PhotoA.jpg", 60_000), _img("Tw2PhotoB.jpg", 45_000))),
    "3": Tweet("3"),
    "6": Tweet("6", (_img("Tw6Kept.jpg", 30_000), _img("Tw6Lost.jpg", 30_000, copy_fails=True))),
    "500": Tweet("500", (_img("Tw500Broken.jpg", 1_000, query="status=500"),)),
    "888": Tweet("888", (_video("Tw888Cut.mp4", 500_000),)),
    "169": Tweet("169", (_img("Tw169Meta.jpg", 1_000, origin="http://169.254.169.254"),)),
}
USERS: dict[str, tuple[Tweet, ...]] = {
    "alice": (
        Tweet("101", (_img("Al1PhotoA.jpg", 50_000), _img("Al1PhotoB.jpg", 40_000))),
        Tweet("102", (_video("Al2Video.mp4", 300_000),)),
        Tweet("103", (_img("Bo3Photo.jpg", 35_000),), retweet=True),
        Tweet("104"),
        Tweet("105", (_img("Al5Photo.jpg", 20_000), _video("Al5Video.mp4", 200_000))),
        Tweet("106", (_video("Ca6Video.mp4", 250_000),), retweet=True),
    ),
    "ratelimited": (Tweet("201", (_img("Rl1Photo.jpg", 20_000),)),),
}
HANG_TWEET = "777"
CRASH_TWEET = "888"


def media_blobs() -> dict[str, bytes]:
    """Every medium the scenarios fetch successfully: server path → its bytes (seeded
    random data, the same in the test and here)."""
    every = [m for t in TWEETS.values() for m in t.media]
    every += [m for timeline in USERS.values() for t in timeline for m in t.media]
    return {m.path: _content(m) for m in every if not (m.query or m.origin)}


def _content(m: Media) -> bytes:
    return random.Random(m.name).randbytes(m.size)


# -- twmd's option parser (github.com/mmpx12/optionparser), rule for rule ----------------


@dataclass
class _Spec:
    short: str
    long: str
    param: str  # "" for a boolean flag
    negatable: bool


SPECS = [
    _Spec("u", "user", "USERNAME", False),
    _Spec("t", "tweet", "TWEET_ID", False),
    _Spec("n", "nbr", "NBR", False),
    _Spec("i", "img", "", False),
    _Spec("v", "video", "", False),
    _Spec("a", "all", "", False),
    _Spec("r", "retweet", "", False),
    _Spec("R", "retweet-only", "", False),
    _Spec("M", "mediatweet-only", "", False),
    _Spec("z", "url", "", False),
    _Spec("s", "size", "SIZE", False),
    _Spec("U", "update", "", False),
    _Spec("o", "output", "DIR", False),
    _Spec("f", "file-format", "FORMAT", False),
    _Spec("d", "date-format", "FORMAT", False),
    _Spec("L", "login", "", False),
    _Spec("C", "cookies", "", False),
    _Spec("p", "proxy", "PROXY", False),
    # Declared as "--no-banner": the parser files it under "banner", negated.
    _Spec("B", "banner", "", True),
    _Spec("V", "version", "", False),
    _Spec("h", "help", "", False),
]
_SHORT = {s.short: s for s in SPECS}
_LONG = {s.long: s for s in SPECS}


class GoPanic(Exception):
    """What makes the Go program panic (exit 2)."""


@dataclass
class Parsed:
    values: dict[str, str | bool] = field(default_factory=dict)  # by long name
    extra: list[str] = field(default_factory=list)
    error: str | None = None  # twmd ignores it: parsing just stopped there
    help: bool = False

    def text(self, name: str) -> str:
        value = self.values.get(name, "")
        return value if isinstance(value, str) else ""

    def flag(self, name: str) -> bool:
        return self.values.get(name) is True


def _split_on(arg: str) -> tuple[str, str, bool, bool]:
    """(argument, param, short, negate), as optionparser's splitOn."""
    if arg.startswith("--"):
        short, init = False, 2
    elif re.match(r"^-[^-]", arg):
        short, init = True, 1
    else:
        raise GoPanic("can't happen")
    negate = False
    if len(arg) > init + 2 and arg[init : init + 3] == "no-":
        negate, init = True, init + 3
    m = re.search(r"[ =]", arg)
    if m is None:
        return arg[init:], "", short, negate
    pos, length = m.end(), len(arg)
    if pos >= len(arg):  # Go: arg[pos:pos+1] out of range
        raise GoPanic(
            f"runtime error: slice bounds out of range [:{pos + 1}] with length {len(arg)}"
        )
    if arg[pos] == "[":
        pos, length = pos + 1, length - 1
    return arg[init : m.start()], arg[pos:length], short, negate


def parse_args(argv: list[str]) -> Parsed:
    """twmd's flags from ``argv`` (without the program name). Raises GoPanic where the
    Go parser panics."""
    args = list(argv)
    out = Parsed()
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("-"):
            out.extra.append(arg)
            i += 1
            continue
        argument, param, short, negate = _split_on(arg)
        spec = (_SHORT if short else _LONG).get(argument)
        if spec is None:
            out.error = f"Unknown option {argument}"
            return out
        if param == "" and i < len(args) - 1 and not args[i + 1].startswith("-"):
            param = args.pop(i + 1)
        if param != "":
            if spec.param:
                out.values[spec.long] = param
            else:
                out.extra.append(param)
                out.values[spec.long] = not negate
        else:
            if spec.param:
                out.error = f"Parameter expected but none given {argument}"
                return out
            out.values[spec.long] = not negate
        if spec.long == "help" and out.values[spec.long]:
            out.help = True  # the parser prints the help and exits 0 right here
            return out
        i += 1
    return out


HELP = """twmd: Apiless twitter media downloader

Usage:
-h, --help                   Show this help
-u, --user=USERNAME          User you want to download
-t, --tweet=TWEET_ID         Single tweet to download
-n, --nbr=NBR                Number of tweets to download
-i, --img                    Download images only
-v, --video                  Download videos only
-a, --all                    Download images and videos
-r, --retweet                Download retweet too
-z, --url                    Print media url without download it
-R, --retweet-only           Download only retweet
-M, --mediatweet-only        Download only media tweet
-s, --size=SIZE              Choose size between small|normal|large (default large)
-U, --update                 Download missing tweet only
-o, --output=DIR             Output directory
-f, --file-format=FORMAT     Formatted name for the downloaded file
-d, --date-format=FORMAT     Apply custom date format
-L, --login                  Login (needed for NSFW tweets)
-C, --cookies                Use cookies for authentication
-p, --proxy=PROXY            Use proxy (proto://ip:port)
-V, --version                Print version and exit
-B, --[no-]banner            Don't print banner

Exemples:
   twmd -u Spraytrains -o ~/Downlaods -a -r -n 300
   twmd -u Spraytrains -o ~/Downlaods -R -U -n 300
   twmd --proxy socks5://127.0.0.1:9050 -t 156170319961391104
   twmd -t 156170319961391104
"""


# -- output ----------------------------------------------------------------------------

_print_lock = threading.Lock()


def say(line: str) -> None:
    """One stdout line in one write, as Go's fmt.Println: lines never mix."""
    with _print_lock:
        os.write(1, (line + "\n").encode())


def say_raw(text: str, fd: int = 1) -> None:
    with _print_lock:
        os.write(fd, text.encode())


def go_panic(message: str, where: str = "main.main()\n\t/build/twmd.go:418 +0x8ea") -> None:
    say_raw(f"panic: {message}\n\ngoroutine 1 [running]:\n{where}\n", fd=2)
    os._exit(2)


# -- downloading -----------------------------------------------------------------------


class Downloader:
    def __init__(self, base_url: str, proxy: str, size: str, update: bool, url_only: bool):
        self.base_url = base_url.rstrip("/")
        handler = urllib.request.ProxyHandler({"http": proxy, "https": proxy} if proxy else {})
        self.opener = urllib.request.build_opener(handler)  # no proxy from the environment
        self.size = size
        self.update = update
        self.url_only = url_only
        self.threads: list[threading.Thread] = []

    def url_of(self, m: Media) -> str:
        url = f"{m.origin or self.base_url}/{m.path}"
        if m.kind == "video":
            return url  # twmd cuts the query off video URLs
        query = [m.query] if m.query else []
        if self.size in ("orig", "small"):
            query.append(f"name={self.size}")
        return f"{url}?{'&'.join(query)}" if query else url

    def start(self, m: Media, target: Path, exists_line: str, *, stop_after: int | None = None):
        thread = threading.Thread(
            target=self._download, args=(m, target, exists_line, stop_after), daemon=True
        )
        thread.start()
        self.threads.append(thread)

    def wait(self) -> None:
        for thread in self.threads:
            thread.join()

    def _download(self, m: Media, target: Path, exists_line: str, stop_after: int | None) -> None:
        url = self.url_of(m)
        if self.url_only:
            say(url)
            return
        try:
            request = urllib.request.Request(
                url, headers={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64)"}
            )
            resp = self.opener.open(request, timeout=HTTP_TIMEOUT_S)
        except (OSError, ValueError):  # HTTPError (non-2xx), URLError, timeouts
            say("error")
            return
        with resp:
            if resp.status != 200:
                say("error")
                return
            if self.update and target.exists():
                say(exists_line)
                return
            if not m.copy_fails:
                _copy(resp, target, stop_after)
        say(f"Downloaded {_name_from_url(url)}")


def _copy(resp: object, target: Path, stop_after: int | None) -> None:
    written = 0
    with open(target, "wb") as f:
        while chunk := resp.read(64 * 1024):  # type: ignore[attr-defined]
            if stop_after is not None and written + len(chunk) >= stop_after:
                f.write(chunk[: stop_after - written])
                return
            f.write(chunk)
            written += len(chunk)


def _name_from_url(url: str) -> str:
    """twmd's name: the last path segment; for "?name=" URLs, the part before the "?"."""
    name = url.split("/")[-1]
    if "name=" in name:
        name = name.split("?")[-2]
    return name


def write_wrapper(directory: Path, name: str = "twmd") -> Path:
    """An executable ``twmd`` in ``directory`` that runs this stand-in with this
    interpreter: what tests configure as ``tools.twmd``."""
    wrapper = Path(directory) / name
    script = Path(__file__).resolve()
    wrapper.write_text(
        f'#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(str(script))} "$@"\n'
    )
    wrapper.chmod(0o755)
    return wrapper


# -- the program -----------------------------------------------------------------------


def _cookies_usable(cwd: Path) -> bool:
    try:
        cookies = json.loads((cwd / COOKIES_FILE).read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(cookies, list):
        return False
    for c in cookies:
        if isinstance(c, dict) and (c.get("Name") or c.get("name")) == "auth_token":
            return (c.get("Value") or c.get("value")) not in (None, "", "bad")
    return False


def _record(argv: list[str], output: str) -> None:
    state = os.environ.get(STATE_DIR_ENV)
    if not state:
        return
    cookies = Path(COOKIES_FILE)
    files: list[str] = []
    if output and Path(output).is_dir():
        files = sorted(
            str(p.relative_to(output)) for p in Path(output).rglob("*") if not p.is_dir()
        )
    record = {
        "pid": os.getpid(),
        "argv": argv,
        "cwd": os.getcwd(),
        "cookiesMode": cookies.stat().st_mode & 0o777 if cookies.exists() else None,
        "cookiesUsable": _cookies_usable(Path.cwd()),
        "outputFiles": files,
    }
    tmp = Path(state) / f"{os.getpid()}.json.tmp"  # not "*.json" until complete
    tmp.write_text(json.dumps(record))
    tmp.rename(Path(state) / f"{os.getpid()}.json")


def _login_forever() -> None:
    """twmd 1.12's askPass with stdin closed: Scanln and ReadPassword fail at once,
    the login fails, and it asks again."""
    while True:
        say_raw("username: ")
        time.sleep(0.05)
        say_raw("password: ")
        say_raw("\n")
        time.sleep(0.2)  # the login request
        say("Bad user/pass")


def main(argv: list[str]) -> int:
    try:
        opts = parse_args(argv)
    except GoPanic as exc:
        go_panic(
            str(exc),
            "github.com/mmpx12/optionparser.splitOn(...)\n\t/go/pkg/mod/github.com/mmpx12/"
            "optionparser@v1.6.0/optionparser.go:152 +0x3d4",
        )
        return 2
    if opts.help:
        say_raw(HELP)
        return 0
    if opts.flag("version"):
        say(f"version: {VERSION}")
        return 1
    if not opts.flag("banner"):
        say_raw(BANNER, fd=2)
    user, tweet = opts.text("user"), opts.text("tweet")
    _record(argv, opts.text("output"))
    if not user and not tweet:
        say("You must specify an user (-u --user) or a tweet (-t --tweet)")
        say_raw(HELP)
        return 1
    imgs, vidz = opts.flag("img"), opts.flag("video")
    if opts.flag("all"):
        imgs = vidz = True
    if not imgs and not vidz and not tweet:
        say(
            "You must specify what to download. (-i --img) for images, (-v --video) for"
            " videos or (-a --all) for both"
        )
        say_raw(HELP)
        return 1
    size = opts.text("size") or "orig"
    if not re.search("small|normal|large", size) and size != "orig":
        say_raw("Error in size, setting up to normal\n", fd=2)
        size = ""
    if size == "large":
        size = "orig"
    if (opts.flag("login") or opts.flag("cookies")) and not (
        opts.flag("login") and _cookies_usable(Path.cwd())
    ):
        _login_forever()
    dl = Downloader(
        os.environ.get(MEDIA_URL_ENV, "http://127.0.0.1:9"),
        opts.text("proxy"),
        size,
        opts.flag("update"),
        opts.flag("url"),
    )
    if tweet:
        output = Path(opts.text("output") or "./")
        output.mkdir(parents=True, exist_ok=True)
        return _tweet_mode(dl, tweet, output)
    nbr = opts.text("nbr") or "3000"
    try:
        count = int(nbr)
    except ValueError:
        count = 0  # Go's strconv.Atoi error, ignored
    output = Path(opts.text("output")) / user if opts.text("output") else Path(user)
    if vidz:
        (output / "video").mkdir(parents=True, exist_ok=True)
    if imgs:
        (output / "img").mkdir(parents=True, exist_ok=True)
    return _user_mode(dl, opts, user, count, output, imgs, vidz)


def _tweet_mode(dl: Downloader, tweet_id: str, output: Path) -> int:
    if tweet_id == "404":
        say("Error retrieve tweet")
        return 0
    if tweet_id == HANG_TWEET:
        while True:
            time.sleep(3600)
    found = TWEETS.get(tweet_id)
    if found is None:
        say(f"tweet with ID {tweet_id} not found")
        return 1
    if tweet_id == CRASH_TWEET:
        m = found.media[0]
        dl.start(m, output / m.name, "File exist", stop_after=m.size // 2)
        dl.wait()
        go_panic(
            "runtime error: index out of range [1] with length 1",
            "main.download(...)\n\t/build/twmd.go:96 +0x5b2",
        )
    for m in found.media:
        dl.start(m, output / m.name, "File exist")
    dl.wait()
    return 0


def _user_mode(
    dl: Downloader, opts: Parsed, user: str, count: int, output: Path, imgs: bool, vidz: bool
) -> int:
    if user == "panic":
        go_panic("runtime error: invalid memory address or nil pointer dereference")
    if user == "endless":
        while True:
            say("error")
            time.sleep(0.2)
    failures = {
        "banned": "user is suspended",
        "hidden": f"either @{user} does not exist or is private",
    }
    timeline = USERS.get(user)
    if timeline is None:
        say(failures.get(user, "user not found"))
        return 1
    retweets, only_retweets = opts.flag("retweet"), opts.flag("retweet-only")
    for tweet in timeline[: max(0, count)]:
        if tweet.retweet and not (retweets or only_retweets):
            continue
        if not tweet.retweet and only_retweets:
            continue
        prefix = "RE-" if tweet.retweet else ""
        for m in tweet.media:
            if (m.kind == "img" and imgs) or (m.kind == "video" and vidz):
                target = output / m.kind / f"{prefix}{m.name}"
                dl.start(m, target, f"{m.name}: already exists")
    if user == "ratelimited":
        time.sleep(0.05)  # the next page of the timeline is refused
        say(f"response status 429 Too Many Requests: {RATE_LIMIT_BODY}")
        os._exit(1)  # Go's os.Exit: downloads in flight are cut short
    dl.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

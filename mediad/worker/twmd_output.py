"""Pure: what twmd's output lines mean, and how a run ended.

twmd (twitter-media-downloader 1.14) prints one line per event, in no fixed order since
its downloads run in parallel (docs/tools.md, "twmd"). :func:`parse_line` names each line;
:class:`TwmdOutput` adds up one run's lines; :func:`classify` turns the sum, the exit
code and the number of usable files into an outcome: None (success) or a
:class:`Failure` with the job's errorCode and a sentence for the user.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

# Line kinds.
DOWNLOADED = "downloaded"  # "Downloaded NAME", printed even when the copy failed
ERROR = "error"  # a transport error or a non-200 answer for one media file
EXISTS = "exists"  # "NAME: already exists" (user mode) / "File exist" (tweet mode), with -U
RETRIEVE_ERROR = "retrieve_error"  # "Error retrieve tweet": deleted/unavailable, exit 0
RATE_LIMITED = "rate_limited"  # "response status 429 Too Many Requests: BODY", then exit 1
USER_NOT_FOUND = "user_not_found"
SUSPENDED = "suspended"
PRIVATE = "private"  # "either @NAME does not exist or is private"
TWEET_NOT_FOUND = "tweet_not_found"  # "tweet with ID N not found"
PROMPT = "prompt"  # a login or cookie prompt: with stdin closed it repeats forever
PANIC = "panic"  # a Go panic or fatal runtime error (exit 2)
OTHER = "other"  # the banner, usage text, "Error in size ...", anything unknown

MESSAGE_MAX_CHARS = 600
TAIL_LINES = 5

# twmd asks "username: " / "password: " (-L without usable cookies) or for cookie values
# (-C) with printf, so a prompt may arrive without a newline: the runner feeds the
# unterminated tail of the output too. "Bad user/pass" ends each failed round.
_PROMPT = re.compile(
    r"^(?:(?:user ?name|password|two-factor|2fa|auth_token|ct0|cookies?)\b[^:\n]{0,24}:\s*)+$",
    re.I,
)
_BAD_LOGIN = re.compile(r"^bad (?:user/pass|cookies?|credentials)\b", re.I)
_EXACT = {
    "error": ERROR,
    "File exist": EXISTS,
    "Error retrieve tweet": RETRIEVE_ERROR,
    "user not found": USER_NOT_FOUND,
    "user is suspended": SUSPENDED,
}
_DOWNLOADED = re.compile(r"^Downloaded (.+)$")
_EXISTS = re.compile(r"^(.+): already exists$")
_RATE_LIMITED = re.compile(r"^response status 429\b[^:]*(?::\s*(.*))?$")
_PRIVATE = re.compile(r"^either @(\S+) does not exist or is private$")
_TWEET_NOT_FOUND = re.compile(r"^tweet with ID (\S+) not found$")
_PANIC = re.compile(r"^(?:panic: |fatal error: )")


@dataclass(frozen=True, slots=True)
class Line:
    kind: str
    value: str = ""  # the file name, user name, tweet id or message the line carries


@dataclass(frozen=True, slots=True)
class Failure:
    error_code: str
    message: str


def parse_line(text: str) -> Line:
    line = text.strip()
    if line in _EXACT:
        return Line(_EXACT[line])
    if m := _DOWNLOADED.match(line):
        return Line(DOWNLOADED, m.group(1))
    if m := _EXISTS.match(line):
        return Line(EXISTS, m.group(1))
    if m := _RATE_LIMITED.match(line):
        return Line(RATE_LIMITED, (m.group(1) or "").strip())
    if m := _PRIVATE.match(line):
        return Line(PRIVATE, m.group(1))
    if m := _TWEET_NOT_FOUND.match(line):
        return Line(TWEET_NOT_FOUND, m.group(1))
    if _PROMPT.match(line) or _BAD_LOGIN.match(line):
        return Line(PROMPT, line)
    if _PANIC.match(line):
        return Line(PANIC, line)
    return Line(OTHER, line)


def is_prompt(text: str) -> bool:
    """Whether an unterminated piece of output is a login or cookie prompt."""
    return bool(text.strip()) and parse_line(text).kind == PROMPT


@dataclass
class TwmdOutput:
    """One run's lines, added up. ``fatal`` is the first line that ends the whole run
    (rate limit, unknown/suspended/private account, unknown tweet)."""

    downloaded: list[str] = field(default_factory=list)
    errors: int = 0
    exists: int = 0
    retrieve_errors: int = 0
    fatal: Failure | None = None
    prompt: str | None = None
    panic: str | None = None
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    lines: int = 0

    def feed(self, text: str) -> Line:
        line = parse_line(text)
        self.lines += 1
        kind = line.kind
        if kind == DOWNLOADED:
            self.downloaded.append(line.value)
        elif kind == ERROR:
            self.errors += 1
        elif kind == EXISTS:
            self.exists += 1
        elif kind == RETRIEVE_ERROR:
            self.retrieve_errors += 1
        elif kind == PROMPT:
            self.prompt = self.prompt or line.value
        elif kind == PANIC:
            self.panic = self.panic or line.value
        elif self.fatal is None and kind in _FATAL:
            self.fatal = _FATAL[kind](line.value)
        if kind in (OTHER, PANIC) and line.value:
            self.tail.append(line.value)
        return line


_FATAL: dict[str, Callable[[str], Failure]] = {
    RATE_LIMITED: lambda body: Failure(
        "rate_limited",
        "Twitter/X rate-limited the scraper (HTTP 429)" + (f": {body}" if body else ""),
    ),
    USER_NOT_FOUND: lambda _: Failure("user_not_found", "this Twitter/X account does not exist"),
    SUSPENDED: lambda _: Failure("account_suspended", "this Twitter/X account is suspended"),
    PRIVATE: lambda name: Failure(
        "account_private",
        f"the account @{name} is private or does not exist: its media need cookies of an"
        " account that follows it (twitter.cookies_path)",
    ),
    TWEET_NOT_FOUND: lambda tweet_id: Failure(
        "not_found", f"tweet {tweet_id} was not found (deleted, or never existed)"
    ),
}


def classify(out: TwmdOutput, returncode: int, kept: int, *, mode: str = "tweet") -> Failure | None:
    """How a finished run ended. ``kept`` counts the reported files that exist and are not
    empty; ``mode`` is "tweet" or "user" (for the wording of ``no_media``). None means
    success: twmd exited 0 and at least one file is usable."""
    if out.prompt is not None:
        return auth_failure()
    if returncode == 0 and kept:
        return None
    if returncode < 0:
        return Failure("interrupted", f"twmd was killed by signal {-returncode}")
    if returncode == 2:
        what = f": {out.panic}" if out.panic else ""
        return Failure("tool_failed", _clip(f"twmd crashed (Go panic, exit code 2){what}"))
    if out.fatal is not None:
        return out.fatal
    if returncode != 0:
        tail = " / ".join(out.tail) or "no message"
        return Failure("tool_failed", _clip(f"twmd exited with code {returncode}: {tail}"))
    # Exit 0 and nothing usable.
    if out.retrieve_errors:
        return Failure(
            "not_found", "the tweet could not be retrieved: deleted, protected or unavailable"
        )
    if out.errors:
        # twmd prints the same bare "error" for a refused connection and for a non-200
        # answer. The scrape itself worked (twmd had the media URLs), so the media host
        # refusing the files is the likelier case, and it is not worth an automatic retry
        # that scrapes Twitter/X again.
        return Failure(
            "http_error",
            f"none of the media could be downloaded: {out.errors} request(s) failed"
            " (an HTTP error or a connection failure; twmd does not say which)",
        )
    if out.downloaded:
        return Failure(
            "tool_failed",
            f"twmd reported {len(out.downloaded)} file(s) but none was written completely",
        )
    if mode == "user":
        return Failure("no_media", "no images or videos found in the account's tweets")
    return Failure("no_media", "the tweet has no images or videos")


def auth_failure() -> Failure:
    """twmd asked for a login: with stdin closed it would ask again forever."""
    return Failure(
        "auth_failed",
        "twmd asked for a login: the Twitter/X cookies (twitter.cookies_path /"
        " TWITTER_COOKIES_PATH) are missing, expired or not valid",
    )


def _clip(text: str) -> str:
    return text if len(text) <= MESSAGE_MAX_CHARS else text[: MESSAGE_MAX_CHARS - 1] + "…"

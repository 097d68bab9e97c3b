"""Named cookie files: the Netscape ``cookies.txt`` format as yt-dlp reads it, their
storage under ``{state_dir}/cookies``, and a job's private copy in ``tmp/{jobId}``.

The check mirrors yt-dlp's ``YoutubeDLCookieJar.load``: the first line is the
``# Netscape HTTP Cookie File`` (or ``# HTTP Cookie File``) header, which
``http.cookiejar.MozillaCookieJar`` demands; every other line is blank, a comment, or an
entry of 7 tab-separated fields (``#HttpOnly_`` may prefix the domain): domain,
include-subdomains ``TRUE``/``FALSE`` (which must say whether the domain starts with a
dot, or the jar refuses the whole file), path, secure ``TRUE``/``FALSE``, expiry (a
number of seconds, or empty for a session cookie), name and value. yt-dlp skips a
malformed entry with a warning; here it is refused, naming its line, so that a cookie
never goes missing without anyone being told. Then the text is loaded by the standard
library's jar, as yt-dlp does, and its cookies are counted.

A cookie file's content never appears in a log line, an error message, a job's row or
any route; only its name, size, count and date do.
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import io
import json
import os
import re
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mediad.errors import BadRequest

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MAX_BYTES = 1024 * 1024
# The job's private copy, in its work folder (tmp/{jobId}/): yt-dlp rewrites the file it
# is given when it ends, so it never gets the stored one.
JOB_COPY = ".mediad-cookies.txt"
_HEADER = re.compile(r"#( Netscape)? HTTP Cookie File")
_HTTPONLY = "#HttpOnly_"
_EXPIRES = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_BOOLEANS = ("TRUE", "FALSE")


@dataclass(frozen=True, slots=True)
class Entry:
    domain: str
    subdomains: bool
    path: str
    secure: bool
    expires: int | None
    name: str
    value: str
    http_only: bool


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise BadRequest(
            "a cookie file's name is 1 to 64 letters, digits, '.', '_' or '-',"
            " not starting with '.', '_' or '-'",
            code="invalid_name",
        )
    return name


def _invalid(line: int, problem: str) -> BadRequest:
    return BadRequest(f"not a Netscape cookies.txt: line {line}: {problem}", code="invalid_cookies")


def decode(body: bytes) -> str:
    """The body as text, or 400 naming the line of the first byte that is not UTF-8."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _invalid(body.count(b"\n", 0, exc.start) + 1, "not UTF-8 text") from None
    if "\x00" in text:
        raise _invalid(text.count("\n", 0, text.index("\x00")) + 1, "a NUL byte (binary data)")
    return text.removeprefix("\ufeff")


def parse(text: str) -> list[Entry]:
    """Every cookie of a cookies.txt, or 400 ``invalid_cookies`` naming the first bad line."""
    lines = text.splitlines()
    if not lines or not _HEADER.match(lines[0]):
        raise _invalid(1, "the file must start with '# Netscape HTTP Cookie File'")
    entries = [_entry(n, line) for n, line in enumerate(lines[1:], start=2)]
    found = [e for e in entries if e is not None]
    if not found:
        raise _invalid(len(lines), "the file holds no cookie")
    return found


def _entry(number: int, line: str) -> Entry | None:
    http_only = line.startswith(_HTTPONLY)
    if http_only:
        line = line[len(_HTTPONLY) :]
    if line.strip().startswith(("#", "$")) or not line.strip():
        return None
    if any(ch in line for ch in "\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"):
        raise _invalid(number, "a control character")
    fields = line.split("\t")
    if len(fields) != 7:
        raise _invalid(number, f"expected 7 tab-separated fields, found {len(fields)}")
    domain, subdomains, path, secure, expires, name, value = fields
    if not domain or any(ch.isspace() for ch in domain):
        raise _invalid(number, "the domain (field 1) is empty or has spaces")
    if subdomains not in _BOOLEANS or secure not in _BOOLEANS:
        raise _invalid(number, "fields 2 and 4 must be TRUE or FALSE")
    if (subdomains == "TRUE") != domain.startswith("."):
        raise _invalid(
            number, "field 2 must be TRUE exactly when the domain starts with '.' (yt-dlp's rule)"
        )
    if expires and not _EXPIRES.fullmatch(expires):
        raise _invalid(number, "the expiry (field 5) must be a number of seconds, or empty")
    if not name and not value:
        raise _invalid(number, "the cookie has neither a name nor a value")
    when = int(float(expires)) if expires else None
    return Entry(
        domain, subdomains == "TRUE", path, secure == "TRUE", when or None, name, value, http_only
    )


def count(text: str) -> int:
    """Check ``text`` and return how many cookies the standard library's jar (yt-dlp's
    base class) loads from it."""
    parse(text)
    jar = http.cookiejar.MozillaCookieJar()
    try:
        jar._really_load(io.StringIO(text), "cookies.txt", True, True)  # type: ignore[attr-defined]  # what MozillaCookieJar.load calls, without a file
    except (http.cookiejar.LoadError, ValueError) as exc:
        raise BadRequest(
            f"not a Netscape cookies.txt: the cookie jar refused it ({type(exc).__name__})",
            code="invalid_cookies",
        ) from None
    return len(jar)


def twmd_json(text: str) -> bytes:
    """The cookies as twmd reads them (``twmd_cookies.json``: Go's ``http.Cookie`` as JSON)."""
    cookies: list[dict[str, Any]] = []
    for e in parse(text):
        item: dict[str, Any] = {
            "Name": e.name,
            "Value": e.value,
            "Path": e.path,
            "Domain": e.domain,
            "Secure": e.secure,
            "HttpOnly": e.http_only,
        }
        if e.expires:
            item["Expires"] = datetime.fromtimestamp(e.expires, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        cookies.append(item)
    return json.dumps(cookies).encode()


# -- storage -----------------------------------------------------------------------------


def store_for(state_dir: Path | str) -> CookieFiles:
    """The cookie files of the service whose state directory this is."""
    return CookieFiles(Path(state_dir) / "cookies")


@dataclass(frozen=True, slots=True)
class CookieFile:
    name: str
    size: int
    entries: int
    updated_at: datetime

    def to_api(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "size": self.size,
            "entries": self.entries,
            "updatedAt": self.updated_at.isoformat().replace("+00:00", "Z"),
        }


class CookieFiles:
    """``{root}/{name}.txt``, mode 0600 in a 0700 folder, each written whole or not at all
    (a temporary file, fsync, rename). Blocking: call from a thread."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, name: str) -> Path:
        return self.root / f"{check_name(name)}.txt"

    def _ensure_root(self) -> None:
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)

    def put(self, name: str, data: bytes, entries: int) -> tuple[CookieFile, bool]:
        """Store ``data`` under ``name``; (the file, whether it is new)."""
        target = self.path(name)
        self._ensure_root()
        created = not target.exists()
        fd, temp = tempfile.mkstemp(prefix=".upload-", dir=self.root)
        try:
            with os.fdopen(fd, "wb") as f:
                os.fchmod(f.fileno(), 0o600)
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.rename(temp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise
        _fsync_dir(self.root)
        return self._describe(target, entries), created

    def delete(self, name: str) -> bool:
        try:
            self.path(name).unlink()
        except FileNotFoundError:
            return False
        _fsync_dir(self.root)
        return True

    def exists(self, name: str) -> bool:
        return NAME.fullmatch(name) is not None and self.path(name).is_file()

    def list(self) -> list[CookieFile]:
        try:
            paths = sorted(self.root.glob("*.txt"))
        except OSError:
            return []
        found = []
        for path in paths:
            if not NAME.fullmatch(path.stem):
                continue
            try:
                text = path.read_text("utf-8")
                found.append(self._describe(path, count(text)))
            except (OSError, UnicodeDecodeError, BadRequest):
                continue  # removed meanwhile, or not one of ours: never listed half
        return found

    def _describe(self, path: Path, entries: int) -> CookieFile:
        st = path.stat()
        when = datetime.fromtimestamp(st.st_mtime, UTC)
        return CookieFile(path.stem, st.st_size, entries, when)

    def copy_into(self, name: str, work_dir: Path) -> Path | None:
        """A private copy (0600) of the named file in a job's work folder, replacing any
        earlier one; None when there is no such file."""
        try:
            data = self.path(name).read_bytes()
        except (FileNotFoundError, BadRequest):
            return None
        work_dir.mkdir(parents=True, exist_ok=True)
        target = work_dir / JOB_COPY
        remove_copy(work_dir)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o600)  # whatever the umask
            f.write(data)
        return target


def remove_copy(work_dir: Path) -> None:
    """Remove a job's private copy, if there is one."""
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        (work_dir / JOB_COPY).unlink()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

"""Pure: validation of REST request bodies and query strings.

Each function returns clean values or raises ``BadRequest`` with a code and a sentence
a person can act on.
"""

from __future__ import annotations

import base64
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

from mediad.detect import detect_type
from mediad.errors import BadRequest
from mediad.models import JobType, Status

MAX_URL_LENGTH = 2048
YTDLP_PRESETS = frozenset({"best", "1080p", "720p", "480p", "audio"})
# yt-dlp's format selector grammar: ids, fields, comparisons, merges, fallbacks, groups.
YTDLP_SELECTOR = re.compile(r"(?!.*\$\()[A-Za-z0-9_.+\-/\[\]<>=!*?^$~:,() ]{1,200}")
AUDIO_FORMATS = frozenset({"mp3", "m4a", "opus", "flac", "wav"})
CONTAINERS = frozenset({"mp4", "mkv"})
MEDIA_TYPES = frozenset({"images", "videos", "all"})
COOKIE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # as cookies.NAME
LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*$|^all$")


def parse_new_download(body: Any) -> tuple[str, JobType, dict[str, Any]]:
    """(url, type, options) from a ``POST /downloads`` body."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object", code="invalid_body")
    unknown = set(body) - {"url", "type", "options"}
    if unknown:
        raise BadRequest(f"unknown field(s): {_names(unknown)}", code="unknown_field")
    url = parse_url(body.get("url"))
    raw_type = body.get("type")
    if raw_type is None:
        job_type = detect_type(url)
    else:
        try:
            job_type = JobType(raw_type)
        except (ValueError, TypeError):
            raise BadRequest(
                "type must be one of ytdlp, aria2, ffmpeg, twitter", code="invalid_type"
            ) from None
    options = parse_options(job_type, body.get("options"))
    return url, job_type, options


def parse_url(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadRequest("url is required and must be a string", code="invalid_url")
    url = value.strip()
    if len(url) > MAX_URL_LENGTH:
        raise BadRequest(f"url is longer than {MAX_URL_LENGTH} characters", code="invalid_url")
    if any(_forbidden_char(ch) for ch in url):
        raise BadRequest("url must not contain spaces or control characters", code="invalid_url")
    scheme, sep, _ = url.partition("://")
    if not sep or scheme.lower() not in ("http", "https"):
        raise BadRequest("only http and https URLs are accepted", code="unsupported_scheme")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port  # a port that is not a number from 0 to 65535 raises
    except ValueError as exc:
        raise BadRequest(f"url is not a valid URL: {exc}", code="invalid_url") from None
    if not host:
        raise BadRequest("url has no host", code="invalid_url")
    return url


def _forbidden_char(ch: str) -> bool:
    """ASCII controls and space, C1 controls, and every Unicode separator (U+2028 …)."""
    code = ord(ch)
    return code < 33 or 127 <= code < 160 or unicodedata.category(ch) in ("Zs", "Zl", "Zp")


def _names(keys: Iterable[object]) -> str:
    """Unknown keys for an error message, each cut short: the answer must stay small."""
    shown = [repr(k if len(k) <= 40 else k[:40] + "…") for k in sorted(map(str, keys))[:10]]
    return ", ".join(shown)


def parse_options(job_type: JobType, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest("options must be an object", code="invalid_options")
    checks = _OPTION_CHECKS[job_type]
    options: dict[str, Any] = {}
    for key, item in value.items():
        check = checks.get(key)
        if check is None:
            allowed = ", ".join(sorted(checks)) or "none"
            raise BadRequest(
                f"option {_names([key])} does not apply to {job_type.value} jobs"
                f" (allowed: {allowed})",
                code="invalid_options",
            )
        options[key] = check(key, item)
    if options.get("audioFormat") and not options.get("audioOnly"):
        options["audioOnly"] = True
    return options


def _bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise BadRequest(f"option {key} must be true or false", code="invalid_options")
    return value


def _int_range(low: int, high: int) -> Callable[[str, Any], int]:
    def check(key: str, value: Any) -> int:
        if type(value) is not int or not low <= value <= high:
            raise BadRequest(
                f"option {key} must be a whole number from {low} to {high}", code="invalid_options"
            )
        return value

    return check


def _one_of(choices: frozenset[str]) -> Callable[[str, Any], str]:
    def check(key: str, value: Any) -> str:
        if not isinstance(value, str) or value not in choices:
            raise BadRequest(
                f"option {key} must be one of {', '.join(sorted(choices))}", code="invalid_options"
            )
        return str(value)

    return check


def _format(key: str, value: Any) -> str:
    if isinstance(value, str) and (value in YTDLP_PRESETS or YTDLP_SELECTOR.fullmatch(value)):
        return value
    raise BadRequest(
        f"option {key} must be one of {', '.join(sorted(YTDLP_PRESETS))} or a yt-dlp format"
        " selector (letters, digits and []<>=!*?+-/.,:()^$~ only)",
        code="invalid_options",
    )


def _cookies(key: str, value: Any) -> str:
    """A cookie file's name (``PUT /cookies/{name}``); whether it exists is checked by
    ``cookies_api.check_options``."""
    if not isinstance(value, str) or not COOKIE_NAME.fullmatch(value):
        raise BadRequest(
            f"option {key} must name a cookie file (1 to 64 letters, digits, '.', '_', '-')",
            code="invalid_options",
        )
    return value


def _languages(key: str, value: Any) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if (
        not isinstance(value, list)
        or not 1 <= len(value) <= 20
        or not all(isinstance(v, str) and LANGUAGE.fullmatch(v) for v in value)
    ):
        raise BadRequest(
            f"option {key} must be a list of language codes such as en or pt-BR",
            code="invalid_options",
        )
    return list(value)


NOTIFY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def _notify(key: str, value: Any) -> list[str]:
    """Names of configured targets (checked against the configuration by the route)."""
    if (
        not isinstance(value, list)
        or len(value) > 20
        or not all(isinstance(v, str) and NOTIFY_NAME.fullmatch(v) for v in value)
        or len(set(value)) != len(value)
    ):
        raise BadRequest(
            f"option {key} must be a list of up to 20 distinct target names from the"
            " configuration's notify",
            code="invalid_options",
        )
    return list(value)


_OPTION_CHECKS: dict[JobType, dict[str, Any]] = {
    JobType.YTDLP: {
        "format": _format,
        "audioOnly": _bool,
        "audioFormat": _one_of(AUDIO_FORMATS),
        "playlist": _bool,
        "maxItems": _int_range(1, 1000),
        "subtitles": _languages,
        "cookies": _cookies,
        "notify": _notify,
    },
    JobType.ARIA2: {"notify": _notify},
    JobType.FFMPEG: {"container": _one_of(CONTAINERS), "notify": _notify},
    JobType.TWITTER: {
        "mediaType": _one_of(MEDIA_TYPES),
        "includeRetweets": _bool,
        "maxTweets": _int_range(1, 3000),
        "cookies": _cookies,
        "notify": _notify,
    },
}


def parse_job_id(value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise BadRequest("the job id must be a UUID", code="invalid_job_id") from None


MAX_SEARCH_LENGTH = 200


@dataclass(frozen=True, slots=True)
class ListQuery:
    """``GET /downloads``'s query: which jobs, how many, from where."""

    statuses: tuple[Status, ...] | None = None  # None: every status
    search: str | None = None  # a case-insensitive part of the URL or the file name
    limit: int = 50
    after: tuple[datetime, UUID] | None = None
    subscription: UUID | None = None  # only the jobs this subscription's checks created


def parse_list_query(query: Any) -> ListQuery:
    unknown = set(query) - {"status", "limit", "cursor", "q", "subscription"}
    if unknown:
        raise BadRequest(f"unknown parameter(s): {', '.join(sorted(unknown))}", code="bad_query")
    limit = 50
    if "limit" in query:
        text = query["limit"]
        if not (text.isascii() and text.isdigit() and len(text) <= 3) or not 1 <= int(text) <= 200:
            raise BadRequest("limit must be a whole number from 1 to 200", code="bad_query")
        limit = int(text)
    return ListQuery(
        statuses=_statuses(query.get("status") or ""),
        search=_search(query.get("q") or ""),
        limit=limit,
        after=decode_cursor(query["cursor"]) if query.get("cursor") else None,
        subscription=_uuid(query["subscription"], "subscription")
        if "subscription" in query
        else None,
    )


def _uuid(text: str, name: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise BadRequest(f"{name} must be a UUID", code="bad_query") from None


def _statuses(text: str) -> tuple[Status, ...] | None:
    """One status or several, comma-separated (``running,paused``)."""
    if not text:
        return None
    try:
        found = tuple(dict.fromkeys(Status(part) for part in text.split(",")))
    except ValueError:
        raise BadRequest(
            f"status must be one or more (comma-separated) of {', '.join(s.value for s in Status)}",
            code="bad_query",
        ) from None
    return found


def _search(text: str) -> str | None:
    if not text:
        return None
    if len(text) > MAX_SEARCH_LENGTH or any(_control_char(ch) for ch in text):
        raise BadRequest(
            f"q must be at most {MAX_SEARCH_LENGTH} characters, without control characters",
            code="bad_query",
        )
    return text


def _control_char(ch: str) -> bool:
    return unicodedata.category(ch) in ("Cc", "Cs")


def parse_detect_query(query: Any) -> str:
    """The URL of ``GET /detect?url=``, checked like ``POST /downloads``'s."""
    unknown = set(query) - {"url"}
    if unknown:
        raise BadRequest(f"unknown parameter(s): {', '.join(sorted(unknown))}", code="bad_query")
    return parse_url(query.get("url"))


def option_names(job_type: JobType) -> list[str]:
    """The options a job of this type accepts."""
    return sorted(_OPTION_CHECKS[job_type])


def encode_cursor(created_at: datetime, job_id: UUID | str) -> str:
    raw = f"{created_at.isoformat()}|{job_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        stamp, _, job_id = base64.urlsafe_b64decode(padded.encode()).decode().partition("|")
        created = datetime.fromisoformat(stamp)
        if created.tzinfo is None:
            raise ValueError("naive")
        return created.astimezone(UTC), UUID(job_id)  # overflows at the edges of time
    except (ValueError, UnicodeDecodeError, OverflowError):
        raise BadRequest("cursor is not one this server gave out", code="bad_cursor") from None

"""Pure: the ``notify`` targets of the configuration, who hears of what, the webhook body
and its signature, and the retry schedule. No I/O.

A target is a webhook (``url``, http/https, an optional HMAC ``secret``) or an Apprise
URL (``apprise``: ntfy, Gotify, Discord, Telegram, e-mail…). A job names targets in
``options.notify``; without it the targets marked ``default`` hear of it. Each target
hears only of the ``events`` it lists.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from mediad.backoff import Backoff
from mediad.errors import ConfigError

# What a target may list in ``events``; ``test`` goes to any target that is asked.
EVENTS = ("completed", "failed", "subscription.new", "subscription.failed")
TEST_EVENT = "test"
DEFAULT_EVENTS = ("completed", "failed")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_KEYS = frozenset({"name", "url", "apprise", "secret", "events", "default"})
SIGNATURE_HEADER = "X-Mediad-Signature"
DELIVERY_HEADER = "X-Mediad-Delivery"
EVENT_HEADER = "X-Mediad-Event"


@dataclass(frozen=True)
class NotifyTarget:
    name: str
    url: str | None = None  # a webhook …
    apprise: str | None = None  # … or an Apprise URL
    secret: str | None = None  # webhooks: X-Mediad-Signature is HMAC-SHA256 with it
    events: tuple[str, ...] = DEFAULT_EVENTS
    default: bool = True  # told about jobs that name no targets

    @property
    def kind(self) -> str:
        return "webhook" if self.url is not None else "apprise"

    def to_api(self) -> dict[str, Any]:
        """What ``GET /notifications/targets`` shows: never the URL or the secret."""
        return {
            "name": self.name,
            "kind": self.kind,
            "events": list(self.events),
            "default": self.default,
        }


def build_targets(value: Any, env: Mapping[str, str] | None = None) -> tuple[NotifyTarget, ...]:
    """The ``notify`` list, validated; ``MEDIAD_NOTIFY_<NAME>_SECRET`` (``_URL``,
    ``_APPRISE``) override a target's keys, NAME upper-cased with ``.``/``-`` as ``_``."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ConfigError("notify", "must be a list of targets")
    targets = tuple(_target(i, item, env or {}) for i, item in enumerate(value))
    names = [t.name for t in targets]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError("notify", f"the target name {name!r} is used twice")
    return targets


def env_prefix(name: str) -> str:
    return "MEDIAD_NOTIFY_" + re.sub(r"[.-]", "_", name).upper() + "_"


def _target(index: int, item: Any, env: Mapping[str, str]) -> NotifyTarget:
    where = f"notify[{index}]"
    if not isinstance(item, Mapping):
        raise ConfigError(where, "must be a mapping with name and url or apprise")
    unknown = set(item) - _KEYS
    if unknown:
        raise ConfigError(f"{where}.{sorted(map(str, unknown))[0]}", "unknown key")
    name = item.get("name")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ConfigError(
            f"{where}.name", "must be 1-64 of A-Z a-z 0-9 . _ - (a letter or digit first)"
        )
    values = dict(item)
    prefix = env_prefix(name)
    for key in ("url", "apprise", "secret"):
        if env.get(prefix + key.upper()):
            values[key] = env[prefix + key.upper()]
    where = f"notify.{name}"
    url, apprise = _string(values, "url", where), _string(values, "apprise", where)
    if (url is None) == (apprise is None):
        raise ConfigError(where, "needs exactly one of url (a webhook) or apprise")
    if url is not None:
        _check_webhook_url(url, f"{where}.url")
    if apprise is not None and "://" not in apprise:
        raise ConfigError(f"{where}.apprise", "must be an Apprise URL such as ntfy://host/topic")
    secret = _string(values, "secret", where)
    if secret is not None and apprise is not None:
        raise ConfigError(f"{where}.secret", "only webhooks (url) are signed")
    return NotifyTarget(
        name=name,
        url=url,
        apprise=apprise,
        secret=secret,
        events=_events(values.get("events", list(DEFAULT_EVENTS)), f"{where}.events"),
        default=_bool(values.get("default", True), f"{where}.default"),
    )


def _string(values: Mapping[str, Any], key: str, where: str) -> str | None:
    value = values.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}.{key}", "must be a non-empty string")
    return value.strip()


def _check_webhook_url(url: str, key: str) -> None:
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError as exc:
        raise ConfigError(key, f"not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(key, "must be an http:// or https:// URL with a host")


def _events(value: Any, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ConfigError(key, f"must be a list of events ({', '.join(EVENTS)})")
    for event in value:
        if event not in EVENTS:
            raise ConfigError(key, f"unknown event {event!r} (expected {', '.join(EVENTS)})")
    return tuple(dict.fromkeys(value))


def _bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.lower() in ("true", "1", "yes")
    raise ConfigError(key, "must be true or false")


def chosen(
    targets: Sequence[NotifyTarget], named: Iterable[str] | None, event: str
) -> list[NotifyTarget]:
    """The targets told of ``event``: those ``named`` (a job's ``options.notify``; ``[]``
    is none) or else the default ones, each only if it listens to the event."""
    if named is None:
        pool = [t for t in targets if t.default]
    else:
        wanted = set(named)
        pool = [t for t in targets if t.name in wanted]
    return [t for t in pool if event in t.events]


def unknown_names(targets: Sequence[NotifyTarget], named: Iterable[str]) -> list[str]:
    known = {t.name for t in targets}
    return [n for n in named if n not in known]


def sign(secret: str, body: bytes) -> str:
    """The ``X-Mediad-Signature`` value: ``sha256=`` and the hex HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str | None) -> bool:
    """What a receiver does (constant time)."""
    return header is not None and hmac.compare_digest(sign(secret, body), header)


def retry_delay_s(attempts: int, initial_s: float, maximum_s: float) -> float:
    """The wait after the ``attempts``-th failed attempt: initial, doubling, capped."""
    backoff = Backoff(initial_s, 2.0, max(initial_s, maximum_s))
    delay = backoff.next()
    for _ in range(max(0, min(attempts, 64) - 1)):
        delay = backoff.next()
    return delay


def apprise_message(
    event: str, job: Mapping[str, Any] | None, subscription: Any
) -> tuple[str, str]:
    """A short title and body for a person (Apprise targets)."""
    if event == TEST_EVENT:
        return "mediad: test", "A test notification from mediad."
    if job is not None:
        what = job.get("filename") or job.get("url") or job.get("jobId")
        if event == "completed":
            return "mediad: download completed", f"{what} ({_size(job.get('size'))})"
        if event == "failed":
            return (
                "mediad: download failed",
                f"{what}: {job.get('errorCode')}: {job.get('errorMessage')}",
            )
    url = subscription.get("url") if isinstance(subscription, Mapping) else None
    if event == "subscription.new":
        return "mediad: new entries", f"new entries in {url}"
    return f"mediad: {event}", f"{event} for {url or 'a subscription'}"


def _size(size: Any) -> str:
    if not isinstance(size, int):
        return "size unknown"
    value, unit = float(size), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            break
        value /= 1024
    return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"

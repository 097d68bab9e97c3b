"""Secrets, by one rule: what to hide when printing, and what no child process inherits.

A value is secret when

* its key (a config key, an environment variable's name, a URL query parameter) names a
  secret: one of its words is ``token``, ``secret``, ``password``, ``passwd``, ``pwd``,
  ``pass``, ``credential(s)``, ``apikey`` or ``key``, or contains ``token``, ``secret``
  or ``passw`` (``api_tokens``, ``WORKER_TOKEN``, ``sslpassword``, ``AWS_SECRET_ACCESS_KEY``);
* or it is the user information of a URL (``redis://:PASS@host``,
  ``http://user:PASS@proxy``, ``https://TOKEN@host``), wherever the URL appears.

``mask`` hides them in printable data (``mediad check-config``); ``child_environment``
drops them, with every setting of mediad's own, from the environment of the processes
mediad starts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from mediad.frozen import system_environment

HIDDEN = "***"
SET = "<set>"

_SECRET_WORDS = frozenset(
    {"token", "tokens", "secret", "secrets", "password", "passwords", "passwd", "pwd", "pass",
     "credential", "credentials", "apikey", "key", "keys"}
)  # fmt: skip
_SECRET_PARTS = ("token", "secret", "passw")
_WORD = re.compile(r"[a-z0-9]+")
# scheme://USERINFO@host.
# Up to the last "@" before the path: an unescaped "@" in a password stays hidden too.
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<info>[^/?#\s]*)@")
# ?name=value / &name=value / ;name=value inside a URL.
_QUERY_PARAM = re.compile(r"(?P<sep>[?&;])(?P<name>[^=&;#\s]+)=(?P<value>[^&;#\s]*)")

# Variables of mediad's own that are not MEDIAD_*: config.NAMED_ENV.
_MEDIAD_NAMES = frozenset(
    {"DATABASE_URL", "REDIS_URL", "WORKER_TOKEN", "TWMD_PATH", "TWITTER_COOKIES_PATH",
     "TWITTER_PROXY"}
)  # fmt: skip


def is_secret_key(name: object) -> bool:
    """True when a key's name says its value is a secret (see the module docstring)."""
    if not isinstance(name, str):
        return False
    lowered = name.lower()
    if any(part in lowered for part in _SECRET_PARTS):
        return True
    return any(word in _SECRET_WORDS for word in _WORD.findall(lowered))


def has_credentials(text: str) -> bool:
    """True when ``text`` holds a URL with user information or a secret query parameter."""
    return mask_text(text) != text


def mask_text(text: str) -> str:
    """``text`` with every URL's user information and secret query parameters hidden:
    ``redis://:PASS@h`` → ``redis://:***@h``, ``http://u:PASS@h`` → ``http://u:***@h``,
    ``https://TOKEN@h`` → ``https://***@h``, ``?password=PASS`` → ``?password=***``."""

    def userinfo(match: re.Match[str]) -> str:
        info = match["info"]
        user, colon, _ = info.partition(":")
        hidden = f"{user}:{HIDDEN}" if colon else HIDDEN
        return f"{match['scheme']}{hidden}@"

    def param(match: re.Match[str]) -> str:
        if is_secret_key(match["name"]) and match["value"]:
            return f"{match['sep']}{match['name']}={HIDDEN}"
        return match[0]

    text = _USERINFO.sub(userinfo, text)
    if "://" in text:
        text = _QUERY_PARAM.sub(param, text)
    return text


def mask(value: Any, key: str | None = None) -> Any:
    """A copy of ``value`` (nested dicts, lists and scalars) with every secret hidden: the
    value of a secret-like key becomes ``<set>`` (when set), and every string elsewhere
    goes through ``mask_text``."""
    if key is not None and is_secret_key(key):
        if value is None or value == "" or value == [] or value == ():
            return value
        return SET
    if isinstance(value, Mapping):
        return {k: mask(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask(v) for v in value]
    if isinstance(value, str):
        return mask_text(value)
    return value


def is_mediad_setting(name: str) -> bool:
    """mediad's own variables: ``MEDIAD_*`` and the named ones (``DATABASE_URL``…)."""
    return name.startswith("MEDIAD_") or name in _MEDIAD_NAMES


def child_environment(env: Mapping[str, str]) -> dict[str, str]:
    """What a process mediad starts may inherit from ``env``: no setting of mediad's own
    (every secret and the rest), no variable whose name is secret-like, and no value
    holding a URL's credentials. The caller adds what the child needs, and only that.
    In the single binary, also without the bootloader's library path (``frozen``)."""
    return system_environment(
        {
            name: value
            for name, value in env.items()
            if not is_mediad_setting(name)
            and not is_secret_key(name)
            and not has_credentials(value)
        }
    )

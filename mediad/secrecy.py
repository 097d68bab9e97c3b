"""Secrets, by one rule: what to hide when printing, and what no child process inherits.

A value is secret when

* its key (a config key, an environment variable's name, a URL query parameter) names a
  secret: one of its words is ``token``, ``secret``, ``password``, ``passwd``, ``pwd``,
  ``pass``, ``credential(s)``, ``apikey`` or ``key``, or contains ``token``, ``secret``
  or ``passw`` (``api_tokens``, ``WORKER_TOKEN``, ``sslpassword``, ``AWS_SECRET_ACCESS_KEY``);
* or it is the user information of a URL (``redis://:PASS@host``,
  ``http://user:PASS@proxy``, ``https://TOKEN@host``), wherever the URL appears;
* or it is a notification target's address: an Apprise URL whole (``tgram://TOKEN/…``,
  the key ``apprise``), a webhook URL's path and query (Discord's and Slack's carry their
  token there: ``notify[].url`` is shown as ``https://host/***``).

``mask`` hides them in printable data (``mediad check-config``); ``child_environment``
drops them, with every setting of mediad's own, from the environment of the processes
mediad starts. This is the one list of what a child never inherits; the kinds of child
differ only in what they keep or also drop:

* a tool (``worker.client.tools_environment``): ``child_environment``, with the egress
  guard's proxy variables on top (``egress.tool_environment``);
* a worker (``worker_environment``): keeps ``WORKER_KEPT_PREFIXES`` (the twmd limits);
* a server (``server_environment``: PostgreSQL, Redis, pg_dump): also drops
  ``POSTGRES_PREFIX`` (``PGDATA``, ``PGPORT``… would quietly change what PostgreSQL's
  programs do).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from mediad.frozen import runtime_variables, system_environment

HIDDEN = "***"
SET = "<set>"

_SECRET_WORDS = frozenset(
    {"token", "tokens", "secret", "secrets", "password", "passwords", "passwd", "pwd", "pass",
     "credential", "credentials", "apikey", "key", "keys"}
)  # fmt: skip
_SECRET_PARTS = ("token", "secret", "passw", "apprise")
_WORD = re.compile(r"[a-z0-9]+")
# scheme://USERINFO@host.
# Up to the last "@" before the path: an unescaped "@" in a password stays hidden too.
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<info>[^/?#\s]*)@")
# ?name=value / &name=value / ;name=value inside a URL.
_QUERY_PARAM = re.compile(r"(?P<sep>[?&;])(?P<name>[^=&;#\s]+)=(?P<value>[^&;#\s]*)")

# What a worker keeps of mediad's own: the twmd limits, which its Twitter/X runner reads.
WORKER_KEPT_PREFIXES = ("MEDIAD_TWMD_",)
# PostgreSQL's own variables, which no managed server or PostgreSQL client inherits.
POSTGRES_PREFIX = "PG"


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


def origin_only(url: str) -> str:
    """``scheme://host[:port]/***``: a URL without its path, query and credentials."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return HIDDEN
    host = rest.split("/", 1)[0].split("?", 1)[0].rsplit("@", 1)[-1]
    return f"{scheme}://{host}/{HIDDEN}"


def mask(value: Any, key: str | None = None) -> Any:
    """A copy of ``value`` (nested dicts, lists and scalars) with every secret hidden: the
    value of a secret-like key becomes ``<set>`` (when set), and every string elsewhere
    goes through ``mask_text``."""
    if key is not None and is_secret_key(key):
        if value is None or value == "" or value == [] or value == ():
            return value
        return SET
    if isinstance(value, Mapping):
        target = "events" in value and "name" in value  # a notification target
        return {
            k: origin_only(v) if target and k == "url" and isinstance(v, str) else mask(v, str(k))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [mask(v) for v in value]
    if isinstance(value, str):
        return mask_text(value)
    return value


def is_mediad_setting(name: str) -> bool:
    """mediad's own variables: ``MEDIAD_*`` and the named ones the configuration reads
    (``config.NAMED_ENV``: ``DATABASE_URL``…)."""
    from mediad.config import NAMED_ENV  # here: config may come to import this module

    return name.startswith("MEDIAD_") or name in NAMED_ENV


def child_environment(
    env: Mapping[str, str],
    *,
    keep_prefixes: tuple[str, ...] = (),
    drop_prefixes: tuple[str, ...] = (),
) -> dict[str, str]:
    """What a process mediad starts may inherit from ``env``: no setting of mediad's own
    (every secret and the rest), no variable whose name is secret-like, and no value
    holding a URL's credentials. The caller adds what the child needs, and only that.
    In the single binary, also without the bootloader's library path (``frozen``).

    ``keep_prefixes``: variables kept whatever the rules say; ``drop_prefixes``:
    variables dropped whatever they are."""
    return system_environment(
        {
            name: value
            for name, value in env.items()
            if name.startswith(keep_prefixes)
            or (
                not name.startswith(drop_prefixes)
                and not is_mediad_setting(name)
                and not is_secret_key(name)
                and not has_credentials(value)
            )
        }
    )


def server_environment(env: Mapping[str, str]) -> dict[str, str]:
    """A managed server's (or a PostgreSQL client's): ``child_environment`` without
    PostgreSQL's own variables."""
    return child_environment(env, drop_prefixes=(POSTGRES_PREFIX,))


def worker_environment(env: Mapping[str, str]) -> dict[str, str]:
    """A worker's environment: the service's without any of mediad's settings or secrets
    (``child_environment``), but with the twmd limits (``MEDIAD_TWMD_*``), which the
    Twitter/X runner reads from it. In the single binary, a worker is the binary started
    again: it keeps the bootloader's variables, so it reuses the unpacked bundle."""
    clean = child_environment(env, keep_prefixes=WORKER_KEPT_PREFIXES)
    clean.update(runtime_variables(env))
    return clean

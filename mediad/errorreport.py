"""Optional error reports to Sentry (or a compatible collector: GlitchTip, a relay).

``logging.sentry_dsn`` (``SENTRY_DSN``) turns it on; without it ``sentry_sdk`` is never
imported. Every record logged at ERROR (``log.exception`` included) becomes an event,
lower ones breadcrumbs; the ``jobId``, ``stage`` and ``workerId`` a record carries in
``extra`` (logs.FIELDS) become the event's tags, so reports can be searched by job. No
frame's local variables are sent (they may hold configuration with secrets), nor any
request data: only the message, the traceback and those tags.
"""

from __future__ import annotations

import logging
from typing import Any

import mediad
from mediad.config import Config
from mediad.logs import FIELDS

log = logging.getLogger(__name__)
MAX_TAG_LENGTH = 200  # Sentry's limit for a tag value


def tag_fields(event: dict[str, Any], hint: dict[str, Any] | None = None) -> dict[str, Any]:
    """``before_send``: a log record's ``jobId``/``stage``/``workerId`` (in the event's
    ``extra``) as tags."""
    extra = event.get("extra") or {}
    tags = event.setdefault("tags", {})
    for name in FIELDS:
        value = extra.get(name)
        if value is not None and name not in tags:
            tags[name] = str(value)[:MAX_TAG_LENGTH]
    return event


def setup(config: Config, process_name: str = "serve") -> bool:
    """Start reporting when a DSN is configured; True when it did."""
    dsn = config.logging.sentry_dsn
    if not dsn:
        return False
    try:
        import sentry_sdk
        from sentry_sdk.integrations.atexit import AtexitIntegration
        from sentry_sdk.integrations.dedupe import DedupeIntegration
        from sentry_sdk.integrations.logging import LoggingIntegration
    except ImportError:
        log.warning(
            "logging.sentry_dsn is set but sentry-sdk is not installed: pip install 'mediad[sentry]'"
        )
        return False
    sentry_sdk.init(
        dsn=dsn,
        release=f"mediad@{mediad.__version__}",
        server_name=config.instance_id,
        # Only what is listed: no auto-enabled integrations patching aiohttp, asyncpg, redis.
        default_integrations=False,
        auto_enabling_integrations=False,
        integrations=[
            LoggingIntegration(level=logging.INFO, event_level=logging.ERROR),
            DedupeIntegration(),
            AtexitIntegration(),
        ],
        include_local_variables=False,
        before_send=tag_fields,  # type: ignore[arg-type]  # a plain dict is what it receives
    )
    sentry_sdk.set_tag("process", process_name)
    log.info("error reports go to %s", _host(dsn))
    return True


def _host(dsn: str) -> str:
    """The collector's host, without the DSN's key (a secret)."""
    from urllib.parse import urlsplit

    return urlsplit(dsn).hostname or "?"

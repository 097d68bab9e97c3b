"""Pure: the environment a tool runs with behind the egress proxy."""

from __future__ import annotations

from collections.abc import Mapping


def tool_environment(base: Mapping[str, str], proxy_url: str | None = None) -> dict[str, str]:
    """``base`` made safe for a tool behind the proxy: every ``*_proxy`` variable from
    outside removed, and with ``proxy_url`` the standard ones pointing at it.

    yt-dlp, aria2c, ffmpeg and curl all honour ``no_proxy`` even when given a proxy
    flag, and connect directly to whatever it lists (``localhost``, ``10.0.0.0/8``,
    ``*``); a child process given no flag (yt-dlp's ffmpeg, say) follows ``http_proxy``.
    """
    env = {k: v for k, v in base.items() if not k.lower().endswith("_proxy")}
    if proxy_url is not None:
        for name in ("http_proxy", "https_proxy", "all_proxy"):
            env[name] = env[name.upper()] = proxy_url
    return env

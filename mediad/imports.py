"""Importing a library without the optional modules it would pull in for a part of it
that this process never uses.

python-socketio's package imports its blocking client, and python-engineio's blocking
client imports ``requests`` if it can (with urllib3, charset_normalizer and certifi:
~110 modules, ~4 MiB of serve's private memory). ``mediad serve`` only runs the asyncio
server and client; of all it does, only an Apprise delivery needs ``requests``, and
that imports it as usual when it first runs. So serve imports python-socketio with
``requests`` hidden: the blocking client, never used there, sees it as not installed.

A worker is the other way round: it needs ``requests`` (yt-dlp, preloaded in the zygote
the workers are forked from, uses it for HTTP when it is installed), but never Redis,
which python-socketio's Redis managers import if they can (redis-py, or aioredis or
valkey in its place: ~60 modules, ~5 MiB that the zygote and every worker map; only
serve has a manager, ``sockets.ClusterEvents``). So the zygote, and a remote worker,
import python-socketio with ``WORKER_HIDDEN`` hidden.

(Deferring ``requests`` itself, executed on first use, does not do: an import of one of
its submodules, ``from requests.auth import …`` in Apprise, runs before the package's
``__init__`` and breaks its circular imports; ``importlib.util.LazyLoader`` is executed
at once by the next ``import requests`` on Python 3.11.)
"""

from __future__ import annotations

import importlib
import sys
import types

# What a worker imports python-socketio without (see above).
WORKER_HIDDEN = ("redis", "aioredis", "valkey")


def import_without(name: str, *hidden: str) -> types.ModuleType:
    """``import name`` with ``hidden`` (modules not imported yet) unavailable to it, as
    if not installed; afterwards they can be imported as usual."""
    blocked = [h for h in hidden if h not in sys.modules]
    for h in blocked:
        sys.modules[h] = None  # type: ignore[assignment]  # "import h" raises ImportError
    try:
        return importlib.import_module(name)
    finally:
        for h in blocked:
            if sys.modules.get(h, ...) is None:
                del sys.modules[h]

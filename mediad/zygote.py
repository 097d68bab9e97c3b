"""The zygote: one process that every local worker is forked from, so that the workers
share the memory of what they all load.

Without it each of the ``workers.processes`` workers imported aiohttp, python-socketio and
mediad's worker code for itself, and each worker's fork server imported and warmed up
yt-dlp for itself (about 50 MiB of private memory each). The zygote does all of that once,
freezes it for the garbage collector (``gc.freeze``: a child's collections never write to
those pages), and then forks workers on request. Forked pages stay shared until written,
so three workers and their fork servers cost little more than one.

It is the fork server (``worker/forkserver.py``) started another way: ``mediad serve``
has threads and a running loop, so it cannot fork it; the supervisor starts it as a new
process (``mediad worker --zygote-fd N``, the same interpreter or the same single binary)
with one end of a ``SOCK_SEQPACKET`` socketpair, sends its start-up message on it, and
then asks it for workers over the fork server's protocol (``ForkServer.spawn``). Each
worker is a child in its own session, with the service's stderr as its output, that reads
its settings (token included) from the request — never from argv or the environment —
and then starts as a worker always did. The zygote is its fork server too: each worker
is forked with a channel of its own to the zygote (``channel``), on which it asks for its
yt-dlp jobs' children, so that a job's child is a copy of the zygote's preloaded memory
and no worker needs a fork server of its own (each one was ~4-7 MiB of private memory,
more once it had picked extractors: ``run_ytdlp.pick_extractor`` now runs once, here).

How it ends: the zygote has a parent-death signal on ``mediad serve``, each worker and
each job's child has one on the zygote, a worker's channel that ends (the worker is
gone) takes the children the worker asked for with it, and a zygote that loses its
channel to the service kills every child's process group and exits. The supervisor
notices a lost zygote at once (every worker counts as killed) and starts a new one for
the next worker it starts.
"""

from __future__ import annotations

import gc
import signal
import socket
from typing import Any

import orjson

TITLE = "mediad: zygote"
WORKER_ENTRY = "mediad.zygote:run_worker"


def worker_title(worker_id: str) -> str:
    """What ``ps`` shows for a local worker."""
    return f"mediad: worker {worker_id}"


def start_message(
    *, parent_pid: int, ffmpeg: str | None, preload: bool, log_level: str, log_format: str
) -> bytes:
    """The supervisor's first message on the channel."""
    message = {"parentPid": parent_pid, "ffmpeg": ffmpeg, "preload": preload}
    return orjson.dumps({**message, "logLevel": log_level, "logFormat": log_format})


def main(fd: int) -> int:
    """``mediad worker --zygote-fd FD``: load once, then fork workers until the channel
    closes. Never returns (the fork server's loop ends with ``os._exit``)."""
    from mediad import logs
    from mediad.parent_death import die_with_parent
    from mediad.worker import forkserver

    sock = socket.socket(fileno=fd)
    start: dict[str, Any] = orjson.loads(sock.recv(forkserver.MAX_MESSAGE) or b"{}")
    parent = int(start.get("parentPid") or 0)
    if not die_with_parent(signal.SIGKILL, parent_pid=parent):
        return 1  # the service that started us is already gone
    logs.configure(
        str(start.get("logLevel", "info")), str(start.get("logFormat", "json")), "zygote"
    )
    _load_worker()
    gc.collect()
    gc.freeze()  # preload (below) freezes what it adds too
    forkserver._server_main(
        sock, parent, start.get("ffmpeg"), bool(start.get("preload")), title=TITLE
    )
    return 1  # not reached


def _load_worker() -> None:
    """Import what a worker runs, so that the workers share it."""
    from mediad import imports

    imports.import_without("socketio", *imports.WORKER_HIDDEN)  # no Redis in a worker
    import mediad.cli  # the event loop policy, logging
    import mediad.worker.client  # noqa: F401  (socketio, aiohttp, every tool's runner)

    try:
        import uvloop  # noqa: F401
    except ImportError:
        pass


def run_worker(argv: list[str]) -> int:
    """A worker, in a child of the zygote: ``argv`` is ``[settings JSON]``."""
    from mediad import cli, logs
    from mediad.worker import client, forkserver
    from mediad.worker.settings import WorkerSettings

    settings = WorkerSettings.from_payload(orjson.loads(argv[0]))
    logs.configure(settings.log_level, settings.log_format, settings.worker_id)
    cli._event_loop_policy()
    return client.main(settings, forkserver.ForkServer.inherited())

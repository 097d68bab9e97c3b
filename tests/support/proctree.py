"""How a test or a benchmark finds the local workers of a ``mediad serve`` process: they
are the children of its zygote (``mediad/zygote.py``), titled ``mediad: worker local-N``,
each with its fork server below it."""

from __future__ import annotations

import contextlib
from pathlib import Path

from mediad.worker import forkserver
from mediad.zygote import TITLE as ZYGOTE_TITLE
from mediad.zygote import worker_title

WORKER_TITLE = worker_title("")
FORK_SERVER_TITLE = forkserver.TITLE


def _children(pid: int) -> dict[int, str]:
    """``pid``'s children and their command lines."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(stat[1]) == pid:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                found[int(entry.name)] = cmd.strip()
    return found


def worker_tree(main: int) -> list[tuple[int, str]]:
    """The processes ``mediad serve`` (pid ``main``) runs its local workers in, as (pid,
    kind): the zygote, each worker (``worker``) and each worker's fork server."""
    found: list[tuple[int, str]] = []
    for zygote, cmd in _children(main).items():
        if cmd != ZYGOTE_TITLE:
            continue
        found.append((zygote, "zygote"))
        for worker, title in _children(zygote).items():
            if title.startswith(WORKER_TITLE):
                found.append((worker, "worker"))
                found += [(p, "fork server") for p, t in _children(worker).items()
                          if t == FORK_SERVER_TITLE]  # fmt: skip
    return found


def local_workers(main: int) -> list[int]:
    """The worker processes of ``mediad serve`` ``main``, sorted."""
    return sorted(p for p, kind in worker_tree(main) if kind == "worker")

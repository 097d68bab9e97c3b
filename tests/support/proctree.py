"""How a test or a benchmark finds the local workers of a ``mediad serve`` process: they
are the children of its zygote (``mediad/zygote.py``), titled ``mediad: worker local-N``;
their yt-dlp jobs are the zygote's children too (``mediad: yt-dlp <jobId>``)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from mediad.worker.run_ytdlp import title_of
from mediad.zygote import TITLE as ZYGOTE_TITLE
from mediad.zygote import worker_title

WORKER_TITLE = worker_title("")
YTDLP_TITLE = title_of("")


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
    kind): the zygote and each worker (``worker``)."""
    found: list[tuple[int, str]] = []
    for zygote, cmd in _children(main).items():
        if cmd != ZYGOTE_TITLE:
            continue
        found.append((zygote, "zygote"))
        found += [(worker, "worker") for worker, title in _children(zygote).items()
                  if title.startswith(WORKER_TITLE)]  # fmt: skip
    return found


def local_workers(main: int) -> list[int]:
    """The worker processes of ``mediad serve`` ``main``, sorted."""
    return sorted(p for p, kind in worker_tree(main) if kind == "worker")


def _pipes(pid: int) -> set[str]:
    found = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("pipe:"):
                    found.add(link)
    return found


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        kids = list(_children(todo.pop()))
        found += kids
        todo += kids
    return found


def forked_for(worker: int) -> list[int]:
    """The yt-dlp children the zygote forked for ``worker``, and what they started: the
    zygote's children titled ``mediad: yt-dlp <jobId>`` whose output pipe the worker
    reads (the one thing that ties a job's child to its worker in the process tree)."""
    try:
        zygote = int(Path(f"/proc/{worker}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return []
    ours = _pipes(worker)
    found = []
    for child, title in _children(zygote).items():
        if title.startswith(YTDLP_TITLE):
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{child}/fd/1") in ours:
                    found += [child, *_descendants(child)]
    return found

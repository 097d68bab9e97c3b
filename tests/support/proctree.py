"""How a test finds the local workers of a ``mediad serve`` process: they are the
children of its zygote (``mediad/zygote.py``), titled ``mediad: worker local-N``."""

from __future__ import annotations

import contextlib
from pathlib import Path

ZYGOTE_TITLE = "mediad: zygote"
WORKER_TITLE = "mediad: worker "


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


def zygotes(main: int) -> list[int]:
    return sorted(p for p, cmd in _children(main).items() if cmd == ZYGOTE_TITLE)


def local_workers(main: int) -> list[int]:
    """The worker processes of ``mediad serve`` ``main``, sorted."""
    return sorted(
        p
        for zygote in zygotes(main)
        for p, cmd in _children(zygote).items()
        if cmd.startswith(WORKER_TITLE)
    )

"""Where finished files go, and who decides they are the result.

A worker moves an attempt's files into ``data/{jobId}/.attempt-{n}/`` (a staging folder
no route serves). Only the server, once it has accepted that attempt's ``completed``,
moves them up into ``data/{jobId}/``: a worker whose attempt was superseded can never
replace the current attempt's files. Every move is a rename on one file system.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

STAGING_PREFIX = ".attempt-"


def staging_dir(data_dir: Path | str, job_id: str, attempt: int) -> Path:
    return Path(data_dir) / job_id / f"{STAGING_PREFIX}{attempt}"


def missing(folder: Path, names: Iterable[str]) -> str | None:
    """The first name that is not a regular file (symlinks do not count) in ``folder``."""
    for name in names:
        path = folder / name
        if path.is_symlink() or not path.is_file():
            return name
    return None


def promote(staging: Path, names: Iterable[str]) -> None:
    """Move the staged files into the job's folder (replacing same-named ones)."""
    final = staging.parent
    for name in names:
        os.replace(staging / name, final / name)
    shutil.rmtree(staging, ignore_errors=True)


def withdraw(job_folder: Path, names: Iterable[str]) -> None:
    """Take promoted files back out (their completion did not land)."""
    for name in names:
        try:
            (job_folder / name).unlink()
        except FileNotFoundError:
            pass


def discard(staging: Path) -> None:
    shutil.rmtree(staging, ignore_errors=True)

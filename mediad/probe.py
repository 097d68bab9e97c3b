"""Does a worker see the server's storage? A remote ``mediad worker`` must share
``storage.data_dir`` and ``storage.tmp_dir`` with the server (one shared filesystem):
results are published into ``data/`` by rename and partial downloads are resumed from
``tmp/``.

The worker writes a random nonce into ``.mediad-probe-{workerId}`` in both folders and
sends the nonce with its connection; the server reads the files under its own paths and
refuses a worker whose nonce is not there, saying which folder is not shared.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

FOLDERS = ("storage.data_dir", "storage.tmp_dir")


def _file(folder: Path, worker_id: str) -> Path:
    return folder / f".mediad-probe-{worker_id}"


def write(data_dir: Path, tmp_dir: Path, worker_id: str) -> str:
    """The worker's side: a fresh nonce in both folders (readable by the owner only)."""
    nonce = secrets.token_hex(16)
    for folder in (data_dir, tmp_dir):
        folder.mkdir(parents=True, exist_ok=True)
        path = _file(folder, worker_id)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(nonce)
    return nonce


def remove(data_dir: Path, tmp_dir: Path, worker_id: str) -> None:
    for folder in (data_dir, tmp_dir):
        with contextlib.suppress(OSError):
            _file(folder, worker_id).unlink()


def unshared(data_dir: Path, tmp_dir: Path, worker_id: str, nonce: object) -> str | None:
    """The server's side: None when both folders hold the nonce, else what to tell the
    worker."""
    for key, folder in zip(FOLDERS, (data_dir, tmp_dir), strict=True):
        try:
            found = _file(folder, worker_id).read_text()
        except (OSError, UnicodeDecodeError):
            found = None
        if not isinstance(nonce, str) or not nonce or found != nonce:
            return (
                f"this worker does not share {key} ({folder}) with the server: a remote"
                " worker needs the same storage.data_dir and storage.tmp_dir (one shared"
                " file system)"
            )
    return None

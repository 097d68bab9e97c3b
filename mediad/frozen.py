"""Running as the PyInstaller single binary (``make binary``).

The binary is a bootloader with mediad, its libraries and yt-dlp appended. What that
changes, and what mediad does about it:

* **The environment.** The bootloader puts the bundle's library folder first in
  ``LD_LIBRARY_PATH`` (keeping the user's value in ``LD_LIBRARY_PATH_ORIG``) and adds
  ``_PYI_*`` variables. External programs — aria2c, ffmpeg, PostgreSQL, Redis, twmd —
  must not load the bundle's libssl or libz, so ``system_environment`` gives them the
  environment a normal install would (every child environment goes through it, by way of
  ``secrecy.child_environment``). Workers are the same binary started again: they keep
  the bundle's variables (``runtime_variables``) and so reuse the running unpacked copy
  instead of unpacking their own.
* **The onefile temp folder.** A onefile binary is two processes: the bootloader, which
  unpacks the bundle into ``$TMPDIR/_MEIxxxxxx`` and removes it when its child exits, and
  mediad itself, its child. ``OnefileGuard`` covers what the bootloader cannot: when the
  bootloader is SIGKILLed, mediad gets SIGTERM (a parent-death signal), stops as usual and
  removes the folder itself on the way out; when everything was killed at once (SIGKILL
  to the whole group, the OOM killer, a power cut), the next ``mediad serve`` removes
  the folders of earlier mediad binaries of the same user that no live process uses.
  Under systemd, ``PrivateTmp=yes`` removes them in any case when the service stops.

Outside the binary every function here does nothing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import sys
from collections.abc import Mapping
from pathlib import Path

from mediad.parent_death import die_with_parent

log = logging.getLogger(__name__)

LIBRARY_PATH = "LD_LIBRARY_PATH"
LIBRARY_PATH_ORIG = "LD_LIBRARY_PATH_ORIG"  # the bootloader's copy of the user's value
# What only a process of the bundle should see.
_BUNDLE_PREFIXES = ("_PYI_", "_MEIPASS")


def is_frozen() -> bool:
    """True inside the PyInstaller binary (onefile or onedir)."""
    return bool(getattr(sys, "frozen", False)) and hasattr(sys, "_MEIPASS")


def bundle_dir() -> Path | None:
    """Where the bundle's files are: the onefile temp folder, or onedir's ``_internal``."""
    return Path(sys._MEIPASS) if is_frozen() else None  # type: ignore[attr-defined]  # set by the bootloader


def is_onefile() -> bool:
    """True in a onefile binary: its bundle was unpacked away from the executable."""
    bundle = bundle_dir()
    if bundle is None:
        return False
    return not bundle.resolve().is_relative_to(Path(sys.executable).resolve().parent)


def system_environment(env: Mapping[str, str], frozen: bool | None = None) -> dict[str, str]:
    """``env`` without the bootloader's changes: ``LD_LIBRARY_PATH`` as the user had it
    (or unset), no ``LD_LIBRARY_PATH_ORIG``, no ``_PYI_*``. Unchanged outside the binary."""
    if not (is_frozen() if frozen is None else frozen):
        return dict(env)
    clean = {
        name: value
        for name, value in env.items()
        if name not in (LIBRARY_PATH, LIBRARY_PATH_ORIG) and not name.startswith(_BUNDLE_PREFIXES)
    }
    if env.get(LIBRARY_PATH_ORIG):
        clean[LIBRARY_PATH] = env[LIBRARY_PATH_ORIG]
    return clean


def runtime_variables(env: Mapping[str, str], frozen: bool | None = None) -> dict[str, str]:
    """The variables a process of the bundle needs (a worker, the same binary again):
    the library path and the bootloader's own, so it reuses the unpacked copy."""
    if not (is_frozen() if frozen is None else frozen):
        return {}
    return {
        name: value
        for name, value in env.items()
        if name in (LIBRARY_PATH, LIBRARY_PATH_ORIG) or name.startswith(_BUNDLE_PREFIXES)
    }


# --- the onefile temp folder ----------------------------------------------------------


class OnefileGuard:
    """``mediad serve``'s care of the onefile temp folder (see the module docstring).

    ``arm(on_orphaned)`` asks for SIGTERM when the bootloader dies and calls
    ``on_orphaned`` at once if it is already gone; ``sweep()`` removes folders left by
    earlier runs; ``release()``, the last thing before exiting, removes our own folder
    when the bootloader is no longer there to do it.
    """

    def __init__(self) -> None:
        self.bundle = bundle_dir() if is_onefile() else None
        self.bootloader_pid: int | None = None
        if self.bundle is not None and _same_executable(os.getppid()):
            self.bootloader_pid = os.getppid()

    @property
    def active(self) -> bool:
        return self.bootloader_pid is not None

    def arm(self) -> bool:
        """Ask for SIGTERM when the bootloader dies; False when it already has."""
        if self.bootloader_pid is None:
            return True
        return die_with_parent(signal.SIGTERM, parent_pid=self.bootloader_pid)

    def orphaned(self) -> bool:
        return self.bootloader_pid is not None and os.getppid() != self.bootloader_pid

    def sweep(self) -> list[Path]:
        """Remove the temp folders of earlier mediad binaries of ours that nothing uses."""
        if self.bundle is None:
            return []
        removed = []
        candidates = [
            folder
            for folder in self.bundle.parent.glob("_MEI*")
            if folder != self.bundle and _is_stale_bundle(folder)
        ]
        if candidates:
            in_use = _folders_in_use(candidates)
            for folder in candidates:
                if folder not in in_use:
                    shutil.rmtree(folder, ignore_errors=True)
                    removed.append(folder)
        if removed:
            log.info("removed %d temp folders left by earlier runs: %s", len(removed),
                     ", ".join(map(str, removed)))  # fmt: skip
        return removed

    def release(self) -> None:
        """Remove our own temp folder if the bootloader died (it would have)."""
        if self.bundle is not None and self.orphaned():
            shutil.rmtree(self.bundle, ignore_errors=True)


def _same_executable(pid: int) -> bool:
    try:
        return os.path.samefile(f"/proc/{pid}/exe", sys.executable)
    except OSError:
        return False


def _is_stale_bundle(folder: Path) -> bool:
    """A folder a mediad bootloader unpacked, owned by us."""
    try:
        return (
            folder.is_dir()
            and not folder.is_symlink()
            and folder.stat().st_uid == os.geteuid()
            and (folder / "mediad" / "schema").is_dir()
        )
    except OSError:
        return False


def _folders_in_use(folders: list[Path]) -> set[Path]:
    """Those of ``folders`` that a live process maps a file from, has open or works in."""
    prefixes = {folder: str(folder) + "/" for folder in folders}
    used: set[Path] = set()

    def note(path: str) -> None:
        for folder, prefix in prefixes.items():
            if path.startswith(prefix) or path == str(folder):
                used.add(folder)

    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            with open(f"/proc/{entry}/maps") as maps:
                for line in maps:
                    if "/_MEI" in line:
                        note(line.split(None, 5)[-1].strip())
        with contextlib.suppress(OSError):
            note(os.readlink(f"/proc/{entry}/cwd"))
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{entry}/fd"):
                with contextlib.suppress(OSError):
                    note(os.readlink(f"/proc/{entry}/fd/{fd}"))
    return used

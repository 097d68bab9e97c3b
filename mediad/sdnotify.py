"""systemd's notify protocol (sd_notify(3)) in a few lines, for ``Type=notify`` units.

``mediad serve`` says ``READY=1`` once it really serves (database migrated, HTTP
listening, every local worker connected), keeps ``STATUS=`` a line for people
("3 running, 12 queued, 3/3 workers") as it changes, says ``STOPPING=1`` when it begins
to stop, and, when the unit sets ``WatchdogSec=``, sends ``WATCHDOG=1`` at half of
``WATCHDOG_USEC`` from the event loop itself: a loop that hangs stops the pings, and
systemd restarts the service.

Each message is one datagram of ``KEY=VALUE`` lines to the ``AF_UNIX`` socket named by
``NOTIFY_SOCKET`` (a path, or ``@name`` for the abstract namespace). Without
``NOTIFY_SOCKET`` — not under systemd, or another ``Type=`` — every call does nothing.
The variables are taken out of the environment when read, so no child inherits them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import MutableMapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mediad.service import Service

log = logging.getLogger(__name__)

VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")
STATUS_POLL_S = 1.0
READY_POLL_S = 0.05


class Notifier:
    def __init__(self, address: str | None, watchdog_usec: int | None = None) -> None:
        self.address = address
        self.watchdog_usec = watchdog_usec if address else None
        self._sock: socket.socket | None = None
        self._warned = False

    @classmethod
    def from_environment(
        cls, env: MutableMapping[str, str] | None = None, *, unset: bool = True
    ) -> Notifier:
        """The notifier systemd asked for in ``env`` (``os.environ``); with ``unset``, the
        variables are removed from it (children must not talk to systemd for us)."""
        env = os.environ if env is None else env
        values = {name: env.get(name) for name in VARIABLES}
        if unset:
            for name in VARIABLES:
                env.pop(name, None)
        address = values["NOTIFY_SOCKET"] or None
        if address and not (address.startswith(("/", "@"))):
            log.warning("ignoring NOTIFY_SOCKET=%r: neither a path nor an @abstract name", address)
            address = None
        return cls(address, _watchdog_usec(values["WATCHDOG_USEC"], values["WATCHDOG_PID"]))

    @property
    def enabled(self) -> bool:
        return self.address is not None

    @property
    def watchdog_interval_s(self) -> float | None:
        """How often to ping: half of ``WATCHDOG_USEC`` (as sd_watchdog_enabled advises)."""
        return self.watchdog_usec / 2e6 if self.watchdog_usec else None

    def notify(self, *lines: str, **fields: object) -> bool:
        """Send one message (``notify("READY=1", STATUS="…")``); False when it was not sent."""
        if self.address is None:
            return False
        parts = [*lines, *(f"{key}={_one_line(value)}" for key, value in fields.items())]
        message = "\n".join(parts).encode("utf-8", "replace")
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            if self._sock is None:
                self._sock = socket.socket(
                    socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK
                )
            self._sock.sendto(message, target)
            return True
        except OSError as exc:
            if not self._warned:  # systemd gone or busy: say it once, never fail for it
                log.warning("could not notify systemd at %s: %s", self.address, exc)
                self._warned = True
            return False

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    async def watchdog(self) -> None:
        """Ping ``WATCHDOG=1`` every ``watchdog_interval_s`` for as long as the loop runs."""
        interval = self.watchdog_interval_s
        if interval is None:
            return
        while True:
            self.notify("WATCHDOG=1")
            await asyncio.sleep(interval)


def _watchdog_usec(usec: str | None, pid: str | None) -> int | None:
    """``WATCHDOG_USEC`` when it is meant for us. ``WATCHDOG_PID`` names systemd's main
    process: ours, or in the onefile binary our parent, the bootloader that runs us."""
    if not usec:
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    if pid:
        try:
            meant_for = int(pid)
        except ValueError:
            return None
        if meant_for not in (os.getpid(), os.getppid()):
            return None
    return value if value > 0 else None


def _one_line(value: object) -> str:
    return " ".join(str(value).split())


# --- what mediad serve says ------------------------------------------------------------


async def status_line(service: Service) -> str:
    """ "3 running, 12 queued, 3/3 workers" (queued: the jobs waiting in Redis)."""
    dispatcher, queue = service.dispatcher, service.queue
    counts = dispatcher.status_counts() if dispatcher is not None else {}
    running, connected = counts.get("running", 0), counts.get("connected", 0)
    try:
        assert queue is not None
        queued = f"{await asyncio.wait_for(queue.depth(), 2)} queued"
    except Exception:  # Redis down: the status says so rather than stopping
        queued = "queue unavailable"
    expected = service.config.worker_processes
    workers = f"{connected}/{expected} workers" if expected else f"{connected} remote workers"
    return f"{running} running, {queued}, {workers}"


async def announce(service: Service, notifier: Notifier, poll_s: float = STATUS_POLL_S) -> None:
    """``READY=1`` once every local worker is connected, then ``STATUS=`` on each change.

    Runs once ``service.start()`` has returned (the schema is migrated and HTTP is
    listening)."""
    if not notifier.enabled:
        return
    dispatcher = service.dispatcher
    assert dispatcher is not None
    # The dispatcher has no event for it; a connect is rare enough for a short poll.
    while dispatcher.status_counts()["connected"] < service.config.worker_processes:  # noqa: ASYNC110
        await asyncio.sleep(READY_POLL_S)
    line = await status_line(service)
    notifier.notify("READY=1", STATUS=line)
    log.info("told systemd: ready (%s)", line)
    while True:
        await asyncio.sleep(poll_s)
        current = await status_line(service)
        if current != line:
            line = current
            notifier.notify(STATUS=line)

"""Ports for servers the tests stop and start again on the same address."""

from __future__ import annotations

import contextlib
import random
import socket

from tests.support import parallel

_PICKED: set[int] = set()


def fixed_port() -> int:
    """A free port outside the kernel's ephemeral range (where ``free_port`` and every
    outgoing connection get theirs): a server keeps its port across restarts, and no
    aria2c or client socket can take it while the server is stopped. The port comes
    from this test process's own slice (``parallel.port_range``), so another xdist
    worker never picks it either; within the process, none is handed out twice."""
    ports = parallel.port_range()
    rng = random.Random()
    for _ in range(1000):
        port = rng.choice(ports)
        if port in _PICKED:
            continue
        with contextlib.suppress(OSError), socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
            _PICKED.add(port)
            return port
    raise RuntimeError(f"no free port in {ports} (below the ephemeral range)")

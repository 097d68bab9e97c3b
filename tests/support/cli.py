"""Running ``python -m mediad …`` as a process from a test whose event loop runs the
service: awaited, never waited for."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without any mediad setting, plus ``extra``."""
    drop = ("MEDIAD_", "DATABASE_URL", "REDIS_URL", "WORKER_TOKEN")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(extra)
    return env


async def mediad(*args: str, env: dict[str, str], timeout_s: float = 120) -> Run:
    """``python -m mediad ARGS`` as a process; the service runs in this event loop, so
    the process is awaited, never waited for."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mediad", *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=ROOT,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode())

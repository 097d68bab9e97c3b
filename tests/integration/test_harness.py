"""The test harness itself: databases that killed test processes left behind are dropped
by the next run, and a running process's are kept."""

from __future__ import annotations

import os
import subprocess

import asyncpg

from tests.support.harness import Databases, drop_orphans


async def test_databases_of_processes_that_are_gone_are_dropped(databases: Databases) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()  # its pid now names no process
    orphan, ours = f"mediad_test_{gone.pid}_1", f"mediad_test_{os.getpid()}_999999"
    assert databases.admin_dsn is not None
    conn = await asyncpg.connect(databases.admin_dsn)
    try:
        for name in (orphan, ours):
            await conn.execute(f'CREATE DATABASE "{name}"')
        try:
            assert orphan in await drop_orphans(conn)
            names = {r[0] for r in await conn.fetch("SELECT datname FROM pg_database")}
            assert orphan not in names and ours in names
        finally:
            for name in (orphan, ours):
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()

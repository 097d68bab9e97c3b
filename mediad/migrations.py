"""Schema migrations: ``schema/NNN_name.sql`` applied in order, once each.

They run under a PostgreSQL advisory lock, so several instances may start at once: the
first applies what is missing, the others wait and then find nothing to do.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import asyncpg

# An arbitrary constant that names mediad's migration lock among advisory locks.
LOCK_KEY = 0x6D65_6469_6164  # "mediad"
_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


def schema_dir() -> Path:
    """The SQL files: inside the installed package, or ``schema/`` of a source checkout."""
    packaged = Path(str(resources.files("mediad") / "schema"))
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "schema"


def schema_files(directory: Path | None = None) -> list[tuple[str, Path]]:
    directory = directory or schema_dir()
    files = []
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if match:
            files.append((path.stem, path))
    if not files:
        raise FileNotFoundError(f"no migrations found in {directory}")
    return files


async def apply(
    conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy, directory: Path | None = None
) -> list[str]:
    """Apply the pending migrations; returns the names applied."""
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for version, path in schema_files(directory):
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(path.read_text(encoding="utf-8"))
                await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
            applied_now.append(version)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
    return applied_now

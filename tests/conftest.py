"""Fixtures shared by the integration and the browser tests: one PostgreSQL server (a fresh
database per service under test) and one embedded Redis for the whole run."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.harness import Databases, RedisServer


@pytest.fixture(scope="session")
async def databases() -> AsyncIterator[Databases]:
    dbs = Databases()
    await dbs.start()
    yield dbs
    await dbs.stop()


@pytest.fixture(scope="session")
async def redis_server() -> AsyncIterator[RedisServer]:
    server = RedisServer()
    await server.start()
    yield server
    await server.close()

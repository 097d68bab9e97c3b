"""Fixtures shared by the integration and the browser tests: one PostgreSQL server (a fresh
database per service under test) and one embedded Redis for the whole run."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.support import hangdump
from tests.support.harness import Databases, RedisServer


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    with hangdump.watching(f"the setup of {item.nodeid}"):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    with hangdump.watching(item.nodeid):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    with hangdump.watching(f"the teardown of {item.nodeid}"):
        return (yield)


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

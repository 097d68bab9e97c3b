"""Fixtures shared by the integration and the browser tests: one PostgreSQL server (a fresh
database per service under test) and one embedded Redis for the whole run."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests.support import hangdump, parallel
from tests.support.harness import Databases, RedisServer


def pytest_configure(config: pytest.Config) -> None:
    parallel.note_run_start(config)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist, in the controller: what every worker learns from it."""
    parallel.tell_worker(node)


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

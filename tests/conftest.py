"""Fixtures shared by the integration and the browser tests: one PostgreSQL server (a fresh
database per service under test) and one embedded Redis for each test process. And the
hooks of the whole suite: what pytest-xdist's controller tells its workers, how it hands
out files, and how a hang is reported and ended (tests/support/hangdump.py)."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests.support import hangdump, parallel
from tests.support.harness import Databases, RedisServer


def pytest_configure(config: pytest.Config) -> None:
    parallel.note_run_start(config)
    # Under xdist the controller waits for its workers: its own guard fires a minute after
    # theirs, so that their dumps come first.
    hangdump.guard_session(config, slack_s=60 if parallel.is_controller(config) else 0)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist, in the controller: what every worker learns from it."""
    parallel.tell_worker(node)


def pytest_runtest_logstart(nodeid: str) -> None:
    hangdump.started(nodeid)


def pytest_runtest_logfinish(nodeid: str) -> None:
    hangdump.finished(nodeid)


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_timeout_set_timer(item: pytest.Item, settings: Any) -> bool | None:
    """pytest-timeout's thread method with a dump of the test's tasks, threads and
    captured output to the real stderr, the processes it started killed
    (tests/support/hangdump.py). The signal method is left to pytest-timeout."""
    if settings.method != "thread":
        return None
    timer = threading.Timer(settings.timeout, hangdump.timed_out, (item, settings.timeout))
    timer.daemon = True
    timer.name = f"timeout of {item.nodeid}"

    def cancel() -> None:
        timer.cancel()

    item.cancel_timeout = cancel  # type: ignore[attr-defined]  # read by pytest-timeout
    timer.start()
    return True


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


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """xdist's schedulers, except that a test whose worker died is not run again
    (tests/support/scheduling.py)."""
    from tests.support import scheduling

    return scheduling.make(config, log)

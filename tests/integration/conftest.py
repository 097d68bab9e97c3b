"""Integration fixtures: real PostgreSQL, Redis, tools and a local media server."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from mediad.service import Service
from tests.support import binary_build, media
from tests.support.harness import (
    Api,
    Databases,
    RedisServer,
    make_config,
    running_service,
    shared_tmp,
)
from tests.support.mediaserver import MediaServer


def pytest_collection_finish(session: pytest.Session) -> None:
    """The single binary's tests will run: start its build now, in the background."""
    if any(item.nodeid.startswith("tests/integration/test_binary.py") for item in session.items):
        binary_build.start()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    interrupted = exitstatus == pytest.ExitCode.INTERRUPTED or bool(session.shouldstop)
    binary_build.stop(interrupted=interrupted)


@pytest.fixture(scope="session")
def media_dir() -> Any:
    path = shared_tmp("mediad-test-media-")
    media.make_video(path / "video.mp4", seconds=2.0)
    media.make_random_file(path / "blob.bin", 4 * 1024 * 1024, seed=1)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
async def media_server(media_dir: Path) -> AsyncIterator[MediaServer]:
    async with MediaServer(media_dir) as server:
        yield server


@pytest.fixture
def state_dir() -> Any:
    path = shared_tmp("mediad-test-state-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


ServiceFactory = Callable[..., Any]


@pytest.fixture(scope="session")
async def shared_service(databases: Databases, redis_server: RedisServer) -> AsyncIterator[Service]:
    """One service for the tests that do not need special settings."""
    root = shared_tmp("mediad-test-shared-")
    config = make_config(root, await databases.create(), redis_server.url)
    async with running_service(config) as service:
        yield service
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def service(shared_service: Service) -> Service:
    """The service ``api`` talks to: the shared one, unless a module defines its own."""
    return shared_service


@pytest.fixture
async def api(service: Service) -> AsyncIterator[Api]:
    client = Api(service.base_url)
    yield client
    await client.close()


@pytest.fixture
async def new_config(databases: Databases, redis_server: RedisServer, state_dir: Path):  # type: ignore[no-untyped-def]
    """Build a config for a dedicated service: ``await new_config(queue={...})``."""

    async def build(redis_url: str | None = None, **sections: dict[str, Any]) -> Any:
        return make_config(
            state_dir, await databases.create(), redis_url or redis_server.url, **sections
        )

    return build


@pytest.fixture(scope="module")
async def new_module_config(databases: Databases, redis_server: RedisServer):  # type: ignore[no-untyped-def]
    """Like ``new_config``, for a service shared by a module or a class."""
    root = shared_tmp("mediad-test-module-")

    async def build(redis_url: str | None = None, **sections: dict[str, Any]) -> Any:
        state = Path(tempfile.mkdtemp(dir=root))
        return make_config(
            state, await databases.create(), redis_url or redis_server.url, **sections
        )

    yield build
    shutil.rmtree(root, ignore_errors=True)

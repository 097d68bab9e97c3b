"""End-to-end fixtures: the real service (in process, the same code as ``mediad serve``),
the local media server, and Debian's Chromium driven by Playwright's async API.

One browser per session, a fresh context (cookies, localStorage) per test. The page is
served from ``mediad/static/``: when it was not built the tests fail, they never skip.
Screenshots and measurements go to ``$MEDIAD_TEST_ARTIFACTS`` (default
``/tmp/mediad-e2e-artifacts``); a failing test leaves a screenshot there too.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

try:
    from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect
except ImportError:  # pragma: no cover - a set-up problem, said plainly
    pytest.fail(
        "Playwright for Python is not installed: .venv/bin/pip install playwright"
        " (the browser is Debian's chromium: apt-get install chromium)",
        pytrace=False,
    )

from mediad.service import Service
from tests.support import media, parallel
from tests.support.harness import Api, Databases, RedisServer, make_config, shared_tmp
from tests.support.harness import running_service as _running_service
from tests.support.mediaserver import MediaServer

CHROMIUM = os.environ.get("MEDIAD_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",  # the tests run as root
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-dev-shm-usage",
]
ARTIFACTS = Path(os.environ.get("MEDIAD_TEST_ARTIFACTS", "/tmp/mediad-e2e-artifacts"))
TOKEN = "e2e-token-0123456789abcdef"
NOT_BUILT = (
    "the page is not built: run make page (or cd ui && npm ci && npm run build); looked for {path}"
)


def pytest_configure(config: pytest.Config) -> None:
    # A page on 2 busy cores: 10 s before an expectation gives up (5 s by default).
    expect.set_options(timeout=10_000)
    config.addinivalue_line(
        "markers", "measure: a measurement that prints figures and asserts none on speed"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Measurements run when asked (``-m measure``, or MEDIAD_E2E_MEASURE=1): they take
    about 20 s and assert nothing about speed."""
    wanted = "measure" in (config.option.markexpr or "") or os.environ.get("MEDIAD_E2E_MEASURE")
    if wanted:
        return
    kept = [i for i in items if i.get_closest_marker("measure") is None]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in kept])
        items[:] = kept


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


def _failed(request: pytest.FixtureRequest) -> bool:
    reports = request.node.stash.get(_REPORTS, {})
    return any(r.failed for r in reports.values())


# -- the page build -----------------------------------------------------------------------


def static_index() -> Path:
    try:
        from mediad.page import static_root
    except ImportError:  # the server side is not there yet
        import mediad

        return Path(mediad.__file__).parent / "static" / "index.html"
    return static_root() / "index.html"


@pytest.fixture(scope="session")
def page_built() -> Path:
    index = static_index()
    if not index.is_file():
        pytest.fail(NOT_BUILT.format(path=index), pytrace=False)
    return index


@pytest.fixture(scope="session")
def artifacts(pytestconfig: pytest.Config) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    # Screenshots of failures from an earlier run go; another xdist worker's from this
    # run stay.
    began = parallel.run_started(pytestconfig)
    for stale in ARTIFACTS.glob("FAILED-*.png"):
        with contextlib.suppress(FileNotFoundError):
            if stale.stat().st_mtime < began:
                stale.unlink()
    return ARTIFACTS


# -- the service and what it downloads ------------------------------------------------------


@pytest.fixture(scope="session")
def media_dir() -> Iterator[Path]:
    path = shared_tmp("mediad-e2e-media-")
    media.make_random_file(path / "blob.bin", 4 * 1024 * 1024, seed=7)
    media.make_random_file(path / "slow.bin", 8 * 1024 * 1024, seed=8)
    media.make_random_file(path / "small.bin", 256 * 1024, seed=9)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
async def media_server(media_dir: Path) -> AsyncIterator[MediaServer]:
    async with MediaServer(media_dir) as server:
        yield server


def _config(root: Path, dsn: str, redis_url: str, **sections: dict[str, Any]) -> Any:
    sections.setdefault("queue", {})
    # Rows the tests write straight into PostgreSQL must stay as written: no periodic
    # reconciler pushes a directly inserted `queued` row to the workers mid-test.
    sections["queue"] = {"reconcile_interval_s": 3600, **sections["queue"]}
    return make_config(root, dsn, redis_url, **sections)


@pytest.fixture(scope="session")
async def service(
    page_built: Path, databases: Databases, redis_server: RedisServer
) -> AsyncIterator[Service]:
    """The service the page talks to: no tokens, loopback allowed, no rate limit."""
    root = shared_tmp("mediad-e2e-state-")
    config = _config(root, await databases.create(), redis_server.url)
    async with _running_service(config) as svc:
        yield svc
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
async def token_service(
    page_built: Path, databases: Databases, redis_server: RedisServer
) -> AsyncIterator[Service]:
    """A second service with ``server.api_tokens``: the page must ask for the token."""
    root = shared_tmp("mediad-e2e-tokens-")
    config = _config(
        root,
        await databases.create(),
        redis_server.url,
        server={"api_tokens": [TOKEN]},
        queue={"concurrency": 1},
    )
    async with _running_service(config) as svc:
        yield svc
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
async def api(service: Service) -> AsyncIterator[Api]:
    client = Api(service.base_url)
    yield client
    await client.close()


# -- the browser ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"no Chromium at {CHROMIUM}: apt-get install chromium (or set MEDIAD_TEST_CHROMIUM)",
            pytrace=False,
        )
    playwright = await async_playwright().start()
    try:
        chromium = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        await chromium.close()
    finally:
        await playwright.stop()


class PageErrors:
    """What went wrong inside the page: uncaught exceptions and CSP refusals."""

    def __init__(self) -> None:
        self.uncaught: list[str] = []
        self.csp: list[str] = []

    def watch(self, page: Page) -> Page:
        page.on("pageerror", lambda exc: self.uncaught.append(str(exc)))
        page.on("console", self._console)
        return page

    def _console(self, message: Any) -> None:
        text = message.text
        if message.type == "error" and "Content Security Policy" in text:
            self.csp.append(text)


NewPage = Callable[..., Awaitable[Page]]


@pytest.fixture
async def new_page(
    request: pytest.FixtureRequest, browser: Browser, service: Service, artifacts: Path
) -> AsyncIterator[NewPage]:
    """``await new_page(base_url=..., viewport=..., color_scheme=...)``: a page in a fresh
    context of its own. At the end, a failing test leaves a screenshot of every page, and
    an uncaught exception or a CSP refusal in any page fails the test."""
    contexts: list[BrowserContext] = []
    errors = PageErrors()

    async def make(**options: Any) -> Page:
        options.setdefault("base_url", service.base_url)
        options.setdefault("viewport", {"width": 1280, "height": 800})
        context = await browser.new_context(**options)
        context.set_default_timeout(10_000)
        contexts.append(context)
        return errors.watch(await context.new_page())

    yield make
    try:
        if _failed(request):
            for n, context in enumerate(contexts):
                for m, page in enumerate(context.pages):
                    name = f"FAILED-{request.node.name}-{n}-{m}.png"
                    try:
                        await page.screenshot(path=str(artifacts / name), full_page=True)
                    except Exception:  # a screenshot is a courtesy, not the verdict
                        pass
    finally:
        for context in contexts:
            await context.close()
    assert not errors.uncaught, f"uncaught exceptions in the page: {errors.uncaught}"
    assert not errors.csp, f"the page broke its Content-Security-Policy: {errors.csp}"


@pytest.fixture
async def page(new_page: NewPage) -> Page:
    return await new_page()

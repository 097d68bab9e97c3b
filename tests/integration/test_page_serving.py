"""How the page is served (a stand-in build in a temp folder, the real app and router),
and the API additions the page uses: ``/detect``, list filters, signed file links."""

from __future__ import annotations

import gzip
import hashlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from mediad import config as configuration
from mediad.page import Page, static_root
from mediad.service import Service
from mediad.web import create_app
from tests.support import media
from tests.support.harness import Api, running_service
from tests.support.mediaserver import MediaServer

INDEX = b"<!doctype html><html><head><script type=module src=/assets/app-1a2b3c.js></script></head><body><div id=root></div></body></html>"
SCRIPT = b"console.log('mediad');\n" * 200


def fake_build(root: Path) -> Path:
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_bytes(INDEX)
    (root / "index.html.gz").write_bytes(gzip.compress(INDEX))
    (root / "assets" / "app-1a2b3c.js").write_bytes(SCRIPT)
    (root / "assets" / "app-1a2b3c.js.gz").write_bytes(gzip.compress(SCRIPT))
    (root / "manifest.webmanifest").write_text('{"name": "mediad"}')
    return root


@pytest.fixture
async def page_server(tmp_path: Path) -> AsyncIterator[TestServer]:
    app = create_app(configuration.build({}), page=Page(fake_build(tmp_path / "static")))
    async with TestServer(app, host="127.0.0.1") as server:
        yield server


async def get(server: TestServer, path: str, **headers: str) -> tuple[int, bytes, Any]:
    headers.setdefault("Accept-Encoding", "identity")
    async with (
        aiohttp.ClientSession(auto_decompress=False) as http,
        http.get(server.make_url(path), headers=headers) as resp,
    ):
        return resp.status, await resp.read(), resp.headers


def assert_page_headers(headers: Any, port: int) -> None:
    csp = headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert f"connect-src 'self' ws://127.0.0.1:{port} wss://127.0.0.1:{port}" in csp
    assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp
    assert "frame-ancestors 'none'" in csp
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"
    assert headers["X-Frame-Options"] == "DENY"


async def test_index_is_revalidated_and_carries_the_security_headers(
    page_server: TestServer,
) -> None:
    status, body, headers = await get(page_server, "/")
    assert status == 200 and body == INDEX
    assert headers["Content-Type"].startswith("text/html")
    assert headers["Cache-Control"] == "no-cache"
    assert_page_headers(headers, page_server.port)


async def test_hashed_assets_are_immutable_and_gzipped_when_accepted(
    page_server: TestServer,
) -> None:
    status, body, headers = await get(
        page_server, "/assets/app-1a2b3c.js", **{"Accept-Encoding": "gzip, br"}
    )
    assert status == 200
    assert headers["Content-Encoding"] == "gzip" and gzip.decompress(body) == SCRIPT
    assert headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert "javascript" in headers["Content-Type"]
    status, body, headers = await get(
        page_server, "/assets/app-1a2b3c.js", **{"Accept-Encoding": "identity"}
    )
    assert status == 200 and body == SCRIPT and "Content-Encoding" not in headers


async def test_client_routes_fall_back_to_the_page_for_browsers_only(
    page_server: TestServer,
) -> None:
    html = "text/html,application/xhtml+xml,*/*;q=0.8"
    status, body, headers = await get(page_server, "/share/anything", Accept=html)
    assert status == 200 and body == INDEX and headers["Cache-Control"] == "no-cache"
    # An API client asking for an unknown path keeps its JSON 404.
    status, body, headers = await get(page_server, "/share/anything", Accept="application/json")
    assert status == 404 and headers["Content-Type"].startswith("application/json")
    # API paths and missing assets are never the page, even for a browser.
    for path in ("/downloads/not-routed/x/y", "/files", "/assets/missing-000.js", "/health/x"):
        status, body, headers = await get(page_server, path, Accept=html)
        assert status == 404 and b'"not_found"' in body, path
    # .gz files are served as encodings, never by name.
    status, _, _ = await get(page_server, "/assets/app-1a2b3c.js.gz")
    assert status == 404


async def test_top_level_files_of_the_build(page_server: TestServer) -> None:
    status, body, headers = await get(page_server, "/manifest.webmanifest")
    assert status == 200 and body == b'{"name": "mediad"}'
    assert headers["Content-Type"] == "application/manifest+json"
    assert headers["Cache-Control"] == "no-cache"


async def test_a_missing_build_says_how_to_build_it(tmp_path: Path) -> None:
    app = create_app(configuration.build({}), page=Page(tmp_path / "nothing"))
    async with TestServer(app, host="127.0.0.1") as server:
        status, body, headers = await get(server, "/")
        assert status == 200 and headers["Content-Type"].startswith("text/html")
        assert b"make page" in body and b"npm ci" in body
        assert_page_headers(headers, server.port)
        status, _, _ = await get(server, "/jobs/1", Accept="text/html")
        assert status == 200


def test_the_page_is_found_inside_the_package() -> None:
    import mediad

    assert static_root() == Path(mediad.__file__).parent / "static"


# --- the API additions ----------------------------------------------------------------------


async def test_detect(api: Api) -> None:
    status, body = await api.request(
        "GET", "/detect", params={"url": "https://x.com/jack/status/20"}
    )
    assert status == 200
    assert body["type"] == "twitter" and body["twitter"] == {"kind": "tweet", "id": "20"}
    assert "mediaType" in body["options"] and body["blocked"] is None
    status, body = await api.request("GET", "/detect", params={"url": "https://twitter.com/jack"})
    assert body["twitter"] == {"kind": "user", "name": "jack"}
    status, body = await api.request(
        "GET", "/detect", params={"url": "https://a.example/live.m3u8"}
    )
    assert body == {
        "type": "ffmpeg", "twitter": None, "options": ["container", "notify"], "blocked": None
    }  # fmt: skip
    status, body = await api.request("GET", "/detect", params={"url": "https://a.example/f.iso"})
    assert body["type"] == "aria2" and body["options"] == ["notify"]
    status, body = await api.request("GET", "/detect", params={"url": "http://10.1.2.3/v"})
    assert body["type"] == "ytdlp" and "private" in body["blocked"]
    status, body = await api.request("GET", "/detect", params={"url": "ftp://a.example/f"})
    assert status == 400 and body["error"]["code"] == "unsupported_scheme"
    status, body = await api.request("GET", "/detect")
    assert status == 400 and body["error"]["code"] == "invalid_url"


async def test_detect_takes_the_longest_url_in_any_script(api: Api) -> None:
    url = "https://a.example/" + "名" * (2048 - len("https://a.example/"))
    status, body = await api.request("GET", "/detect", params={"url": url})
    assert status == 200 and body["type"] == "ytdlp"
    status, body = await api.request("GET", "/detect", params={"url": url + "x"})
    assert status == 400 and body["error"]["code"] == "invalid_url"


async def test_list_filters_by_several_statuses_and_searches(
    api: Api, media_server: MediaServer
) -> None:
    marker = f"needle{time.monotonic_ns()}"
    done = await api.submit(media_server.url(f"{marker}_a.mp4"))  # not there: 404
    await api.wait_status(done["jobId"], "failed")
    paused = await api.submit(f"https://unreachable.invalid/{marker}%_b.mp4")
    status, _ = await api.request("POST", f"/downloads/{paused['jobId']}/pause")
    assert status == 200
    other = await api.submit(f"https://unreachable.invalid/{marker}_c.mp4")
    status, _ = await api.request("POST", f"/downloads/{other['jobId']}/cancel")
    assert status == 200

    async def ids(**params: str) -> list[str]:
        status, body = await api.request("GET", "/downloads", params={"q": marker, **params})
        assert status == 200, body
        return [j["jobId"] for j in body["items"]]

    assert await ids() == [other["jobId"], paused["jobId"], done["jobId"]]
    assert await ids(status="failed,paused") == [paused["jobId"], done["jobId"]]
    assert await ids(status="cancelled") == [other["jobId"]]
    # LIKE's wildcards are literal: "%_" matches only the URL that has them.
    assert await ids(q=f"{marker.upper()}%_B") == [paused["jobId"]]
    assert await ids(q=f"{marker}_", limit="1") == [other["jobId"]]
    status, body = await api.request("GET", "/downloads", params={"status": "running,nope"})
    assert status == 400 and body["error"]["code"] == "bad_query"


@pytest.fixture(scope="module")
async def token_service(new_module_config: Any) -> AsyncIterator[Service]:
    config = await new_module_config(server={"api_tokens": ["page-token-0123456789"]})
    async with running_service(config) as service:
        yield service


async def test_file_links_are_signed_when_tokens_are_set(
    token_service: Service, media_server: MediaServer, media_dir: Path
) -> None:
    api = Api(token_service.base_url, token="page-token-0123456789")
    anonymous = Api(token_service.base_url)
    try:
        created = await api.submit(media_server.url("blob.bin"), type="aria2")
        await api.wait_status(created["jobId"], "completed")
        status, listing = await api.request("GET", f"/files/{created['jobId']}")
        assert status == 200 and listing["zipUrl"] is None
        url = listing["files"][0]["url"]
        query = parse_qs(urlsplit(url).query)
        assert query["name"] == ["blob.bin"] and query["signature"] and query["expires"]
        # The signed link works without a token: a <video src> cannot send one.
        async with anonymous.session.get(url) as resp:
            assert resp.status == 200
            digest = hashlib.sha256(await resp.read()).hexdigest()
        assert digest == media.sha256_file(media_dir / "blob.bin")
        # Tampered, for another file, expired, or without the signature: refused.
        signature, expires = query["signature"][0], query["expires"][0]
        base = f"/files/{created['jobId']}/download"
        for params in (
            {"name": "blob.bin", "expires": expires, "signature": "0" * 64},
            {"name": "other.bin", "expires": expires, "signature": signature},
            {"name": "blob.bin", "expires": str(int(expires) + 1), "signature": signature},
            {"name": "blob.bin", "expires": expires},
            {"name": "blob.bin"},
        ):
            status, body = await anonymous.request("GET", base, params=params)
            assert status == 401 and body["error"]["code"] == "unauthorized", params
        status, body = await anonymous.request("GET", f"/files/{created['jobId']}")
        assert status == 401
        # The page and the API description stay open.
        status, _ = await anonymous.request("GET", "/")
        assert status == 200
        status, spec = await anonymous.request("GET", "/openapi.json")
        assert status == 200 and spec["openapi"].startswith("3.1")
    finally:
        await api.close()
        await anonymous.close()


async def test_expired_links_are_refused() -> None:
    from mediad.auth import FileLinks

    links = FileLinks(["t"])
    now = time.time()
    params = links.sign("job", "a.mp4", now)
    assert links.check("job", "a.mp4", params["expires"], params["signature"], now)
    later = now + FileLinks.TTL_S + 1
    assert not links.check("job", "a.mp4", params["expires"], params["signature"], later)
    assert not links.check("job", None, params["expires"], params["signature"], now)
    assert FileLinks([]).sign("job", "a.mp4", now) == {}


async def test_file_links_without_tokens_are_plain(api: Api, media_server: MediaServer) -> None:
    created = await api.submit(media_server.url("video.mp4"), type="aria2")
    await api.wait_status(created["jobId"], "completed")
    status, listing = await api.request("GET", f"/files/{created['jobId']}")
    assert status == 200
    assert listing["files"][0]["url"] == f"/files/{created['jobId']}/download?name=video.mp4"


async def test_a_job_file_is_never_swapped_for_its_gz_sibling(
    api: Api, shared_service: Service, media_server: MediaServer, media_dir: Path
) -> None:
    created = await api.submit(media_server.url("blob.bin"), type="aria2")
    await api.wait_status(created["jobId"], "completed")
    # A job may well have downloaded both NAME and NAME.gz.
    folder = shared_service.config.data_path / created["jobId"]
    (folder / "blob.bin.gz").write_bytes(gzip.compress(b"another file"))
    async with api.session.get(
        f"/files/{created['jobId']}/download",
        params={"name": "blob.bin"},
        headers={"Accept-Encoding": "gzip"},
    ) as resp:
        assert resp.status == 200 and "Content-Encoding" not in resp.headers
        digest = hashlib.sha256(await resp.read()).hexdigest()
    assert digest == media.sha256_file(media_dir / "blob.bin")


async def test_a_new_job_is_announced_to_dashboards(api: Api, shared_service: Service) -> None:
    from tests.support.harness import eventually
    from tests.support.jobs_client import JobsClient

    async with JobsClient(shared_service.base_url) as client:
        assert (await client.subscribe(all=True))["ok"] is True
        created = await api.submit("https://unreachable.invalid/new.mp4")
        await api.request("POST", f"/downloads/{created['jobId']}/cancel")
        cancelled = ("job-update", "cancelled")
        await eventually(
            lambda: cancelled in [(n, e.get("status")) for n, e in client.of(created["jobId"])],
            what="the job-update of the cancel",
        )
        assert client.of(created["jobId"])[0] == (
            "job-update",
            {"jobId": created["jobId"], "status": "queued", "stage": "queued", "progress": 0},
        )

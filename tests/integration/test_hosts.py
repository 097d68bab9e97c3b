"""DNS rebinding: a request naming a host that is not allowed — a web page's own name
re-pointed at 127.0.0.1 — is refused on REST, the page and the Socket.IO handshake, while
loopback names and the configured ones keep working."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import socketio

from mediad.service import Service
from tests.support.harness import Api, running_service

EVIL = "rebind.evil.example"
HANDSHAKE = "/socket.io/?EIO=4&transport=polling"


def host_header(service: Service, host: str) -> dict[str, str]:
    name = f"{host}:{service.port}"
    return {"Host": name, "Origin": f"http://{name}"}


async def raw(
    service: Service, method: str, path: str, host: str, **kwargs: Any
) -> tuple[int, dict[str, str], bytes]:
    headers = {**host_header(service, host), **kwargs.pop("headers", {})}
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, service.base_url + path, headers=headers, **kwargs) as resp,
    ):
        return resp.status, dict(resp.headers), await resp.read()


def assert_refused(status: int, headers: dict[str, str], body: bytes) -> None:
    import orjson

    assert status == 403, (status, body[:300])
    error = orjson.loads(body)["error"]
    assert error["code"] == "host_not_allowed" and EVIL in error["message"], error
    assert "Access-Control-Allow-Origin" not in headers


async def job_count(api: Api) -> int:
    status, body = await api.request("GET", "/downloads", params={"limit": "200"})
    assert status == 200
    return len(body["items"])


async def test_a_rebinding_host_gets_nothing_from_rest(
    shared_service: Service, api: Api, media_server: Any
) -> None:
    before = await job_count(api)
    body = {"url": "https://example.com/video.mp4"}
    assert_refused(*await raw(shared_service, "POST", "/downloads", EVIL, json=body))
    assert_refused(*await raw(shared_service, "GET", "/downloads", EVIL))
    assert_refused(*await raw(shared_service, "GET", "/", EVIL, headers={"Accept": "text/html"}))
    assert_refused(*await raw(shared_service, "GET", "/no/such/route", EVIL))
    assert await job_count(api) == before  # no job was created


async def test_a_rebinding_host_gets_no_socketio_session(shared_service: Service) -> None:
    status, headers, body = await raw(shared_service, "GET", HANDSHAKE, EVIL)
    assert_refused(status, headers, body)
    # The websocket transport's upgrade request is refused the same way.
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await http.ws_connect(
                shared_service.base_url + "/socket.io/?EIO=4&transport=websocket",
                headers=host_header(shared_service, EVIL),
            )
        assert info.value.status == 403
    # And a real Socket.IO client gets no connection.
    sio = socketio.AsyncClient(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await sio.connect(
            shared_service.base_url,
            namespaces=["/jobs"],
            headers=host_header(shared_service, EVIL),
            wait_timeout=5,
        )
    await sio.disconnect()


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "localhost", "LOCALHOST.", "app.localhost", "127.0.0.2", "[::1]"]
)
async def test_loopback_names_and_addresses_are_served(shared_service: Service, host: str) -> None:
    status, _, body = await raw(shared_service, "GET", "/downloads", host)
    assert status == 200, body[:300]
    status, _, body = await raw(shared_service, "GET", HANDSHAKE, host)
    assert status == 200 and body.startswith(b"0{"), body[:300]


async def test_a_client_without_a_host_header_is_served(shared_service: Service) -> None:
    """HTTP/1.0 without Host comes from no browser: nothing to rebind."""
    import asyncio

    reader, writer = await asyncio.open_connection("127.0.0.1", shared_service.port)
    try:
        writer.write(b"GET /health HTTP/1.0\r\n\r\n")
        await writer.drain()
        head = await asyncio.wait_for(reader.readline(), 10)
    finally:
        writer.close()
    assert head.split()[1] == b"200", head


@pytest.fixture(scope="module")
async def configured_service(new_module_config: Any) -> AsyncIterator[Service]:
    config = await new_module_config(
        server={"allowed_hosts": ["media.lan", "*.home.arpa", "192.168.0.0/16"]},
        workers={"processes": 1},
    )
    async with running_service(config) as service:
        yield service


@pytest.mark.parametrize(
    ("host", "served"),
    [
        ("media.lan", True),
        ("MEDIA.LAN.", True),
        ("box.home.arpa", True),
        ("home.arpa", False),  # *.domain is for the subdomains
        ("192.168.1.20", True),
        ("10.0.0.1", False),
        ("localhost", True),
        (EVIL, False),
        ("media.lan.evil.example", False),
    ],
)
async def test_server_allowed_hosts_adds_names(
    configured_service: Service, host: str, served: bool
) -> None:
    status, _, _ = await raw(configured_service, "GET", "/downloads", host)
    assert status == (200 if served else 403)
    status, _, _ = await raw(configured_service, "GET", HANDSHAKE, host)
    assert status == (200 if served else 403)


async def test_star_lets_every_host_in_on_purpose(new_config: Any) -> None:
    config = await new_config(server={"allowed_hosts": ["*"]}, workers={"processes": 1})
    async with running_service(config) as service:
        status, _, _ = await raw(service, "GET", "/downloads", EVIL)
        assert status == 200

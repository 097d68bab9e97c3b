"""Small things: the Bearer scheme is case-insensitive (RFC 7235) on REST and on the
socket, and the API's early check sees through full-width and circled ``localhost``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import socketio

from mediad.service import Service
from tests.support.harness import Api, running_service

TOKEN = "small-things-token-0123456789"


@pytest.fixture(scope="module")
async def token_service(new_module_config: Any) -> AsyncIterator[Service]:
    config = await new_module_config(server={"api_tokens": [TOKEN]}, workers={"processes": 1})
    async with running_service(config) as service:
        yield service


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
async def test_the_bearer_scheme_is_case_insensitive_on_rest(
    token_service: Service, scheme: str
) -> None:
    api = Api(token_service.base_url)
    try:
        headers = {"Authorization": f"{scheme} {TOKEN}"}
        status, body = await api.request("GET", "/downloads", headers=headers)
        assert status == 200, body
        status, _ = await api.request("GET", "/downloads", headers={"Authorization": f"{scheme} x"})
        assert status == 401
        status, _ = await api.request(
            "GET", "/downloads", headers={"Authorization": f"Basic {TOKEN}"}
        )
        assert status == 401
    finally:
        await api.close()


@pytest.mark.parametrize("scheme", ["Bearer", "bearer"])
async def test_the_bearer_scheme_is_case_insensitive_on_the_socket(
    token_service: Service, scheme: str
) -> None:
    sio = socketio.AsyncClient(reconnection=False)
    try:
        await sio.connect(
            token_service.base_url,
            namespaces=["/jobs"],
            headers={"Authorization": f"{scheme} {TOKEN}"},
            transports=["websocket"],
            wait_timeout=5,
        )
        answer = await sio.call("subscribe", {"all": True}, namespace="/jobs", timeout=5)
        assert answer == {"ok": True}
    finally:
        await sio.disconnect()


def full_width(text: str) -> str:
    return "".join(chr(ord(ch) + 0xFEE0) for ch in text)


def circled(text: str) -> str:
    return "".join(chr(ord(ch) - ord("a") + 0x24D0) for ch in text)


@pytest.mark.parametrize(
    "host",
    [
        full_width("localhost"),
        circled("localhost"),
        "LocalHost\u3002",  # an ideographic final dot
        "media." + full_width("localhost"),
    ],
    ids=["full-width", "circled", "ideographic-dot", "subdomain"],
)
async def test_unicode_forms_of_localhost_are_refused_early(api: Api, host: str) -> None:
    status, body = await api.request(
        "POST", "/downloads", json={"url": f"http://{host}:8080/video.mp4"}
    )
    assert status == 400, body
    assert body["error"]["code"] == "blocked_address"
    assert "localhost" in body["error"]["message"]

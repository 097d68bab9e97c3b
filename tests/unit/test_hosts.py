"""mediad.hosts: the Host allow-list (DNS rebinding) and its configuration."""

from __future__ import annotations

import pytest

from mediad import config
from mediad.config import ConfigError
from mediad.hosts import AllowedHosts, split_host


@pytest.mark.parametrize(
    ("header", "host"),
    [
        ("localhost", "localhost"),
        ("localhost:8080", "localhost"),
        ("127.0.0.1:80", "127.0.0.1"),
        ("[::1]:8080", "::1"),
        ("[::1]", "::1"),
        ("media.lan.", "media.lan."),
        ("::1", None),  # IPv6 needs brackets
        ("a:b:c", None),
        ("host:port", None),
        ("user@host", None),
        ("", None),
        ("[::1]x", None),
    ],
)
def test_split_host(header: str, host: str | None) -> None:
    assert split_host(header) == host


def test_the_defaults_are_loopback_and_the_configured_host() -> None:
    allowed = AllowedHosts("mediad.example")
    for ok in (
        "localhost:1",
        "127.0.0.1:1",
        "127.9.9.9",
        "[::1]:1",
        "a.localhost",
        "mediad.example",
    ):
        assert allowed.allows(ok), ok
    for bad in ("rebind.evil.example:1", "10.0.0.1", "mediad.example.evil", "localhost.evil"):
        assert not allowed.allows(bad), bad
    assert allowed.allows(None)  # HTTP/1.0 without Host


def test_a_wildcard_bind_adds_no_host() -> None:
    assert not AllowedHosts("0.0.0.0").allows("0.0.0.0:8080")
    assert not AllowedHosts("::").allows("[::]:8080")


def test_names_are_compared_in_their_idna_form() -> None:
    allowed = AllowedHosts("127.0.0.1", ["bücher.lan"])
    assert allowed.allows("xn--bcher-kva.lan:8080")
    assert allowed.allows("BÜCHER.LAN")


def test_star_is_everything() -> None:
    assert AllowedHosts("127.0.0.1", ["*"]).allows("rebind.evil.example")


def test_config_key_env_override_and_errors() -> None:
    c = config.load(None, env={"MEDIAD_SERVER_ALLOWED_HOSTS": "media.lan, *.home.arpa,*"})
    assert c.server.allowed_hosts == ("media.lan", "*.home.arpa", "*")
    assert config.load(None, env={}).server.allowed_hosts == ()
    with pytest.raises(ConfigError) as info:
        config.load(None, env={"MEDIAD_SERVER_ALLOWED_HOSTS": "bad name!"})
    assert info.value.key == "server.allowed_hosts"
    assert "bad name!" in str(info.value)


def test_a_host_naming_the_address_the_connection_came_in_on_is_served() -> None:
    """Bound to 0.0.0.0, http://192.168.1.20:8080 reaches the server by its own address:
    no name, nothing to rebind."""
    allowed = AllowedHosts("0.0.0.0")
    assert allowed.allows("192.168.1.20:8080", "192.168.1.20")
    assert allowed.allows("192.168.1.20", "::ffff:192.168.1.20")
    assert not allowed.allows("192.168.1.21:8080", "192.168.1.20")
    assert not allowed.allows("rebind.evil.example:8080", "192.168.1.20")


@pytest.mark.parametrize(
    ("header", "asks_for_the_address", "served"),
    [
        ("localhost:8080", False, True),  # allowed anywhere: the address is never asked for
        ("192.168.1.20:8080", True, True),  # the address the connection came in on
        ("192.168.1.21:8080", True, False),
        ("rebind.evil.example", True, False),
    ],
)
async def test_the_middleware_asks_for_the_local_address_only_when_it_decides(
    header: str, asks_for_the_address: bool, served: bool
) -> None:
    from unittest import mock

    from aiohttp import web
    from aiohttp.test_utils import make_mocked_request

    from mediad.hosts import HostNotAllowed, middleware

    transport = mock.Mock()
    transport.get_extra_info.return_value = ("192.168.1.20", 8080)
    request = make_mocked_request("GET", "/", headers={"Host": header}, transport=transport)
    transport.get_extra_info.reset_mock()  # what the request itself asked for

    async def handler(_: web.Request) -> web.StreamResponse:
        return web.Response(text="ok")

    check = middleware("0.0.0.0", [])
    if served:
        assert (await check(request, handler)).status == 200
    else:
        with pytest.raises(HostNotAllowed):
            await check(request, handler)
    asked = [c.args[0] for c in transport.get_extra_info.call_args_list]
    assert ("sockname" in asked) is asks_for_the_address

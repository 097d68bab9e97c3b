"""mediad.connections: the connection cap from the open-file limit, and the config keys."""

from __future__ import annotations

import pytest

from mediad import config
from mediad.config import ConfigError
from mediad.connections import FD_RESERVE, MIN_CONNECTIONS, connection_cap


def test_the_total_leaves_room_for_everything_else() -> None:
    assert connection_cap(0, 1024) == 1024 - FD_RESERVE
    assert connection_cap(500, 1024) == 500
    assert connection_cap(5000, 1024) == 1024 - FD_RESERVE  # never past the limit
    assert connection_cap(0, 100) == MIN_CONNECTIONS


def test_defaults_and_environment() -> None:
    server = config.load(None, env={}).server
    assert (server.header_timeout_s, server.body_timeout_s) == (10.0, 30.0)
    assert (server.max_connections_per_client, server.max_connections) == (256, 0)
    env = {"MEDIAD_SERVER_HEADER_TIMEOUT_S": "5", "MEDIAD_SERVER_MAX_CONNECTIONS_PER_CLIENT": "0"}
    server = config.load(None, env=env).server
    assert server.header_timeout_s == 5.0 and server.max_connections_per_client == 0


@pytest.mark.parametrize(
    ("key", "value"),
    [("header_timeout_s", "0"), ("body_timeout_s", "99999"), ("max_connections", "-1")],
)
def test_bad_values_name_the_key(key: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        config.load(None, env={f"MEDIAD_SERVER_{key.upper()}": value})
    assert info.value.key == f"server.{key}"

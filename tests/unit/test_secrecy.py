"""mediad.secrecy: one rule for what is secret, for printing and for child environments."""

from __future__ import annotations

import pytest

from mediad.config import NAMED_ENV
from mediad.secrecy import (
    child_environment,
    is_mediad_setting,
    is_secret_key,
    mask,
    mask_text,
    server_environment,
    worker_environment,
)


@pytest.mark.parametrize(
    "name",
    ["api_tokens", "token", "WORKER_TOKEN", "aria2Secret", "password", "sslpassword",
     "AWS_SECRET_ACCESS_KEY", "SOME_API_KEY", "apikey", "db_pass", "credentials"],
)  # fmt: skip
def test_secret_like_keys(name: str) -> None:
    assert is_secret_key(name)


@pytest.mark.parametrize(
    "name", ["url", "host", "cookies_path", "allow_hosts", "PATH", "HOME", "prefix", "monkey"]
)
def test_ordinary_keys(name: str) -> None:
    assert not is_secret_key(name)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("redis://:PASS@h:6379/0", "redis://:***@h:6379/0"),
        ("http://user:PASS@proxy:3128", "http://user:***@proxy:3128"),
        ("https://TOKEN@h/x", "https://***@h/x"),
        ("redis://:p@ss@h/0", "redis://:***@h/0"),  # an unescaped @ in the password
        (
            "postgresql://u@/db?host=/run&password=PASS",
            "postgresql://***@/db?host=/run&password=***",
        ),
        ("a http://u:P1@h1, http://u:P2@h2 b", "a http://u:***@h1, http://u:***@h2 b"),
        ("http://h/path?q=a@b", "http://h/path?q=a@b"),
        ("unix:///run/redis.sock", "unix:///run/redis.sock"),
        ("plain text: user@example.com", "plain text: user@example.com"),
    ],
)
def test_credentials_in_urls_are_hidden(text: str, shown: str) -> None:
    assert mask_text(text) == shown


def test_mask_applies_the_rule_at_every_depth() -> None:
    data = {
        "server": {"api_tokens": ["a" * 16], "cors_origins": ["https://u:P@o.example"]},
        "workers": {"token": None},
        "twitter": {"proxy": "http://u:P@p:1"},
        "other": {"nested": {"client_secret": "S", "list": [{"password": "P"}]}},
    }
    assert mask(data) == {
        "server": {"api_tokens": "<set>", "cors_origins": ["https://u:***@o.example"]},
        "workers": {"token": None},
        "twitter": {"proxy": "http://u:***@p:1"},
        "other": {"nested": {"client_secret": "<set>", "list": [{"password": "<set>"}]}},
    }


def test_child_environment_keeps_nothing_of_mediads_and_nothing_secret() -> None:
    env = child_environment(
        {
            "PATH": "/usr/bin",
            "HOME": "/root",
            "LANG": "C.UTF-8",
            "MEDIAD_SERVER_API_TOKENS": "t",
            "MEDIAD_STORAGE_STATE_DIR": "/x",
            "DATABASE_URL": "postgresql://h/d",
            "REDIS_URL": "redis://h",
            "WORKER_TOKEN": "t",
            "TWITTER_PROXY": "http://p",
            "TWMD_PATH": "/opt/twmd",
            "GITHUB_TOKEN": "t",
            "MIRROR": "https://u:PASS@m.example/",
            "PGPASSWORD": "p",
        }
    )
    assert env == {"PATH": "/usr/bin", "HOME": "/root", "LANG": "C.UTF-8"}


def test_every_variable_the_configuration_reads_is_mediads_own() -> None:
    # One list: the names config.py reads are the names no child inherits.
    assert NAMED_ENV and all(is_mediad_setting(name) for name in NAMED_ENV)
    assert not child_environment({name: "x" for name in NAMED_ENV})
    assert not is_mediad_setting("PATH") and not is_mediad_setting("TWMD_STANDIN_MEDIA_URL")


OUTSIDE = {
    "PATH": "/usr/bin",
    "PGDATA": "/elsewhere",
    "PGPORT": "6543",
    "PAGER": "less",
    "MEDIAD_TWMD_IDLE_S": "5",
    "MEDIAD_WORKER_TOKEN": "t",
    "WORKER_TOKEN": "t",
    "GITHUB_TOKEN": "t",
}


def test_a_server_gets_no_postgresql_variables_either() -> None:
    assert server_environment(OUTSIDE) == {"PATH": "/usr/bin", "PAGER": "less"}


def test_a_worker_keeps_the_twmd_limits_and_nothing_else_of_mediads() -> None:
    assert worker_environment(OUTSIDE) == {
        "PATH": "/usr/bin",
        "PGDATA": "/elsewhere",
        "PGPORT": "6543",
        "PAGER": "less",
        "MEDIAD_TWMD_IDLE_S": "5",
    }


def test_kept_and_dropped_prefixes() -> None:
    env = {"PATH": "/usr/bin", "MEDIAD_X_TOKEN": "t", "KEEPME_TOKEN": "k", "DROP_A": "a"}
    assert child_environment(env) == {"PATH": "/usr/bin", "DROP_A": "a"}
    assert child_environment(env, keep_prefixes=("KEEPME_",), drop_prefixes=("DROP_",)) == {
        "PATH": "/usr/bin",
        "KEEPME_TOKEN": "k",
    }


def test_a_notification_targets_address_is_hidden_but_its_host() -> None:
    targets = [
        {"name": "chat", "url": "https://u:p@chat.example:8443/hooks/123/TOKEN?x=1",
         "apprise": None, "secret": "SIGN", "events": ["completed"], "default": True},
        {"name": "phone", "url": None, "apprise": "tgram://BOTTOKEN/12345", "secret": None,
         "events": ["failed"], "default": False},
    ]  # fmt: skip
    shown = mask({"notify": targets})["notify"]
    assert shown[0]["url"] == "https://chat.example:8443/***"
    assert shown[0]["secret"] == "<set>" and shown[1]["apprise"] == "<set>"
    assert shown[1]["url"] is None and shown[0]["events"] == ["completed"]
    # Elsewhere a "url" key keeps its path (only credentials go).
    assert mask({"url": "https://example.com/a/b"}) == {"url": "https://example.com/a/b"}

"""mediad.secrecy: one rule for what is secret, for printing and for child environments."""

from __future__ import annotations

import pytest

from mediad.secrecy import child_environment, is_secret_key, mask, mask_text


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

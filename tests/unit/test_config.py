"""mediad.config: defaults, YAML, environment overrides, and one-line errors for bad values."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from mediad import config
from mediad.config import Config, ConfigError

TOKEN = "t" * 16


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mediad.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def config_error(
    raw: Any = None,
    *,
    text: str | None = None,
    env: dict[str, str] | None = None,
    tmp_path: Path | None = None,
) -> ConfigError:
    """The ConfigError that building ``raw`` (or loading ``text`` with ``env``) raises."""
    with pytest.raises(ConfigError) as info:
        if raw is not None:
            config.build(raw)
        else:
            assert tmp_path is not None
            path = write(tmp_path, text) if text is not None else None
            config.load(path, env=env or {})
    return info.value


def assert_one_line(exc: ConfigError, key: str) -> None:
    message = str(exc)
    assert "\n" not in message and "\r" not in message
    assert message.startswith(f"config: {key}: "), message
    assert exc.key == key


# --- defaults -------------------------------------------------------------------------------


def test_defaults_without_file_or_env() -> None:
    c = config.load(None, env={})
    assert c.server.host == "127.0.0.1"
    assert c.server.port == 8080
    assert c.server.api_tokens == ()
    assert c.database.url is None
    assert c.redis.url is None
    assert c.redis.prefix == "mediad:"
    assert c.queue.concurrency == 3
    assert c.queue.max_attempts == 3
    assert c.queue.watchdog_s == 60.0
    assert c.progress.throttle_ms == 333
    assert c.workers.token is None
    assert c.logging.level == "info"


def test_default_state_dir_holds_data_and_tmp() -> None:
    c = config.load(None, env={})
    assert c.state_path == config.default_state_dir()
    assert c.state_path.is_absolute()
    assert c.data_path == c.state_path / "data"
    assert c.tmp_path == c.state_path / "tmp"


@pytest.mark.skipif(os.geteuid() != 0, reason="the root default needs root")
def test_default_state_dir_as_root() -> None:
    c = config.load(None, env={})
    assert c.storage.state_dir == "/var/lib/mediad"
    assert c.storage.data_dir == "/var/lib/mediad/data"
    assert c.storage.tmp_dir == "/var/lib/mediad/tmp"


def test_explicit_state_dir_moves_data_and_tmp(tmp_path: Path) -> None:
    c = config.build({"storage": {"state_dir": str(tmp_path / "state")}})
    assert c.state_path == tmp_path / "state"
    assert c.data_path == tmp_path / "state" / "data"
    assert c.tmp_path == tmp_path / "state" / "tmp"


def test_explicit_data_and_tmp_dirs_win(tmp_path: Path) -> None:
    c = config.build(
        {
            "storage": {
                "state_dir": str(tmp_path / "s"),
                "data_dir": str(tmp_path / "d"),
                "tmp_dir": str(tmp_path / "t"),
            }
        }
    )
    assert c.data_path == tmp_path / "d"
    assert c.tmp_path == tmp_path / "t"


def test_relative_paths_are_made_absolute() -> None:
    c = config.build({"storage": {"state_dir": "rel/state"}})
    assert c.state_path == Path.cwd() / "rel" / "state"
    assert c.data_path.is_absolute()


def test_worker_processes_follows_concurrency() -> None:
    assert config.build({}).worker_processes == 3
    assert config.build({"queue": {"concurrency": 7}}).worker_processes == 7
    assert (
        config.build({"queue": {"concurrency": 7}, "workers": {"processes": 2}}).worker_processes
        == 2
    )
    assert config.build({"workers": {"processes": 0}}).worker_processes == 0


def test_config_is_frozen() -> None:
    c = config.build({})
    with pytest.raises(AttributeError):
        c.queue.concurrency = 5  # type: ignore[misc]


# --- YAML -----------------------------------------------------------------------------------


def test_yaml_file_is_loaded(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""
server:
  host: 0.0.0.0
  port: 9000
  api_tokens: [{TOKEN}, {"u" * 20}]
  cors_origins: ["https://app.example"]
database:
  url: postgresql://u:p@db/mediad
redis:
  url: redis://cache:6379/0
  prefix: "md:"
storage:
  state_dir: {tmp_path / "state"}
queue:
  concurrency: 5
  max_attempts: 4
  watchdog_s: 30
progress:
  throttle_ms: 500
workers:
  token: {TOKEN}
tools:
  twmd: /opt/twmd
twitter:
  cookies_path: /etc/cookies.txt
  proxy: http://proxy:3128
network:
  allow_private: true
  allow_hosts: [media.local]
logging:
  level: debug
  format: text
""",
    )
    c = config.load(path, env={})
    assert c.server.host == "0.0.0.0"
    assert c.server.port == 9000
    assert c.server.api_tokens == (TOKEN, "u" * 20)
    assert c.server.cors_origins == ("https://app.example",)
    assert c.database.url == "postgresql://u:p@db/mediad"
    assert c.redis.url == "redis://cache:6379/0"
    assert c.redis.prefix == "md:"
    assert c.state_path == tmp_path / "state"
    assert c.queue.concurrency == 5
    assert c.queue.max_attempts == 4
    assert c.queue.watchdog_s == 30.0
    assert isinstance(c.queue.watchdog_s, float)
    assert c.progress.throttle_ms == 500
    assert c.workers.token == TOKEN
    assert c.tools.twmd == "/opt/twmd"
    assert c.twitter.cookies_path == "/etc/cookies.txt"
    assert c.twitter.proxy == "http://proxy:3128"
    assert c.network.allow_private is True
    assert c.network.allow_hosts == ("media.local",)
    assert c.logging.level == "debug"
    assert c.logging.format == "text"


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n"])
def test_empty_yaml_gives_defaults(tmp_path: Path, text: str) -> None:
    assert config.load(write(tmp_path, text), env={}) == config.load(None, env={})


def test_empty_section_gives_defaults(tmp_path: Path) -> None:
    c = config.load(write(tmp_path, "queue:\nserver:\n"), env={})
    assert c.queue == config.QueueConfig()


def test_config_path_from_mediad_config_env(tmp_path: Path) -> None:
    path = write(tmp_path, "queue:\n  concurrency: 9\n")
    assert config.load(None, env={"MEDIAD_CONFIG": str(path)}).queue.concurrency == 9


def test_explicit_path_beats_mediad_config_env(tmp_path: Path) -> None:
    path = write(tmp_path, "queue:\n  concurrency: 9\n")
    other = tmp_path / "other.yaml"
    other.write_text("queue:\n  concurrency: 4\n")
    assert config.load(path, env={"MEDIAD_CONFIG": str(other)}).queue.concurrency == 9


def test_single_string_for_a_list_becomes_a_one_item_tuple() -> None:
    c = config.build({"network": {"allow_hosts": "media.local"}})
    assert c.network.allow_hosts == ("media.local",)


def test_number_for_a_string_key_is_accepted_as_text() -> None:
    assert config.build({"twitter": {"proxy": 12}}).twitter.proxy == "12"


# --- environment ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "section", "key", "expected"),
    [
        ({"MEDIAD_QUEUE_CONCURRENCY": "2"}, "queue", "concurrency", 2),
        ({"MEDIAD_QUEUE_MAX_ATTEMPTS": "5"}, "queue", "max_attempts", 5),
        ({"MEDIAD_QUEUE_WATCHDOG_S": "12.5"}, "queue", "watchdog_s", 12.5),
        ({"MEDIAD_SERVER_PORT": "0"}, "server", "port", 0),
        ({"MEDIAD_SERVER_HOST": "127.0.0.5"}, "server", "host", "127.0.0.5"),
        (
            {"MEDIAD_SERVER_API_TOKENS": f"{'a' * 16},{'b' * 16}"},
            "server",
            "api_tokens",
            ("a" * 16, "b" * 16),
        ),
        (
            {"MEDIAD_SERVER_API_TOKENS": f" {'a' * 16} , ,{'b' * 16}, "},
            "server",
            "api_tokens",
            ("a" * 16, "b" * 16),
        ),
        ({"MEDIAD_SERVER_API_TOKENS": ""}, "server", "api_tokens", ()),
        (
            {"MEDIAD_NETWORK_ALLOW_HOSTS": "a.local,b.local"},
            "network",
            "allow_hosts",
            ("a.local", "b.local"),
        ),
        ({"MEDIAD_NETWORK_ALLOW_PRIVATE": "true"}, "network", "allow_private", True),
        ({"MEDIAD_NETWORK_ALLOW_PRIVATE": "YES"}, "network", "allow_private", True),
        ({"MEDIAD_NETWORK_ALLOW_PRIVATE": "1"}, "network", "allow_private", True),
        ({"MEDIAD_NETWORK_ALLOW_PRIVATE": "off"}, "network", "allow_private", False),
        ({"MEDIAD_NETWORK_ALLOW_PRIVATE": "0"}, "network", "allow_private", False),
        ({"MEDIAD_REDIS_PREFIX": "x:"}, "redis", "prefix", "x:"),
        ({"MEDIAD_WORKERS_PROCESSES": "1"}, "workers", "processes", 1),
        ({"MEDIAD_WORKERS_PROCESSES": ""}, "workers", "processes", None),
        ({"MEDIAD_LOGGING_LEVEL": "warning"}, "logging", "level", "warning"),
        ({"MEDIAD_DATABASE_URL": "postgres://h/db"}, "database", "url", "postgres://h/db"),
        ({"DATABASE_URL": "postgresql://h/db"}, "database", "url", "postgresql://h/db"),
        ({"REDIS_URL": "redis://h:6379/1"}, "redis", "url", "redis://h:6379/1"),
        ({"REDIS_URL": "unix:///run/redis.sock"}, "redis", "url", "unix:///run/redis.sock"),
        ({"WORKER_TOKEN": TOKEN}, "workers", "token", TOKEN),
        ({"TWMD_PATH": "/usr/local/bin/twmd"}, "tools", "twmd", "/usr/local/bin/twmd"),
        ({"TWITTER_COOKIES_PATH": "/c.txt"}, "twitter", "cookies_path", "/c.txt"),
        ({"TWITTER_PROXY": "socks5://p:1080"}, "twitter", "proxy", "socks5://p:1080"),
    ],
)
def test_env_overrides(env: dict[str, str], section: str, key: str, expected: Any) -> None:
    c = config.load(None, env=env)
    assert getattr(getattr(c, section), key) == expected


def test_env_wins_over_yaml(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "queue:\n  concurrency: 5\ndatabase:\n  url: postgres://yaml/db\n"
        f"workers:\n  token: {'y' * 16}\ntools:\n  twmd: /yaml/twmd\n",
    )
    env = {
        "MEDIAD_QUEUE_CONCURRENCY": "2",
        "DATABASE_URL": "postgres://env/db",
        "WORKER_TOKEN": "e" * 16,
        "TWMD_PATH": "/env/twmd",
    }
    c = config.load(path, env=env)
    assert c.queue.concurrency == 2
    assert c.database.url == "postgres://env/db"
    assert c.workers.token == "e" * 16
    assert c.tools.twmd == "/env/twmd"


def test_env_keeps_other_yaml_keys_of_the_section(tmp_path: Path) -> None:
    path = write(tmp_path, "queue:\n  concurrency: 5\n  max_attempts: 7\n")
    c = config.load(path, env={"MEDIAD_QUEUE_CONCURRENCY": "2"})
    assert (c.queue.concurrency, c.queue.max_attempts) == (2, 7)


def test_env_wins_over_an_empty_yaml_section(tmp_path: Path) -> None:
    # "queue:" with every key commented out parses as None; the env must still apply.
    path = write(tmp_path, "queue:\n  # concurrency: 5\n")
    c = config.load(path, env={"MEDIAD_QUEUE_CONCURRENCY": "2"})
    assert c.queue.concurrency == 2


def test_named_env_beats_mediad_env() -> None:
    env = {"MEDIAD_DATABASE_URL": "postgres://a/db", "DATABASE_URL": "postgres://b/db"}
    assert config.load(None, env=env).database.url == "postgres://b/db"


def test_empty_named_env_is_ignored(tmp_path: Path) -> None:
    path = write(tmp_path, "database:\n  url: postgres://yaml/db\n")
    assert config.load(path, env={"DATABASE_URL": ""}).database.url == "postgres://yaml/db"


@pytest.mark.parametrize(
    "name", ["MEDIAD_NOSECTION_KEY", "MEDIAD_QUEUE", "MEDIAD_", "OTHER_QUEUE_CONCURRENCY", "PATH"]
)
def test_unrelated_env_is_ignored(name: str) -> None:
    assert config.load(None, env={name: "x"}) == config.load(None, env={})


def test_load_uses_only_the_given_env() -> None:
    assert config.load(None, env={}).queue.concurrency == 3


# --- bad values -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        # unknown names
        ({"bogus": {}}, "bogus"),
        ({"queue": {"bogus": 1}}, "queue.bogus"),
        ({"queue": {"concurency": 1}}, "queue.concurency"),
        # a section that is not a mapping
        ({"queue": 3}, "queue"),
        ({"queue": [1, 2]}, "queue"),
        ({"server": "localhost"}, "server"),
        # wrong types
        ({"queue": {"concurrency": True}}, "queue.concurrency"),
        ({"queue": {"concurrency": "2"}}, "queue.concurrency"),
        ({"queue": {"concurrency": 2.5}}, "queue.concurrency"),
        ({"queue": {"concurrency": 2.0}}, "queue.concurrency"),
        ({"queue": {"concurrency": None}}, "queue.concurrency"),
        ({"queue": {"watchdog_s": "60"}}, "queue.watchdog_s"),
        ({"queue": {"watchdog_s": False}}, "queue.watchdog_s"),
        ({"server": {"port": [80]}}, "server.port"),
        ({"server": {"host": True}}, "server.host"),
        ({"server": {"host": ["a"]}}, "server.host"),
        ({"server": {"host": {"a": 1}}}, "server.host"),
        ({"server": {"api_tokens": [1, 2]}}, "server.api_tokens"),
        ({"server": {"api_tokens": [TOKEN, None]}}, "server.api_tokens"),
        ({"server": {"api_tokens": {"a": TOKEN}}}, "server.api_tokens"),
        ({"server": {"api_tokens": 12345}}, "server.api_tokens"),
        ({"network": {"allow_private": "yes"}}, "network.allow_private"),
        ({"network": {"allow_private": 1}}, "network.allow_private"),
        ({"network": {"allow_hosts": [["a"]]}}, "network.allow_hosts"),
        ({"database": {"url": 5432}}, "database.url"),
        # out of range
        ({"queue": {"concurrency": 0}}, "queue.concurrency"),
        ({"queue": {"concurrency": 65}}, "queue.concurrency"),
        ({"queue": {"concurrency": -1}}, "queue.concurrency"),
        ({"queue": {"max_attempts": 0}}, "queue.max_attempts"),
        ({"queue": {"max_attempts": 101}}, "queue.max_attempts"),
        ({"queue": {"watchdog_s": 0}}, "queue.watchdog_s"),
        ({"queue": {"watchdog_s": float("nan")}}, "queue.watchdog_s"),
        ({"queue": {"watchdog_s": float("inf")}}, "queue.watchdog_s"),
        ({"queue": {"retry_backoff_s": -1}}, "queue.retry_backoff_s"),
        ({"queue": {"reconcile_interval_s": 0.5}}, "queue.reconcile_interval_s"),
        ({"server": {"port": -1}}, "server.port"),
        ({"server": {"port": 65536}}, "server.port"),
        ({"server": {"max_body_bytes": 10}}, "server.max_body_bytes"),
        ({"server": {"shutdown_grace_s": -0.1}}, "server.shutdown_grace_s"),
        ({"database": {"pool_min": 0}}, "database.pool_min"),
        ({"database": {"pool_min": 5, "pool_max": 4}}, "database.pool_max"),
        ({"database": {"pool_max": 101}}, "database.pool_max"),
        ({"progress": {"throttle_ms": 9}}, "progress.throttle_ms"),
        ({"progress": {"throttle_ms": 60_001}}, "progress.throttle_ms"),
        ({"progress": {"worker_hz": 0}}, "progress.worker_hz"),
        ({"progress": {"worker_hz": 101}}, "progress.worker_hz"),
        ({"workers": {"processes": -1}}, "workers.processes"),
        ({"workers": {"processes": 65}}, "workers.processes"),
        ({"workers": {"heartbeat_s": 0}}, "workers.heartbeat_s"),
        # URLs
        ({"database": {"url": "mysql://h/db"}}, "database.url"),
        ({"database": {"url": "h/db"}}, "database.url"),
        ({"database": {"url": ""}}, "database.url"),
        ({"redis": {"url": "http://h:6379"}}, "redis.url"),
        ({"redis": {"url": "localhost:6379"}}, "redis.url"),
        # tokens and origins
        ({"workers": {"token": "short"}}, "workers.token"),
        ({"workers": {"token": "x" * 15}}, "workers.token"),
        ({"server": {"api_tokens": [TOKEN, "short"]}}, "server.api_tokens"),
        ({"server": {"api_tokens": [""]}}, "server.api_tokens"),
        ({"server": {"cors_origins": ["*"]}}, "server.cors_origins"),
        ({"server": {"cors_origins": ["https://a.example", "*"]}}, "server.cors_origins"),
        # enumerations and prefix
        ({"logging": {"level": "verbose"}}, "logging.level"),
        ({"logging": {"format": "xml"}}, "logging.format"),
        ({"redis": {"prefix": ""}}, "redis.prefix"),
        ({"redis": {"prefix": "a b"}}, "redis.prefix"),
    ],
)
def test_bad_values_raise_one_line_naming_the_key(raw: dict[str, Any], key: str) -> None:
    assert_one_line(config_error(raw), key)


def test_error_message_format() -> None:
    exc = config_error({"queue": {"concurrency": 0}})
    assert str(exc) == "config: queue.concurrency: must be between 1 and 64, not 0"
    assert exc.problem == "must be between 1 and 64, not 0"


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"MEDIAD_QUEUE_CONCURRENCY": "two"}, "queue.concurrency"),
        ({"MEDIAD_QUEUE_CONCURRENCY": "2.0"}, "queue.concurrency"),
        ({"MEDIAD_QUEUE_CONCURRENCY": ""}, "queue.concurrency"),
        ({"MEDIAD_QUEUE_CONCURRENCY": "0"}, "queue.concurrency"),
        ({"MEDIAD_QUEUE_CONCURRENCY": "100"}, "queue.concurrency"),
        ({"MEDIAD_QUEUE_WATCHDOG_S": "soon"}, "queue.watchdog_s"),
        ({"MEDIAD_QUEUE_WATCHDOG_S": "nan"}, "queue.watchdog_s"),
        ({"MEDIAD_QUEUE_WATCHDOG_S": "inf"}, "queue.watchdog_s"),
        ({"MEDIAD_NETWORK_ALLOW_PRIVATE": "maybe"}, "network.allow_private"),
        ({"MEDIAD_QUEUE_BOGUS": "1"}, "queue.bogus"),
        ({"MEDIAD_SERVER_API_TOKENS": "a,b"}, "server.api_tokens"),
        ({"MEDIAD_SERVER_CORS_ORIGINS": "https://a.example,*"}, "server.cors_origins"),
        ({"DATABASE_URL": "mysql://h/db"}, "database.url"),
        ({"REDIS_URL": "memcached://h"}, "redis.url"),
        ({"WORKER_TOKEN": "short"}, "workers.token"),
    ],
)
def test_bad_env_values(env: dict[str, str], key: str, tmp_path: Path) -> None:
    assert_one_line(config_error(env=env, tmp_path=tmp_path), key)


def test_bad_env_value_message_quotes_the_text(tmp_path: Path) -> None:
    exc = config_error(env={"MEDIAD_QUEUE_CONCURRENCY": "two"}, tmp_path=tmp_path)
    assert str(exc) == "config: queue.concurrency: must be a whole number, not 'two'"


@pytest.mark.parametrize(
    "text",
    [
        "queue: [unclosed\n",
        "queue:\n  concurrency: 1\n concurrency: 2\n",
        "a: b: c\n",
        "\tqueue: {}\n",
        "queue: {concurrency: 1\n",
    ],
)
def test_invalid_yaml(tmp_path: Path, text: str) -> None:
    exc = config_error(text=text, tmp_path=tmp_path)
    path = str(tmp_path / "mediad.yaml")
    assert_one_line(exc, path)
    assert "invalid YAML" in str(exc)


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    exc = config_error(text="queue:\n  concurrency: 1\nserver: [\n", tmp_path=tmp_path)
    assert "line" in str(exc)


@pytest.mark.parametrize("text", ["- queue\n- server\n", "just text\n", "42\n", "[1, 2]\n"])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str) -> None:
    exc = config_error(text=text, tmp_path=tmp_path)
    assert_one_line(exc, str(tmp_path / "mediad.yaml"))
    assert "mapping" in str(exc)


def test_build_rejects_a_non_mapping() -> None:
    exc = config_error(["queue"])
    assert "\n" not in str(exc)
    assert "mapping" in str(exc)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        config.load(path, env={})
    assert_one_line(info.value, str(path))
    assert "cannot read" in str(info.value)


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        config.load(tmp_path, env={})
    assert_one_line(info.value, str(tmp_path))


def test_missing_file_named_by_mediad_config(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        config.load(None, env={"MEDIAD_CONFIG": str(path)})
    assert_one_line(info.value, str(path))


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "mediad.yaml"
    path.write_bytes(b"server:\n  host: caf\xe9\n")
    with pytest.raises(ConfigError) as info:
        config.load(path, env={})
    assert_one_line(info.value, str(path))


def test_bad_yaml_value_names_the_key(tmp_path: Path) -> None:
    exc = config_error(text="queue:\n  concurrency: lots\n", tmp_path=tmp_path)
    assert_one_line(exc, "queue.concurrency")


def test_multiline_value_still_gives_one_line(tmp_path: Path) -> None:
    exc = config_error(text='server:\n  port: "80\\n81"\n', tmp_path=tmp_path)
    assert_one_line(exc, "server.port")


# --- replace --------------------------------------------------------------------------------


def test_replace_changes_only_the_given_keys() -> None:
    base = config.build({"queue": {"max_attempts": 5}, "server": {"api_tokens": [TOKEN]}})
    changed = config.replace(base, queue={"concurrency": 2})
    assert changed.queue.concurrency == 2
    assert changed.queue.max_attempts == 5
    assert changed.server.api_tokens == (TOKEN,)
    assert changed.storage == base.storage
    assert base.queue.concurrency == 3  # the original is untouched


def test_replace_without_changes_is_equal() -> None:
    base = config.build({"server": {"cors_origins": ["https://a.example"]}})
    assert config.replace(base) == base


def test_replace_several_sections(tmp_path: Path) -> None:
    base = config.build({})
    changed = config.replace(
        base,
        storage={"data_dir": str(tmp_path / "d")},
        workers={"processes": 1},
        server={"api_tokens": [TOKEN]},
    )
    assert changed.data_path == tmp_path / "d"
    assert changed.worker_processes == 1
    assert changed.server.api_tokens == (TOKEN,)
    assert isinstance(changed, Config)


def test_replace_validates() -> None:
    with pytest.raises(ConfigError) as info:
        config.replace(config.build({}), queue={"concurrency": 0})
    assert_one_line(info.value, "queue.concurrency")
    with pytest.raises(ConfigError) as info:
        config.replace(config.build({}), queue={"bogus": 1})
    assert_one_line(info.value, "queue.bogus")


def test_replace_unknown_section_raises_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        config.replace(config.build({}), bogus={"a": 1})
    assert_one_line(info.value, "bogus")


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "example.org"])
def test_binding_beyond_loopback_needs_tokens_or_allow_anonymous(host: str) -> None:
    with pytest.raises(ConfigError) as info:
        config.build({"server": {"host": host}})
    assert info.value.key == "server.host" and "api_tokens" in str(info.value)
    assert config.build({"server": {"host": host, "allow_anonymous": True}}).server.host == host
    assert config.build({"server": {"host": host, "api_tokens": ["t" * 20]}}).server.host == host


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_binds_need_no_tokens(host: str) -> None:
    assert config.build({"server": {"host": host}}).server.host == host

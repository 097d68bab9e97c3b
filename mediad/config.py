"""Configuration: one YAML file plus environment overrides, into frozen dataclasses.

Every key is optional. Precedence, lowest first: built-in defaults, the YAML file
(``--config PATH`` or ``MEDIAD_CONFIG``), ``MEDIAD_<SECTION>_<KEY>`` variables, and the
named variables (``DATABASE_URL``, ``REDIS_URL``, ``WORKER_TOKEN``, ``TWMD_PATH``,
``TWITTER_COOKIES_PATH``, ``TWITTER_PROXY``). A bad value raises ``ConfigError`` naming
the key, which the CLI prints as one line.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import os
import re
import socket
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mediad.errors import ConfigError
from mediad.netpolicy import NetPolicy
from mediad.notify.targets import NotifyTarget, build_targets


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    api_tokens: tuple[str, ...] = ()
    cors_origins: tuple[str, ...] = ()
    # Host headers served besides loopback and server.host (DNS rebinding); "*": any.
    allowed_hosts: tuple[str, ...] = ()
    allow_anonymous: bool = False  # needed to bind beyond loopback without api_tokens
    max_body_bytes: int = 64 * 1024
    rate_limit_per_min: int = 120  # POST /downloads per client address; 0: no limit
    shutdown_grace_s: float = 10.0
    # Slow clients (mediad/connections.py): unfinished request heads and idle keep-alive
    # connections are closed after header_timeout_s, a body must arrive within
    # body_timeout_s; connections per client address and in total (0: from the open-file
    # limit) are capped.
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    max_connections_per_client: int = 256  # 0: no cap (behind a reverse proxy, say)
    max_connections: int = 0
    # This instance's name among several sharing one PostgreSQL and Redis: it owns the
    # jobs it runs. "" → the host name and a digest of the state directory (stable across
    # restarts, distinct for two instances on one machine).
    instance_id: str = ""


@dataclass(frozen=True)
class DatabaseConfig:
    url: str | None = None
    pool_min: int = 1
    pool_max: int = 10


@dataclass(frozen=True)
class RedisConfig:
    url: str | None = None
    prefix: str = "mediad:"


@dataclass(frozen=True)
class StorageConfig:
    state_dir: str = ""  # "" → default_state_dir()
    data_dir: str = ""  # "" → {state_dir}/data
    tmp_dir: str = ""  # "" → {state_dir}/tmp
    min_free_bytes: int = 100 * 1024 * 1024  # new jobs are refused below this
    max_job_bytes: int | None = None  # a job whose download grows past this fails


@dataclass(frozen=True)
class QueueConfig:
    concurrency: int = 3
    max_attempts: int = 3  # runs that may end in a failure of the job's own (network, stall)
    max_interruptions: int = 10  # runs that may be lost to mediad's own faults (states.py)
    watchdog_s: float = 60.0
    retry_backoff_s: float = 2.0
    reconcile_interval_s: float = 30.0
    # A concurrency slot and an instance's liveness are leases in Redis, renewed every
    # third of this; those of an instance that died come back after it.
    lease_s: float = 15.0
    max_queued: int = 10_000  # new jobs are refused while this many wait


@dataclass(frozen=True)
class ProgressConfig:
    throttle_ms: int = 333
    worker_hz: float = 10.0


@dataclass(frozen=True)
class WorkersConfig:
    token: str | None = None  # shared token for remote `mediad worker` processes
    processes: int | None = None  # local worker processes; None → queue.concurrency
    heartbeat_s: float = 5.0


@dataclass(frozen=True)
class ToolsConfig:
    ytdlp: str | None = None  # None → the yt_dlp module inside the worker (fork per job)
    aria2c: str | None = None
    ffmpeg: str | None = None
    ffprobe: str | None = None
    twmd: str | None = None
    postgres_bin_dir: str | None = None
    redis_server: str | None = None
    # Download speed limits in bytes per second (YAML may say 2M, 500K, 1.5MiB: 1024-based,
    # as yt-dlp and aria2 read them): each job's, and the whole service's, split evenly
    # over the queue.concurrency jobs that may run at once (job_rate_limit).
    rate_limit: int | None = None
    total_rate_limit: int | None = None


@dataclass(frozen=True)
class TwitterConfig:
    cookies_path: str | None = None
    proxy: str | None = None


@dataclass(frozen=True)
class NetworkConfig:
    allow_private: bool = False
    allow_hosts: tuple[str, ...] = ()


@dataclass(frozen=True)
class LoggingConfig:
    level: str = "info"
    format: str = "json"
    # Error reports to Sentry or a compatible collector (needs the `sentry` extra).
    sentry_dsn: str | None = None


@dataclass(frozen=True)
class SubscriptionsConfig:
    min_interval_s: int = 60  # the shortest intervalS a subscription may have
    poll_s: float = 5.0  # how often the scheduler looks for due subscriptions
    batch: int = 20  # due subscriptions claimed per statement
    jitter: float = 0.1  # each next check is due one interval from now, ± this share of it
    startup_spread_s: float = 300.0  # at start-up, overdue checks are spread over this


@dataclass(frozen=True)
class NotificationsConfig:
    # A delivery still failing this long after it was recorded is given up (`failed`).
    give_up_after_s: float = 86400.0
    timeout_s: float = 10.0  # per attempt
    retry_backoff_s: float = 2.0  # the first retry's wait, doubling up to retry_max_s
    retry_max_s: float = 600.0
    poll_s: float = 5.0  # how often to look for rows recorded elsewhere (other instances)


@dataclass(frozen=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    redis: RedisConfig = field(default_factory=RedisConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    queue: QueueConfig = field(default_factory=QueueConfig)
    progress: ProgressConfig = field(default_factory=ProgressConfig)
    workers: WorkersConfig = field(default_factory=WorkersConfig)
    tools: ToolsConfig = field(default_factory=ToolsConfig)
    twitter: TwitterConfig = field(default_factory=TwitterConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    subscriptions: SubscriptionsConfig = field(default_factory=SubscriptionsConfig)
    notify: tuple[NotifyTarget, ...] = ()  # a list, not a section (notify/targets.py)
    notifications: NotificationsConfig = field(default_factory=NotificationsConfig)

    @property
    def state_path(self) -> Path:
        return Path(self.storage.state_dir)

    @property
    def data_path(self) -> Path:
        return Path(self.storage.data_dir)

    @property
    def instance_id(self) -> str:
        """``server.instance_id``, or the host name and a digest of the state directory."""
        if self.server.instance_id:
            return self.server.instance_id
        digest = hashlib.sha256(str(self.state_path.resolve()).encode()).hexdigest()[:8]
        host = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname())[:40] or "host"
        return f"{host}-{digest}"

    @property
    def tmp_path(self) -> Path:
        return Path(self.storage.tmp_dir)

    @property
    def job_rate_limit(self) -> int | None:
        """Each yt-dlp and aria2 job's limit: ``tools.rate_limit``, and at most its share
        of ``tools.total_rate_limit`` (None: no limit)."""
        tools = self.tools
        share = (
            None
            if tools.total_rate_limit is None
            else tools.total_rate_limit // self.queue.concurrency
        )
        limits = [v for v in (tools.rate_limit, share) if v is not None]
        return max(1, min(limits)) if limits else None

    @property
    def worker_processes(self) -> int:
        if self.workers.processes is None:
            return self.queue.concurrency
        return self.workers.processes


# Environment variables with names of their own, and the key each one sets.
NAMED_ENV = {
    "DATABASE_URL": ("database", "url"),
    "REDIS_URL": ("redis", "url"),
    "WORKER_TOKEN": ("workers", "token"),
    "TWMD_PATH": ("tools", "twmd"),
    "TWITTER_COOKIES_PATH": ("twitter", "cookies_path"),
    "TWITTER_PROXY": ("twitter", "proxy"),
    "SENTRY_DSN": ("logging", "sentry_dsn"),
}

LOG_LEVELS = ("debug", "info", "warning", "error")
_INSTANCE_ID = re.compile(r"[A-Za-z0-9._:@-]{1,64}")


def default_state_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where the embedded PostgreSQL, Redis and the files live when nothing says otherwise.

    As root this is /var/lib/mediad, as for a system service (PostgreSQL, which runs as
    the ``postgres`` user then, cannot reach into /root). Otherwise the XDG data dir.
    """
    if os.geteuid() == 0:
        return Path("/var/lib/mediad")
    env = os.environ if env is None else env
    base = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "mediad"


def load(
    path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> Config:
    """Read the YAML file (if any), apply the environment, validate, resolve paths."""
    env = os.environ if env is None else env
    path = path or env.get("MEDIAD_CONFIG") or None
    raw: dict[str, Any] = _read_yaml(Path(path)) if path else {}
    _apply_env(raw, env)
    return build(raw, env)


def build(raw: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Config:
    """Turn a nested mapping (as from YAML) into a validated Config."""
    if not isinstance(raw, Mapping):
        raise ConfigError("(top level)", "must be a mapping of sections")
    sections: dict[str, Any] = {}
    hints = typing.get_type_hints(Config)
    for name, value in raw.items():
        if name not in hints:
            raise ConfigError(str(name), f"unknown section (expected one of {', '.join(hints)})")
        if name == "notify":
            sections[name] = build_targets(value, env)
        else:
            sections[name] = _build_section(name, hints[name], value)
    config = Config(**sections)
    _validate(config)
    return _resolve_paths(config, env)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read config file: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(str(path), "cannot read config file: not UTF-8 text") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(str(path), f"invalid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(str(path), "must be a mapping of sections")
    return data


def _apply_env(raw: dict[str, Any], env: Mapping[str, str]) -> None:
    sections = typing.get_type_hints(Config)
    for name, value in env.items():
        if not name.startswith("MEDIAD_") or name == "MEDIAD_CONFIG":
            continue
        section, _, key = name[len("MEDIAD_") :].lower().partition("_")
        if section in sections and key and section != "notify":  # notify: build_targets
            if raw.get(section) is None:  # `queue:` with every key commented out
                raw[section] = {}
            if isinstance(raw[section], dict):
                raw[section][key] = _EnvValue(value)
    for name, (section, key) in NAMED_ENV.items():
        if env.get(name):
            if raw.get(section) is None:
                raw[section] = {}
            if isinstance(raw[section], dict):
                raw[section][key] = _EnvValue(env[name])


class _EnvValue(str):
    """A string from the environment: converted to the field's type, unlike YAML values."""


def _build_section(name: str, cls: type, value: Any) -> Any:
    if value is None:
        return cls()
    if not isinstance(value, Mapping):
        raise ConfigError(name, "must be a mapping")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, item in value.items():
        if key not in hints:
            raise ConfigError(f"{name}.{key}", "unknown key")
        full = f"{name}.{key}"
        kwargs[key] = (
            parse_rate(full, item) if full in RATE_KEYS else _convert(full, hints[key], item)
        )
    return cls(**kwargs)


def _convert(key: str, hint: Any, value: Any) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, _EnvValue) and value == ""):
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(key, inner, value)
    if isinstance(value, _EnvValue):
        return _from_env(key, hint, str(value))
    if origin is tuple:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(key, "must be a list of strings")
        return tuple(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(key, f"must be true or false, not {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key, f"must be a whole number, not {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(key, f"must be a number, not {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ConfigError(key, f"must be a string, not {value!r}")
        return str(value)
    raise ConfigError(key, "unsupported value")  # pragma: no cover - all fields covered above


RATE_KEYS = frozenset({"tools.rate_limit", "tools.total_rate_limit"})
_RATE = re.compile(r"(\d+(?:\.\d+)?)\s*(?:([KMG])(?:i?B)?)?", re.IGNORECASE)
_RATE_UNITS = {None: 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_rate(key: str, value: Any) -> int | None:
    """Bytes per second from a whole number or a string such as ``2M``, ``2MiB``,
    ``500K``, ``1.5M`` (1024-based); None, or "" from the environment, is no limit."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        m = _RATE.fullmatch(value.strip())
        if m is not None:
            unit = m.group(2).lower() if m.group(2) else None
            return int(float(m.group(1)) * _RATE_UNITS[unit])
    raise ConfigError(
        key, f"must be bytes per second: a whole number or one like 500K, 2M, 1.5MiB, not {value!r}"
    )


def _from_env(key: str, hint: Any, text: str) -> Any:
    if typing.get_origin(hint) is tuple:
        return tuple(part.strip() for part in text.split(",") if part.strip())
    if hint is bool:
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(key, f"must be true or false, not {text!r}")
    if hint is int:
        try:
            return int(text)
        except ValueError:
            raise ConfigError(key, f"must be a whole number, not {text!r}") from None
    if hint is float:
        try:
            return float(text)
        except ValueError:
            raise ConfigError(key, f"must be a number, not {text!r}") from None
    return text


# Every number's range, checked in this order: (key, lowest, highest). A lowest that is a
# key is that key's value; an optional key that is unset (None) is not checked.
_RANGES: tuple[tuple[str, float | str, float], ...] = (
    ("server.port", 0, 65535),
    ("server.max_body_bytes", 1024, 64 * 1024 * 1024),
    ("server.shutdown_grace_s", 0, 3600),
    ("server.rate_limit_per_min", 0, 1_000_000),
    ("server.header_timeout_s", 1, 3600),
    ("server.body_timeout_s", 1, 3600),
    ("server.max_connections_per_client", 0, 10**6),
    ("server.max_connections", 0, 10**7),
    ("queue.max_queued", 1, 10_000_000),
    ("storage.min_free_bytes", 0, 2**62),
    ("storage.max_job_bytes", 1, 2**62),
    ("database.pool_min", 1, 100),
    ("database.pool_max", "database.pool_min", 100),
    ("queue.concurrency", 1, 64),
    ("queue.max_attempts", 1, 100),
    ("queue.max_interruptions", 1, 1000),
    ("queue.watchdog_s", 1, 86400),
    ("queue.retry_backoff_s", 0, 3600),
    ("queue.reconcile_interval_s", 1, 86400),
    ("queue.lease_s", 1, 3600),
    ("progress.throttle_ms", 10, 60_000),
    ("progress.worker_hz", 0.1, 100),
    ("workers.heartbeat_s", 0.1, 3600),
    ("workers.processes", 0, 64),
    ("subscriptions.min_interval_s", 1, 2_592_000),
    ("subscriptions.poll_s", 0.05, 3600),
    ("subscriptions.batch", 1, 1000),
    ("subscriptions.jitter", 0, 0.5),
    ("subscriptions.startup_spread_s", 0, 86400),
    ("tools.rate_limit", 1024, 2**50),
    ("tools.total_rate_limit", 1024, 2**50),
    ("notifications.give_up_after_s", 1, 30 * 86400),
    ("notifications.timeout_s", 0.1, 600),
    ("notifications.retry_backoff_s", 0.01, 3600),
    ("notifications.retry_max_s", "notifications.retry_backoff_s", 86400),
    ("notifications.poll_s", 0.1, 3600),
)

# The URLs that name a server of ours, and the schemes each may have.
_URL_SCHEMES = (
    ("database.url", ("postgres://", "postgresql://")),
    ("redis.url", ("redis://", "rediss://", "unix://")),
)


def _validate(c: Config) -> None:
    """Every cross-key rule and range; the first broken one raises ConfigError."""
    for key, low, high in _RANGES:
        value = _value(c, key)
        if value is not None:
            _check(value, key, _value(c, low) if isinstance(low, str) else low, high)
    _validate_access(c.server, c.workers)
    _validate_names(c)


def _value(c: Config, key: str) -> Any:
    """The value of a dotted key (``queue.concurrency``)."""
    section, _, name = key.partition(".")
    return getattr(getattr(c, section), name)


def _validate_access(server: ServerConfig, workers: WorkersConfig) -> None:
    """Who may talk to the service: tokens, the hosts it answers to, CORS."""
    if not server.api_tokens and not server.allow_anonymous and not _is_loopback(server.host):
        raise ConfigError(
            "server.host",
            f"{server.host} is reachable from other machines but server.api_tokens is empty:"
            " set api_tokens, or server.allow_anonymous: true to serve without authentication",
        )
    if workers.token is not None and len(workers.token) < 16:
        raise ConfigError("workers.token", "must be at least 16 characters")
    for token in server.api_tokens:
        if len(token) < 16:
            raise ConfigError("server.api_tokens", "each token must be at least 16 characters")
    try:
        from mediad.hosts import validate as validate_hosts

        validate_hosts(server.host, server.allowed_hosts)
    except ValueError as exc:
        raise ConfigError("server.allowed_hosts", str(exc)) from None
    if "*" in server.cors_origins:
        raise ConfigError("server.cors_origins", "'*' is not allowed; list the origins")


def _validate_names(c: Config) -> None:
    """The keys that name things: log level and format, allowed networks, Redis keys, URLs."""
    if c.logging.level.lower() not in LOG_LEVELS:
        raise ConfigError("logging.level", f"must be one of {', '.join(LOG_LEVELS)}")
    if c.logging.format not in ("json", "text"):
        raise ConfigError("logging.format", "must be json or text")
    try:
        NetPolicy(c.network.allow_private, c.network.allow_hosts)
    except ValueError as exc:
        raise ConfigError("network.allow_hosts", str(exc)) from None
    if c.server.instance_id and not _INSTANCE_ID.fullmatch(c.server.instance_id):
        raise ConfigError("server.instance_id", "must be 1 to 64 of A-Z a-z 0-9 . _ : @ -")
    if not c.redis.prefix or any(ch.isspace() for ch in c.redis.prefix):
        raise ConfigError("redis.prefix", "must be a non-empty string without spaces")
    for key, schemes in _URL_SCHEMES:
        url = _value(c, key)
        if url is not None and not url.startswith(schemes):
            raise ConfigError(key, f"must start with {' or '.join(schemes)}")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve anywhere


def _check(value: float, key: str, low: float, high: float) -> None:
    if not low <= value <= high:
        raise ConfigError(key, f"must be between {low:g} and {high:g}, not {value!r}")


def _resolve_paths(c: Config, env: Mapping[str, str] | None) -> Config:
    state = (
        Path(c.storage.state_dir).expanduser() if c.storage.state_dir else default_state_dir(env)
    )
    state = state.absolute()
    data = Path(c.storage.data_dir).expanduser() if c.storage.data_dir else state / "data"
    tmp = Path(c.storage.tmp_dir).expanduser() if c.storage.tmp_dir else state / "tmp"
    storage = dataclasses.replace(
        c.storage, state_dir=str(state), data_dir=str(data.absolute()), tmp_dir=str(tmp.absolute())
    )
    return dataclasses.replace(c, storage=storage)


def replace(config: Config, **sections: Any) -> Config:
    """A copy of ``config`` with some keys changed, e.g. ``replace(c, queue={"concurrency": 2})``
    (``notify=[…]`` replaces the whole list)."""
    raw: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        if f.name == "notify":
            raw["notify"] = [_target_raw(t) for t in config.notify]
            continue
        raw[f.name] = {
            k: list(v) if isinstance(v, tuple) else v
            for k, v in dataclasses.asdict(getattr(config, f.name)).items()
        }
    for name, changes in sections.items():
        if name not in raw:
            raise ConfigError(name, "unknown section")
        if name == "notify":
            raw[name] = list(changes)
        else:
            raw[name].update(changes)
    return build(raw)


def _target_raw(target: NotifyTarget) -> dict[str, Any]:
    raw = {k: v for k, v in dataclasses.asdict(target).items() if v is not None}
    raw["events"] = list(target.events)
    return raw


def local_url(host: str, port: int) -> str:
    """The URL a client on this machine uses for a server bound to ``host``:``port`` (a
    wildcard address means loopback)."""
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"

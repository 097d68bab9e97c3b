"""The servers mediad starts and supervises as children: PostgreSQL and Redis (the
embedded default when no URL is configured) and the aria2 RPC daemon, on one base
(`base.ManagedServer`)."""

from mediad.daemons.aria2 import Aria2Daemon, find_aria2c, free_port
from mediad.daemons.base import ManagedServer
from mediad.daemons.postgres import POSTGRES_PORT, ManagedPostgres, find_postgres_bin_dir
from mediad.daemons.redis import ManagedRedis, find_redis_server

__all__ = [
    "POSTGRES_PORT",
    "Aria2Daemon",
    "ManagedPostgres",
    "ManagedRedis",
    "ManagedServer",
    "find_aria2c",
    "find_postgres_bin_dir",
    "find_redis_server",
    "free_port",
]

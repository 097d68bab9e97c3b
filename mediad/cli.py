"""The command line: ``mediad serve | worker | migrate | check-config``, and the client and
backup commands of the client_cli package."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mediad import __version__, errorreport, logs
from mediad import config as configuration
from mediad.errors import ConfigError, MediadError, ServiceError

if TYPE_CHECKING:
    from mediad import sdnotify
    from mediad.service import Service
    from mediad.worker.forkserver import ForkServer

log = logging.getLogger("mediad")

# What a command runs: its parsed arguments and the loaded configuration to an exit code.
Run = Callable[[argparse.Namespace, configuration.Config], int]


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        if args.command == "worker" and args.zygote_fd is not None:
            from mediad import zygote

            return zygote.main(args.zygote_fd)
        if args.command == "worker" and args.settings_fd is not None:
            return _handed_over_worker(args.settings_fd)
        config = configuration.load(args.config)
        if getattr(args, "host", None):
            config = configuration.replace(config, server={"host": args.host})
        if getattr(args, "port", None) is not None:
            config = configuration.replace(config, server={"port": args.port})
        return int(args.run(args, config))
    except ConfigError as exc:
        print(f"mediad: {exc}", file=sys.stderr)
        return 2
    except ServiceError as exc:
        print(f"mediad: {exc}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mediad", description="Self-hosted media downloads.")
    parser.add_argument(
        "--version", action=_Version, nargs=0, help="print mediad's, yt-dlp's and Python's versions"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, help_text: str, run: Run) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--config", "-c", metavar="PATH", help="YAML file (or MEDIAD_CONFIG)")
        sub.set_defaults(run=run)
        return sub

    serve = command("serve", "run the service (HTTP, Socket.IO, workers)", _serve)
    serve.add_argument("--host", help="override server.host")
    serve.add_argument("--port", type=int, help="override server.port")
    serve.add_argument(
        "--check", action="store_true", help="find the tools and servers it needs, then exit"
    )
    worker = command("worker", "run a remote worker (needs WORKER_TOKEN)", _remote_worker)
    worker.add_argument("--server", help="the service's URL, e.g. http://10.0.0.2:8080")
    # Internal: how `mediad serve` (and a remote worker, re-executing itself) hands a
    # worker its settings and token without the environment.
    worker.add_argument("--settings-fd", type=int, help=argparse.SUPPRESS)
    # Internal: the process `mediad serve` forks its local workers from (mediad/zygote.py).
    worker.add_argument("--zygote-fd", type=int, help=argparse.SUPPRESS)
    command("migrate", "apply database migrations and exit", _migrate)
    command(
        "check-config",
        "validate the configuration, print it and find the tools it needs",
        _check_config,
    )
    # get, ls, show, cancel…rm, backup, restore (mediad/client_cli/: stdlib-only imports).
    from mediad import client_cli

    client_cli.register(command)
    return parser


class _Version(argparse.Action):
    """``--version``: mediad's, yt-dlp's and Python's (yt-dlp looked up only when asked)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        import platform

        from mediad.frozen import is_frozen
        from mediad.toolcheck import ytdlp_version

        build = ", single binary" if is_frozen() else ""
        print(
            f"mediad {__version__}\nyt-dlp {ytdlp_version()}\n"
            f"Python {platform.python_version()} ({platform.python_implementation()}{build})"
        )
        parser.exit()


def _event_loop_policy() -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _serve(args: argparse.Namespace, config: configuration.Config) -> int:
    if args.check:
        from mediad import toolcheck

        return toolcheck.report(toolcheck.check(config), sys.stdout)
    from mediad import imports

    # Not its blocking client's requests (~4 MiB): only an Apprise delivery needs it.
    imports.import_without("socketio", "requests")
    logs.configure(config.logging.level, config.logging.format, "serve")
    errorreport.setup(config)  # only with logging.sentry_dsn
    _event_loop_policy()
    return asyncio.run(_serve_async(config))


async def _serve_async(config: configuration.Config) -> int:
    from mediad import sdnotify
    from mediad.frozen import OnefileGuard
    from mediad.service import Service

    # Read and taken out of the environment first: no child may talk to systemd for us.
    notifier = sdnotify.Notifier.from_environment()
    watchdog = asyncio.ensure_future(notifier.watchdog())  # pings while the loop runs
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    guard = OnefileGuard()  # the single binary's temp folder (frozen.py)
    if not guard.arm():
        stop.set()
    guard.sweep()
    service = Service(config)
    notifier.notify(STATUS="starting")
    stopper = asyncio.ensure_future(stop.wait())
    announcer: asyncio.Future[None] | None = None
    try:
        code = await _start(service, stopper, notifier)
        if code is not None:
            return code
        assert service.failed is not None
        # What start-up made (modules, classes, the app, the routes) lives as long as the
        # process: left out of the collector's full passes, which scanned all of it (60-70
        # ms with the loop stopped, every few seconds under the reads bench) for nothing.
        gc.freeze()
        announcer = asyncio.ensure_future(sdnotify.announce(service, notifier))
        ending: list[asyncio.Future[Any]] = [stopper, service.failed]
        await asyncio.wait(ending, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        announcer.cancel()
        log.info("shutting down")
        notifier.notify("STOPPING=1", STATUS="stopping: requeueing running jobs")
        await service.stop()
        return 1 if service.failed.done() else 0
    finally:
        for task in (watchdog, announcer):
            if task is not None:
                task.cancel()
        notifier.close()
        guard.release()


async def _start(
    service: Service, stopper: asyncio.Future[Any], notifier: sdnotify.Notifier
) -> int | None:
    """Start the service unless ``stopper`` (a signal) ends first: None once it runs, else
    the exit code (0 stopped during start-up, 1 start-up failed)."""
    starting = asyncio.ensure_future(service.start())
    await asyncio.wait([stopper, starting], return_when=asyncio.FIRST_COMPLETED)
    if not starting.done():  # a signal while start-up waits (for Redis, say)
        notifier.notify("STOPPING=1", STATUS="stopping during start-up")
        starting.cancel()
        with contextlib.suppress(asyncio.CancelledError, MediadError):
            await starting
        log.info("stopped during start-up")
        return 0
    try:
        starting.result()
    except MediadError as exc:
        stopper.cancel()
        log.error("start-up failed: %s", exc)
        notifier.notify(STATUS=f"start-up failed: {exc}")
        return 1
    return None


def _handed_over_worker(fd: int) -> int:
    """A worker whose settings (token included) come from file descriptor ``fd``."""
    from mediad import imports

    imports.import_without("socketio", *imports.WORKER_HIDDEN)  # no Redis in a worker
    from mediad.worker import client
    from mediad.worker.forkserver import ForkServer
    from mediad.worker.settings import WorkerSettings, take_over

    payload = take_over(fd)
    settings = WorkerSettings.from_payload(payload.get("settings") or {})
    logs.configure(
        settings.log_level, settings.log_format, payload.get("process") or settings.worker_id
    )
    _event_loop_policy()
    daemon = payload.get("aria2")
    if not daemon:  # a local worker: the service runs the aria2 daemon
        return client.main(settings)
    # A remote worker: its fork server first, while this process has one thread (the
    # loop and the aria2 daemon's start-up bring threads).
    forks = None if settings.ytdlp else ForkServer.start(settings.ffmpeg)
    return asyncio.run(_with_own_aria2(settings, daemon, forks))


async def _with_own_aria2(
    settings: object, daemon_args: dict[str, object], forks: ForkServer | None
) -> int:
    """A remote worker runs its own aria2 daemon."""
    import dataclasses

    from mediad.daemons import Aria2Daemon
    from mediad.worker import client
    from mediad.worker.settings import WorkerSettings

    assert isinstance(settings, WorkerSettings)
    binary = daemon_args.get("binary")
    limit = daemon_args.get("overallLimit")
    daemon = Aria2Daemon(
        Path(str(daemon_args["root"])),
        binary=str(binary) if binary else None,
        overall_limit=limit if isinstance(limit, int) else None,
    )
    await daemon.start()
    try:
        settings = dataclasses.replace(settings, aria2_url=daemon.url, aria2_secret=daemon.secret)
        return await client.Worker(settings, forks).run()
    finally:
        await daemon.stop()


def _remote_worker(args: argparse.Namespace, config: configuration.Config) -> int:
    """A worker on another machine: it runs its own aria2 daemon and shares storage.

    WORKER_TOKEN and the rest of the configuration came in this process's environment,
    which every tool it forked would show in /proc/PID/environ. So it re-executes itself
    at once with an environment cleared of every mediad setting and secret, handing the
    settings over through a file descriptor, as `mediad serve` does for local workers.
    """
    from mediad.supervisor import (
        settings_fields,
        worker_command,
        worker_environment,
        worker_settings,
    )
    from mediad.worker.settings import WorkerSettings, hand_over

    if not args.server:
        raise ConfigError("--server", "a remote worker needs the service's URL")
    if not config.workers.token:
        raise ConfigError("workers.token", "a remote worker needs WORKER_TOKEN")
    settings = WorkerSettings(
        server_url=args.server,
        worker_id=f"{socket.gethostname()}-{os.getpid()}",  # exec keeps the pid
        token=config.workers.token,
        # The same mapping as a local worker's; its own aria2 daemon (below), not serve's.
        **settings_fields(worker_settings(config, aria2_url=None, aria2_secret=None)),
    )
    daemon = {
        "root": str(config.state_path / "aria2-worker"),
        "binary": config.tools.aria2c,
        "overallLimit": config.tools.total_rate_limit,
    }
    fd = hand_over({"settings": settings.to_payload(), "aria2": daemon, "process": "worker"})
    os.set_inheritable(fd, True)
    argv = worker_command(fd)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os.execve(argv[0], argv, worker_environment(os.environ))
    raise AssertionError("unreachable")  # pragma: no cover


def _migrate(args: argparse.Namespace, config: configuration.Config) -> int:
    logs.configure(config.logging.level, config.logging.format, "migrate")

    async def run() -> int:
        from mediad.daemons import ManagedPostgres, find_postgres_bin_dir
        from mediad.store import Store

        managed = None
        dsn = config.database.url
        if dsn is None:
            bin_dir = find_postgres_bin_dir(config.tools.postgres_bin_dir)
            managed = ManagedPostgres(config.state_path / "postgres", bin_dir=bin_dir)
            dsn = await managed.start()
        try:
            store = await Store.open(dsn, min_size=1, max_size=1)
            try:
                applied = await store.migrate()
            finally:
                await store.close()
        finally:
            if managed is not None:
                await managed.stop()
        print(f"applied: {', '.join(applied)}" if applied else "the schema is up to date")
        return 0

    return asyncio.run(run())


def _check_config(args: argparse.Namespace, config: configuration.Config) -> int:
    import dataclasses

    import yaml

    from mediad.secrecy import mask

    # One rule for every key: secret-like keys and every URL's credentials are hidden.
    print(yaml.safe_dump(mask(dataclasses.asdict(config)), sort_keys=False), end="")
    print("# the configuration is valid (secrets hidden)", file=sys.stderr)
    from mediad import toolcheck

    return toolcheck.report(toolcheck.check(config), sys.stderr)  # as `serve --check`


if __name__ == "__main__":
    raise SystemExit(main())

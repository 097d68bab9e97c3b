"""The client and backup commands: their arguments (added to cli.py's parser by
``register``) and what each one does."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any

from mediad.client_cli.display import make_display
from mediad.client_cli.exits import (
    EXIT_CANCELLED,
    EXIT_FAILED,
    EXIT_FILES,
    EXIT_INTERRUPTED,
    EXIT_OK,
    ClientError,
)
from mediad.client_cli.following import follow
from mediad.client_cli.formats import human_bytes, job_details, job_table
from mediad.client_cli.rest import Client, api_token, server_url
from mediad.config import Config

JOB_TYPES = ("ytdlp", "aria2", "ffmpeg", "twitter")
ACTIONS = {
    "cancel": "cancel a job (its files are removed)",
    "pause": "pause a job, keeping its partial data",
    "resume": "queue a paused job again (it continues where it was)",
    "retry": "run a failed or cancelled job again",
    "stop": "finish a running ffmpeg recording now, keeping what it recorded",
}
PAGE_LIMIT = 200  # the most GET /downloads returns at once

# What cli.py runs for a command, and its ``command(name, help, run)`` that adds one.
Run = Callable[[argparse.Namespace, Config], int]
AddCommand = Callable[[str, str, Run], argparse.ArgumentParser]
# A client command's body: the arguments, the client, and what ^C should mention.
Body = Callable[[argparse.Namespace, Client, dict[str, Any]], Coroutine[Any, Any, int]]


# --- the arguments ----------------------------------------------------------------


def register(command: AddCommand) -> None:
    """Add the client and backup commands with cli.py's ``command(name, help, run)``."""
    _add_get(command)
    _add_reading(command)
    _add_actions(command)
    _add_backup(command)


def _connection(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--server", metavar="URL", help="mediad's URL (or MEDIAD_URL; default: the config's)"
    )
    sub.add_argument(
        "--token", metavar="T", help="API token (or MEDIAD_TOKEN; default: the config's first)"
    )
    sub.add_argument("--json", action="store_true", help="print JSON for scripts")


def _add_get(command: AddCommand) -> None:
    get = command("get", "download a URL through a running mediad and follow it", _run(_get))
    get.add_argument("url", metavar="URL")
    get.add_argument("--type", choices=JOB_TYPES, help="the tool (default: detected from the URL)")
    get.add_argument(
        "-o",
        "--option",
        dest="options",
        action="append",
        type=parse_option,
        default=[],
        metavar="KEY=VALUE",
        help="a job option; VALUE is read as JSON when it is JSON (-o maxItems=3 -o playlist=true)",
    )
    get.add_argument("--output", metavar="DIR", help="download the job's files into DIR")
    get.add_argument("--no-wait", action="store_true", help="print the job id and return at once")
    _connection(get)


def _add_reading(command: AddCommand) -> None:
    ls = command("ls", "list jobs, newest first", _run(_ls))
    ls.add_argument("--status", metavar="S", help="only these statuses (comma-separated)")
    ls.add_argument("--search", "-q", metavar="TEXT", help="only jobs whose URL or file has TEXT")
    ls.add_argument("--limit", type=_positive, default=20, metavar="N", help="at most N (20)")
    _connection(ls)
    show = command("show", "show one job and its files", _run(_show))
    show.add_argument("job_id", metavar="ID")
    _connection(show)


def _add_actions(command: AddCommand) -> None:
    for action, text in ACTIONS.items():
        sub = command(action, text, _run(_action))
        sub.add_argument("job_id", metavar="ID")
        sub.set_defaults(action=action)
        _connection(sub)
    rm = command("rm", "delete a job and its files", _run(_rm))
    rm.add_argument("job_id", metavar="ID")
    _connection(rm)


def _add_backup(command: AddCommand) -> None:
    backup = command("backup", "write a dump of the job store to FILE", _backup)
    backup.add_argument(
        "file", metavar="FILE", help="the dump (pg_dump custom format); - for stdout"
    )
    restore = command("restore", "load a dump made by mediad backup into an empty store", _restore)
    restore.add_argument("file", metavar="FILE")
    restore.add_argument(
        "--force", action="store_true", help="replace a store that has jobs (they are lost)"
    )


def parse_option(text: str) -> tuple[str, Any]:
    """``key=value`` with a JSON value (``3``, ``true``, ``["en"]``), else a string."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, not {text!r}")
    try:
        return key.strip(), json.loads(value)
    except ValueError:
        return key.strip(), value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def _run(body: Body) -> Run:
    """A client command: an event loop, a client, and every error as one line and a code."""

    def run(args: argparse.Namespace, config: Config) -> int:
        state: dict[str, Any] = {}
        try:
            client = Client(
                server_url(args.server, config, os.environ),
                api_token(args.token, config, os.environ),
            )
            return int(asyncio.run(body(args, client, state)))
        except ClientError as exc:
            print(f"mediad: {exc.message}", file=sys.stderr)
            return exc.exit_code
        except KeyboardInterrupt:
            job = state.get("job_id")
            more = f"; job {job} goes on (mediad show {job}, mediad cancel {job})" if job else ""
            print(f"\nmediad: interrupted{more}", file=sys.stderr)
            return EXIT_INTERRUPTED

    return run


# --- get --------------------------------------------------------------------------


async def _get(args: argparse.Namespace, client: Client, state: dict[str, Any]) -> int:
    try:
        return await _get_with(args, client, state)
    finally:
        await client.close()


async def _get_with(args: argparse.Namespace, client: Client, state: dict[str, Any]) -> int:
    output = _output_dir(args.output)
    created = await client.request("POST", "/downloads", body=_job_body(args), expect=(201,))
    job_id = str(created["jobId"])
    state["job_id"] = job_id
    if args.no_wait:
        print(json.dumps(created) if args.json else job_id, flush=True)
        return EXIT_OK
    display = make_display(args.json)
    display.start(job_id, str(created.get("type")))
    try:
        job = await follow(client, job_id, display)
    finally:
        display.stop()
    saved: list[str] = []
    code = EXIT_OK
    if job.get("status") == "completed" and output is not None:
        try:
            saved = await save_files(client, job_id, output)
        except ClientError as exc:
            print(f"mediad: job {job_id} completed, but {exc.message}", file=sys.stderr)
            code = exc.exit_code
    return _outcome(args, job_id, job, output, saved, code)


def _output_dir(given: str | None) -> Path | None:
    """``--output``, created if it is not there."""
    output = Path(given) if given else None
    if output is not None:
        try:
            output.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ClientError(EXIT_FILES, f"cannot create {output}: {exc.strerror}") from None
    return output


def _job_body(args: argparse.Namespace) -> dict[str, Any]:
    """``POST /downloads``'s body from ``get``'s arguments."""
    body: dict[str, Any] = {"url": args.url}
    if args.type:
        body["type"] = args.type
    if args.options:
        body["options"] = dict(args.options)
    return body


def _outcome(
    args: argparse.Namespace,
    job_id: str,
    job: Mapping[str, Any],
    output: Path | None,
    saved: list[str],
    code: int,
) -> int:
    """What ``get`` prints once the job has ended, and its exit code (``code`` when it
    completed: EXIT_OK, or why its files could not be saved)."""
    status = job.get("status")
    if args.json:
        print(json.dumps({**job, "savedFiles": saved} if output is not None else job), flush=True)
    elif status == "completed":
        print(f"completed: {job.get('filename')} ({human_bytes(job.get('size'))})", flush=True)
        for path in saved:
            print(f"saved {path}", flush=True)
    if status == "failed":
        print(
            f"mediad: job {job_id} failed: {job.get('errorCode')}: {job.get('errorMessage')}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    if status != "completed":
        print(f"mediad: job {job_id} was {status}", file=sys.stderr)
        return EXIT_CANCELLED
    return code


async def save_files(client: Client, job_id: str, output: Path) -> list[str]:
    """Download every file of a completed job into ``output``; the paths written."""
    listing = await client.request("GET", f"/files/{job_id}")
    saved = []
    for item in listing.get("files") or []:
        name = str(item.get("name") or "")
        if not name or name in (".", "..") or "/" in name or "\0" in name:
            raise ClientError(EXIT_FILES, f"refusing a file name from the server: {name!r}")
        destination = output / name
        await client.download(str(item["url"]), destination, item.get("size"))
        saved.append(str(destination))
    return saved


# --- ls, show, the actions, rm ----------------------------------------------------


async def _ls(args: argparse.Namespace, client: Client, state: dict[str, Any]) -> int:
    jobs: list[dict[str, Any]] = []
    cursor = None
    try:
        while len(jobs) < args.limit:
            query: dict[str, Any] = {"limit": min(PAGE_LIMIT, args.limit - len(jobs))}
            if args.status:
                query["status"] = args.status
            if args.search:
                query["q"] = args.search
            if cursor:
                query["cursor"] = cursor
            page = await client.request("GET", "/downloads", query=query)
            jobs.extend(page.get("items") or [])
            cursor = page.get("nextCursor")
            if not cursor:
                break
    finally:
        await client.close()
    if args.json:
        print(json.dumps(jobs))
    else:
        print(job_table(jobs), end="")
    return EXIT_OK


async def _show(args: argparse.Namespace, client: Client, state: dict[str, Any]) -> int:
    try:
        job = await client.request("GET", f"/downloads/{args.job_id}")
        files = None
        if job.get("status") == "completed" and not args.json:
            files = await client.request("GET", f"/files/{args.job_id}")
    finally:
        await client.close()
    if args.json:
        print(json.dumps(job))
        return EXIT_OK
    print(job_details(job, files), end="")
    return EXIT_OK


async def _action(args: argparse.Namespace, client: Client, state: dict[str, Any]) -> int:
    try:
        job = await client.request("POST", f"/downloads/{args.job_id}/{args.action}")
    finally:
        await client.close()
    print(json.dumps(job) if args.json else f"{job.get('jobId')}: {job.get('status')}")
    return EXIT_OK


async def _rm(args: argparse.Namespace, client: Client, state: dict[str, Any]) -> int:
    try:
        await client.request("DELETE", f"/downloads/{args.job_id}", expect=(204,))
    finally:
        await client.close()
    print(
        json.dumps({"jobId": args.job_id, "deleted": True})
        if args.json
        else f"deleted {args.job_id}"
    )
    return EXIT_OK


# --- backup and restore (mediad/backup.py, imported when one runs) -----------------


def _backup(args: argparse.Namespace, config: Config) -> int:
    from mediad import backup

    return backup.run_backup(config, args.file)


def _restore(args: argparse.Namespace, config: Config) -> int:
    from mediad import backup

    return backup.run_restore(config, args.file, force=args.force)

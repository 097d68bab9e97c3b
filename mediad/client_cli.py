"""The command line for people and scripts: ``mediad get | ls | show | cancel | pause |
resume | retry | stop | rm`` against a running mediad, and ``backup | restore`` of its
job store (mediad/backup.py).

Only the standard library is imported at module level: ``mediad serve`` builds its
argument parser with these commands in it and must not pay for aiohttp's client,
python-socketio's client or rich (the progress display) at start-up.

Exit codes (README, "Command line"):

====  ==================================================================================
0     done: the job completed (``get``), the request was carried out
1     the job failed (its error code and message on stderr); backup/restore failed
2     bad arguments or configuration
3     the job was cancelled or deleted while ``get`` waited for it
4     refused: the server answered 4xx (its message on stderr, a 409 with the job's
      status), or ``restore`` into a store that is not empty
5     the server could not be reached, or answered 5xx or something that is not mediad
6     the job completed but its files could not be saved to ``--output``
130   interrupted (Ctrl-C): the job goes on in the service
====  ==================================================================================
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlencode, urlsplit

from mediad.config import local_url

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CANCELLED = 3
EXIT_REFUSED = 4
EXIT_UNREACHABLE = 5
EXIT_FILES = 6
EXIT_INTERRUPTED = 130

JOB_TYPES = ("ytdlp", "aria2", "ffmpeg", "twitter")
ACTIONS = {
    "cancel": "cancel a job (its files are removed)",
    "pause": "pause a job, keeping its partial data",
    "resume": "queue a paused job again (it continues where it was)",
    "retry": "run a failed or cancelled job again",
    "stop": "finish a running ffmpeg recording now, keeping what it recorded",
}
TERMINAL = ("completed", "failed", "cancelled")
PAGE_LIMIT = 200  # the most GET /downloads returns at once
IDLE_CHECK_S = 30.0  # with no event for this long, `get` asks for the job over REST
CONNECT_TIMEOUT_S = 10.0
CHUNK_BYTES = 256 * 1024


class ClientError(Exception):
    """One line for stderr and the exit code that goes with it."""

    def __init__(self, exit_code: int, message: str, http_status: int | None = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.message = message
        self.http_status = http_status


# --- the commands -----------------------------------------------------------------


def register(command: Callable[..., argparse.ArgumentParser]) -> None:
    """Add the client and backup commands with cli.py's ``command(name, help, run)``."""

    def connection(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--server", metavar="URL", help="mediad's URL (or MEDIAD_URL; default: the config's)"
        )
        sub.add_argument(
            "--token", metavar="T", help="API token (or MEDIAD_TOKEN; default: the config's first)"
        )
        sub.add_argument("--json", action="store_true", help="print JSON for scripts")

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
    connection(get)

    ls = command("ls", "list jobs, newest first", _run(_ls))
    ls.add_argument("--status", metavar="S", help="only these statuses (comma-separated)")
    ls.add_argument("--search", "-q", metavar="TEXT", help="only jobs whose URL or file has TEXT")
    ls.add_argument("--limit", type=_positive, default=20, metavar="N", help="at most N (20)")
    connection(ls)

    show = command("show", "show one job and its files", _run(_show))
    show.add_argument("job_id", metavar="ID")
    connection(show)

    for action, text in ACTIONS.items():
        sub = command(action, text, _run(_action))
        sub.add_argument("job_id", metavar="ID")
        sub.set_defaults(action=action)
        connection(sub)
    rm = command("rm", "delete a job and its files", _run(_rm))
    rm.add_argument("job_id", metavar="ID")
    connection(rm)

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


def _run(body: Callable[..., Any]) -> Callable[[argparse.Namespace, Any], int]:
    """A client command: an event loop, a client, and every error as one line and a code."""

    def run(args: argparse.Namespace, config: Any) -> int:
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


def server_url(given: str | None, config: Any, env: Mapping[str, str]) -> str:
    """``--server``, else ``MEDIAD_URL``, else the configuration's server.host and port."""
    url = given or env.get("MEDIAD_URL") or ""
    if not url:
        if not config.server.port:
            raise ClientError(EXIT_USAGE, "server.port is 0: pass --server URL or set MEDIAD_URL")
        url = local_url(config.server.host, config.server.port)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ClientError(
            EXIT_USAGE, f"the server's URL must be http(s)://HOST[:PORT], not {url!r}"
        )
    return url.rstrip("/")


def api_token(given: str | None, config: Any, env: Mapping[str, str]) -> str | None:
    """``--token``, else ``MEDIAD_TOKEN``, else the first of server.api_tokens."""
    if given:
        return given
    if env.get("MEDIAD_TOKEN"):
        return env["MEDIAD_TOKEN"]
    tokens = config.server.api_tokens
    return tokens[0] if tokens else None


# --- REST -------------------------------------------------------------------------


class Client:
    """The REST API with every error turned into a ClientError."""

    def __init__(self, base_url: str, token: str | None) -> None:
        self.base_url = base_url
        self.token = token
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._session: Any = None

    async def session(self) -> Any:
        if self._session is None:
            import aiohttp

            self._session = aiohttp.ClientSession(
                headers=self.headers,
                timeout=aiohttp.ClientTimeout(total=None, connect=CONNECT_TIMEOUT_S, sock_read=60),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def url(self, path: str) -> str:
        return self.base_url + path

    async def request(
        self,
        method: str,
        path: str,
        *,
        expect: tuple[int, ...] = (200,),
        body: Any = None,
        query: Mapping[str, Any] | None = None,
    ) -> Any:
        import aiohttp

        session = await self.session()
        target = self.url(path) + (f"?{urlencode(query)}" if query else "")
        try:
            async with session.request(method, target, json=body) as resp:
                status, raw = resp.status, await resp.read()
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise ClientError(
                EXIT_UNREACHABLE, f"cannot reach {self.base_url}: {_reason(exc)}"
            ) from None
        data = _json_or_none(raw)
        if status in expect:
            if raw and data is None:
                raise ClientError(EXIT_UNREACHABLE, f"{self.base_url} does not answer like mediad")
            return data
        raise answer_error(status, data, self.base_url)

    async def download(self, link: str, destination: Path, size: int | None) -> None:
        """Write one file (a link from GET /files/{id}) to ``destination`` atomically."""
        import aiohttp

        session = await self.session()
        partial = destination.with_name(f".{destination.name}.mediad-partial")
        try:
            async with session.get(self.url(link) if link.startswith("/") else link) as resp:
                if resp.status != 200:
                    raise answer_error(resp.status, _json_or_none(await resp.read()), self.base_url)
                written = 0
                with partial.open("wb") as out:
                    async for chunk in resp.content.iter_chunked(CHUNK_BYTES):
                        out.write(chunk)
                        written += len(chunk)
                    out.flush()
                    os.fsync(out.fileno())
            if size is not None and written != size:
                raise ClientError(EXIT_FILES, f"{destination.name}: got {written} bytes of {size}")
            partial.replace(destination)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ClientError(EXIT_FILES, f"{destination.name}: {_reason(exc)}") from None
        except OSError as exc:
            raise ClientError(
                EXIT_FILES, f"cannot write {destination}: {exc.strerror or exc}"
            ) from None
        finally:
            partial.unlink(missing_ok=True)


def answer_error(status: int, data: Any, base_url: str) -> ClientError:
    """The server's error answer as one line: its message, its code, the job's status."""
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        error = {}
    code = str(error.get("code") or f"http_{status}")
    message = str(error.get("message") or f"the server answered {status}")
    line = f"{message} ({code}, HTTP {status})"
    if "status" in error:
        line += f"; the job is {error['status']}"
    if status == 401:
        line += "; pass --token or set MEDIAD_TOKEN"
    if 400 <= status < 500:
        return ClientError(EXIT_REFUSED, line, status)
    return ClientError(EXIT_UNREACHABLE, f"{base_url}: {line}", status)


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


# --- get --------------------------------------------------------------------------


async def _get(args: argparse.Namespace, client: Client, state: dict[str, Any]) -> int:
    try:
        return await _get_with(args, client, state)
    finally:
        await client.close()


async def _get_with(args: argparse.Namespace, client: Client, state: dict[str, Any]) -> int:
    output = Path(args.output) if args.output else None
    if output is not None:
        try:
            output.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ClientError(EXIT_FILES, f"cannot create {output}: {exc.strerror}") from None
    body: dict[str, Any] = {"url": args.url}
    if args.type:
        body["type"] = args.type
    if args.options:
        body["options"] = dict(args.options)
    created = await client.request("POST", "/downloads", body=body, expect=(201,))
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
    status = job.get("status")
    saved: list[str] = []
    code = EXIT_OK
    if status == "completed" and output is not None:
        try:
            saved = await save_files(client, job_id, output)
        except ClientError as exc:
            print(f"mediad: job {job_id} completed, but {exc.message}", file=sys.stderr)
            code = exc.exit_code
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


async def follow(client: Client, job_id: str, display: Display) -> dict[str, Any]:
    """Follow a job over Socket.IO until it ends; return it as GET /downloads/{id} has it.

    The subscription's ack carries the job as it is, so a job that ended before the
    subscription (or while the socket was reconnecting: every connect subscribes again)
    is seen ending; with no event for IDLE_CHECK_S the job is asked for over REST, which
    also notices a job deleted meanwhile.
    """
    import socketio

    inbox: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    def recorder(name: str) -> Callable[..., None]:
        def record(data: Any = None) -> None:
            inbox.put_nowait((name, data))

        return record

    sio = socketio.AsyncClient(
        reconnection=True,
        reconnection_delay=0.5,
        reconnection_delay_max=5,
        logger=False,
        engineio_logger=False,
    )
    for name in ("progress", "completed", "failed", "job-update", "connect", "disconnect"):
        sio.on(name, recorder(name), namespace="/jobs")
    parts = urlsplit(client.base_url)
    origin = f"{parts.scheme}://{parts.netloc}"
    try:
        await sio.connect(
            origin,
            namespaces=["/jobs"],
            socketio_path=parts.path.rstrip("/") + "/socket.io",
            transports=["websocket"],
            headers=client.headers,
            auth={"token": client.token} if client.token else None,
            wait_timeout=CONNECT_TIMEOUT_S,
        )
    except socketio.exceptions.ConnectionError as exc:
        refused = "token" in str(exc)
        raise ClientError(
            EXIT_REFUSED if refused else EXIT_UNREACHABLE,
            f"cannot follow job {job_id} over Socket.IO: {_reason(exc)}",
        ) from None
    try:
        while True:
            try:
                kind, data = await asyncio.wait_for(inbox.get(), IDLE_CHECK_S)
            except TimeoutError:
                kind, data = "idle", None
            status: str | None = None
            if kind == "connect":
                status = await _subscribe(sio, job_id, display)
            elif kind == "idle":
                job = await _fetch_job(client, job_id)
                display.job(job)
                status = job.get("status")
            elif kind == "disconnect":
                display.note("connection lost; reconnecting")
            elif isinstance(data, dict) and data.get("jobId") == job_id:
                if kind == "progress":
                    display.progress(data)
                elif kind == "job-update":
                    display.job(data)
                    status = data.get("status")
                else:  # completed or failed
                    status = kind
            if status in TERMINAL:
                final = await _fetch_job(client, job_id)
                display.job(final)
                return final
    finally:
        await sio.disconnect()


async def _subscribe(sio: Any, job_id: str, display: Display) -> str | None:
    try:
        ack = await sio.call("subscribe", {"jobId": job_id}, namespace="/jobs", timeout=10)
    except Exception:  # disconnected meanwhile or timed out: the next connect tries again
        return None
    if not isinstance(ack, dict) or not ack.get("ok"):
        error = (ack or {}).get("error") if isinstance(ack, dict) else None
        if isinstance(error, dict) and error.get("code") == "not_found":
            raise ClientError(EXIT_CANCELLED, f"job {job_id} was deleted")
        raise ClientError(EXIT_UNREACHABLE, f"cannot follow job {job_id}: {error or ack}")
    job = ack.get("job") or {}
    display.job(job)
    return job.get("status")


async def _fetch_job(client: Client, job_id: str) -> dict[str, Any]:
    try:
        return await client.request("GET", f"/downloads/{job_id}")  # type: ignore[no-any-return]
    except ClientError as exc:
        if exc.http_status == 404:
            raise ClientError(EXIT_CANCELLED, f"job {job_id} was deleted") from None
        raise


async def save_files(client: Client, job_id: str, output: Path) -> list[str]:
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


# --- the progress display ---------------------------------------------------------


class Display:
    """What ``get`` shows while it waits; this one shows nothing (--json, not a terminal)."""

    def start(self, job_id: str, job_type: str) -> None:
        pass

    def job(self, job: Mapping[str, Any]) -> None:
        """A job as the ack, REST or a job-update has it."""

    def progress(self, event: Mapping[str, Any]) -> None:
        pass

    def note(self, text: str) -> None:
        pass

    def stop(self) -> None:
        pass


class PlainDisplay(Display):
    """Lines for logs and pipes: one per status or stage change and per whole percent."""

    UNKNOWN_EVERY_S = 5.0

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.status: str | None = None
        self.stage: str | None = None
        self.percent: int | None = None
        self.last_unknown = 0.0

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def start(self, job_id: str, job_type: str) -> None:
        self._print(f"job {job_id} ({job_type})")

    def job(self, job: Mapping[str, Any]) -> None:
        status = job.get("status")
        if status and status != self.status:
            self.status = status
            if status not in ("running", *TERMINAL):
                self._print(f"{status}")
        if status == "running":
            self.progress(job)

    def progress(self, event: Mapping[str, Any]) -> None:
        stage = str(event.get("stage") or "downloading")
        value = event.get("progress")
        percent = int(value) if isinstance(value, int | float) else None
        changed = stage != self.stage
        now = time.monotonic()
        if percent is None:
            if not changed and now - self.last_unknown < self.UNKNOWN_EVERY_S:
                return
            self.last_unknown = now
        elif not changed and percent == self.percent:
            return
        self.stage, self.percent = stage, percent
        self._print(progress_line(stage, value, event.get("speed"), event.get("eta")))

    def note(self, text: str) -> None:
        self._print(text)


class RichDisplay(Display):
    """A live bar on a terminal: percent, speed, ETA and stage; pulsing when the total is
    unknown. rich is imported here only."""

    def __init__(self, stream: IO[str]) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn

        self.console = Console(file=stream)
        self.bar = Progress(
            SpinnerColumn(),
            TextColumn("{task.fields[stage]:<14}"),
            BarColumn(),
            TextColumn("{task.fields[percent]:>5}"),
            TextColumn("{task.fields[speed]:>11}"),
            TextColumn("ETA {task.fields[eta]:>8}"),
            console=self.console,
            transient=False,
        )
        self.task: Any = None

    def start(self, job_id: str, job_type: str) -> None:
        self.console.print(f"job {job_id} ({job_type})")
        self.bar.start()
        self.task = self.bar.add_task("", total=None, stage="queued", percent="", speed="", eta="-")

    def job(self, job: Mapping[str, Any]) -> None:
        status = job.get("status")
        if status == "running":
            self.progress(job)
        elif status == "completed":
            self.bar.update(
                self.task, total=100, completed=100, stage=status, percent="100%", speed="", eta="-"
            )
        elif status:
            self.bar.update(self.task, stage=str(status), speed="", eta="-")

    def progress(self, event: Mapping[str, Any]) -> None:
        value = event.get("progress")
        known = isinstance(value, int | float)
        self.bar.update(
            self.task,
            total=100 if known else None,
            completed=float(value) if known else 0,  # type: ignore[arg-type]
            stage=str(event.get("stage") or "downloading"),
            percent=f"{value:.0f}%" if known else "",
            speed=human_speed(event.get("speed")),
            eta=human_eta(event.get("eta")),
        )

    def note(self, text: str) -> None:
        self.console.print(text)

    def stop(self) -> None:
        self.bar.stop()


def make_display(json_output: bool) -> Display:
    """A live bar where a person watches, plain lines where stdout is a pipe or a file."""
    if json_output:  # stdout is for the JSON; a person may still watch stderr
        return RichDisplay(sys.stderr) if sys.stderr.isatty() else Display()
    if sys.stdout.isatty():
        return RichDisplay(sys.stdout)
    return PlainDisplay(sys.stdout)


def progress_line(stage: str, progress: Any, speed: Any, eta: Any) -> str:
    """``downloading    42%    1.9 MiB/s  ETA 0:03`` (``?`` for an unknown percent)."""
    percent = f"{progress:.0f}%" if isinstance(progress, int | float) else "?"
    line = f"{stage:<14} {percent:>4}  {human_speed(speed):>11}"
    if isinstance(eta, int | float):
        line += f"  ETA {human_eta(eta)}"
    return line.rstrip()


def human_bytes(size: Any) -> str:
    if not isinstance(size, int | float):
        return "?"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def human_speed(speed: Any) -> str:
    return f"{human_bytes(speed)}/s" if isinstance(speed, int | float) else ""


def human_eta(eta: Any) -> str:
    if not isinstance(eta, int | float):
        return "-"
    seconds = int(eta)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02}:{seconds:02}" if hours else f"{minutes}:{seconds:02}"


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


def job_table(jobs: list[Mapping[str, Any]]) -> str:
    """Aligned columns with a header; the last (file name or URL) is never cut."""
    rows = [("ID", "STATUS", "TYPE", "PROGRESS", "SIZE", "CREATED", "NAME")]
    for job in jobs:
        progress = job.get("progress")
        rows.append(
            (
                str(job.get("jobId")),
                str(job.get("status")),
                str(job.get("type")),
                f"{progress:.0f}%" if isinstance(progress, int | float) else "-",
                human_bytes(job.get("size") or job.get("totalBytes"))
                if (job.get("size") or job.get("totalBytes"))
                else "-",
                str(job.get("createdAt") or "")[:19].replace("T", " "),
                str(job.get("filename") or job.get("url")),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1]
             for row in rows]  # fmt: skip
    if not jobs:
        lines.append("(no jobs)")
    return "\n".join(lines) + "\n"


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


def job_details(job: Mapping[str, Any], files: Mapping[str, Any] | None = None) -> str:
    progress = job.get("progress")
    fields = [
        ("job", job.get("jobId")),
        ("url", job.get("url")),
        ("type", job.get("type")),
        ("status", job.get("status")),
        ("stage", job.get("stage")),
        ("progress", f"{progress:.1f}%" if isinstance(progress, int | float) else None),
        ("speed", human_speed(job.get("speed")) or None),
        ("eta", human_eta(job.get("eta")) if job.get("eta") is not None else None),
        ("file", job.get("filename")),
        ("size", human_bytes(job.get("size")) if job.get("size") is not None else None),
        ("path", job.get("outputPath")),
        (
            "error",
            f"{job.get('errorCode')}: {job.get('errorMessage')}" if job.get("errorCode") else None,
        ),
        ("attempts", job.get("attempts")),
        ("options", json.dumps(job.get("options")) if job.get("options") else None),
        ("created", job.get("createdAt")),
        ("started", job.get("startedAt")),
        ("finished", job.get("finishedAt")),
    ]
    lines = [f"{name:<9} {value}" for name, value in fields if value not in (None, "")]
    if files and files.get("files"):
        lines.append("files:")
        lines += [f"  {f.get('name')}  {human_bytes(f.get('size'))}" for f in files["files"]]
    return "\n".join(lines) + "\n"


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


# --- backup and restore -----------------------------------------------------------


def _backup(args: argparse.Namespace, config: Any) -> int:
    from mediad import backup

    return backup.run_backup(config, args.file)


def _restore(args: argparse.Namespace, config: Any) -> int:
    from mediad import backup

    return backup.run_restore(config, args.file, force=args.force)
